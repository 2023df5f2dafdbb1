"""Websocket fan-out: messages/s delivered to many feed clients, and publish -> receive latency.

    python loadtests/websocket_fanout.py [--dsn DSN] [--clients 100] [--messages 2000]
        [--per-tx 1] [--rate 0] [--seconds 60] [--in-process] [--sqlite]

The server is a real ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` subprocess on
127.0.0.1 (its own core), on a fresh schema of the local PostgreSQL; ``--in-process`` serves from
this process instead (``--sqlite`` implies it: SQLite wakes only in-process watches). This process
opens ``--clients`` feeds with `romancy_trio.client.subscribe` on one channel, then publishes
``--messages`` messages (``--per-tx`` per transaction; ``--rate`` messages/s, 0 = as fast as
commits go), each carrying its send time. Every client counts what it receives. Prints
deliveries/s and p50/p99 publish -> receive latency; asserts nothing. Bounded by ``--messages`` and
``--seconds``; refuses non-local databases.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests._common import DEFAULT_DSN, check_local, drop_schema, new_schema  # noqa: E402
from romancy_trio import App, AppConfig, open_app  # noqa: E402
from romancy_trio.asgi import serve_http  # noqa: E402
from romancy_trio.asgi._websocket import DEFAULT_FEED  # noqa: E402
from romancy_trio.client import Feed, subscribe  # noqa: E402

CHANNEL = "fanout"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


async def start_server(url: str, schema: str | None) -> tuple[trio.Process, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROMANCY_TRIO_URL": url}
    if schema is not None:
        env["ROMANCY_TRIO_SCHEMA"] = schema
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        "--bind",
        "127.0.0.1:0",
        "--backlog",
        "512",
        "romancy_trio.asgi:app_from_env()",
    ]
    proc = await trio.lowlevel.open_process(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log, marker = b"", b"Running on http://127.0.0.1:"
    try:
        with trio.fail_after(60):
            while marker not in log or b" " not in log.split(marker)[1]:
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    raise RuntimeError(f"server did not start:\n{log.decode(errors='replace')}")
                log += chunk
    except BaseException:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
        raise
    return proc, int(log.split(marker)[1].split(b" ")[0])


async def drain(stream: Any) -> None:
    while await stream.receive_some():
        pass


async def run(app: App, port: int, args: argparse.Namespace) -> None:
    url = f"ws://127.0.0.1:{port}/channels/ws"
    latencies: list[float] = []
    counts = [0] * args.clients
    feeds: list[Feed] = []
    done = trio.Event()

    async def client(i: int, task_status: trio.TaskStatus[None]) -> None:
        async with subscribe(url, [CHANNEL], buffer=1000) as feed:
            feeds.append(feed)
            task_status.started()  # entered: live from here on
            async for message in feed:
                latencies.append(time.time() - message.data["t"])
                counts[i] += 1
                if sum(counts) == args.clients * args.messages:
                    done.set()

    async def publisher() -> None:
        interval = args.per_tx / args.rate if args.rate else 0.0
        next_at = trio.current_time()
        for start in range(0, args.messages, args.per_tx):
            async with app.store.db.transaction() as tx:
                for n in range(start, min(args.messages, start + args.per_tx)):
                    await app.channels.publish_tx(tx, CHANNEL, {"n": n, "t": time.time()})
            if interval:
                next_at += interval
                await trio.sleep_until(next_at)

    async with trio.open_nursery() as nursery:
        for i in range(args.clients):
            await nursery.start(client, i)
        print(f"{args.clients} clients connected; publishing {args.messages} messages", flush=True)
        t0 = time.perf_counter()
        with trio.move_on_after(args.seconds) as timer:
            await publisher()
            published = time.perf_counter() - t0
            await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    total = sum(counts)
    ms = [x * 1000 for x in latencies]
    print(
        f"published {args.messages} in {published if not timer.cancelled_caught else elapsed:.2f}"
        f" s ({args.per_tx}/tx)"
    )
    print(
        f"delivered {total} of {args.clients * args.messages} in {elapsed:.2f} s: "
        f"{total / elapsed:,.0f} deliveries/s"
        + ("  (stopped by --seconds)" if timer.cancelled_caught else "")
    )
    print(
        f"publish -> receive latency: p50 {percentile(ms, 50):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms, default=float('nan')):.1f} ms"
    )
    print(
        f"per client: min {min(counts)}, max {max(counts)}; "
        f"reconnects {sum(f.connections - 1 for f in feeds)}"
    )
    if args.in_process:
        print(f"server feed: {DEFAULT_FEED.statistics()}")


async def main(args: argparse.Namespace) -> None:
    schema = None
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='fanout-')}/fanout.db"
        config = AppConfig()
    else:
        check_local(args.dsn)
        url, schema = args.dsn, new_schema("wsfan")
        config = AppConfig(schema=schema)
    try:
        async with open_app(url, config=config, run_workers=False) as app:
            if args.in_process:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(partial(serve_http, app))
                    await run(app, port, args)
                    nursery.cancel_scope.cancel()
            else:
                proc, port = await start_server(url, schema)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(drain, proc.stderr)
                        await run(app, port, args)
                        nursery.cancel_scope.cancel()
                finally:
                    with trio.CancelScope(shield=True):
                        proc.terminate()
                        with trio.move_on_after(10):
                            await proc.wait()
                        proc.kill()
    finally:
        if schema is not None:
            drop_schema(args.dsn, schema)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--per-tx", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: unpaced")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--sqlite", action="store_true")
    arguments = parser.parse_args()
    if not (1 <= arguments.clients <= 1000 and 1 <= arguments.messages <= 100_000):
        parser.error("--clients must be 1..1000 and --messages 1..100000")
    arguments.in_process = arguments.in_process or arguments.sqlite
    trio.run(main, arguments)
