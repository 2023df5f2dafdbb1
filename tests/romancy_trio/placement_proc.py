"""Long-lived consumers for the placement test: ``python -m tests.romancy_trio.placement_proc
URL SCHEMA WORKER_ID`` runs a worker (prints ``ready``). Each consumer receives from its own
competing channel and records every message it consumes, with the time and the worker, in
``ledger`` (a transactional activity: exactly once)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    receive,
    subscribe,
    workflow,
)
from tests.romancy_trio._procs import start_proc

LEDGER_DDL = ("CREATE TABLE IF NOT EXISTS ledger "
              "(instance_id text, message bigint, worker_id text, at double precision)")
CONSUME_SECONDS = 0.1
ROOT = Path(__file__).resolve().parents[2]


def config(schema: str) -> AppConfig:
    """Fast membership and placement, short leases: the test's timeline in seconds."""
    return AppConfig(schema=schema, lease_ttl=2.0, heartbeat_interval=0.5, member_interval=1.0,
                     rebalance_after=2.0)


@activity
async def placed_consume(ctx: ActivityContext, message: int) -> None:
    await trio.sleep(CONSUME_SECONDS)  # before the first statement: holds no connection
    await ctx.db.execute(
        "INSERT INTO ledger (instance_id, message, worker_id, at) VALUES (?, ?, ?, ?)",
        (ctx.instance_id, message, ctx.worker_id, time.time()))


@workflow
async def placed_consumer(ctx: WorkflowContext, channel: str) -> None:
    """Never ends: receive, consume, and every 50 messages recur (bounded history)."""
    if ctx.run_no == 1:
        await subscribe(ctx, channel, "competing")
    for _ in range(50):
        msg = await receive(ctx, channel)
        await placed_consume(ctx, msg.id)
    await ctx.recur(channel)


FLOWS: list[Any] = [placed_consumer, placed_consume]


async def main(url: str, schema: str, worker_id: str) -> None:
    async with open_app(url, worker_id=worker_id, workflows=FLOWS, config=config(schema)):
        print("ready", flush=True)
        await trio.sleep_forever()


def start_worker(url: str, schema: str, worker_id: str) -> subprocess.Popen[str]:
    return start_proc("tests.romancy_trio.placement_proc", url, schema, worker_id, quiet=True)

if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
