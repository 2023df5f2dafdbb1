"""The demo app of the Docker setup: a few workflows, a worker, and a small client.

Inside the image this file is ``/app/app.py``, so:

    python -m app                 # a worker: runs workflows until SIGTERM (the compose `worker`)
    python -m app start 30        # start 30 `greet` workflows, wait, show which worker ran each
    python -m app --help

The HTTP front (``python -m romancy_trio serve``, i.e. ``romancy_trio.asgi:app_from_env()``
under hypercorn, with ``ROMANCY_TRIO_WORKFLOWS=app``) imports this module for the same
workflows. Configuration comes from the environment names ``app_from_env()`` reads:
``ROMANCY_TRIO_URL`` (required) and ``ROMANCY_TRIO_SCHEMA`` (optional, default ``romancy``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    wait_event,
    workflow,
)


@activity
async def say_hello(ctx: ActivityContext, name: str) -> dict[str, str]:
    """Reports which worker ran it, so you can watch the replicas share the work."""
    return {"greeting": f"hello, {name}", "worker": ctx.worker_id}


@workflow
async def greet(ctx: WorkflowContext, name: str) -> dict[str, str]:
    return await say_hello(ctx, name)


@activity
async def ship(ctx: ActivityContext, order_id: str) -> str:
    return f"shipped {order_id} from {ctx.worker_id}"


@workflow
async def order(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    """Waits (holding no worker) for a ``payment.received`` CloudEvent aimed at this instance,
    pauses a moment with a durable timer, then ships - possibly on another replica."""
    payment = await wait_event(ctx, "payment.received", timeout=3600)
    await sleep(ctx, 2)
    return {"order_id": order_id, "paid": payment.data, "shipping": await ship(ctx, order_id)}


WORKFLOWS: list[Any] = [greet, say_hello, order, ship]


def _url() -> str:
    url = os.environ.get("ROMANCY_TRIO_URL")
    if not url:
        raise SystemExit("set ROMANCY_TRIO_URL (e.g. postgresql://romancy:romancy@postgres/romancy)")
    return url


def _config() -> AppConfig:
    schema = os.environ.get("ROMANCY_TRIO_SCHEMA")
    return replace(AppConfig(), schema=schema) if schema else AppConfig()


async def worker() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_app(_url(), workflows=WORKFLOWS, config=_config()) as app:
            print(f"worker {app.worker_id} ready", flush=True)
            async for _ in signals:
                print(f"worker {app.worker_id} stopping", flush=True)
                break


async def start(count: int) -> None:
    async with open_app(_url(), workflows=WORKFLOWS, config=_config(), run_workers=False) as app:
        ids = [await app.start(greet, f"guest {i}") for i in range(count)]
        ran_on: Counter[str] = Counter()
        for iid in ids:
            ran_on[(await app.result(iid, timeout=120))["worker"]] += 1
    print(f"{count} workflows completed; who ran them:")
    for who, n in ran_on.most_common():
        print(f"  {n:4d}  {who}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("worker", help="run workflows until SIGTERM (the default)")
    st = sub.add_parser("start", help="start `greet` workflows and report who ran them")
    st.add_argument("count", type=int, nargs="?", default=20)
    args = parser.parse_args(argv)
    if args.command == "start":
        trio.run(start, args.count)
    else:
        trio.run(worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
