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

A missing or wrong bearer token (when the app has one) refuses the handshake: HTTP 403.
Messages deleted by retention (``AppConfig.channel_retention``) cannot be resumed.

Per connection: one task per channel reads in batches and waits on a keyed notify watch (a
wakeup, gap or fallback only means "read again"); one task sends; one task listens. Between the
readers and the sender is a buffer of ``max_buffer`` frames. If it stays full for
``send_timeout`` seconds the connection is closed with 1013, so a connection holds at most
``max_buffer + channels * batch`` messages however slow its client is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import trio

from channels import ChannelEngine, ChannelError, ChannelTx
from notify import HubClosed, Watch

from .._codec import dumps
from .._errors import StorageUnavailableError
from ._http import Receive, Scope, Send, WebSocketRoute

if TYPE_CHECKING:
    from .._app import App
    from ..storage import Database

PATH: Final = "/channels/ws"
POLICY_VIOLATION: Final = 1008
TRY_AGAIN_LATER: Final = 1013
GOING_AWAY: Final = 1001
UNSUPPORTED_DATA: Final = 1003
_MAX_ID: Final = 2**63 - 1
_MAX_REASON_BYTES: Final = 123  # RFC 6455: a close frame's payload is at most 125 bytes

# The channel's last message id. Belongs in `channels` (as ``ChannelEngine.last_id_tx``); kept
# here until it moves there. Same index as every channel read: channel_messages (channel, id).
_HEAD_SQL: Final[Mapping[str, str]] = {
    "postgres": "SELECT COALESCE(max(id), 0) FROM channel_messages WHERE channel = %(channel)s",
    "sqlite": "SELECT COALESCE(max(id), 0) FROM channel_messages WHERE channel = :channel",
}


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Bounds of the feed, per connection."""

    max_buffer: int = 1000
    """Frames read from the database but not yet handed to the server for sending."""
    send_timeout: float = 5.0
    """Seconds the buffer may stay full before the client is disconnected as too slow."""
    batch: int = 100
    """Messages read per query."""
    max_channels: int = 32
    """Channels one connection may watch."""

    def __post_init__(self) -> None:
        for name in ("max_buffer", "batch", "max_channels"):
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
            raise BadFeedRequest(f"unknown query parameter {key!r}; use channel, after.<channel>")
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
    data = text.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return text
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


class _Reads:
    """`ChannelTx` over the database's single autocommit statements: the feed only reads."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def execute(self, query: str, params: Any = ()) -> int:
        return await self._db.execute(query, params)

    async def fetchone(self, query: str, params: Any = ()) -> tuple[Any, ...] | None:
        return await self._db.fetchone(query, params)

    async def fetchall(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return await self._db.fetchall(query, params)

    async def notify(self, topic: str, payload: str) -> None:
        raise RuntimeError("the channel feed only reads")


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
    """The websocket endpoint; an instance keeps its configuration and statistics.

    ``create_asgi_app`` serves `DEFAULT_FEED` at ``/channels/ws``; to tune it, pass
    ``websocket_routes=[ChannelFeed(FeedConfig(...)).route()]``.
    """

    def __init__(self, config: FeedConfig | None = None) -> None:
        self.config = config or FeedConfig()
        self._open = 0
        self._total = 0
        self._sent = 0
        self._slow = 0
        self._max_buffered = 0

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(
            connections=self._open,
            connections_total=self._total,
            messages_sent=self._sent,
            slow_disconnects=self._slow,
            max_buffered=self._max_buffered,
            buffer_bound=self.config.max_buffer,
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
        reads = _Reads(app.store.db)
        with ExitStack() as stack:
            try:
                # Register before the first read: a publish that commits after it wakes us.
                watches = [
                    stack.enter_context(app.hub.watch(app.store.topics.channel, key=name))
                    for name in request.channels
                ]
                starts = {
                    name: await _start(engine, reads, name, request.after.get(name))
                    for name in request.channels
                }
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
                for watch, (name, start) in zip(watches, starts.items(), strict=True):
                    nursery.start_soon(self._read, conn, engine, reads, watch, name, start, out)

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
        reads: ChannelTx,
        watch: Watch,
        channel: str,
        position: int,
        out: trio.MemorySendChannel[str],
    ) -> None:
        limit = self.config.batch
        while True:
            try:
                batch = await engine.read_after_tx(reads, channel, position, limit)
            except StorageUnavailableError:
                conn.end(TRY_AGAIN_LATER, "the database is unavailable; try again later")
                return
            for message in batch:
                if not await self._put(conn, out, dumps(message.to_json())):
                    return
                position = message.id
            if len(batch) < limit:
                try:
                    await watch.wait()  # gap or fallback: read again all the same
                except HubClosed:
                    conn.end(GOING_AWAY, "the app is shutting down")
                    return

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


async def _start(engine: ChannelEngine, reads: _Reads, channel: str, after: int | None) -> int:
    """Where the feed of ``channel`` starts; validates the name (`ChannelError`)."""
    await engine.read_after_tx(reads, channel, after or 0, 1)
    if after is not None:
        return after
    row = await reads.fetchone(_HEAD_SQL[engine.dialect], {"channel": channel})
    return 0 if row is None else int(row[0])


DEFAULT_FEED: Final = ChannelFeed()
"""The feed ``create_asgi_app`` serves at ``/channels/ws`` unless told otherwise."""
WEBSOCKET_ROUTES: Final[tuple[WebSocketRoute, ...]] = (DEFAULT_FEED.route(),)
