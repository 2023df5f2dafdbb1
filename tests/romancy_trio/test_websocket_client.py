"""The websocket feed's client helper (`romancy_trio.client.subscribe`) against a real
hypercorn-trio server, and the shared channel tail of the server (`ChannelTail`) on a fake table."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from functools import partial
from typing import Any, cast

import pytest
import trio
import trio.testing

from romancy_channels import Message
from romancy_notify import open_local_hub
from romancy_trio import open_app
from romancy_trio.asgi import serve_http
from romancy_trio.asgi._websocket_tail import ChannelTail
from romancy_trio.client import ChannelMessage, FeedClosed
from romancy_trio.client import subscribe as feed_of

from .conftest import Backend
from .test_websocket import WORKFLOWS, served


async def test_helper_does_not_retry_an_invalid_request(backend: Backend) -> None:
    async with served(backend) as (_app, url):
        with pytest.raises(FeedClosed) as info:
            async with feed_of(url, ["bad\x02"]):
                pass
        assert info.value.code == 1008 and "control characters" in info.value.reason


# -- the client helper ----------------------------------------------------------------------


async def test_helper_reconnects_across_a_server_restart(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WORKFLOWS, config=backend.config) as app:
        got: list[ChannelMessage] = []
        arrived = trio.Event()

        async def until(count: int) -> None:
            nonlocal arrived
            with trio.fail_after(30):
                while len(got) < count:
                    arrived = trio.Event()
                    await arrived.wait()

        async def serve(port: int, task_status: trio.TaskStatus[Any]) -> None:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as inner:
                    bound = await inner.start(partial(serve_http, app, port=port))
                    task_status.started((scope, bound))

        async with trio.open_nursery() as nursery:
            server, port = await nursery.start(serve, 0)
            url = f"ws://127.0.0.1:{port}/channels/ws"

            async def consume(task_status: trio.TaskStatus[Any]) -> None:
                async with feed_of(url, ["x"], backoff=(0.05, 0.2)) as feed:
                    task_status.started(feed)
                    async for message in feed:
                        got.append(message)
                        arrived.set()

            feed = await nursery.start(consume)  # live once entered
            for n in range(10):
                await app.publish("x", n)
            await until(10)
            server.cancel()  # a hard stop: every connection drops
            await trio.sleep(0.3)
            for n in range(10, 20):  # while the server is down
                await app.publish("x", n)
            server, _ = await nursery.start(serve, port)
            for n in range(20, 30):
                await app.publish("x", n)
            await until(30)
            nursery.cancel_scope.cancel()
        assert [m.data for m in got] == list(range(30))
        assert [m.id for m in got] == sorted({m.id for m in got})
        assert feed.connections >= 2 and feed.positions == {"x": got[-1].id}
        assert isinstance(got[0].published_at, datetime) and got[0].published_at.tzinfo


async def test_helper_resumes_after_given_positions(backend: Backend) -> None:
    async with served(backend) as (app, url):
        ids = [await app.publish("y", n) for n in range(5)]
        async with feed_of(url, ["y"], after={"y": ids[1]}, reconnect=False) as feed:
            got = [(await anext(feed)).data for _ in range(3)]
        assert got == [2, 3, 4] and feed.positions == {"y": ids[4]}


# -- the shared tail, with a fake table ---------------------------------------------------


class FakeTable:
    """The two reads a `ChannelTail` makes, over a list; ``publish`` notifies like a commit."""

    dialect = "sqlite"

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.rows: list[Message] = []

    def publish(self, data: Any) -> None:
        ident = len(self.rows) + 1
        self.rows.append(Message(ident, "c", data, {}, None, 0.0))
        self.hub.publish_local("t", "c")

    async def read_after_tx(self, tx: Any, channel: str, after: int, limit: int) -> list[Message]:
        await trio.lowlevel.checkpoint()
        return [m for m in self.rows if m.id > after][:limit]

    async def head(self, dialect: str, channel: str) -> int:
        await trio.lowlevel.checkpoint()
        return len(self.rows)


async def test_tail_hands_over_when_its_refresher_is_cancelled() -> None:
    async with open_local_hub(["t"]) as hub:
        table = FakeTable(hub)
        table.publish("old")
        tail = ChannelTail(
            "c", hub.watch("t", key="c"), cast(Any, table), cast(Any, table), batch=2, keep=2
        )
        assert tail.after(0) == []  # nothing read yet: wait
        async with trio.open_nursery() as nursery:
            first = trio.CancelScope()

            async def refresher() -> None:
                with first:
                    await tail.wait_beyond(1)

            nursery.start_soon(refresher)
            await trio.testing.wait_all_tasks_blocked()
            assert tail.base == 1  # started at the head, now waits on the watch
            nursery.start_soon(tail.wait_beyond, 1)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()  # the refresher's connection ends; the other waiter takes over
            await trio.testing.wait_all_tasks_blocked()
            for n in range(5):
                table.publish(n)  # ids 2..6
        assert tail.last_id == 3  # one batch of 2, read by the waiter that took over
        await tail.wait_beyond(3)  # the batch was full: read on without waiting for a wakeup
        await tail.wait_beyond(5)
        assert tail.last_id == 6 and tail.base == 4  # at most 2 * keep held: the oldest went
        frames = tail.after(4)
        assert frames is not None and [ident for ident, _ in frames] == [5, 6]
        assert json.loads(frames[0][1])["data"] == 3
        assert tail.after(3) is None  # older than what the tail holds: read the table


def test_importing_romancy_trio_does_not_import_trio_websocket() -> None:
    code = (
        "import sys, romancy_trio, romancy_trio.asgi; "
        "assert 'trio_websocket' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
