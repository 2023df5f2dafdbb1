"""Retry policies: attempts recorded, non-retryable errors, exhaustion, durable backoff."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    RetriesExhaustedError,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailedError,
    activity,
    open_app,
    workflow,
)
from romancy_trio._replay import EventKind

from ._procs import start_worker, stop
from .conftest import Backend
from .worker_proc import ALL, retries

CALLS: dict[str, int] = {}
FAST = RetryPolicy(
    max_attempts=4,
    initial_interval=0.05,
    backoff_coefficient=2.0,
    non_retryable=("PermissionError",),
)


@activity(retry=FAST)
async def sometimes(ctx: ActivityContext, key: str, succeed_on: int) -> str:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] < succeed_on:
        raise ConnectionError(f"attempt {CALLS[key]} of {key} failed")
    if succeed_on < 0:
        raise PermissionError("never allowed")
    return f"{key} ok on attempt {CALLS[key]}"


@workflow
async def calls_sometimes(ctx: WorkflowContext, args: dict[str, Any]) -> str:
    try:
        return await sometimes(ctx, args["key"], args["succeed_on"])
    except RetriesExhaustedError as exc:
        return f"exhausted after {exc.attempts}: {exc.error_type}: {exc.message}"


WFS = [calls_sometimes, sometimes]


async def test_flaky_activity_succeeds_on_attempt_three_with_attempts_recorded(
    backend: Backend,
) -> None:
    key = f"flaky-{backend.name}"
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(calls_sometimes, {"key": key, "succeed_on": 3})
        assert await app.result(iid, timeout=20) == f"{key} ok on attempt 3"
        history = await app.store.load_history(iid, 1)
        assert [(e.kind, e.key) for e in history] == [
            (EventKind.ATTEMPT_FAILED, "sometimes:1#attempt-1"),
            (EventKind.ATTEMPT_FAILED, "sometimes:1#attempt-2"),
            (EventKind.ACTIVITY_COMPLETED, "sometimes:1"),
        ]
        first, second = history[0].payload, history[1].payload
        assert first["message"] == f"attempt 1 of {key} failed"
        assert second["next_at"] > first["next_at"]  # backoff grows


async def test_exhausted_retries_surface_with_the_last_cause(backend: Backend) -> None:
    key = f"never-{backend.name}"
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        result = await app.run(calls_sometimes, {"key": key, "succeed_on": 99}, timeout=20)
        assert result == f"exhausted after 4: ConnectionError: attempt 4 of {key} failed"


async def test_non_retryable_error_fails_at_once(backend: Backend) -> None:
    key = f"denied-{backend.name}"
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(calls_sometimes, {"key": key, "succeed_on": -1})
        with pytest.raises(WorkflowFailedError, match="PermissionError: never allowed"):
            await app.result(iid, timeout=20)
        assert CALLS[key] == 1
        assert [e.kind for e in await app.store.load_history(iid, 1)] == [EventKind.ACTIVITY_FAILED]


@pytest.mark.slow
async def test_worker_killed_during_backoff_resumes_the_schedule(
    backend: Backend, tmp_path: Path
) -> None:
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        victim = start_worker(backend.url, backend.config.schema, "victim")
        try:
            iid = await app.start(retries, 3)
            with trio.fail_after(30):
                while not await app.store.load_history(iid, 1):
                    await trio.sleep(0.02)
            victim.send_signal(signal.SIGKILL)  # during the 2 s backoff after attempt 1
            victim.wait(timeout=10)
        finally:
            stop(victim)
        (first,) = await app.store.load_history(iid, 1)
        rescuer = start_worker(backend.url, backend.config.schema, "rescuer")
        try:
            assert await app.result(iid, timeout=60) == "ok on 3"
        finally:
            stop(rescuer)
        history = await app.store.load_history(iid, 1)
        assert [e.key for e in history] == ["flaky:1#attempt-1", "flaky:1#attempt-2", "flaky:1"]
        second = history[1].payload
        assert second["attempt"] == 2  # the count went on, it did not start over
        started = float(re.search(r"started=([\d.]+)", second["message"]).group(1))  # type: ignore[union-attr]
        assert started >= first.payload["next_at"] - 0.05  # and the schedule was kept
