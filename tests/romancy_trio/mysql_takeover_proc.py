"""A worker process for the MySQL fast-takeover test: ``python -m ... URL SCHEMA WORKER_ID``.

The activity touches ``<MARKER_DIR>/<instance>.<worker>`` and then sleeps (outside any
transaction) for the seconds asked; the lease TTL is ``LEASE_TTL`` (long: a takeover before
it expires can only come from the dead worker's lock being gone). Prints ``ready``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow


@activity
async def mtk_hold(ctx: ActivityContext, seconds: float) -> str:
    Path(os.environ["MARKER_DIR"], f"{ctx.instance_id}.{ctx.worker_id}").touch()
    await trio.sleep(seconds)
    return ctx.worker_id


@workflow
async def mtk_held(ctx: WorkflowContext, seconds: float) -> str:
    return await mtk_hold(ctx, seconds)


async def main(url: str, schema: str, worker_id: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AppConfig(schema=schema, lease_ttl=float(os.environ["LEASE_TTL"]))
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with open_app(url, worker_id=worker_id, workflows=[mtk_held, mtk_hold],
                            config=config):
            print("ready", flush=True)
            async for _ in signals:
                break


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
