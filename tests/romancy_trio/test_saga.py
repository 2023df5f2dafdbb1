"""Saga compensation and cancellation, including a worker SIGKILLed while compensating and a
cancellation of a workflow whose activity is running on another process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    InstanceFinishedError,
    WorkflowCancelledError,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    activity,
    open_app,
    workflow,
)

from ._procs import start_worker, stop
from ._waits import until_idle
from .conftest import Backend, fetch
from .worker_proc import ALL, EFFECTS_DDL, book, saga

pytestmark = pytest.mark.slow


async def _effects(app: Any, iid: str) -> list[int]:
    rows = await fetch(app, "SELECT step FROM effects WHERE instance_id = ?", (iid,))
    return [r[0] for r in rows]


async def _history_keys(app: Any, iid: str) -> list[str]:
    return [e.key for e in await app.store.load_history(iid, 1)]


async def _marker(path: Path) -> None:
    with trio.fail_after(30):
        while not path.exists():
            await trio.sleep(0.05)


async def _setup(app: Any) -> None:
    async with app.store.db.transaction() as tx:
        await tx.execute(EFFECTS_DDL)


async def test_step_three_fails_so_two_and_one_are_undone_in_that_order(backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        await _setup(app)
        iid = await app.start(saga, {"steps": 4, "fail_at": 3})
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=30)
        assert "step 3 failed" in err.value.message  # the original error is preserved
        assert await _effects(app, iid) == [1, 2, -2, -1]
        assert await _history_keys(app, iid) == [
            "book:1",
            "book:2",
            "book:3",
            "compensate:book:2",
            "compensate:book:1",
        ]


async def test_sigkill_while_compensating_resumes_without_repeating_or_skipping(
    backend: Backend, tmp_path: Path
) -> None:
    schema = backend.config.schema
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        await _setup(app)
        victim = start_worker(
            backend.url, schema, "victim", HANG_UNDO="1", MARKER_DIR=str(tmp_path)
        )
        try:
            iid = await app.start(saga, {"steps": 4, "fail_at": 3}, instance_id="saga-kill")
            await _marker(tmp_path / "saga-kill.undo1")  # undo 2 is done, undo 1 hangs
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        finally:
            stop(victim)
        rescuer = start_worker(backend.url, schema, "rescuer")
        try:
            with pytest.raises(WorkflowFailedError, match="step 3 failed"):
                await app.result(iid, timeout=60)
        finally:
            stop(rescuer)
        assert await _effects(app, iid) == [1, 2, -2, -1]
        assert (await _history_keys(app, iid))[-2:] == ["compensate:book:2", "compensate:book:1"]


@pytest.mark.postgres
async def test_cancel_a_running_workflow_on_another_process(
    pg_backend: Backend, tmp_path: Path
) -> None:
    backend = pg_backend  # SQLite is one process: a hung writer there would lock the file
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        await _setup(app)
        worker = start_worker(
            backend.url, backend.config.schema, "w", HANG_BOOK="2", MARKER_DIR=str(tmp_path)
        )
        try:
            iid = await app.start(saga, {"steps": 3}, instance_id="cancel-me")
            await _marker(tmp_path / "cancel-me.book2")  # step 2 is in progress over there
            await app.cancel(iid)
            with pytest.raises(WorkflowCancelledError):
                await app.result(iid, timeout=30)
        finally:
            stop(worker)
        # step 1 was undone once; step 2's uncommitted work rolled back with its cancellation
        assert await _effects(app, iid) == [1, -1]
        assert (await app.status(iid)).status is WorkflowStatus.CANCELLED
        with pytest.raises(InstanceFinishedError):
            await app.cancel(iid)


GATES: dict[str, trio.Event] = {}


@activity(transactional=False)
async def long_call(ctx: ActivityContext) -> None:
    GATES["started"].set()
    await trio.sleep_forever()  # only a cancellation ends it


@workflow
async def books_then_calls(ctx: WorkflowContext) -> None:
    await book(ctx, 1, False)
    await long_call(ctx)


async def test_cancel_a_running_workflow_in_this_process(backend: Backend) -> None:
    async with open_app(
        backend.url, workflows=[*ALL, books_then_calls, long_call], config=backend.config
    ) as app:
        await _setup(app)
        GATES["started"] = trio.Event()
        iid = await app.start(books_then_calls)
        with trio.fail_after(20):
            await GATES["started"].wait()
        await app.cancel(iid)
        with pytest.raises(WorkflowCancelledError):
            await app.result(iid, timeout=20)
        assert await _effects(app, iid) == [1, -1]
        await until_idle(app)


async def test_cancel_a_waiting_instance_with_nothing_to_undo_needs_no_worker(
    backend: Backend,
) -> None:
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        iid = await app.start(saga, {"steps": 1})
        await app.cancel(iid)  # pending, never ran: ends at once, nobody claims it
        assert (await app.status(iid)).status is WorkflowStatus.CANCELLED
        with pytest.raises(WorkflowCancelledError):
            await app.result(iid, timeout=5)
