"""A client for the websocket channel feed (``/channels/ws``), built on trio-websocket::

    from romancy_trio.client import subscribe

    async with subscribe("ws://127.0.0.1:8000/channels/ws", ["orders"], token=...) as feed:
        async for message in feed:
            print(message.channel, message.id, message.data)

With ``reconnect=True`` (the default) a dropped connection is re-opened with exponential backoff
and resumes after the last message received on each channel, so the iteration neither skips a
message that is still retained on the server nor repeats one. ``feed.positions`` is the last id
yielded per channel: save it and pass it as ``after=`` to resume in another process.

Importing this module imports trio-websocket; ``import romancy_trio`` does not import this one.
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from ._redact import redact_url

__all__ = ["ChannelMessage", "Feed", "FeedClosed", "subscribe"]

PERMANENT_CLOSE_CODES: Final = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
"""Close codes after which reconnecting unchanged cannot help: the request or data is wrong."""


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message of the feed, as the server's ``channels.Message.to_json()`` describes it."""

    id: int
    channel: str
    data: Any
    metadata: dict[str, Any]
    target: str | None
    published_at: datetime

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ChannelMessage:
        """Raises `KeyError`, `TypeError` or `ValueError` for a malformed frame."""
        ident, channel, metadata = obj["id"], obj["channel"], obj["metadata"]
        target, stamp = obj["target"], obj["published_at"]
        if isinstance(ident, bool) or not isinstance(ident, int) or not isinstance(channel, str):
            raise TypeError("id must be an int and channel a str")
        if not isinstance(metadata, dict) or not isinstance(stamp, str):
            raise TypeError("metadata must be an object and published_at a string")
        if target is not None and not isinstance(target, str):
            raise TypeError("target must be a string or null")
        return cls(ident, channel, obj["data"], metadata, target, datetime.fromisoformat(stamp))


class FeedClosed(Exception):
    """The feed ended for good: the server refused or closed it with a permanent code (or any
    code when ``reconnect=False``), the server was unreachable without ``reconnect``, or it sent
    a malformed frame. ``code`` is the websocket close code, if there was one."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})" if code is not None else reason)
        self.code = code
        self.reason = reason


class Feed:
    """The messages of a subscription, in order per channel. Made by `subscribe`."""

    def __init__(
        self,
        url: str,
        channels: tuple[str, ...],
        after: dict[str, int],
        *,
        token: str | None,
        reconnect: bool,
        buffer: int,
        max_message_size: int,
        connect_timeout: float,
        backoff: tuple[float, float],
    ) -> None:
        self._url = url
        self._channels = channels
        self._received = dict(after)  # resume points of the connection task
        self._yielded = dict(after)
        self._headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
        self._reconnect = reconnect
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._send, self._items = trio.open_memory_channel[ChannelMessage | FeedClosed](buffer)
        self._error: FeedClosed | None = None
        self._ready = trio.Event()  # set at the first hello, or when the feed failed
        self._failure: FeedClosed | None = None
        self.connections = 0
        """Connections established so far (1 + reconnects)."""

    @property
    def positions(self) -> dict[str, int]:
        """The last message id yielded per channel (or where the feed started): pass it as
        ``after`` to resume elsewhere."""
        return dict(self._yielded)

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> ChannelMessage:
        if self._error is not None:
            raise self._error
        try:
            item = await self._items.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, FeedClosed):
            self._error = item
            raise item
        self._yielded[item.channel] = item.id
        return item

    def _query_url(self) -> str:
        query = [("channel", name) for name in self._channels]
        query += [(f"after.{name}", str(self._received[name])) for name in self._received]
        return f"{self._url}?{urlencode(query)}"

    async def _run(self) -> None:
        """The connection task: connect, forward, reconnect; ends by handing on a `FeedClosed`."""
        async with self._send:
            try:
                await self._connect_loop()
            except FeedClosed as exc:
                self._failure = exc
                self._ready.set()
                await self._send.send(exc)

    async def _connect_loop(self) -> None:
        initial, maximum = self._backoff
        delay = initial
        while True:
            try:
                async with _open_websocket(
                    self._query_url(),
                    headers=self._headers,
                    max_message_size=self._max_message_size,
                    connect_timeout=self._connect_timeout,
                ) as ws:
                    self.connections += 1
                    while True:
                        if await self._forward(await ws.get_message()):
                            delay = initial  # a hello: this connection works
            except ConnectionClosed as exc:
                code = None if exc.reason is None else exc.reason.code
                reason = "" if exc.reason is None else exc.reason.reason or exc.reason.name
                if code in PERMANENT_CLOSE_CODES or not self._reconnect:
                    raise FeedClosed(code, f"the server closed the feed: {reason}") from None
            except ConnectionRejected as exc:
                text = f"the server refused the websocket handshake: HTTP {exc.status_code}"
                raise FeedClosed(None, text) from None
            except ssl.SSLCertVerificationError as exc:
                raise FeedClosed(None, f"cannot verify {redact_url(self._url)}: {exc}") from None
            except (OSError, trio.TooSlowError) as exc:  # unreachable, or no handshake in time
                if not self._reconnect:
                    raise FeedClosed(
                        None, f"cannot connect to {redact_url(self._url)}: {exc!r}") from None
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, maximum)

    async def _forward(self, frame: str | bytes) -> bool:
        """Queue one frame's message (waiting while the buffer is full); True for a hello."""
        try:
            obj = json.loads(frame)
            if isinstance(obj, dict) and "subscribed" in obj:
                starts = obj["subscribed"]
                for name in self._channels:  # where a channel with no position yet starts
                    start = int(starts[name])
                    self._received.setdefault(name, start)
                    self._yielded.setdefault(name, start)
                self._ready.set()
                return True
            message = ChannelMessage.from_json(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedClosed(None, f"malformed frame from the server: {exc!r}") from None
        if message.id > self._received.get(message.channel, -1):  # never one twice
            self._received[message.channel] = message.id
            await self._send.send(message)
        return False


@asynccontextmanager
async def _open_websocket(
    url: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    message_queue_size: int = 1,
    max_message_size: int = 16 * 1024 * 1024,
    connect_timeout: float = 10.0,
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client connection over a socket opened here and always closed here.

    (trio-websocket 0.12's own ``open_websocket_url`` leaves the client's socket open when the
    server closes first or refuses the handshake.) Raises `ConnectionRejected`, `OSError` and
    `trio.TooSlowError` (no handshake within ``connect_timeout``) unwrapped.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {redact_url(url)!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    host_header = parts.netloc.rpartition("@")[2]
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with trio.fail_after(connect_timeout):
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
        if tls:
            context = ssl.create_default_context()
            stream = await trio.open_ssl_over_tcp_stream(
                parts.hostname, port, ssl_context=context, https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(parts.hostname, port)
    async with stream:
        body_error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(connect_timeout):
                    ws = await wrap_client_stream(
                        nursery,
                        stream,
                        host_header,
                        resource,
                        extra_headers=list(headers),
                        message_queue_size=message_queue_size,
                        max_message_size=max_message_size,
                    )
                try:
                    yield ws
                except BaseException as exc:  # noqa: BLE001 - re-raised below, outside the nursery
                    body_error = exc
                if ws.closed is None:  # say goodbye, briefly, even when cancelled
                    with trio.move_on_after(1.0) as goodbye:
                        goodbye.shield = True
                        await ws.aclose()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # from the reader task, e.g. ConnectionRejected
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    if body_error is not None:
        raise body_error


@asynccontextmanager
async def subscribe(
    url: str,
    channels: Iterable[str],
    *,
    after: Mapping[str, int] | None = None,
    token: str | None = None,
    reconnect: bool = True,
    buffer: int = 100,
    max_message_size: int = 16 * 1024 * 1024,
    connect_timeout: float = 10.0,
    backoff: tuple[float, float] = (0.1, 5.0),
) -> AsyncIterator[Feed]:
    """Open the feed of ``channels`` at ``url`` (``ws://host:port/channels/ws``).

    Entering waits until the server confirmed the subscription (its first frame): every message
    published after that is delivered. It raises `FeedClosed` if the feed cannot start (refused,
    invalid, or - without ``reconnect`` - unreachable); with ``reconnect`` it keeps trying.
    ``after``: resume each named channel after that message id; the others start live.
    ``token``: the server's bearer token. ``reconnect``: re-open a dropped connection with
    exponential ``backoff`` (initial, maximum seconds; jittered) and resume; without it the
    first close raises `FeedClosed`. ``buffer``: messages received but not yet iterated (when
    full the client stops reading, and a server that waits too long drops and later resumes
    the connection). Iteration raises `FeedClosed` when the feed cannot go on.
    """
    if isinstance(channels, str):
        raise TypeError("channels must be a collection of names, not one str")
    names = tuple(dict.fromkeys(channels))
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError("give at least one channel, each a non-empty str")
    start = dict(after or {})
    if set(start) - set(names):
        raise ValueError(f"after names channels not subscribed: {sorted(set(start) - set(names))}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in start.values()):
        raise ValueError("after values must be message ids (ints >= 0)")
    if "?" in url or "#" in url:
        raise ValueError("url must have no query or fragment; channels go in `channels`")
    if buffer < 1 or not 0 < backoff[0] <= backoff[1]:
        raise ValueError("need buffer >= 1 and backoff = (initial, maximum), 0 < initial <= max")
    feed = Feed(
        url,
        names,
        start,
        token=token,
        reconnect=reconnect,
        buffer=buffer,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        backoff=backoff,
    )
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed._run)
        try:
            await feed._ready.wait()
            if feed._failure is not None:
                raise feed._failure
            yield feed
        except BaseException as exc:  # noqa: BLE001 - re-raised below, outside the nursery
            body_error = exc
        nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
