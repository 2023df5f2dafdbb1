"""A worker process for the child-workflow and schedule tests:
``python -m tests.romancy_trio.compose_proc URL SCHEMA WORKER_ID``. Prints ``ready``."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow

COMPOSE_DDL = [
    "CREATE TABLE IF NOT EXISTS comp_effects (instance_id TEXT, n INTEGER, worker_id TEXT)",
    "CREATE TABLE IF NOT EXISTS comp_ticks (instance_id TEXT, worker_id TEXT, ran_at REAL)",
    "CREATE TABLE IF NOT EXISTS comp_qlog (instance_id TEXT, what TEXT, at REAL)",
]


@activity
async def comp_effect(ctx: ActivityContext, n: int) -> None:
    await ctx.db.execute("INSERT INTO comp_effects (instance_id, n, worker_id) VALUES (?, ?, ?)",
                         (ctx.instance_id, n, ctx.worker_id))


@activity(transactional=False)
async def comp_slow(ctx: ActivityContext, seconds: float) -> None:
    await trio.sleep(seconds)


@workflow
async def comp_child(ctx: WorkflowContext, n: int) -> int:
    await comp_effect(ctx, n)
    await comp_slow(ctx, float(os.environ.get("CHILD_SLOW", "3")))
    return n * 10


@workflow
async def comp_parent(ctx: WorkflowContext, ns: list[int]) -> list[int]:
    children = [await ctx.start_child(comp_child, n) for n in ns]
    return [await child.result() for child in children]


@activity
async def comp_tick_effect(ctx: ActivityContext) -> None:
    await ctx.db.execute("INSERT INTO comp_ticks (instance_id, worker_id, ran_at) VALUES (?, ?, ?)",
                         (ctx.instance_id, ctx.worker_id, time.time()))


@workflow
async def comp_ticked(ctx: WorkflowContext, label: str) -> str:
    await comp_tick_effect(ctx)
    return label


@activity
async def comp_qlog(ctx: ActivityContext, what: str) -> None:
    await ctx.db.execute("INSERT INTO comp_qlog (instance_id, what, at) VALUES (?, ?, ?)",
                         (ctx.instance_id, what, time.time()))


@workflow
async def comp_queued(ctx: WorkflowContext, hold: float) -> str:
    await comp_qlog(ctx, "start")
    if hold:
        await comp_slow(ctx, hold)
    await comp_qlog(ctx, "end")
    return ctx.instance_id


ALL: list[Any] = [comp_effect, comp_slow, comp_child, comp_parent, comp_tick_effect, comp_ticked,
                  comp_qlog, comp_queued]


async def main(url: str, schema: str, worker_id: str) -> None:
    config = AppConfig(schema=schema, lease_ttl=2.0, heartbeat_interval=0.5,
                       fallback_interval=float(os.environ.get("FALLBACK", "2")))
    async with open_app(url, worker_id=worker_id, workflows=ALL, config=config):
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
