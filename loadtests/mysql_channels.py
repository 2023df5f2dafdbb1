"""The competing-channel scenario of ``python -m loadtests --backend mysql``, on MySQL/MariaDB
and on PostgreSQL in the same run: ``messages`` messages on one competing channel, taken by
``consumers`` workflows (``channels_bench.bench_consumer``, each acting on every message in a
transactional activity) spread over ``workers`` processes (``loadtests._worker``).

Checked exactly once: every message received by exactly one consumer (history rows, live and
archived by ``recur``), the consumers' counts add up, every side-effect row exists once.
Latency = the message's ``published_at`` -> the ``message_received`` history row's
``created_at`` (both stamped by processes on this machine).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import trio

from romancy_trio import AppConfig, WorkflowStatus, open_app

from ._common import percentile, require
from ._worker import check_alive, open_workers
from .channels_bench import (
    EFFECTS_DDL,
    UNCLAIMED,
    WORKFLOWS,
    _published_at,
    _received,
    _rows,
    _until_status,
    bench_consumer,
)

PUBLISHERS = 4


@dataclass(frozen=True)
class Competing:
    per_s: float
    """messages taken (with their side effect) per second, first publish -> last taken"""
    p50_ms: float
    p99_ms: float


async def competing(url: str, schema: str, *, messages: int, consumers: int, workers: int,
                    batch: int = 100) -> Competing:
    """Publish ``messages`` in batches of ``batch`` (``PUBLISHERS`` publishers at once) as
    fast as the consumers take them; check exactly once; time it."""
    channel = "bench.jobs"
    async with open_app(url, workflows=WORKFLOWS, config=AppConfig(schema=schema),
                        run_workers=False) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(EFFECTS_DDL)
        async with open_workers(url, schema, "loadtests.channels_bench", workers) as procs:
            ids = [await app.start(bench_consumer, {"channel": channel, "effects": True})
                   for _ in range(consumers)]
            await _until_status(app, ids, WorkflowStatus.WAITING, 60)
            work_ids: list[int] = []
            starts = iter(range(0, messages, batch))

            async def publisher() -> None:
                for start in starts:
                    jobs = [{"job": i} for i in range(start, min(messages, start + batch))]
                    work_ids.extend(await app.publish_many(channel, jobs))

            async with trio.open_nursery() as nursery:
                for _ in range(PUBLISHERS):
                    nursery.start_soon(publisher)
            with trio.fail_after(240):
                while (await _rows(app, UNCLAIMED))[0][0] > 0:
                    check_alive(procs)
                    await trio.sleep(0.1)
            stops = [await app.publish(channel, {"stop": True}) for _ in range(consumers)]
            totals = [await app.result(iid, timeout=60) for iid in ids]
            check_alive(procs)
        received = await _received(app)
        published = await _published_at(app, channel)
        effects = Counter(r[0] for r in await _rows(app, "SELECT message_id FROM bench_effects"))
    taken = Counter(r[0] for r in received)
    require(len(work_ids) == messages, f"published {len(work_ids)} of {messages}")
    require(taken == Counter(work_ids + stops),
            f"not exactly once: {sum(1 for c in taken.values() if c > 1)} duplicated, "
            f"{len(Counter(work_ids + stops) - taken)} never received")
    require(effects == Counter(work_ids), "side effects not exactly once")
    require(sum(totals) == messages, f"consumers report {sum(totals)} of {messages}")
    work = set(work_ids)
    lat = [(at - published[mid]) * 1000 for mid, at, _, _ in received if mid in work]
    span = (max(at for mid, at, _, _ in received if mid in work)
            - min(published[i] for i in work_ids))
    return Competing(messages / span, percentile(lat, 50), percentile(lat, 99))
