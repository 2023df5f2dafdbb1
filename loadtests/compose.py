"""Queues and schedules (issue 26): throughput of a queue with concurrency limit 50 against
unthrottled starts in the same run (alternating repetitions), and the lateness of schedule
ticks (tick time -> instance created, and -> its activity running) with 3 worker processes."""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow

from ._common import Result, Run, drop_schema, new_schema, require, with_search_path
from ._worker import check_alive, open_workers

REPETITIONS = 3


@activity(transactional=False)
async def bench_q_step(ctx: ActivityContext) -> float:
    return time.time()


@workflow
async def bench_q_flow(ctx: WorkflowContext, n: int) -> float:
    return await bench_q_step(ctx)


WORKFLOWS: list[Any] = [bench_q_step, bench_q_flow]


async def _batch(app: Any, n: int, queue: str | None) -> float:
    started = time.perf_counter()
    if queue is None:
        ids = [await app.start(bench_q_flow, i) for i in range(n)]
    else:
        ids = [await app.enqueue(queue, bench_q_flow, i) for i in range(n)]
    for iid in ids:
        await app.result(iid, timeout=600)
    return time.perf_counter() - started


async def queue_throughput(run: Run) -> list[Result]:
    """``n`` one-activity workflows started on a queue with concurrency 50, or started plainly,
    alternating, in one app on PostgreSQL; start-to-all-done per repetition."""
    n = max(50, run.sizes.concurrent // 4)
    schema = new_schema()
    times: dict[str, list[float]] = {"queue limit 50": [], "unthrottled": []}
    try:
        config = AppConfig(schema=schema)
        async with open_app(run.dsn, workflows=WORKFLOWS, config=config) as app:
            await app.declare_queue("bench", concurrency=50)
            for rep in range(REPETITIONS):
                order = ["queue limit 50", "unthrottled"]
                for label in order if rep % 2 == 0 else order[::-1]:
                    times[label].append(await _batch(
                        app, n, "bench" if label.startswith("queue") else None))
            stats = {s.queue: s for s in await app.queue_statistics()}
            require(stats.get("bench") is None or stats["bench"].running == 0,
                    "the queue still holds slots after every instance ended")
    finally:
        drop_schema(run.dsn, schema)
    out = []
    for label, secs in times.items():
        median = statistics.median(secs)
        out.append(Result(f"{label}: {n} workflows (median of {REPETITIONS}, range "
                          f"{min(secs):.2f}-{max(secs):.2f} s)", n, median,
                          [x * 1000 for x in secs], checked="all completed"))
    return out


async def schedule_lateness(run: Run) -> list[Result]:
    """A schedule ticking every 0.5 s for ~15 s with 3 worker processes: per tick, how late
    its instance was created, and how late its activity ran (ms after the tick time);
    exactly one instance per tick is checked."""
    schema = new_schema()
    ticks = 30
    created: list[float] = []
    ran: list[float] = []
    try:
        config = AppConfig(schema=schema)
        dsn = with_search_path(run.dsn, schema)
        async with open_app(dsn, workflows=WORKFLOWS, config=config, run_workers=False) as app, \
                open_workers(run.dsn, schema, "loadtests.compose", 3) as workers:
            start = datetime.fromtimestamp(int(time.time()) + 2, UTC)
            await app.schedule(bench_q_flow, 0, id="lateness", interval=0.5, start_at=start,
                               catchup="all")
            with trio.fail_after(120):
                while len(done := await app.list_instances(status="completed",
                                                           workflow="bench_q_flow",
                                                           limit=10_000)) < ticks:
                    check_alive(workers)
                    await trio.sleep(0.2)
            await app.pause_schedule("lateness")
            for info in done:
                tick = datetime.fromisoformat(info.instance_id.split("@")[1]).timestamp()
                created.append((info.created_at.timestamp() - tick) * 1000)
                ran.append((float(info.result) - tick) * 1000)
            tick_times = sorted(datetime.fromisoformat(i.instance_id.split("@")[1])
                                for i in done)
            require(len(set(tick_times)) == len(tick_times), "a tick started twice")
            steps = {(b - a).total_seconds() for a, b in itertools.pairwise(tick_times)}
            require(steps == {0.5}, f"ticks missing: steps {sorted(steps)}")
    finally:
        drop_schema(run.dsn, schema)
    return [Result("schedule tick -> instance created (3 workers)", len(created), 1.0, created,
                   checked="one instance per tick, none missing", rate=False),
            Result("schedule tick -> its activity running (3 workers)", len(ran), 1.0, ran,
                   checked="", rate=False)]
