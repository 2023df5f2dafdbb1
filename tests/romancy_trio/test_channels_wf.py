"""Channels between workflows: broadcast order, competing exactly-once across processes (with a
SIGKILL), mode lock, receive timeout, send_to, unsubscribe."""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
import trio

from romancy_trio import (
    ChannelError,
    ReceiveTimeoutError,
    WorkflowContext,
    WorkflowStatus,
    open_app,
    publish,
    receive,
    send_to,
    subscribe,
    unsubscribe,
    workflow,
)
from romancy_trio._replay import EventKind

from ._procs import start_worker, stop
from ._waits import failing_if_stuck, until_idle
from .conftest import Backend, fetch
from .worker_proc import ALL, EFFECTS_DDL, consumer


@workflow
async def listens(ctx: WorkflowContext, args: dict[str, Any]) -> list[Any]:
    await subscribe(ctx, args["channel"], args.get("mode", "broadcast"))
    got = []
    for _ in range(args["count"]):
        msg = await receive(ctx, args["channel"], timeout=args.get("timeout"))
        got.append(msg.data)
    return got


@workflow
async def talks(ctx: WorkflowContext, args: dict[str, Any]) -> int:
    for i in range(args["count"]):
        await publish(ctx, args["channel"], {"n": i}, metadata={"from": ctx.instance_id})
    return args["count"]


@workflow
async def whispers(ctx: WorkflowContext, args: dict[str, Any]) -> int:
    return await send_to(ctx, args["to"], args["channel"], "psst")


@workflow
async def wrong_mode(ctx: WorkflowContext, channel: str) -> str:
    await subscribe(ctx, channel, "competing")
    return "subscribed"


@workflow
async def quits(ctx: WorkflowContext, channel: str) -> str:
    await subscribe(ctx, channel)
    first = await receive(ctx, channel)
    assert await unsubscribe(ctx, channel)
    try:  # not subscribed any more: only a direct message could reach it
        await receive(ctx, channel, timeout=0.5)
    except ReceiveTimeoutError as exc:
        return f"{first.data} then {type(exc).__name__}"
    return "still receiving"


@workflow
async def times_out(ctx: WorkflowContext, channel: str) -> str:
    await subscribe(ctx, channel)
    try:
        await receive(ctx, channel, timeout=0.3)
    except ReceiveTimeoutError:
        return "timed out"
    return "got one"


WFS = [listens, talks, whispers, wrong_mode, quits, times_out]


async def _until(app: Any, ids: list[str], status: WorkflowStatus) -> None:
    with trio.fail_after(30):
        for iid in ids:
            while (await app.status(iid)).status is not status:
                await trio.sleep(0.02)


async def test_broadcast_five_subscribers_each_get_all_500_in_order(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        subs = [await app.start(listens, {"channel": "news", "count": 500}) for _ in range(5)]
        await _until(app, subs, WorkflowStatus.WAITING)  # subscribed and waiting
        await app.start(talks, {"channel": "news", "count": 500})

        async def progress() -> object:  # 3000 steps: on MySQL under load, minutes
            return await fetch(app, "SELECT count(*) FROM workflow_history")

        async with failing_if_stuck(progress, every=1):
            for iid in subs:
                got = await app.result(iid)
                assert got == [{"n": i} for i in range(500)]


async def test_messages_from_outside_send_to_and_metadata(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        a = await app.start(listens, {"channel": "dm", "count": 1})
        b = await app.start(listens, {"channel": "dm", "count": 1, "timeout": 1.0})
        await _until(app, [a, b], WorkflowStatus.WAITING)
        await app.start(whispers, {"to": a, "channel": "dm"})
        assert await app.result(a, timeout=20) == ["psst"]
        with pytest.raises(Exception, match="ReceiveTimeoutError"):
            await app.result(b, timeout=20)  # the direct message was for a only


async def test_mode_lock_timeout_and_unsubscribe(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        first = await app.start(listens, {"channel": "locked", "count": 1})
        await _until(app, [first], WorkflowStatus.WAITING)
        with pytest.raises(Exception, match="ChannelError") as err:
            await app.run(wrong_mode, "locked", timeout=20)
        assert "broadcast" in str(err.value) and "competing" in str(err.value)
        assert await app.run(times_out, "quiet", timeout=20) == "timed out"
        q = await app.start(quits, "bye")
        await _until(app, [q], WorkflowStatus.WAITING)
        await app.publish("bye", "one")
        assert await app.result(q, timeout=20) == "one then ReceiveTimeoutError"


async def test_woken_again_before_the_previous_run_has_finished(backend: Backend) -> None:
    """Under load a run's task can linger after its suspend committed; meanwhile a publish
    wakes the instance and this same worker claims it again. Both runs are tracked apart:
    each finishes cleanly and the worker keeps serving (it once crashed on a KeyError)."""
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        suspend = app.store.waits.suspend
        lingered = 0

        async def slow_to_finish(*args: Any, **kwargs: Any) -> Any:
            nonlocal lingered
            event = await suspend(*args, **kwargs)
            if event is None:  # suspended: the instance is let go, the task lingers
                lingered += 1
                await trio.sleep(0.3)
            return event

        app.store.waits.suspend = slow_to_finish  # type: ignore[method-assign]
        iid = await app.start(listens, {"channel": "again", "count": 3})
        for n in range(3):
            await _until(app, [iid], WorkflowStatus.WAITING)  # just suspended: lingering
            await app.publish("again", n)
            with trio.fail_after(20):
                while (await app.status(iid)).status is WorkflowStatus.WAITING:
                    await trio.sleep(0.005)
        assert await app.result(iid, timeout=20) == [0, 1, 2]
        assert lingered == 3
        await until_idle(app)
        stats = app.statistics()
        assert stats is not None and stats.started == stats.finished


async def test_a_message_published_while_its_receiver_suspends_is_not_left_behind(
        backend: Backend) -> None:
    """The receiver found nothing and is about to suspend when a message commits: the
    publish's wake-up finds nobody waiting yet, so the receiver's own second look, right
    after its suspension commits, must wake it - at once, not at the fallback sweep.
    (SQLite: the publish waits for the receiver's transaction, then finds it waiting.)"""
    config = replace(backend.config, fallback_interval=600.0)  # no sweep during the test
    async with open_app(backend.url, workflows=WFS, config=config) as app:
        take = app.store.waits._take_tx
        found_nothing, go_on = trio.Event(), trio.Event()

        async def take_then_pause(*args: Any, **kwargs: Any) -> Any:
            rows, found = await take(*args, **kwargs)
            if found is None and not found_nothing.is_set():
                found_nothing.set()  # between the empty take and the suspension
                await go_on.wait()
            return rows, found

        app.store.waits._take_tx = take_then_pause  # type: ignore[method-assign]
        iid = await app.start(listens, {"channel": "race", "count": 1, "mode": "competing"})
        with trio.fail_after(20):
            await found_nothing.wait()
        published = trio.Event()

        async def publish() -> None:
            await app.publish("race", "late")
            published.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            if backend.name in ("postgres", "mysql"):
                with trio.fail_after(20):  # commits now, while the receiver's is still open
                    await published.wait()
            else:
                with trio.move_on_after(1.0):  # SQLite's waits for the receiver's transaction
                    await published.wait()
                assert not published.is_set()
            go_on.set()
        assert await app.result(iid, timeout=20) == ["late"]


async def _received_ids(app: Any) -> list[int]:
    async with app.store.db.transaction() as tx:
        rows = await tx.fetchall(
            "SELECT payload FROM workflow_history WHERE kind = 'message_received' UNION ALL "
            "SELECT payload FROM workflow_history_archive WHERE kind = 'message_received'")
    import orjson

    return [orjson.loads(r[0])["id"] for r in rows]


@pytest.mark.slow
@pytest.mark.postgres
async def test_competing_three_processes_2000_messages_exactly_once_with_a_sigkill(
        pg_backend: Backend) -> None:
    b = pg_backend
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(EFFECTS_DDL)
        workers = [start_worker(b.url, b.config.schema, f"w{i}") for i in range(3)]
        try:
            consumers = [await app.start(consumer, {"channel": "jobs", "idle": 3.0})
                         for _ in range(6)]
            await _until(app, consumers, WorkflowStatus.WAITING)
            for i in range(2000):
                await app.publish("jobs", {"job": i})
                if i == 700:
                    workers[0].send_signal(signal.SIGKILL)
            totals = [await app.result(iid, timeout=180) for iid in consumers]
        finally:
            for w in workers:
                stop(w)
        ids = await _received_ids(app)
        assert len(ids) == 2000 and len(set(ids)) == 2000  # each message received exactly once
        assert sum(totals) == 2000
        async with app.store.db.transaction() as tx:
            effects = await tx.fetchall("SELECT step FROM effects")
        assert Counter(r[0] for r in effects) == Counter(ids)  # each effect exactly once
        assert EventKind.MESSAGE_RECEIVED == "message_received"


@workflow
async def receives_bad_name(ctx: WorkflowContext) -> str:
    try:
        await receive(ctx, "bad\x01name")
    except ChannelError as exc:
        return f"refused: {exc}"
    return "accepted"


async def test_receive_on_an_invalid_channel_fails_in_the_workflow_not_the_worker(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=[receives_bad_name], config=backend.config) as app:
        result = await app.run(receives_bad_name, timeout=20)
        assert result.startswith("refused: ") and "channel" in result
        await until_idle(app)  # the run's task ended cleanly; the worker is still serving
        assert await app.run(receives_bad_name, timeout=20) == result


async def test_a_lost_channel_wake_up_is_repaired_by_the_fallback_sweep(backend: Backend) -> None:
    config = replace(backend.config, fallback_interval=0.5)
    async with open_app(backend.url, workflows=WFS, config=config) as app:
        iid = await app.start(listens, {"channel": "lost", "count": 1})
        await _until(app, [iid], WorkflowStatus.WAITING)
        # publish the way a buggy or crashed publisher might: the message is stored, but
        # nobody is woken
        async with app.store.db.transaction() as tx:
            await app.channels.engine.publish_tx(tx, "lost", '"found"', now=time.time())
        assert await app.result(iid, timeout=20) == ["found"]


async def test_publish_many_keeps_order_and_wakes_competing_receivers(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        first = await app.start(listens, {"channel": "batch", "count": 3, "mode": "competing"})
        await _until(app, [first], WorkflowStatus.WAITING)
        ids = await app.publish_many("batch", ["a", "b", "c"])
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert await app.result(first, timeout=20) == ["a", "b", "c"]
