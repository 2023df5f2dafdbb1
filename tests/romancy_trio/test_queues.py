"""Queues with limits: a global concurrency limit and a rate limit across 3 worker processes
(asserted from recorded times), priorities, partition limits, dedup ids, depth statistics."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from romancy_trio import (
    DuplicateQueueEntryError,
    Event,
    InvalidInputError,
    QueueNotFoundError,
    WorkflowContext,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio.storage._placeholders import translate

from ._procs import start_worker, stop
from .compose_proc import ALL, COMPOSE_DDL, comp_queued
from .conftest import Backend, fetch


@workflow
async def qt_gate(ctx: WorkflowContext, n: int) -> int:
    await wait_event(ctx, "qt.gate")
    return n


async def _run_on_workers(b: Backend, queue: str, count: int, hold: float,
                          **limits: Any) -> Any:
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        for ddl in COMPOSE_DDL:
            await app.store.db.execute(*translate(ddl, (), app.store.db.dialect))
        await app.declare_queue(queue, **limits)
        iids = [await app.enqueue(queue, comp_queued, hold) for _ in range(count)]
        stats = {s.queue: s for s in await app.queue_statistics()}
        assert stats[queue].waiting + stats[queue].running == count
        workers = [start_worker(b.url, b.config.schema, f"qw{i}",
                                module="tests.romancy_trio.compose_proc") for i in range(3)]
        try:
            with trio.fail_after(180):
                for iid in iids:
                    assert await app.result(iid) == iid
        finally:
            for w in workers:
                stop(w)
        log = await fetch(app, "SELECT instance_id, what, at FROM comp_qlog")
        admitted = await fetch(app, "SELECT admitted_at FROM workflow_queue_entries "
                                    "WHERE queue_name = ?", (queue,))
        return log, sorted(float(a[0]) for a in admitted)


async def test_concurrency_limit_across_three_workers(backend: Backend) -> None:
    log, _ = await _run_on_workers(backend, "qt-conc", 12, 0.3, concurrency=2)
    spans: dict[str, dict[str, float]] = {}
    for iid, what, at in log:
        assert what not in spans.setdefault(iid, {})  # each step ran once
        spans[iid][what] = float(at)
    assert len(spans) == 12
    points = sorted([(s["start"], 1) for s in spans.values()] +
                    [(s["end"], -1) for s in spans.values()], key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak <= 2, f"{peak} ran at once"


async def test_rate_limit_across_three_workers(backend: Backend) -> None:
    _, admitted = await _run_on_workers(backend, "qt-rate", 35, 0.0, rate=(10, 1.0))
    assert len(admitted) == 35
    for i, a in enumerate(admitted):  # any 1 s window starting at an admission
        assert len([x for x in admitted[i:] if x < a + 1.0]) <= 10
    assert admitted[-1] - admitted[0] >= 2.0  # 35 at 10/s: the limit did bind


async def test_priorities_partitions_dedup_and_depth(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[qt_gate], config=backend.config) as app:
        with pytest.raises(QueueNotFoundError):
            await app.enqueue("qt-none", qt_gate, 1)
        with pytest.raises(InvalidInputError):
            await app.declare_queue("qt-bad", concurrency=0)
        await app.declare_queue("qt-one", concurrency=1)
        first = await app.enqueue("qt-one", qt_gate, 0, dedup_id="d-0")
        with pytest.raises(DuplicateQueueEntryError):  # queued or admitted: held either way
            await app.enqueue("qt-one", qt_gate, 9, dedup_id="d-0")

        async def stats() -> tuple[int, int]:
            s = {x.queue: x for x in await app.queue_statistics()}["qt-one"]
            return s.waiting, s.running

        # admission is a background round: `first` holds the one slot before the others come
        # (were they all queued when the round ran, the priority-5 entry would go first)
        with trio.fail_after(60):
            while (await app.status(first)).status != "waiting":
                await trio.sleep(0.05)
        later = [await app.enqueue("qt-one", qt_gate, n, priority=p)
                 for n, p in ((1, 0), (2, 5), (3, 0))]
        assert await stats() == (3, 1)
        assert [(await app.status(i)).status for i in later] == ["queued"] * 3
        n = 0
        with trio.fail_after(120):
            while not all([(await app.status(i)).status.is_terminal for i in [first, *later]]):
                n += 1
                await app.send_event(Event(type="qt.gate", source="test", id=f"g{n}"))
                await trio.sleep(0.1)
        order = await fetch(app, "SELECT instance_id FROM workflow_queue_entries "
                                 "WHERE queue_name = 'qt-one' ORDER BY admitted_at")
        assert [r[0] for r in order] == [first, later[1], later[0], later[2]]
        again = await app.enqueue("qt-one", qt_gate, 9, dedup_id="d-0")  # d-0 has ended
        assert again != first

        await app.declare_queue("qt-part", partition_concurrency=1)
        part = [await app.enqueue("qt-part", qt_gate, i, partition_key=k)
                for i, k in enumerate(("p1", "p1", "p2"))]
        with trio.fail_after(60):
            while {x.queue: (x.waiting, x.running)
                   for x in await app.queue_statistics()}.get("qt-part") != (1, 2):
                await trio.sleep(0.05)
        assert (await app.status(part[1])).status == "queued"
