"""The websocket channel feed: external clients watch channel traffic as it is published.

Protocol (``GET /channels/ws``, a websocket)
--------------------------------------------
Query: ``channel=<name>`` (repeat it for several channels, at most ``max_channels``), and
optionally ``after=<id>`` (for every channel) or ``after.<name>=<id>`` (for one channel; wins
over ``after``). A channel with no position starts *live*, after its last message at connect
time. Keys and values are percent-encoded as usual: ``after.orders%2Feu=41``.

Frames, JSON text, server to client:

1. Once, first: ``{"subscribed": {"<channel>": <id>, ...}}`` - where each channel starts (the
   feed sends the messages with larger ids). A client that got no message yet resumes from it.
2. Then one frame per message, ``channels.Message.to_json()``: ``{"id", "channel", "data",
   "metadata", "target", "published_at"}`` (``target`` is always null: only untargeted messages
   are shown), in publish (= id) order per channel; channels interleave.

It is a view: nothing is consumed, competing consumers and broadcast cursors are unaffected. The
client sends nothing. The server closes with:

- 1008 (policy violation): the request is invalid; the reason says why. Do not retry unchanged.
- 1013 (try again later): the client did not keep up (reason ``client too slow: ...``) or the
  database is unavailable. Reconnect with ``after.<channel>=<last id received>``.
- 1001 (going away): the app is shutting down; reconnect later, with ``after``.
- 1003 (unsupported data): the client sent a data frame.

A close frame reaches only a client that reads: one that reads nothing at all for about 30 s
while the server has frames for it (`SEND_STALL_TIMEOUT_MS`) has its connection cut by the
server's kernel, and sees 1006 (abnormal closure). Treat that as 1013.

A missing or wrong bearer token (when the app has one) refuses the handshake: HTTP 403.
Messages deleted by retention (``AppConfig.channel_retention``) cannot be resumed.

Per connection: one task per channel queues frames, one task sends them, one task listens for
the client leaving. Frames come from the channel's shared tail (`ChannelTail`: one notify watch,
one query per wakeup and one JSON encoding per message for all of this process's connections) or,
for a connection that is behind it, from its own bounded reads. Between the queuing tasks and the
sender is a buffer of ``max_buffer`` frames; if it stays full for ``send_timeout`` seconds the
connection is closed with 1013, so a connection holds at most ``max_buffer + channels * batch``
frames however slow its client is, and a channel's tail at most ``2 * keep``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

import trio

from romancy_channels import ChannelEngine, ChannelError
from romancy_notify import HubClosed

from .._codec import dumps
from .._errors import StorageUnavailableError
from ._http import Receive, Scope, Send, WebSocketRoute
from ._websocket_tail import ChannelTail, QueryCount, Reads, encode

if TYPE_CHECKING:
    from .._app import App

PATH: Final = "/channels/ws"
POLICY_VIOLATION: Final = 1008
TRY_AGAIN_LATER: Final = 1013
GOING_AWAY: Final = 1001
UNSUPPORTED_DATA: Final = 1003
_MAX_ID: Final = 2**63 - 1
_MAX_REASON_BYTES: Final = 123  # RFC 6455: a close frame's payload is at most 125 bytes


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """The bounds of a feed: per connection, and per channel for the shared tails."""

    max_buffer: int = 1000
    """Frames read from the database but not yet handed to the server for sending."""
    send_timeout: float = 5.0
    """Seconds the buffer may stay full before the client is disconnected as too slow."""
    batch: int = 100
    """Messages read per query."""
    max_channels: int = 32
    """Channels one connection may watch."""
    keep: int = 1000
    """Recent frames held per channel in memory, shared by all connections (up to twice this)."""

    def __post_init__(self) -> None:
        for name in ("max_buffer", "batch", "max_channels", "keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FeedConfig.{name} must be an int >= 1, not {value!r}")
        if not (math.isfinite(self.send_timeout) and self.send_timeout > 0):
            raise ValueError(f"FeedConfig.send_timeout must be > 0, not {self.send_timeout!r}")


@dataclass(frozen=True, slots=True)
class FeedStatistics:
    connections: int
    """Connections open now."""
    connections_total: int
    messages_sent: int
    slow_disconnects: int
    """Connections closed because their client did not keep up."""
    max_buffered: int
    """The most frames any connection's buffer held at once (never above ``buffer_bound``)."""
    buffer_bound: int
    queries: int
    """Table reads run: shared tail reads, catch-up reads and per-connection setup."""
    tails: int
    """Channels with a shared tail now (watched by at least one connection)."""


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """A parsed query: the channels, in order, and the positions the client gave."""

    channels: tuple[str, ...]
    after: Mapping[str, int]


class BadFeedRequest(Exception):
    """The query cannot be served; the message is the close reason."""


def parse_query(query_string: bytes, *, max_channels: int) -> FeedRequest:
    """Sans-IO: the feed request in a websocket query string, or `BadFeedRequest`."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadFeedRequest("query string is not percent-encoded UTF-8") from None
    channels: dict[str, None] = {}  # ordered, de-duplicated
    default: int | None = None
    after: dict[str, int] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise BadFeedRequest(f"query parameter {key!r} contains U+0000 (NUL)")
        if key == "channel":
            channels[value] = None
        elif key == "after" or key.startswith("after."):
            position = _position(key, value)
            if key == "after":
                if default is not None:
                    raise BadFeedRequest("'after' given twice")
                default = position
            elif after.setdefault(key[6:], position) != position:
                raise BadFeedRequest(f"{key!r} given twice")
        else:
            raise BadFeedRequest(
                f"unknown query parameter {key!r}; use channel, after, after.<name>"
            )
    if not channels:
        raise BadFeedRequest("give at least one channel: ?channel=<name>")
    if len(channels) > max_channels:
        raise BadFeedRequest(f"{len(channels)} channels; at most {max_channels} per connection")
    stray = sorted(set(after) - set(channels))
    if stray:
        raise BadFeedRequest(f"after.<channel> names a channel not asked for: {stray[0]!r}")
    if default is not None:
        after = {name: after.get(name, default) for name in channels}
    return FeedRequest(tuple(channels), after)


def _position(key: str, value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) <= _MAX_ID):
        raise BadFeedRequest(f"{key} must be a message id (an integer >= 0), got {value!r}")
    return int(value)


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame (123 bytes of UTF-8)."""
    data = text.encode(errors="backslashreplace")
    if len(data) <= _MAX_REASON_BYTES:
        return data.decode()
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


class _Connection:
    """How one connection ends: the first task to decide records a close and cancels the rest."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.close: tuple[int, str] | None = None
        self.disconnected = False

    def end(self, code: int, reason: str) -> None:
        if self.close is None and not self.disconnected:
            self.close = (code, close_reason(reason))
        self.scope.cancel()

    def client_left(self) -> None:
        self.disconnected = True
        self.scope.cancel()


class ChannelFeed:
    """The websocket endpoint; an instance keeps its configuration, its shared channel tails and
    its statistics.

    ``create_asgi_app`` serves `DEFAULT_FEED` at ``/channels/ws``; to tune it, pass
    ``websocket_routes=[ChannelFeed(FeedConfig(...)).route()]``.
    """

    def __init__(self, config: FeedConfig | None = None) -> None:
        self.config = config or FeedConfig()
        self._tails: dict[tuple[int, str], ChannelTail] = {}
        self._counts = QueryCount()
        self._open = self._total = self._sent = self._slow = self._max_buffered = 0

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(
            connections=self._open,
            connections_total=self._total,
            messages_sent=self._sent,
            slow_disconnects=self._slow,
            max_buffered=self._max_buffered,
            buffer_bound=self.config.max_buffer,
            queries=self._counts.queries,
            tails=len(self._tails),
        )

    def route(self, path: str = PATH) -> WebSocketRoute:
        """This feed as a route of ``create_asgi_app`` (behind its bearer token)."""
        return WebSocketRoute(path, self)

    async def __call__(
        self, app: App, scope: Scope, receive: Receive, send: Send, params: dict[str, str]
    ) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        conn = _Connection()
        self._open += 1
        self._total += 1
        try:
            try:
                request = parse_query(
                    bytes(scope.get("query_string", b"")), max_channels=self.config.max_channels
                )
            except BadFeedRequest as exc:
                conn.end(POLICY_VIOLATION, str(exc))
            else:
                with conn.scope:
                    await self._serve(app, request, conn, receive, send)
        finally:
            self._open -= 1
        if conn.close is not None:
            code, reason = conn.close
            await send({"type": "websocket.close", "code": code, "reason": reason})

    async def _serve(
        self, app: App, request: FeedRequest, conn: _Connection, receive: Receive, send: Send
    ) -> None:
        engine = app.channels.engine
        reads = Reads(app.store.db, self._counts)
        tails: list[ChannelTail] = []
        try:
            try:
                for name in request.channels:  # validates the name (ChannelError)
                    await engine.read_after_tx(reads, name, request.after.get(name, 0), 1)
                for name in request.channels:  # the watch is registered before the first read
                    tails.append(self._tail(app, name, engine, reads))
                starts: dict[str, int] = {}
                for name in request.channels:  # live (no `after`): after the last message now
                    given = request.after.get(name)
                    starts[name] = (
                        await reads.head(engine.dialect, name) if given is None else given
                    )
            except ChannelError as exc:
                conn.end(POLICY_VIOLATION, str(exc))
                return
            except HubClosed:
                conn.end(GOING_AWAY, "the app is shutting down")
                return
            except StorageUnavailableError:
                conn.end(TRY_AGAIN_LATER, "the database is unavailable; try again later")
                return
            await send({"type": "websocket.send", "text": dumps({"subscribed": starts})})
            out, pending = trio.open_memory_channel[str](self.config.max_buffer)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen, conn, receive)
                nursery.start_soon(self._send, pending, send)
                for tail in tails:
                    start = starts[tail.channel]
                    nursery.start_soon(self._read, conn, engine, reads, tail, start, out)
        finally:
            for tail in tails:
                self._release(app, tail)

    def _tail(self, app: App, channel: str, engine: ChannelEngine, reads: Reads) -> ChannelTail:
        tail = self._tails.get((id(app), channel))
        if tail is None:
            watch = app.hub.watch(app.store.topics.channel, key=channel)
            tail = ChannelTail(
                channel, watch, engine, reads, batch=self.config.batch, keep=self.config.keep
            )
            self._tails[id(app), channel] = tail
        tail.users += 1
        return tail

    def _release(self, app: App, tail: ChannelTail) -> None:
        tail.users -= 1
        if tail.users == 0:
            tail.watch.close()
            del self._tails[id(app), tail.channel]

    async def _listen(self, conn: _Connection, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                conn.client_left()
                return
            if message["type"] == "websocket.receive":
                conn.end(UNSUPPORTED_DATA, "this feed takes no messages from the client")
                return

    async def _send(self, pending: trio.MemoryReceiveChannel[str], send: Send) -> None:
        async for frame in pending:
            await send({"type": "websocket.send", "text": frame})
            self._sent += 1

    async def _read(
        self,
        conn: _Connection,
        engine: ChannelEngine,
        reads: Reads,
        tail: ChannelTail,
        position: int,
        out: trio.MemorySendChannel[str],
    ) -> None:
        """Queue the frames of ``tail.channel`` after ``position``, in order, for ever."""
        batch = self.config.batch
        try:
            while True:
                frames = tail.after(position)
                floor = position
                if frames is None:  # older than the tail holds: read the table up to its base
                    floor = position if tail.base is None else tail.base
                    rows = await engine.read_after_tx(reads, tail.channel, position, batch)
                    frames = encode(rows)
                    if len(rows) == batch:
                        floor = position  # more to read: no jump yet
                elif not frames:
                    await tail.wait_beyond(position)
                    continue
                for ident, frame in frames:
                    if not await self._put(conn, out, frame):
                        return
                    position = ident
                position = max(position, floor)
        except StorageUnavailableError:
            conn.end(TRY_AGAIN_LATER, "the database is unavailable; try again later")
        except HubClosed:
            conn.end(GOING_AWAY, "the app is shutting down")

    async def _put(self, conn: _Connection, out: trio.MemorySendChannel[str], frame: str) -> bool:
        """Queue ``frame``; False if the buffer stayed full too long (the connection ends)."""
        try:
            out.send_nowait(frame)
        except trio.WouldBlock:
            with trio.move_on_after(self.config.send_timeout) as timer:
                await out.send(frame)
            if timer.cancelled_caught:
                self._slow += 1
                timeout = self.config.send_timeout
                conn.end(
                    TRY_AGAIN_LATER,
                    f"client too slow: {self.config.max_buffer} messages unsent for {timeout:g} s",
                )
                return False
        self._max_buffered = max(self._max_buffered, out.statistics().current_buffer_used)
        return True


DEFAULT_FEED: Final = ChannelFeed()
"""The feed ``create_asgi_app`` serves at ``/channels/ws`` unless told otherwise."""
WEBSOCKET_ROUTES: Final[tuple[WebSocketRoute, ...]] = (DEFAULT_FEED.route(),)
