"""A worker that loses its lease in the middle of a step commits nothing of that step.

These take the lease away while an activity is in flight (or hand a receive a stale lease) and
check that neither the step's own writes (the activity's row, the message it took) nor its
history row were committed, and that the worker counts the loss.
"""


from __future__ import annotations

import itertools
import json
import time
from typing import Any

import psycopg
import pytest
import trio

from romancy_trio import (
    ActivityContext,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    receive,
    subscribe,
    workflow,
)
from romancy_trio._errors import LeaseLostError
from romancy_trio._replay import WaitCommand, WaitKind
from romancy_trio.storage._types import Lease
from romancy_trio.storage._waits import CHAIN_COMMIT

from .conftest import Backend

DDL = "CREATE TABLE IF NOT EXISTS fenced_effects (instance_id TEXT NOT NULL)"
STEAL = """UPDATE workflow_instances SET lease_owner = 'thief', lease_epoch = lease_epoch + 1,
           lease_expires_at = clock_timestamp() + interval '1 hour'
           WHERE instance_id = %s"""
_url: dict[str, str] = {}


def _steal(iid: str) -> None:
    """Another worker takes the instance over (a separate connection, committed at once)."""
    with psycopg.connect(_url["url"], autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(
            psycopg.sql.Identifier(_url["schema"])))
        assert conn.execute(STEAL, (iid,)).rowcount == 1


@activity
async def fenced_write(ctx: ActivityContext) -> str:
    await ctx.db.execute("INSERT INTO fenced_effects (instance_id) VALUES (?)",
                         (ctx.instance_id,))
    await trio.to_thread.run_sync(_steal, ctx.instance_id)
    return "written"


@workflow
async def fenced_flow(ctx: WorkflowContext) -> str:
    return await fenced_write(ctx)


@workflow
async def fenced_receiver(ctx: WorkflowContext) -> Any:
    await subscribe(ctx, "fenced", "competing")
    msg = await receive(ctx, "fenced")
    return msg.data


async def _rows(app: Any, query: str) -> list[tuple[Any, ...]]:
    async with app.store.db.transaction() as tx:
        return list(await tx.fetchall(query))


async def _until_lost(app: Any, count: int) -> None:
    with trio.fail_after(20):
        while app.statistics().leases_lost < count:
            await trio.sleep(0.02)


async def test_a_stolen_lease_commits_neither_the_activity_nor_its_record(
    pg_backend: Backend,
) -> None:
    _url.update(url=pg_backend.url, schema=pg_backend.config.schema)
    async with open_app(pg_backend.url, workflows=[fenced_flow, fenced_write],
                        config=pg_backend.config) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(DDL)
        iid = await app.start(fenced_flow)
        await _until_lost(app, 1)
        assert await _rows(app, "SELECT * FROM fenced_effects") == []
        history = await _rows(app, "SELECT kind FROM workflow_history "
                                   f"WHERE instance_id = '{iid}'")
        assert ("activity_completed",) not in history
        owner = await _rows(app, "SELECT lease_owner FROM workflow_instances "
                                 f"WHERE instance_id = '{iid}'")
        assert owner == [("thief",)]


async def test_a_receive_by_a_stale_owner_gives_back_the_message(pg_backend: Backend) -> None:
    """The take and the fenced record are one transaction: when the record's fence fails (here:
    a lease from an old epoch), the message taken in that transaction is not consumed."""
    async with open_app(pg_backend.url, workflows=[fenced_receiver],
                        config=pg_backend.config) as app:
        iid = await app.start(fenced_receiver)
        with trio.fail_after(20):
            while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                await trio.sleep(0.02)
    async with open_app(pg_backend.url, workflows=[fenced_receiver], config=pg_backend.config,
                        run_workers=False) as app:
        await app.publish("fenced", {"n": 1})  # makes it pending; no worker here claims it
        [(run_no, seq)] = await _rows(app, "SELECT i.run_no, max(h.seq) + 1 FROM "
                                           "workflow_instances i JOIN workflow_history h "
                                           "USING (instance_id, run_no) GROUP BY i.run_no")
        stale = Lease(iid, "an-old-owner", 0)
        wait = WaitCommand("receive:fenced:0", WaitKind.CHANNEL, "fenced", None)
        with pytest.raises(LeaseLostError):
            await app.store.waits.suspend(stale, int(run_no), int(seq), wait, now=time.time())
        claimed = await _rows(app, "SELECT claimed_by FROM channel_messages")
        assert claimed == [(None,)]  # the take rolled back with the failed record
        received = await _rows(app, "SELECT kind FROM workflow_history "
                                    "WHERE kind = 'message_received'")
        assert received == []


@workflow
async def drains(ctx: WorkflowContext, count: int) -> list[Any]:
    await subscribe(ctx, "backlog", "competing")
    return [(await receive(ctx, "backlog")).data for _ in range(count)]


async def test_a_backlog_is_received_in_runs_of_takes(pg_backend: Backend) -> None:
    """A receiver with messages waiting takes each one in the round trip that records the one
    before: one suspend call, not one per message, and every message received once, in
    order."""
    async with open_app(pg_backend.url, workflows=[drains], config=pg_backend.config) as app:
        suspend = app.store.waits.suspend
        calls = 0

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await suspend(*args, **kwargs)

        iid = await _waiting(app, 4)
        app.store.waits.suspend = counted  # type: ignore[method-assign]
        await app.publish_many("backlog", ["a", "b", "c", "d"])
        assert await app.result(iid, timeout=20) == ["a", "b", "c", "d"]
        assert calls == 1


class Crash(Exception):
    pass


async def test_a_crash_in_a_run_of_takes_gives_back_only_what_was_not_committed(
        pg_backend: Backend) -> None:
    """The receipts of a run of takes commit at least every CHAIN_COMMIT messages (nothing
    outside the run has seen them before). A crash in between rolls back the receipts since
    the last COMMIT: those messages are unclaimed again, the others received exactly once."""
    n = CHAIN_COMMIT + 3
    async with open_app(pg_backend.url, workflows=[drains], config=pg_backend.config) as app:
        await _waiting(app, n)
    async with open_app(pg_backend.url, workflows=[drains], config=pg_backend.config,
                        run_workers=False) as app:
        await app.publish_many("backlog", list(range(n)))  # makes it pending; no worker here
        (claimed,), _ = await app.store.claim_and_expiry(
            "tester", limit=1, lease_ttl=60.0, workflows=["drains"])
        [(next_seq,)] = await _rows(app, "SELECT max(seq) + 1 FROM workflow_history")
        seqs = itertools.count(int(next_seq))
        handed: list[int] = []

        def then(event: Any) -> WaitCommand:
            handed.append(event.payload["data"])
            if len(handed) == CHAIN_COMMIT + 2:
                raise Crash  # as if the worker died here
            return WaitCommand(f"receive:backlog:{len(handed)}", WaitKind.CHANNEL, "backlog",
                               None)

        with pytest.raises(Crash):
            await app.store.waits.suspend(
                claimed.lease, claimed.run_no, next(seqs),
                WaitCommand("receive:backlog:0", WaitKind.CHANNEL, "backlog", None),
                now=time.time(), then=then, next_seq=lambda: next(seqs))
        received = await _rows(app, "SELECT payload FROM workflow_history "
                                    "WHERE kind = 'message_received' ORDER BY seq")
        assert [json.loads(p)["data"] for (p,) in received] == list(range(CHAIN_COMMIT))
        taken = await _rows(app, "SELECT data::int FROM channel_messages "
                                 "WHERE claimed_by IS NOT NULL ORDER BY id")
        assert [d for (d,) in taken] == list(range(CHAIN_COMMIT))


async def _waiting(app: Any, count: int) -> str:
    iid: str = await app.start(drains, count)
    with trio.fail_after(20):
        while (await app.status(iid)).status is not WorkflowStatus.WAITING:
            await trio.sleep(0.02)
    return iid
