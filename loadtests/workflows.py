"""Workflow scenarios: one-activity workflows, sequential and N concurrent starts."""

from __future__ import annotations

import time
import uuid

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow

from ._common import Result


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


async def run_workflows(dsn: str, *, name: str, wf: object, total: int, concurrency: int) -> Result:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    config = AppConfig(schema=schema, pool_size=max(10, concurrency // 2))
    latencies: list[float] = []
    async with open_app(dsn, workflows=[bench_one, bench_ten, bench_step], config=config) as app:
        for i in range(20):  # warm up connections and prepared statements
            await app.run(bench_one, i, timeout=30)
        remaining = total

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                await app.run(wf, 1, timeout=60)  # type: ignore[arg-type]
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client)
        seconds = time.perf_counter() - t0
        done = await app.list_instances(status="completed", limit=total + 100)
        if len(done) != total + 20:
            raise SystemExit(f"{name}: {len(done)} completed, expected {total + 20}")
    await _drop_schema(dsn, schema)
    return Result(name, total, seconds, latencies, {"concurrency": concurrency})


async def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema))
        )
