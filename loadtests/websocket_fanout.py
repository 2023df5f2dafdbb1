"""Websocket fan-out: messages/s delivered to many feed clients, and publish -> receive latency.

    python -m loadtests websocket           # as part of the suite (checked)
    python -m loadtests.websocket_fanout [--dsn DSN] [--clients 100] [--messages 2000]
        [--per-tx 1] [--rate 0] [--seconds 60] [--in-process] [--sqlite]

The server is a real ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'`` subprocess on
127.0.0.1 (its own core), on a fresh schema of the local PostgreSQL; ``--in-process`` serves from
this process instead (``--sqlite`` implies it: SQLite wakes only in-process watches). This process
opens ``--clients`` feeds with `romancy_trio.client.subscribe` on one channel, then publishes
``--messages`` messages (``--per-tx`` per transaction; ``--rate`` messages/s, 0 = as fast as
commits go), each carrying its number and send time. Every client records what it receives.
The script prints deliveries/s and p50/p99 publish -> receive latency and asserts nothing; the
suite's `scenario` (100 clients, 2,000 messages x ``--scale``, unpaced, one per transaction)
checks that every client got every message exactly once, in order. Bounded by ``--messages``
and ``--seconds``; refuses non-local databases.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests._common import (  # noqa: E402
    DEFAULT_DSN,
    Progress,
    Result,
    Run,
    Sizes,
    check_local,
    drop_schema,
    new_schema,
    require,
)
from loadtests._server import drain, start_server, stop_server  # noqa: E402
from romancy_trio import App, AppConfig, open_app  # noqa: E402
from romancy_trio.asgi import serve_http  # noqa: E402
from romancy_trio.asgi._websocket import DEFAULT_FEED  # noqa: E402
from romancy_trio.client import subscribe  # noqa: E402

CHANNEL = "fanout"


@dataclass(frozen=True, slots=True)
class Settings:
    """One fan-out run: the script's options (the suite uses the defaults)."""

    clients: int = 100
    messages: int = 2000
    per_tx: int = 1
    rate: float = 0.0
    """messages/s; 0: unpaced"""
    seconds: float = 60.0
    """bound on publishing + delivering"""


@dataclass
class Measured:
    """What one run observed."""

    settings: Settings
    received: list[list[int]]
    """per client, the message numbers in the order they arrived"""
    latencies_ms: list[float]
    """per delivery: publish (send time taken before the publishing transaction) -> received"""
    elapsed: float
    """first publish started -> last delivery (or the ``seconds`` bound)"""
    published: float
    """first publish started -> last publishing transaction committed (or the bound)"""
    sent: int
    """messages committed"""
    reconnects: int
    stopped: bool
    """the ``seconds`` bound cut the run short"""
    connect_s: float
    """time to connect every client (before the clock starts)"""

    @property
    def expected(self) -> int:
        return self.settings.clients * self.settings.messages

    @property
    def delivered(self) -> int:
        return sum(len(r) for r in self.received)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


@asynccontextmanager
async def serve(app: App, url: str, schema: str | None, *, in_process: bool
                ) -> AsyncIterator[int]:
    """A server for ``app``'s database (a hypercorn subprocess, or ``serve_http`` here);
    yields its port and always stops it. The body's exception comes out as it is (not in an
    exception group)."""
    server = None if in_process else await start_server(url, schema)
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            if server is None:
                port = await nursery.start(partial(serve_http, app))
            else:
                proc, port = server
                assert proc.stderr is not None
                nursery.start_soon(drain, proc.stderr)
            try:
                yield port
            except BaseException as exc:  # noqa: BLE001 - re-raised below, outside the nursery
                body_error = exc
        finally:
            if server is not None:
                await stop_server(server[0])
        nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


async def measure(app: App, port: int, settings: Settings, *, bar: Progress | None = None,
                  say: bool = False) -> Measured:
    """Connect the clients, publish, wait until every delivery arrived (or ``seconds``)."""
    url = f"ws://127.0.0.1:{port}/channels/ws"
    expected = settings.clients * settings.messages
    latencies: list[float] = []
    received: list[list[int]] = [[] for _ in range(settings.clients)]
    reconnects = [0] * settings.clients
    delivered = sent = 0
    done = trio.Event()

    async def client(i: int, task_status: trio.TaskStatus[None]) -> None:
        nonlocal delivered
        mine = received[i]
        async with subscribe(url, [CHANNEL], buffer=1000) as feed:
            task_status.started()  # entered: live from here on
            try:
                async for message in feed:
                    latencies.append(time.time() - message.data["t"])
                    mine.append(message.data["n"])
                    delivered += 1
                    if delivered == expected:
                        done.set()
            finally:
                reconnects[i] = feed.connections - 1

    async def publisher() -> None:
        nonlocal sent
        interval = settings.per_tx / settings.rate if settings.rate else 0.0
        next_at = trio.current_time()
        for start in range(0, settings.messages, settings.per_tx):
            async with app.store.db.transaction() as tx:
                for n in range(start, min(settings.messages, start + settings.per_tx)):
                    await app.channels.publish_tx(tx, CHANNEL, {"n": n, "t": time.time()})
            sent = min(settings.messages, start + settings.per_tx)
            if interval:
                next_at += interval
                await trio.sleep_until(next_at)

    async def ticker() -> None:
        assert bar is not None
        while True:
            bar.update(delivered)
            await trio.sleep(0.2)

    published = None
    async with trio.open_nursery() as nursery:
        c0 = time.perf_counter()
        for i in range(settings.clients):
            await nursery.start(client, i)
        connect_s = time.perf_counter() - c0
        if say:
            print(f"{settings.clients} clients connected; publishing {settings.messages} "
                  f"messages", flush=True)
        if bar is not None:
            nursery.start_soon(ticker)
        t0 = time.perf_counter()
        with trio.move_on_after(settings.seconds) as timer:
            await publisher()
            published = time.perf_counter() - t0
            await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    if bar is not None:
        bar.update(delivered)
    return Measured(
        settings, received, [x * 1000 for x in latencies], elapsed,
        elapsed if published is None else published, sent, sum(reconnects), timer.cancelled_caught,
        connect_s,
    )


async def fanout(url: str, schema: str | None, settings: Settings, *, in_process: bool = False,
                 bar: Progress | None = None, say: bool = False) -> Measured:
    """Open the publishing App on ``url`` (its tables in ``schema``), serve it and measure."""
    config = AppConfig() if schema is None else AppConfig(schema=schema)
    async with (
        open_app(url, config=config, run_workers=False) as app,
        serve(app, url, schema, in_process=in_process) as port,
    ):
        return await measure(app, port, settings, bar=bar, say=say)


def check(m: Measured) -> str:
    """Every client got every message exactly once, in publishing order; raises CheckFailed."""
    s = m.settings
    require(not m.stopped, f"websocket: {m.delivered} of {m.expected} deliveries within "
                           f"{s.seconds:g} s")
    wanted = list(range(s.messages))
    bad = [i for i, got in enumerate(m.received) if got != wanted]
    detail = ""
    if bad:
        got = m.received[bad[0]]
        detail = (f"; client {bad[0]}: {len(got)} received, {len(set(wanted) - set(got))} "
                  f"missing, {len(got) - len(set(got))} duplicated, "
                  f"{'in' if got == sorted(got) else 'out of'} order")
    require(not bad, f"websocket: {len(bad)} of {s.clients} clients did not get every message "
                     f"exactly once, in order{detail}")
    return f"{s.clients} clients got all {s.messages} once, in order"


def scenario_settings(sizes: Sizes) -> Settings:
    """The script's defaults, the message count scaled like the suite's other channel counts
    (``--scale``); the clients are concurrency and stay at 100."""
    factor = sizes.messages / Sizes().messages
    return Settings(messages=max(10, round(Settings().messages * factor)))


async def scenario(run: Run) -> list[Result]:
    """The suite's ``websocket`` scenario: 100 feed clients of a hypercorn-trio server, every
    message published by this process delivered to each of them."""
    check_local(run.dsn)
    settings = scenario_settings(run.sizes)
    schema = new_schema("bench_ws")
    bar = run.progress(f"websocket fan-out, {settings.clients} clients",
                       settings.clients * settings.messages)
    try:
        m = await fanout(run.dsn, schema, settings, bar=bar)
    finally:
        bar.close()
        drop_schema(run.dsn, schema)
    checked = check(m)
    extra = {
        "clients": settings.clients,
        "messages": settings.messages,
        "publish_s": round(m.published, 3),
        "published_per_s": round(settings.messages / m.published, 1) if m.published else None,
        "max_ms": round(max(m.latencies_ms), 3),
        "connect_s": round(m.connect_s, 3),
        "reconnects": m.reconnects,
    }
    return [Result(f"websocket fan-out, {settings.clients} clients", m.delivered, m.elapsed,
                   m.latencies_ms, extra, checked=checked)]


def report(m: Measured, *, in_process: bool) -> None:
    s, ms = m.settings, m.latencies_ms
    print(f"published {m.sent} of {s.messages} in {m.published:.2f} s ({s.per_tx}/tx)")
    print(
        f"delivered {m.delivered} of {m.expected} in {m.elapsed:.2f} s: "
        f"{m.delivered / m.elapsed:,.0f} deliveries/s"
        + ("  (stopped by --seconds)" if m.stopped else "")
    )
    print(
        f"publish -> receive latency: p50 {percentile(ms, 50):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms, default=float('nan')):.1f} ms"
    )
    counts = [len(r) for r in m.received]
    print(f"per client: min {min(counts)}, max {max(counts)}; reconnects {m.reconnects}")
    if in_process:
        print(f"server feed: {DEFAULT_FEED.statistics()}")


async def main(args: argparse.Namespace) -> None:
    settings = Settings(clients=args.clients, messages=args.messages, per_tx=args.per_tx,
                        rate=args.rate, seconds=args.seconds)
    schema = None
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='fanout-')}/fanout.db"
    else:
        check_local(args.dsn)
        url, schema = args.dsn, new_schema("wsfan")
    try:
        m = await fanout(url, schema, settings, in_process=args.in_process, say=True)
    finally:
        if schema is not None:
            drop_schema(args.dsn, schema)
    report(m, in_process=args.in_process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--clients", type=int, default=Settings().clients)
    parser.add_argument("--messages", type=int, default=Settings().messages)
    parser.add_argument("--per-tx", type=int, default=Settings().per_tx)
    parser.add_argument("--rate", type=float, default=Settings().rate,
                        help="messages/s; 0: unpaced")
    parser.add_argument("--seconds", type=float, default=Settings().seconds)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--sqlite", action="store_true")
    arguments = parser.parse_args()
    if not (1 <= arguments.clients <= 1000 and 1 <= arguments.messages <= 100_000):
        parser.error("--clients must be 1..1000 and --messages 1..100000")
    arguments.in_process = arguments.in_process or arguments.sqlite
    trio.run(main, arguments)
