"""HTTP plumbing for the ASGI app: requests with a bounded streaming body, JSON answers,
a route table with ``{param}`` segments, and the mapping of App errors to statuses.
Knows nothing of workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote

import outcome
import trio

from .._codec import dumps
from ._cloudevents import BadEvent, decode_json

if TYPE_CHECKING:
    from .._app import App

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

T = TypeVar("T")
DEFAULT_MAX_BODY = 1_048_576
DEFAULT_MAX_BATCH = 100
"""Events one CloudEvents batched-mode request may carry (the body limit applies as well)."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a client has to send a whole request body; then 408 and the connection is closed."""


class HTTPError(Exception):
    """Answer the request with ``status`` and ``{"error": message, **extra}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)
        self.extra = dict(extra or {})


class Disconnected(Exception):
    """The client went away before sending its whole body: nobody to answer."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    payload: Any
    headers: tuple[tuple[str, str], ...] = ()


class BodyWatch:
    """``receive``, watched: has the request's body been read to its end? A response that
    starts before then gets ``connection: close`` (`sending`): the server hangs up after it
    (it cannot read the connection's next request while the rest of this body may still
    come), and a client not told so would send its next request on a connection that is
    closing - and get no answer."""

    __slots__ = ("_receive", "complete")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._receive = receive
        self.complete = not _declares_body(scope)

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
        return message

    def sending(self, send: Send) -> Send:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and not self.complete:
                headers = list(message.get("headers", ()))
                if not any(bytes(key).lower() == b"connection" for key, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return watched


def _declares_body(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        name = bytes(key).lower()
        if name == b"transfer-encoding" or (name == b"content-length"
                                            and bytes(value).strip() not in (b"", b"0")):
            return True
    return False


@dataclass(slots=True)
class Request:
    """One HTTP request as the handlers see it. The body is read only when asked for."""

    app: App
    scope: Scope
    receive: Receive
    params: dict[str, str]
    max_body: int
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_batch: int = DEFAULT_MAX_BATCH
    _query: dict[str, str] | None = field(default=None, init=False)

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key.lower() == name:
                return bytes(value).decode("latin-1")
        return None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            raw = bytes(self.scope.get("query_string", b"")).decode("latin-1")
            try:
                pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise HTTPError(400, "query string is not percent-encoded UTF-8") from None
            for key, value in pairs:
                if "\x00" in key or "\x00" in value:
                    raise HTTPError(400, f"query parameter {key!r} contains U+0000 (NUL)")
            self._query = {k: v for k, v in pairs if v != ""}
        return self._query

    def root_path(self) -> str:
        return str(self.scope.get("root_path", "")).rstrip("/")

    async def body(self) -> bytes:
        """The whole body, read chunk by chunk; past ``max_body`` bytes reading stops at once
        and the request is answered 413 without reading the rest. A body not complete within
        ``body_timeout`` seconds (a stalled or dripping client) is answered 408."""
        declared = self.header(b"content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            raise _too_large(self.max_body)
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(self.body_timeout):
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected
                chunk = bytes(message.get("body", b""))
                size += len(chunk)
                if size > self.max_body:
                    raise _too_large(self.max_body)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        raise HTTPError(
            408,
            f"request body not received within {self.body_timeout:g} s",
            headers=[("connection", "close")],
        )

    async def until_disconnect(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` (after the body, which must be read first), but give up at once with
        `Disconnected` if the client hangs up meanwhile: a long poll holds nothing for a
        client that has gone."""
        abandoned = trio.CancelScope()

        async def watch() -> None:
            while (await self.receive())["type"] != "http.disconnect":
                pass
            abandoned.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            with abandoned:  # outside the nursery's exception group: errors stay as they are
                result = await outcome.acapture(work)
            nursery.cancel_scope.cancel()
        if abandoned.cancel_called:
            await trio.lowlevel.checkpoint_if_cancelled()  # an outer cancellation goes first
            raise Disconnected
        return result.unwrap()

    async def json_object(self, allowed: frozenset[str]) -> dict[str, Any]:
        body = await self.body()
        if not body.strip():
            return {}
        try:
            value = decode_json(body, "request body")
        except BadEvent as exc:
            raise HTTPError(exc.status, exc.message) from None
        if not isinstance(value, dict):
            raise HTTPError(400, "request body must be a JSON object")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise HTTPError(400, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        return value


def _too_large(limit: int) -> HTTPError:
    return HTTPError(
        413, f"request body is larger than {limit} bytes", headers=[("connection", "close")]
    )


Handler = Callable[[Request], Awaitable[Response]]
WebSocketHandler = Callable[["App", Scope, Receive, Send, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """``path`` like ``/instances/{id}``; ``{name}`` matches one path segment."""

    path: str
    methods: Mapping[str, Handler]
    public: bool = False


@dataclass(frozen=True, slots=True)
class WebSocketRoute:
    """A websocket endpoint; the handler runs only after the bearer check passed."""

    path: str
    handler: WebSocketHandler
    public: bool = False


def match_path(pattern: str, segments: Sequence[str]) -> dict[str, str] | None:
    parts = pattern.strip("/").split("/") if pattern.strip("/") else []
    if len(parts) != len(segments):
        return None
    params: dict[str, str] = {}
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            if not segment:
                return None
            params[part[1:-1]] = segment
        elif part != segment:
            return None
    return params


def path_segments(scope: Scope) -> list[str]:
    """Decoded, non-empty path segments below ``root_path``; ``%2F`` stays inside a segment."""
    raw = scope.get("raw_path")
    try:
        parts = (
            [unquote(s, errors="strict") for s in bytes(raw).decode("latin-1").split("/")]
            if raw
            else str(scope["path"]).split("/")
        )
    except UnicodeDecodeError:
        raise HTTPError(400, "path is not percent-encoded UTF-8") from None
    segments = [s for s in parts if s]
    for segment in segments:
        if "\x00" in segment:
            raise HTTPError(400, f"path segment {segment!r} contains U+0000 (NUL)")
    root = [s for s in str(scope.get("root_path", "")).split("/") if s]
    if root and segments[: len(root)] == root:
        segments = segments[len(root) :]
    return segments


@contextmanager
def errors_as(statuses: Mapping[type[Exception], int]) -> Iterator[None]:
    """Turn the named App errors into HTTP answers; everything else propagates."""
    try:
        yield
    except tuple(statuses) as exc:
        status = next(s for t, s in statuses.items() if isinstance(exc, t))
        raise HTTPError(status, str(exc)) from None


def number_param(
    req: Request, name: str, default: float, maximum: float, *, integer: bool = False
) -> float:
    raw = req.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= maximum:
        kind = "an integer" if integer else "a number"
        raise HTTPError(400, f"{name} must be {kind} from 0 to {maximum:g}, got {raw!r}")
    return value


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Lifespan for an App that is already open: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_json(send: Send, response: Response) -> None:
    """The response as JSON; a ``bytes`` payload is sent as it is (its ``content-type`` among
    the response's headers)."""
    raw = isinstance(response.payload, bytes)
    body = response.payload if raw else dumps(response.payload).encode()
    headers = [
        *(() if raw else ((b"content-type", b"application/json"),)),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode("latin-1")) for k, v in response.headers),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
