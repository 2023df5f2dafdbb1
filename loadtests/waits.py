"""Waiting workflows: event wake-up latency (producer COMMIT -> waiting workflow running again),
timer lateness under load, and the idle cost of a worker holding many waiting workflows."""

from __future__ import annotations

import gc
import resource
import time
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    wait_event,
    workflow,
)
from romancy_trio.storage._postgres import PostgresDatabase

from ._common import Result, Run, drop_schema, new_schema, require
from .workflows import WORKFLOWS as ONE_ACTIVITY_WORKFLOWS
from .workflows import bench_one

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


@activity(transactional=False)
async def bench_lateness(ctx: ActivityContext, due: float) -> float:
    return time.time() - due


@workflow
async def bench_timer(ctx: WorkflowContext, seconds: float) -> float:
    """Sleeps, then reports how late it runs again: the timer's deadline is computed from the
    same deterministic clock (``ctx.now()``) that ``sleep`` uses."""
    due = ctx.now().timestamp() + seconds
    await sleep(ctx, seconds)
    return await bench_lateness(ctx, due)


WFS: list[Any] = [bench_wait, bench_mark_resumed]
TIMER_WFS: list[Any] = [bench_timer, bench_lateness, *ONE_ACTIVITY_WORKFLOWS]


async def _all_waiting(app: Any, n: int, bar: Any = None) -> None:
    with trio.fail_after(600):
        while (waiting := len(await app.list_instances(status="waiting", limit=n + 1))) < n:
            if bar is not None:
                bar.update(waiting)
            await trio.sleep(0.1)


async def wakeup_latency(run: Run) -> list[Result]:
    """Each wake-up: a separate producer App commits a targeted event; the worker App (which
    hears of it only through LISTEN/NOTIFY) claims, replays and runs the next activity.
    Latency = producer's COMMIT returned -> the activity after ``wait_event`` is running."""
    n = run.sizes.wakeups
    schema = new_schema()
    config = AppConfig(schema=schema)
    latencies = []
    name = "event wake-up (COMMIT->resumed, NOTIFY)"
    try:
        async with open_app(run.dsn, workflows=WFS, config=config) as worker, \
                open_app(run.dsn, workflows=WFS, config=config, run_workers=False) as producer:
            ids = [await worker.start(bench_wait) for _ in range(n)]
            for iid in ids:
                SIGNALS[iid] = trio.Event()
            await _all_waiting(worker, n)
            bar = run.progress(name, n)
            t_start = time.perf_counter()
            for i, iid in enumerate(ids):
                await producer.send_event(Event(type="bench.go", source="bench", id=str(i),
                                                target_instance_id=iid))
                committed = time.perf_counter()
                with trio.fail_after(30):
                    await SIGNALS[iid].wait()
                latencies.append((RESUMED[iid] - committed) * 1000)
                bar.advance()
            seconds = time.perf_counter() - t_start
            bar.close()
            with trio.fail_after(30):
                while len(done := await worker.list_instances(status="completed",
                                                              limit=n + 1)) < n:
                    await trio.sleep(0.05)
    finally:
        drop_schema(run.dsn, schema)
        for iid in list(SIGNALS):
            SIGNALS.pop(iid, None)
            RESUMED.pop(iid, None)
    require(len(done) == n, f"{name}: {len(done)} completed, expected {n}")
    return [Result(name, n, seconds, latencies, checked=f"all {n} woken once, completed")]


async def timer_lateness(run: Run) -> list[Result]:
    """``timers`` workflows sleep for durations spread over [timer_min, timer_max] s while
    ``timer_load`` clients keep running one-activity workflows on the same worker. Latency =
    how late each workflow runs again after its timer's due time."""
    s = run.sizes
    n = s.timers
    schema = new_schema()
    config = AppConfig(schema=schema, pool_size=max(10, s.timer_load))
    name = f"timers: sleep lateness ({s.timer_load} clients of load)"
    background = 0
    try:
        async with open_app(run.dsn, workflows=TIMER_WFS, config=config) as app:
            for i in range(10):
                await app.run(bench_one, i, timeout=30)
            step = (s.timer_max - s.timer_min) / max(1, n - 1)
            bar = run.progress(name, n)
            stop = trio.Event()

            async def load() -> None:
                nonlocal background
                while not stop.is_set():
                    await app.run(bench_one, 1, timeout=60)
                    background += 1

            async with trio.open_nursery() as nursery:
                for _ in range(s.timer_load):
                    nursery.start_soon(load)
                t0 = time.perf_counter()
                ids = [await app.start(bench_timer, s.timer_min + i * step) for i in range(n)]
                results: list[float] = []
                with trio.fail_after(s.timer_max + 120):
                    for iid in ids:
                        results.append(await app.result(iid))
                        bar.update(len(results))
                seconds = time.perf_counter() - t0
                stop.set()
            bar.close()
    finally:
        drop_schema(run.dsn, schema)
    lateness = [x * 1000 for x in results]
    early = [x for x in lateness if x < -1.0]
    require(len(results) == n, f"{name}: {len(results)} of {n} timers fired")
    require(not early, f"{name}: {len(early)} timers fired early "
                       f"(by up to {-min(early, default=0):.1f} ms)")
    return [Result(name, n, seconds, lateness, {
        "max_ms": round(max(lateness), 1), "load_wf": background,
        "load_wf_per_s": round(background / seconds, 1)},
        checked=f"all {n} fired, none early", rate=False)]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def idle_cost(run: Run) -> list[Result]:
    """A worker (in this process) holding ``idle_workflows`` waiting workflows: the
    transactions/s it issues while nothing happens, and its resident memory."""
    n, window = run.sizes.idle_workflows, run.sizes.idle_window
    schema = new_schema()
    config = AppConfig(schema=schema)
    name = f"idle worker, {n} waiting workflows"
    try:
        async with open_app(run.dsn, workflows=WFS, config=config) as app:
            await trio.sleep(0.5)
            gc.collect()
            rss_empty = _rss_mb()
            objects_empty = len(gc.get_objects())
            bar = run.progress(f"{name}: starting", n)
            async with trio.open_nursery() as nursery:
                limiter = trio.CapacityLimiter(50)

                async def start_one() -> None:
                    async with limiter:
                        await app.start(bench_wait)
                    bar.advance()

                for _ in range(n):
                    nursery.start_soon(start_one)
            await _all_waiting(app, n)
            bar.close()
            stats = app.statistics()
            await trio.sleep(2)
            gc.collect()
            rss_loaded = _rss_mb()
            objects_loaded = len(gc.get_objects())
            db = app.store.db
            assert isinstance(db, PostgresDatabase)
            before = db.transactions
            hub_before = app.hub.statistics()
            bar = run.progress(f"{name}: measuring", window)
            t0 = trio.current_time()
            while (elapsed := trio.current_time() - t0) < window:
                bar.update(elapsed)
                await trio.sleep(min(0.5, window - elapsed))
            bar.close()
            after = db.transactions
            hub_after = app.hub.statistics()
            still_waiting = len(await app.list_instances(status="waiting", limit=n + 1))
            running = stats.running if stats else None
    finally:
        drop_schema(run.dsn, schema)
    # the listener connection's liveness SELECT 1 runs once per liveness_interval when idle
    liveness = window / app.hub.config.liveness_interval
    qps = (after - before + liveness) / window
    require(still_waiting == n, f"{name}: {still_waiting} of {n} still waiting")
    require(running == 0, f"{name}: {running} instances hold a task while waiting")
    return [Result(name, n, window, [], {
        "idle_queries_per_s": round(qps, 3), "running_tasks": running,
        "wakeups": hub_after.delivered - hub_before.delivered,
        "live_objects_delta": objects_loaded - objects_empty,
        "rss_empty_mb": round(rss_empty, 1), "rss_loaded_mb": round(rss_loaded, 1)},
        checked=f"all {n} waiting, 0 tasks held", rate=False)]
