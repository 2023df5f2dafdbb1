"""A worker of one code version: ``python -m tests.romancy_trio.testing.version_proc URL
SCHEMA WORKER_ID VERSION``. Prints ``ready`` once serving; runs until killed."""

from __future__ import annotations

import sys

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)

VERSION = sys.argv[4] if len(sys.argv) > 4 else ""


@activity(transactional=False)
async def tvp_finish(ctx: ActivityContext, order: str) -> str:
    return f"{order} finished by {VERSION} ({ctx.worker_id})"


@workflow
async def tvp_order(ctx: WorkflowContext, order: str) -> str:
    await wait_event(ctx, f"tvp.go.{order}")
    return await tvp_finish(ctx, order)


def config(schema: str, version: str) -> AppConfig:
    return AppConfig(schema=schema, code_version=version, lease_ttl=2.0,
                     heartbeat_interval=0.5, fallback_interval=1.0)


async def main(url: str, schema: str, worker_id: str, version: str) -> None:
    async with open_app(url, worker_id=worker_id, workflows=[tvp_order, tvp_finish],
                        config=config(schema, version)):
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
