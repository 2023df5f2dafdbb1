"""The ASGI application: a small route table over :class:`~romancy_trio.App`.

A reply says "accepted" (2xx) only after the App call it reports on has returned, i.e. after
the database committed. Known, expected errors become JSON answers with a fitting status; any
other exception propagates to the server, which logs it and answers 500.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, unquote

from .._codec import dumps
from .._errors import (
    InstanceFinishedError,
    InstanceIdConflictError,
    InstanceNotFoundError,
    InvalidInputError,
    StorageUnavailableError,
    TimeoutWaitingError,
    UnknownWorkflowError,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from .._event_types import Event
from ..storage import InstanceInfo, WorkflowStatus
from ._cloudevents import BadEvent, ParsedEvent, decode_json, from_json_api, parse_http

if TYPE_CHECKING:
    from .._app import App

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY: Final = 1_048_576
RESULT_TIMEOUT_DEFAULT: Final = 10.0
RESULT_TIMEOUT_MAX: Final = 60.0
LIST_LIMIT_MAX: Final = 1000


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


class _Disconnected(Exception):
    """The client went away before sending its whole body: nobody to answer."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    payload: Any
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Request:
    """One HTTP request as the handlers see it. The body is read only when asked for."""

    app: App
    scope: Scope
    receive: Receive
    params: dict[str, str]
    max_body: int
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
            self._query = {k: v for k, v in pairs if v != ""}
        return self._query

    def root_path(self) -> str:
        return str(self.scope.get("root_path", "")).rstrip("/")

    async def body(self) -> bytes:
        """The whole body, read chunk by chunk; past ``max_body`` bytes reading stops at once
        and the request is answered 413 without reading the rest."""
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _too_large(self.max_body)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body:
                raise _too_large(self.max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

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


def instance_json(info: InstanceInfo) -> dict[str, Any]:
    error = info.error
    return {
        "instance_id": info.instance_id,
        "workflow": info.workflow_name,
        "status": str(info.status),
        "input": info.input,
        "result": info.result,
        "error": None if error is None else {"type": error.type, "message": error.message},
        "run_no": info.run_no,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }


# -- handlers ------------------------------------------------------------------------------


async def healthz(req: Request) -> Response:
    return Response(200, {"status": "ok"})


async def cloudevent_intake(req: Request) -> Response:
    body = await req.body()
    try:
        parsed = parse_http(req.scope["headers"], body)
    except BadEvent as exc:
        raise HTTPError(exc.status, exc.message) from None
    return await deliver(req.app, parsed)


async def plain_event(req: Request) -> Response:
    obj = await req.json_object(
        frozenset({"type", "source", "id", "data", "subject", "instance_id"})
    )
    try:
        parsed = from_json_api(obj)
    except BadEvent as exc:
        raise HTTPError(exc.status, exc.message) from None
    return await deliver(req.app, parsed)


async def deliver(app: App, parsed: ParsedEvent) -> Response:
    """The one path both event routes take: store (commit), then answer 202."""
    with errors_as({InvalidInputError: 400, InstanceNotFoundError: 404}):
        receipt = await app.send_event(to_event(parsed))
    return Response(
        202,
        {
            "id": receipt.event_id,
            "source": receipt.source,
            "duplicate": receipt.duplicate,
            "delivered_to": list(receipt.delivered_to),
        },
    )


def to_event(parsed: ParsedEvent) -> Event:
    """The parse result as the App's ``Event`` value."""
    return Event(
        type=parsed.type,
        source=parsed.source,
        id=parsed.id,
        data=parsed.data,
        subject=parsed.subject,
        time=parsed.time,
        datacontenttype=parsed.datacontenttype,
        dataschema=parsed.dataschema,
        extensions=parsed.extensions,
        target_instance_id=parsed.target_instance_id,
    )


async def start_workflow(req: Request) -> Response:
    body = await req.json_object(frozenset({"input", "instance_id"}))
    iid = body.get("instance_id")
    if iid is not None and not isinstance(iid, str):
        raise HTTPError(400, "instance_id must be a string")
    with errors_as(
        {UnknownWorkflowError: 404, InvalidInputError: 400, InstanceIdConflictError: 409}
    ):
        iid = await req.app.start(req.params["name"], body.get("input"), instance_id=iid)
    location = f"{req.root_path()}/instances/{quote(iid, safe='')}"
    return Response(202, {"instance_id": iid}, (("location", location),))


async def get_instance(req: Request) -> Response:
    with errors_as({InstanceNotFoundError: 404}):
        info = await req.app.status(req.params["id"])
    return Response(200, instance_json(info))


async def get_result(req: Request) -> Response:
    """200 with the result; 409 if the workflow failed or was cancelled; 408 if it is still
    running after ``timeout`` seconds (default 10, at most 60): ask again."""
    timeout = _float_param(req, "timeout", RESULT_TIMEOUT_DEFAULT, RESULT_TIMEOUT_MAX)
    iid = req.params["id"]
    try:
        with errors_as({InstanceNotFoundError: 404}):
            result = await req.app.result(iid, timeout=timeout)
    except WorkflowFailedError as exc:
        error = {"type": exc.error_type, "message": exc.message}
        extra = {"status": WorkflowStatus.FAILED.value, "workflow_error": error}
        raise HTTPError(409, str(exc), extra=extra) from None
    except WorkflowCancelledError as exc:
        extra = {"status": WorkflowStatus.CANCELLED.value}
        raise HTTPError(409, str(exc), extra=extra) from None
    except TimeoutWaitingError as exc:
        raise HTTPError(408, str(exc), extra={"retryable": True}) from None
    return Response(200, {"instance_id": iid, "status": "completed", "result": result})


async def cancel_instance(req: Request) -> Response:
    iid = req.params["id"]
    with errors_as({InstanceNotFoundError: 404, InstanceFinishedError: 409}):
        await req.app.cancel(iid)
    return Response(202, {"instance_id": iid, "cancel_requested": True})


async def list_instances(req: Request) -> Response:
    unknown = sorted(set(req.query) - {"status", "workflow", "limit"})
    if unknown:
        raise HTTPError(400, f"unknown query parameter(s) {unknown}; use status, workflow, limit")
    status = req.query.get("status")
    if status is not None and status not in {s.value for s in WorkflowStatus}:
        raise HTTPError(400, f"status must be one of {[s.value for s in WorkflowStatus]}")
    limit = int(_float_param(req, "limit", 100, LIST_LIMIT_MAX, integer=True))
    infos = await req.app.list_instances(
        status=status, workflow=req.query.get("workflow"), limit=limit
    )
    return Response(200, {"instances": [instance_json(i) for i in infos]})


def _float_param(
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


ROUTES: Final[tuple[Route, ...]] = (
    Route("/", {"POST": cloudevent_intake}),
    Route("/events", {"POST": plain_event}),
    Route("/healthz", {"GET": healthz}, public=True),
    Route("/workflows/{name}", {"POST": start_workflow}),
    Route("/instances", {"GET": list_instances}),
    Route("/instances/{id}", {"GET": get_instance}),
    Route("/instances/{id}/result", {"GET": get_result}),
    Route("/instances/{id}/cancel", {"POST": cancel_instance}),
)


# -- the ASGI callable ---------------------------------------------------------------------


class AsgiApp:
    """ASGI 3 application serving one open :class:`~romancy_trio.App`."""

    def __init__(
        self,
        app: App,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        bearer_token: str | None = None,
        routes: Sequence[Route] = ROUTES,
        websocket_routes: Sequence[WebSocketRoute] = (),
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        if bearer_token is not None and not bearer_token:
            raise ValueError("bearer_token must be non-empty (or None for no auth)")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = tuple(routes)
        self.websocket_routes = tuple(websocket_routes)
        self._token = None if bearer_token is None else bearer_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(receive, send)

    def authorized(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        for key, value in scope["headers"]:
            if key.lower() == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(given.strip(), self._token)
        return False

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._dispatch(scope, receive)
        except HTTPError as exc:
            response = Response(exc.status, {"error": exc.message, **exc.extra}, exc.headers)
        except StorageUnavailableError as exc:
            response = Response(
                503, {"error": str(exc), "retryable": True}, (("retry-after", "1"),)
            )
        except _Disconnected:
            return
        await send_json(send, response)

    async def _dispatch(self, scope: Scope, receive: Receive) -> Response:
        segments = path_segments(scope)
        for route in self.routes:
            params = match_path(route.path, segments)
            if params is None:
                continue
            if not route.public and not self.authorized(scope):
                raise HTTPError(
                    401, "missing or wrong bearer token", headers=[("www-authenticate", "Bearer")]
                )
            handler = route.methods.get(scope["method"])
            if handler is None:
                allow = ", ".join(sorted(route.methods))
                raise HTTPError(
                    405,
                    f"method {scope['method']} not allowed; allowed: {allow}",
                    headers=[("allow", allow)],
                )
            return await handler(Request(self.app, scope, receive, params, self.max_body_bytes))
        raise HTTPError(404, f"no route for {'/' + '/'.join(segments)!r}")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            segments = path_segments(scope)
        except HTTPError:
            segments = []
        for route in self.websocket_routes:
            params = match_path(route.path, segments)
            if params is not None and (route.public or self.authorized(scope)):
                await route.handler(self.app, scope, receive, send, params)
                return
        if (await receive())["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})


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
    body = dumps(response.payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode("latin-1")) for k, v in response.headers),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_asgi_app(
    app: App, *, max_body_bytes: int = DEFAULT_MAX_BODY, bearer_token: str | None = None
) -> AsgiApp:
    """The HTTP face of an open App: CloudEvents intake at ``POST /`` and a JSON API.

    ``max_body_bytes``: larger bodies are answered 413 without being read to the end.
    ``bearer_token``: when set, every route but ``/healthz`` needs ``Authorization: Bearer``.
    """
    return AsgiApp(app, max_body_bytes=max_body_bytes, bearer_token=bearer_token)
