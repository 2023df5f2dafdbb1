"""The websocket channel feed over a real hypercorn (Trio mode) server on 127.0.0.1, with real
trio-websocket clients and the `romancy_trio.client` helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection

from romancy_trio import App, WorkflowContext, open_app, publish, receive, subscribe, workflow
from romancy_trio.asgi import create_asgi_app, serve_asgi, serve_http
from romancy_trio.asgi._websocket import (
    BadFeedRequest,
    ChannelFeed,
    FeedConfig,
    close_reason,
    parse_query,
)
from romancy_trio.client import FeedClosed
from romancy_trio.client import _open_websocket as connect  # trio-websocket, socket always closed
from romancy_trio.client import subscribe as feed_of

from ._waits import failing_if_stuck
from .conftest import Backend

KEYS = {"id", "channel", "data", "metadata", "target", "published_at"}


@workflow
async def ws_talks(ctx: WorkflowContext, args: dict[str, Any]) -> int:
    for i in range(args["count"]):
        await publish(ctx, args["channel"], {"n": i}, metadata={"from": "workflow"})
    return int(args["count"])


@workflow
async def ws_takes(ctx: WorkflowContext, args: dict[str, Any]) -> list[int]:
    await subscribe(ctx, args["channel"], "competing")
    got = []
    for _ in range(args["count"]):
        message = await receive(ctx, args["channel"], timeout=60)
        got.append(message.data["n"])
    return got


WORKFLOWS: list[Any] = [ws_talks, ws_takes]


@asynccontextmanager
async def served(
    backend: Backend, *, feed: ChannelFeed | None = None, token: str | None = None
) -> AsyncIterator[tuple[App, str]]:
    """An App and the feed URL of a server for it: the default route, or ``feed``."""
    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        async with trio.open_nursery() as nursery:
            if feed is None:
                port = await nursery.start(partial(serve_http, app, bearer_token=token))
            else:
                asgi = create_asgi_app(app, bearer_token=token, websocket_routes=[feed.route()])
                port = await nursery.start(partial(serve_asgi, asgi))
            yield app, f"ws://127.0.0.1:{port}/channels/ws"
            nursery.cancel_scope.cancel()


async def frame(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        value: dict[str, Any] = json.loads(await ws.get_message())
    return value


async def frames(ws: WebSocketConnection, n: int) -> list[dict[str, Any]]:
    return [await frame(ws) for _ in range(n)]


async def closed(ws: WebSocketConnection) -> ConnectionClosed:
    """Read until the server's close arrives; return it."""
    with trio.fail_after(10):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc


async def publish_many(app: App, channel: str, count: int, *, size: int = 0) -> None:
    """``count`` messages ``{"n": i, "pad": ...}``, 250 to a transaction (one call each: on
    MySQL, 250 calls of one message each took most of a minute under load)."""
    for start in range(0, count, 250):
        await app.publish_many(channel, [{"n": n, "pad": "x" * size}
                                         for n in range(start, min(count, start + 250))])


# -- the protocol ---------------------------------------------------------------------------


async def test_feed_shows_workflow_and_app_publishes_in_order(backend: Backend) -> None:
    async with served(backend) as (app, url), connect(f"{url}?channel=news") as ws:
        hello = await frame(ws)
        assert hello == {"subscribed": {"news": 0}}
        first = await app.publish("news", {"n": "app"}, metadata={"k": "v"})
        await app.publish("elsewhere", {"n": "not shown"})
        someone = await app.start(ws_takes, {"channel": "other", "count": 1})  # alive: waits
        await app.send_to(someone, "news", {"n": "targeted: not shown"})
        assert await app.run(ws_talks, {"channel": "news", "count": 3}, timeout=30) == 3
        last = await app.publish("news", [1, "two", None])
        got = await frames(ws, 5)

        assert all(set(f) == KEYS for f in got)
        assert [f["data"] for f in got] == [
            {"n": "app"},
            {"n": 0},
            {"n": 1},
            {"n": 2},
            [1, "two", None],
        ]
        assert [f["metadata"] for f in got] == [{"k": "v"}] + [{"from": "workflow"}] * 3 + [{}]
        assert {f["channel"] for f in got} == {"news"} and {f["target"] for f in got} == {None}
        ids = [f["id"] for f in got]
        assert ids == sorted(set(ids)) and ids[0] == first and ids[-1] == last
        for f in got:
            assert f["published_at"].endswith("Z")
            datetime.fromisoformat(f["published_at"])
        reads = app.store.db
        async with reads.transaction() as tx:
            stored = await app.channels.engine.read_after_tx(tx, "news", 0, 100)
        assert got == [m.to_json() for m in stored]  # exactly Message.to_json()


async def test_a_live_feed_starts_after_what_was_there(backend: Backend) -> None:
    async with served(backend) as (app, url):
        old = await app.publish("news", "old")
        async with connect(f"{url}?channel=news") as ws:
            assert await frame(ws) == {"subscribed": {"news": old}}
            await app.publish("news", "new")
            assert (await frame(ws))["data"] == "new"


async def test_after_resumes_without_gaps_or_duplicates(backend: Backend) -> None:
    async with served(backend) as (app, url):
        async with connect(f"{url}?channel=a&channel=b") as ws:
            start = (await frame(ws))["subscribed"]
            for n in range(3):
                await app.publish("a", n)
                await app.publish("b", n)
            seen = await frames(ws, 6)
        last = {c: max(f["id"] for f in seen if f["channel"] == c) for c in "ab"}
        for n in range(3, 6):  # while nobody is connected
            await app.publish("a", n)
            await app.publish("b", n)
        resume = f"{url}?channel=a&channel=b&after.a={last['a']}&after.b={last['b']}"
        async with connect(resume) as ws:
            assert await frame(ws) == {"subscribed": last}
            more = await frames(ws, 6)
        for c in "ab":
            assert [f["data"] for f in seen + more if f["channel"] == c] == list(range(6))
        # one `after` for every channel; after.<channel> wins over it
        everything = f"{url}?channel=a&channel=b&after=0&after.b={last['b']}"
        async with connect(everything) as ws:
            assert await frame(ws) == {"subscribed": {"a": 0, "b": last["b"]}}
            replay = await frames(ws, 9)
        assert [f["data"] for f in replay if f["channel"] == "a"] == list(range(6))
        assert [f["data"] for f in replay if f["channel"] == "b"] == [3, 4, 5]
        assert start == {"a": 0, "b": 0}


async def test_competing_consumers_are_unaffected_by_a_viewer(backend: Backend) -> None:
    async with served(backend) as (app, url), connect(f"{url}?channel=jobs") as ws:
        await frame(ws)
        takers = [await app.start(ws_takes, {"channel": "jobs", "count": 10}) for _ in range(2)]
        await publish_many(app, "jobs", 20)
        taken = [n for iid in takers for n in await app.result(iid, timeout=60)]
        assert sorted(taken) == list(range(20))  # each message taken exactly once
        assert [f["data"]["n"] for f in await frames(ws, 20)] == list(range(20))


async def test_connections_share_a_tail_and_laggards_catch_up(backend: Backend) -> None:
    feed = ChannelFeed(FeedConfig(keep=5, batch=4))  # a tiny tail: most history is in the table
    async with served(backend, feed=feed) as (app, url):
        async with (
            connect(f"{url}?channel=t") as a,
            connect(f"{url}?channel=t") as b,
            connect(f"{url}?channel=t") as c,
        ):
            for ws in (a, b, c):
                await frame(ws)
            assert feed.statistics().tails == 1
            before = feed.statistics().queries
            for n in range(40):
                await app.publish("t", n)
            for ws in (a, b, c):
                assert [f["data"] for f in await frames(ws, 40)] == list(range(40))
            live_queries = feed.statistics().queries - before
            async with connect(f"{url}?channel=t&after=0") as late:  # behind the tail
                await frame(late)
                assert [f["data"] for f in await frames(late, 40)] == list(range(40))
        # one shared read per wakeup (PostgreSQL: also per echo of the NOTIFY), not one per client
        assert live_queries <= 2 * 40
        with trio.fail_after(10):
            while feed.statistics().tails:  # the last connection out drops the tail
                await trio.sleep(0.05)


# -- refusals -------------------------------------------------------------------------------


async def test_bearer_token_is_checked_at_the_handshake(backend: Backend) -> None:
    async def refused(url: str, headers: list[tuple[bytes, bytes]]) -> int:
        try:
            async with connect(url, headers=headers):
                return 0
        except ConnectionRejected as exc:
            return exc.status_code

    async def helper_error(url: str) -> str:
        try:
            async with feed_of(url, ["a"], token="wrong"):
                return ""
        except FeedClosed as exc:
            return str(exc)

    async with served(backend, token="s3cret") as (_app, url):
        assert await refused(f"{url}?channel=a", []) == 403
        assert await refused(f"{url}?channel=a", [(b"authorization", b"Bearer wrong")]) == 403
        good = [(b"authorization", b"Bearer s3cret")]
        async with connect(f"{url}?channel=a", headers=good) as ws:
            assert await frame(ws) == {"subscribed": {"a": 0}}
        assert "HTTP 403" in await helper_error(url)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("channel=" + quote("bad\x01name"), "control characters"),
        ("channel=" + "c" * 201, "the limit is 200"),
        ("", "at least one channel"),
        ("channel=a&after=-1", "after must be a message id"),
        ("channel=a&after.b=3", "not asked for: 'b'"),
        ("channel=a&since=3", "unknown query parameter 'since'"),
    ],
)
async def test_invalid_requests_are_closed_with_1008(
    backend: Backend, query: str, reason: str
) -> None:
    async with served(backend) as (_app, url), connect(f"{url}?{query}") as ws:
        exc = await closed(ws)
        assert exc.reason is not None and exc.reason.code == 1008
        assert reason in (exc.reason.reason or "")


async def test_client_frames_are_refused_with_1003(backend: Backend) -> None:
    async with served(backend) as (_app, url), connect(f"{url}?channel=a") as ws:
        await frame(ws)
        await ws.send_message('{"subscribe": ["b"]}')
        exc = await closed(ws)
        assert exc.reason is not None and exc.reason.code == 1003


async def test_app_shutdown_closes_feeds_with_1001(backend: Backend) -> None:
    stop_app = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run_app(task_status: trio.TaskStatus[int]) -> None:
            async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
                task_status.started(await nursery.start(serve_http, app))
                await stop_app.wait()

        port = await nursery.start(run_app)
        async with connect(f"ws://127.0.0.1:{port}/channels/ws?channel=a") as ws:
            await frame(ws)
            stop_app.set()  # the App closes; the server keeps running
            exc = await closed(ws)
        assert exc.reason is not None and exc.reason.code == 1001
        nursery.cancel_scope.cancel()


# -- backpressure ---------------------------------------------------------------------------


async def test_a_stalled_client_is_dropped_and_memory_stays_bounded(backend: Backend) -> None:
    feed = ChannelFeed(FeedConfig(max_buffer=100, send_timeout=2.0, batch=50))
    total = 5000
    fast_got: list[int] = []
    stalled_got: list[int] = []
    closed: list[ConnectionClosed] = []

    async def read_fast(url: str) -> None:
        async with feed_of(url, ["bulk"], after={"bulk": 0}, reconnect=False) as fast:
            async for message in fast:
                fast_got.append(message.data["n"])
                if len(fast_got) == total:
                    return

    async def read_stalled_once_dropped(stalled: WebSocketConnection) -> None:
        # It reads again only once the feed has given up on it, and well within the server's
        # send-stall bound (SEND_STALL_TIMEOUT_MS, 30 s): a client that reads nothing for that
        # long is cut by the kernel and can be told no close code (it sees 1006).
        with trio.fail_after(60):
            while not feed.statistics().slow_disconnects:
                await trio.sleep(0.05)
        while True:
            try:
                with trio.fail_after(10):
                    stalled_got.append(json.loads(await stalled.get_message())["data"]["n"])
            except ConnectionClosed as exc:
                closed.append(exc)
                return

    async with served(backend, feed=feed) as (app, url):
        # message_queue_size=1 and no reads: the client stops reading its socket at once
        async with connect(f"{url}?channel=bulk", message_queue_size=1) as stalled:
            await frame(stalled)
            async def progress() -> object:
                return len(fast_got), len(stalled_got), feed.statistics()

            async with failing_if_stuck(progress):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_fast, url)
                    nursery.start_soon(read_stalled_once_dropped, stalled)
                    await publish_many(app, "bulk", total, size=1000)  # ~5 MB
            assert fast_got == list(range(total))  # the fast client was not held back
            stats = feed.statistics()
            assert stats.slow_disconnects == 1 and stats.buffer_bound == 100
            assert stats.max_buffered == 100  # reached the bound, never passed it
            # the stalled client, reading at last, found a prefix of the feed, then the close
            [exc] = closed
            assert exc.reason is not None and exc.reason.code == 1013, exc.reason
            assert (exc.reason.reason or "").startswith("client too slow: 100 messages")
            assert stalled_got == list(range(len(stalled_got))) and len(stalled_got) < total
        with trio.fail_after(10):
            while feed.statistics().connections:
                await trio.sleep(0.05)
        assert feed.statistics().connections_total == 2


# -- sans-IO --------------------------------------------------------------------------------


def test_parse_query() -> None:
    request = parse_query(
        b"channel=a&channel=orders%2Feu&channel=a&after.orders%2Feu=7", max_channels=3
    )
    assert request.channels == ("a", "orders/eu") and request.after == {"orders/eu": 7}
    assert parse_query(b"channel=a&channel=b&after=3&after.b=9", max_channels=2).after == {
        "a": 3,
        "b": 9,
    }
    for bad in (b"channel=a&channel=b", b"channel=a&after=1&after=2", b"channel=a&after=1.5"):
        with pytest.raises(BadFeedRequest):
            parse_query(bad, max_channels=1)
    assert len(close_reason("é" * 100).encode()) <= 123
