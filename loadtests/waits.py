"""Wake-up latency (producer COMMIT -> waiting workflow running again) and idle cost."""

from __future__ import annotations

import gc
import resource
import time
import uuid
from typing import Any

import psycopg
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)

from romancy_trio.storage._postgres import PostgresDatabase

from ._common import Result


RESUMED: dict[str, float] = {}
SIGNALS: dict[str, trio.Event] = {}


@activity(transactional=False)
async def bench_mark_resumed(ctx: ActivityContext) -> None:
    RESUMED[ctx.instance_id] = time.perf_counter()
    SIGNALS[ctx.instance_id].set()


@workflow
async def bench_wait(ctx: WorkflowContext) -> None:
    await wait_event(ctx, "bench.go")
    await bench_mark_resumed(ctx)


WFS = [bench_wait, bench_mark_resumed]


def _schema() -> tuple[str, AppConfig]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    return schema, AppConfig(schema=schema)


async def _all_waiting(app: Any, n: int) -> None:
    with trio.fail_after(600):
        while len(await app.list_instances(status="waiting", limit=n + 1)) < n:
            await trio.sleep(0.1)


async def wakeup_latency(dsn: str, n: int) -> Result:
    """Each wake-up: a separate producer app commits a targeted event; the worker app (which
    hears of it only through LISTEN/NOTIFY) claims, replays and runs the next activity."""
    schema, config = _schema()
    latencies = []
    async with open_app(dsn, workflows=WFS, config=config) as worker, \
            open_app(dsn, workflows=WFS, config=config, run_workers=False) as producer:
        ids = [await worker.start(bench_wait) for _ in range(n)]
        for iid in ids:
            SIGNALS[iid] = trio.Event()
        await _all_waiting(worker, n)
        t_start = time.perf_counter()
        for i, iid in enumerate(ids):
            await producer.send_event(Event(type="bench.go", source="bench", id=str(i),
                                            target_instance_id=iid))
            committed = time.perf_counter()
            await SIGNALS[iid].wait()
            latencies.append((RESUMED[iid] - committed) * 1000)
        seconds = time.perf_counter() - t_start
    _drop(dsn, schema)
    return Result("event wake-up (COMMIT->resumed, via NOTIFY)", n, seconds, latencies)




def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def idle_cost(dsn: str, n: int, *, window: float = 20.0) -> Result:
    """A worker holding ``n`` waiting workflows: statements/s it issues while idle, and memory."""
    schema, config = _schema()
    async with open_app(dsn, workflows=WFS, config=config) as app:
        await trio.sleep(0.5)
        gc.collect()
        rss_empty = _rss_mb()
        objects_empty = len(gc.get_objects())
        async with trio.open_nursery() as nursery:
            limiter = trio.CapacityLimiter(50)

            async def start_one() -> None:
                async with limiter:
                    await app.start(bench_wait)

            for _ in range(n):
                nursery.start_soon(start_one)
        await _all_waiting(app, n)
        stats = app.statistics()
        await trio.sleep(2)
        gc.collect()
        rss_loaded = _rss_mb()
        objects_loaded = len(gc.get_objects())
        db = app.store.db
        assert isinstance(db, PostgresDatabase)
        before = db.transactions
        hub_before = app.hub.statistics()
        await trio.sleep(window)
        after = db.transactions
        hub_after = app.hub.statistics()
    _drop(dsn, schema)
    # the listener connection's liveness SELECT 1 runs once per liveness_interval when idle
    liveness = window / app.hub.config.liveness_interval
    qps = (after - before + liveness) / window
    return Result(f"idle worker with {n} waiting workflows", n, window, [], {
        "idle_queries_per_s": round(qps, 3), "running_tasks": stats.running if stats else None,
        "wakeups": hub_after.delivered - hub_before.delivered,
        "live_objects_delta": objects_loaded - objects_empty,

        "rss_empty_mb": round(rss_empty, 1), "rss_loaded_mb": round(rss_loaded, 1)})


def _drop(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
            psycopg.sql.Identifier(schema)))
