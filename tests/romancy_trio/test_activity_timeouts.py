"""Start-to-close timeouts per attempt: a hung activity is cancelled, recorded as a retryable
ActivityTimeoutError, retried, and its transaction rolled back; the call's timeout wins."""

from __future__ import annotations

import threading

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    ActivityTimeoutError,
    ConfigurationError,
    RetriesExhaustedError,
    RetryPolicy,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)
from romancy_trio._replay import ActivityCall, EventKind

from .conftest import Backend

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, backoff_coefficient=1.0)
CALLS: dict[str, int] = {}
RELEASE = threading.Event()


def _count(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


@activity(timeout=0.3, retry=FAST)
async def hangs_twice(ctx: ActivityContext, key: str) -> str:
    attempt = _count(key)
    await ctx.db.execute("INSERT INTO effects (k, attempt) VALUES (?, ?)", (key, attempt))
    if attempt < 3:
        await trio.sleep_forever()
    return f"done on attempt {attempt}"


@activity(timeout=0.3, retry=FAST, transactional=False)
def thread_hangs_once(ctx: ActivityContext, key: str) -> str:
    attempt = _count(key)
    if attempt == 1:
        RELEASE.wait(timeout=60)  # a blocking call that ignores the timeout: abandoned
        return "the abandoned thread's result"
    return f"done on attempt {attempt}"


LATE: list[str] = []


@activity(timeout=0.3, retry=FAST)
def thread_writes_then_hangs(ctx: ActivityContext, key: str) -> str:
    attempt = _count(key)
    db = ctx.blocking_db
    db.execute("INSERT INTO effects (k, attempt) VALUES (?, ?)", (key, attempt))
    if attempt == 1:
        RELEASE.wait(timeout=60)
        try:  # abandoned: the transaction it wrote in was rolled back and is closed
            db.execute("INSERT INTO effects (k, attempt) VALUES (?, ?)", (key, 99))
        except RuntimeError as exc:
            LATE.append(str(exc))
    return f"done on attempt {attempt}"


@activity(timeout=60, retry=RetryPolicy(max_attempts=2, initial_interval=0.01))
async def sleeps(ctx: ActivityContext, seconds: float) -> str:
    await trio.sleep(seconds)
    return "slept"


@workflow
async def timeouts(ctx: WorkflowContext, case: str, key: str) -> str:
    if case == "hangs_twice":
        return await hangs_twice(ctx, key)
    if case == "thread":
        return await thread_hangs_once(ctx, key)
    if case == "thread_tx":
        return await thread_writes_then_hangs(ctx, key)
    if case == "call_shorter":
        try:
            return await sleeps(ctx, 30).with_timeout(0.2)
        except RetriesExhaustedError as exc:
            return f"{exc.attempts} x {exc.error_type.rsplit('.', 1)[-1]}"
    return await sleeps(ctx, 0.3).with_timeout(30)  # the decorator says 60; this one is kinder


@workflow
async def short_decorator(ctx: WorkflowContext) -> str:
    return await quick_timeout(ctx, 0.3).with_timeout(30)


@activity(timeout=0.05, retry=RetryPolicy.no_retries(), transactional=False)
async def quick_timeout(ctx: ActivityContext, seconds: float) -> str:
    await trio.sleep(seconds)
    return "in time"


WFS = [timeouts, short_decorator]


async def _effects(app: object) -> list[tuple[object, ...]]:
    async with app.store.db.transaction() as tx:  # type: ignore[attr-defined]
        return await tx.fetchall("SELECT k, attempt FROM effects ORDER BY attempt")


async def test_hung_activity_times_out_is_retried_and_its_transactions_roll_back(
    backend: Backend,
) -> None:
    key = f"hang-{backend.name}"
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute("CREATE TABLE effects (k TEXT, attempt INTEGER)")
        result = await app.run(timeouts, "hangs_twice", key, timeout=30)
        assert result == "done on attempt 3"
        history = await app.store.load_history(await _only(app), 1)
        assert [(e.kind, e.payload.get("type") if e.kind is EventKind.ATTEMPT_FAILED else None)
                for e in history] == [
            (EventKind.ATTEMPT_FAILED, "romancy_trio._errors.ActivityTimeoutError"),
            (EventKind.ATTEMPT_FAILED, "romancy_trio._errors.ActivityTimeoutError"),
            (EventKind.ACTIVITY_COMPLETED, None),
        ]
        assert "did not finish within 0.3 s" in history[0].payload["message"]
        # the two timed-out attempts inserted a row each, in transactions that rolled back
        assert [tuple(r) for r in await _effects(app)] == [(key, 3)]


async def _only(app: object) -> str:
    (info,) = await app.list_instances()  # type: ignore[attr-defined]
    return str(info.instance_id)


async def test_a_hung_thread_is_abandoned_and_its_late_result_ignored(backend: Backend) -> None:
    key = f"thread-{backend.name}"
    RELEASE.clear()
    try:
        async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
            assert await app.run(timeouts, "thread", key, timeout=30) == "done on attempt 2"
            RELEASE.set()  # the abandoned thread now returns; nothing listens any more
            iid = await _only(app)
            history = await app.store.load_history(iid, 1)
            assert [e.kind for e in history] == [EventKind.ATTEMPT_FAILED,
                                                 EventKind.ACTIVITY_COMPLETED]
            assert history[1].payload == "done on attempt 2"
    finally:
        RELEASE.set()


async def test_a_timed_out_thread_cannot_reach_its_rolled_back_transaction(
    backend: Backend,
) -> None:
    key = f"thread-tx-{backend.name}"
    RELEASE.clear()
    LATE.clear()
    try:
        async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
            async with app.store.db.transaction() as tx:
                await tx.execute("CREATE TABLE effects (k TEXT, attempt INTEGER)")
            assert await app.run(timeouts, "thread_tx", key, timeout=30) == "done on attempt 2"
            RELEASE.set()
            with trio.fail_after(20):
                while not LATE:  # the abandoned thread tries its late statement
                    await trio.sleep(0.01)
            assert LATE == ["this activity attempt has ended; its transaction is closed"]
            assert [tuple(r) for r in await _effects(app)] == [(key, 2)]
    finally:
        RELEASE.set()


async def test_the_calls_timeout_overrides_the_decorators(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        shorter = await app.run(timeouts, "call_shorter", "-", timeout=30)
        assert shorter == "2 x ActivityTimeoutError"
        assert await app.run(timeouts, "call_longer", "-", timeout=30) == "slept"
        assert await app.run(short_decorator, timeout=30) == "in time"


def test_bad_timeouts_are_refused_where_they_are_written() -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a number of seconds > 0"):

        @activity(timeout=0)
        async def never(ctx: ActivityContext) -> None: ...

    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        ActivityCall[None]("x", ()).with_timeout(-1)
    assert issubclass(ActivityTimeoutError, TimeoutError)
