"""A queued instance can be cancelled (it leaves its queue: it never runs, never holds a slot,
frees its dedup id), and retention deletes a purged instance's queue entry with it."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    Event,
    InstanceFinishedError,
    InstanceNotFoundError,
    WorkflowCancelledError,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio._app import App
from romancy_trio.storage._placeholders import translate

from .conftest import Backend, fetch


@workflow
async def ql_gate(ctx: WorkflowContext, n: int) -> int:
    await wait_event(ctx, "ql.gate")
    return n


@activity
async def ql_step(ctx: ActivityContext, n: int) -> int:
    return n


@workflow
async def ql_quick(ctx: WorkflowContext, n: int) -> int:
    return await ql_step(ctx, n)


async def _depth(app: App, queue: str) -> tuple[int, int]:
    s = {x.queue: x for x in await app.queue_statistics()}.get(queue)
    return (0, 0) if s is None else (s.waiting, s.running)


async def _until_status(app: App, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(60):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.05)


async def test_cancelling_a_queued_instance_takes_it_out_of_its_queue(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=[ql_gate], config=backend.config) as app:
        await app.declare_queue("ql-one", concurrency=1)
        first = await app.enqueue("ql-one", ql_gate, 1)
        await _until_status(app, first, WorkflowStatus.WAITING)  # holds the one slot
        second = await app.enqueue("ql-one", ql_gate, 2, dedup_id="d-2", priority=9)
        assert (await app.status(second)).status is WorkflowStatus.QUEUED
        assert await _depth(app, "ql-one") == (1, 1)

        await app.cancel(second)

        assert (await app.status(second)).status is WorkflowStatus.CANCELLED
        with pytest.raises(WorkflowCancelledError):
            await app.result(second, timeout=10)
        assert await _depth(app, "ql-one") == (0, 1)  # not waiting, holding nothing
        assert await fetch(app, "SELECT count(*) FROM workflow_queue_entries "
                                "WHERE instance_id = ?", (second,)) == [(0,)]
        with pytest.raises(InstanceFinishedError, match="cancelled"):
            await app.cancel(second)
        # its dedup id is free again; the slot goes to the next one, never to the cancelled
        third = await app.enqueue("ql-one", ql_gate, 3, dedup_id="d-2")
        await app.send_event(Event(type="ql.gate", source="test", id="g1"))
        assert await app.result(first, timeout=60) == 1
        await _until_status(app, third, WorkflowStatus.WAITING)
        await app.send_event(Event(type="ql.gate", source="test", id="g2"))
        assert await app.result(third, timeout=60) == 3
        assert (await app.status(second)).status is WorkflowStatus.CANCELLED
        assert await fetch(app, "SELECT count(*) FROM workflow_history "
                                "WHERE instance_id = ?", (second,)) == [(0,)]
        with trio.fail_after(60):  # the next admission round frees the ended ones' slots
            while await _depth(app, "ql-one") != (0, 0):
                await trio.sleep(0.05)


async def test_retention_deletes_the_queue_entries_of_purged_instances(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=[ql_gate], config=backend.config) as app:
        await app.declare_queue("ql-purge", concurrency=1)
        done = await app.enqueue("ql-purge", ql_gate, 1, instance_id="ql-done")
        await _until_status(app, done, WorkflowStatus.WAITING)
        await app.send_event(Event(type="ql.gate", source="test", id="p1"))
        assert await app.result(done, timeout=60) == 1
        live = await app.enqueue("ql-purge", ql_gate, 2, instance_id="ql-live")
        await _until_status(app, live, WorkflowStatus.WAITING)
        async with app.store.db.transaction() as tx:  # "done" finished two hours ago
            await tx.execute(*translate(
                "UPDATE workflow_instances SET updated_at = updated_at - 7200 "
                "WHERE instance_id IN ('ql-done', 'ql-live')", (), tx.dialect))
        entries = "SELECT instance_id FROM workflow_queue_entries ORDER BY instance_id"
        assert await fetch(app, entries) == [("ql-done",), ("ql-live",)]

    config = dataclasses.replace(backend.config, instance_retention=3600.0)
    async with open_app(backend.url, workflows=[ql_gate], config=config) as app:
        with trio.fail_after(30):  # maintenance runs when the worker starts
            while True:
                try:
                    await app.status(done)
                except InstanceNotFoundError:
                    break
                await trio.sleep(0.05)
        assert await fetch(app, entries) == [("ql-live",)]
        assert (await app.status(live)).status is WorkflowStatus.WAITING



async def test_cancels_racing_admissions_leave_no_entry_behind(backend: Backend) -> None:
    """Cancels of queued instances while the queue admits and runs the others: no error but
    "already ended", every cancelled one that never ran left its queue, the rest complete."""
    async with open_app(backend.url, workflows=[ql_quick, ql_step, ql_gate],
                        config=backend.config) as app:
        await app.declare_queue("ql-race", concurrency=2)
        gates = [await app.enqueue("ql-race", ql_gate, n) for n in (-1, -2)]
        for iid in gates:  # the two slots are held: what follows stays queued
            await _until_status(app, iid, WorkflowStatus.WAITING)
        iids = [await app.enqueue("ql-race", ql_quick, n) for n in range(24)]
        doomed = iids[1::2]

        async def cancel(iid: str) -> None:
            try:
                await app.cancel(iid)
            except InstanceFinishedError:
                pass  # it completed first

        async with trio.open_nursery() as nursery:  # the slots free up amid the cancels
            for iid in doomed[:4]:
                nursery.start_soon(cancel, iid)
            nursery.start_soon(app.send_event, Event(type="ql.gate", source="test", id="r1"))
            for iid in doomed[4:]:
                nursery.start_soon(cancel, iid)
        with trio.fail_after(120):
            for iid in iids:
                while not (await app.status(iid)).status.is_terminal:
                    await trio.sleep(0.05)
            while await _depth(app, "ql-race") != (0, 0):
                await trio.sleep(0.05)
        for n, iid in enumerate(iids):
            if iid not in doomed:
                assert await app.result(iid, timeout=10) == n
        ran = {str(r[0]) for r in await fetch(app, "SELECT DISTINCT instance_id "
                                                   "FROM workflow_history")}
        entries = {str(r[0]): r[1] for r in await fetch(
            app, "SELECT instance_id, admitted_at FROM workflow_queue_entries")}
        assert all(admitted is not None for admitted in entries.values())  # none left waiting
        for iid in doomed:
            status = (await app.status(iid)).status
            assert status in (WorkflowStatus.CANCELLED, WorkflowStatus.COMPLETED)
            if iid not in ran:  # cancelled before it ran: while queued (its entry went)
                assert status is WorkflowStatus.CANCELLED  # or once admitted (it held a slot)
        queued_cancels = [i for i in doomed if i not in ran and i not in entries]
        assert queued_cancels  # 12 cancels against 2 slots: some hit queued instances
        assert [await app.result(i, timeout=10) for i in gates] == [-1, -2]
