"""A worker process for crash and multi-worker tests: ``python -m tests.romancy_trio.worker_proc``.

Arguments: URL SCHEMA WORKER_ID. Environment: ``HANG_AT`` = activity step at which the activity
writes a marker file (``MARKER_DIR``) and then hangs inside its open transaction, so the test can
SIGKILL the process at a known point. Prints ``ready`` once the app is serving.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow


@activity
async def effect(ctx: ActivityContext, step: int) -> int:
    p = "%s" if ctx.db.dialect == "postgres" else "?"
    await ctx.db.execute(
        f"INSERT INTO effects (instance_id, step, worker_id) VALUES ({p}, {p}, {p})",
        (ctx.instance_id, step, ctx.worker_id),
    )
    if os.environ.get("HANG_AT") == str(step):
        Path(os.environ["MARKER_DIR"], f"{ctx.instance_id}.{step}").write_text(ctx.worker_id)
        await trio.sleep_forever()
    return step * 10


@workflow
async def steps(ctx: WorkflowContext, count: int) -> list[int]:
    return [await effect(ctx, n) for n in range(1, count + 1)]


EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS effects (instance_id TEXT, step INTEGER, worker_id TEXT)"


async def main(url: str, schema: str, worker_id: str) -> None:
    config = AppConfig(schema=schema, lease_ttl=2.0, heartbeat_interval=0.5, fallback_interval=5.0)
    async with open_app(url, worker_id=worker_id, workflows=[steps, effect], config=config):
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
