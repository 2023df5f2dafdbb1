"""Workflow scenarios: one-activity workflows (sequential, and N concurrent clients) and
ten-activity workflows. One App in this process both starts and runs them (``App.run``: start,
then wait for the result), on a fresh schema that is dropped afterwards."""

from __future__ import annotations

import time
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Workflow,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)

from ._common import Result, Run, drop_schema, new_schema, require
from ._sqlcount import counting

WARMUP = 20
CONCURRENT_WARMUP = 4
"""Before a concurrent scenario, ``CONCURRENT_WARMUP * concurrency`` untimed runs by
``concurrency`` clients, so the timed window starts with the pool at its working size (the
DBOS side warms up the same way)."""


@activity
async def bench_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def bench_one(ctx: WorkflowContext, n: int) -> int:
    return await bench_step(ctx, n)


@workflow
async def bench_ten(ctx: WorkflowContext, n: int) -> int:
    for _ in range(10):
        n = await bench_step(ctx, n)
    return n


WORKFLOWS: list[Any] = [bench_one, bench_ten, bench_step]


async def run_workflows(
    run: Run, *, name: str, wf: Workflow[int, int], total: int, concurrency: int
) -> Result:
    """``total`` runs of ``wf`` by ``concurrency`` clients; latency = start -> result."""
    schema = new_schema()
    config = AppConfig(schema=schema, pool_size=max(10, concurrency // 2))
    steps = 10 if wf is bench_ten else 1
    latencies: list[float] = []
    wrong = 0
    try:
        async with open_app(run.dsn, workflows=WORKFLOWS, config=config) as app:
            for i in range(WARMUP):  # connections, prepared statements, code paths
                await app.run(bench_one, i, timeout=30)
            warm = CONCURRENT_WARMUP * concurrency if concurrency > 1 else 0
            remaining = warm

            async def warm_client() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await app.run(wf, 1, timeout=60)

            async with trio.open_nursery() as nursery:  # the pool at its working size
                for _ in range(concurrency if warm else 0):
                    nursery.start_soon(warm_client)
            bar = run.progress(name, total)
            remaining = total

            async def client() -> None:
                nonlocal remaining, wrong
                while remaining > 0:
                    remaining -= 1
                    t = time.perf_counter()
                    result = await app.run(wf, 1, timeout=60)
                    latencies.append((time.perf_counter() - t) * 1000)
                    wrong += result != 1 + steps
                    bar.advance()

            t0 = time.perf_counter()
            with counting() as counts:  # every statement any connection of the app sent
                async with trio.open_nursery() as nursery:
                    for _ in range(concurrency):
                        nursery.start_soon(client)
            seconds = time.perf_counter() - t0
            bar.close()
            expected = total + WARMUP + warm
            done = await app.list_instances(status="completed", limit=expected + 1)
    finally:
        drop_schema(run.dsn, schema)
    require(wrong == 0, f"{name}: {wrong} wrong results")
    require(len(done) == expected, f"{name}: {len(done)} completed, expected {expected}")
    return Result(name, total, seconds, latencies, {"concurrency": concurrency,
                                                    **counts.per_workflow(total)},
                  checked=f"all {total} completed")


async def one_sequential(run: Run) -> list[Result]:
    return [await run_workflows(run, name="1-activity wf, sequential", wf=bench_one,
                                total=run.sizes.sequential, concurrency=1)]


async def one_concurrent(run: Run) -> list[Result]:
    c = run.sizes.concurrency
    return [await run_workflows(run, name=f"1-activity wf, {c} concurrent", wf=bench_one,
                                total=run.sizes.concurrent, concurrency=c)]


async def ten_sequential(run: Run) -> list[Result]:
    return [await run_workflows(run, name="10-activity wf, sequential", wf=bench_ten,
                                total=run.sizes.ten, concurrency=1)]
