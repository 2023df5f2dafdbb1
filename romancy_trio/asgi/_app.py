"""The ASGI application: a small route table over :class:`~romancy_trio.App`.

A reply says "accepted" (2xx) only after the App call it reports on has returned, i.e. after
the database committed. Known, expected errors become JSON answers with a fitting status; any
other exception propagates to the server, which logs it and answers 500.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import trio

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
from .._replay import ErrorInfo
from ..storage import InstanceInfo, WorkflowStatus
from ._batch import BadBatch, deliver_batch, is_batch, parse_batch
from ._cloudevents import BadEvent, ParsedEvent, from_json_api, parse_http
from ._http import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY,
    BodyWatch,
    Disconnected,
    HTTPError,
    Receive,
    Request,
    Response,
    Route,
    Scope,
    Send,
    WebSocketRoute,
    errors_as,
    match_path,
    number_param,
    path_segments,
    send_json,
    serve_lifespan,
)
from ._login import DEFAULT_SESSION_TTL, Login, login_redirect
from ._openapi import openapi_route
from ._websocket import WEBSOCKET_ROUTES
from ._ws_auth import DEFAULT_TICKET_TTL, WebSocketGuard

if TYPE_CHECKING:
    from .._app import App

AsgiCallable = Callable[[Scope, Receive, Send], Awaitable[None]]

RESULT_TIMEOUT_DEFAULT: Final = 10.0
RESULT_TIMEOUT_MAX: Final = 60.0
LIST_LIMIT_MAX: Final = 1000


def error_json(error: ErrorInfo | None) -> dict[str, Any] | None:
    """A workflow's error as the API shows it: the original type and message, and the
    activity it came from (``activity_id``/``activity_name``, None if none; ``attempts``
    when its retries were exhausted)."""
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "activity_id": error.activity_id,
            "activity_name": error.activity_name, "attempts": error.attempts}


def instance_json(info: InstanceInfo) -> dict[str, Any]:
    return {
        "instance_id": info.instance_id,
        "workflow": info.workflow_name,
        "status": str(info.status),
        "input": info.input,
        "result": info.result,
        "error": error_json(info.error),
        "run_no": info.run_no,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }


# -- handlers ------------------------------------------------------------------------------


async def healthz(req: Request) -> Response:
    return Response(200, {"status": "ok"})


async def cloudevent_intake(req: Request) -> Response:
    body = await req.body()
    headers = req.scope["headers"]
    try:
        if is_batch(headers):
            events = parse_batch(headers, body, max_events=req.max_batch)
            return await deliver_batch(req.app, events)
        parsed = parse_http(headers, body)
    except BadEvent as exc:
        index = {"index": exc.index} if isinstance(exc, BadBatch) else {}
        raise HTTPError(exc.status, exc.message, extra=index) from None
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
        receipt = await app.send_event(parsed)
    return Response(
        202,
        {
            "id": receipt.event_id,
            "source": receipt.source,
            "duplicate": receipt.duplicate,
            "delivered_to": list(receipt.delivered_to),
        },
    )


async def start_workflow(req: Request) -> Response:
    body = await req.json_object(frozenset({"input", "instance_id"}))
    iid = body.get("instance_id")
    if iid is not None and not isinstance(iid, str):
        raise HTTPError(400, "instance_id must be a string")
    with errors_as(
        {UnknownWorkflowError: 404, InvalidInputError: 400, InstanceIdConflictError: 409}
    ):
        # several parameters: "input" is an object by parameter name
        wf = req.app.registry.workflow(req.params["name"])
        args, kwargs = wf.input.call_args(body.get("input"))
        iid = await req.app.start(wf.name, *args, instance_id=iid,
                                  instance_attributes=_trace_headers(req), **kwargs)
    location = f"{req.root_path()}/instances/{quote(iid, safe='')}"
    return Response(202, {"instance_id": iid}, (("location", location),))


_TRACE_HEADERS = (b"traceparent", b"tracestate")


def _trace_headers(req: Request) -> dict[str, str]:
    """The W3C Trace Context headers of a request that starts an instance, kept as its
    attributes so that its runs continue the caller's trace (wherever they run)."""
    return {key.decode(): value.decode("latin-1") for key, value in req.scope["headers"]
            if key in _TRACE_HEADERS and value and b"\x00" not in value}


async def get_instance(req: Request) -> Response:
    with errors_as({InstanceNotFoundError: 404}):
        info = await req.app.status(req.params["id"])
    return Response(200, instance_json(info))


async def get_result(req: Request) -> Response:
    """200 with the result; 409 if the workflow failed or was cancelled; 408 if it is still
    running after ``timeout`` seconds (default 10, at most 60): ask again."""
    timeout = number_param(req, "timeout", RESULT_TIMEOUT_DEFAULT, RESULT_TIMEOUT_MAX)
    iid = req.params["id"]
    await req.body()  # the request is complete: from now on a receive() means "hung up"
    try:
        with errors_as({InstanceNotFoundError: 404}):
            result = await req.until_disconnect(partial(req.app.result, iid, timeout=timeout))
    except WorkflowFailedError as exc:
        error = error_json(ErrorInfo(exc.error_type, exc.message, activity_id=exc.activity_id,
                                     activity_name=exc.activity_name, attempts=exc.attempts))
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
    limit = int(number_param(req, "limit", 100, LIST_LIMIT_MAX, integer=True))
    infos = await req.app.list_instances(
        status=status, workflow=req.query.get("workflow"), limit=limit
    )
    return Response(200, {"instances": [instance_json(i) for i in infos]})


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
        websocket_routes: Sequence[WebSocketRoute] = WEBSOCKET_ROUTES,
        mounts: Mapping[str, AsgiCallable] | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_batch: int = DEFAULT_MAX_BATCH,
        allowed_origins: Sequence[str] | None = None,
        ticket_ttl: float = DEFAULT_TICKET_TTL,
        session_ttl: float = DEFAULT_SESSION_TTL,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        if not 0 < body_timeout < float("inf"):
            raise ValueError("body_timeout must be a number of seconds > 0")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.body_timeout = body_timeout
        self.max_batch = max_batch
        if bearer_token is not None and not bearer_token:
            raise ValueError("bearer_token must be non-empty (or None for no auth)")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._token = None if bearer_token is None else bearer_token.encode()
        self.mounts = _check_mounts(mounts or {})
        self.ws_guard = WebSocketGuard(
            self._token, allowed_origins=allowed_origins, ticket_ttl=ticket_ttl
        )
        self.routes = (*routes, self.ws_guard.route(),
                       Login(self._token, self.ws_guard, session_ttl).route(), openapi_route())
        self.websocket_routes = tuple(websocket_routes)

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
        return self.ws_guard.has_session(scope)

    def _mounted(self, scope: Scope) -> tuple[str, AsgiCallable] | None:
        path = str(scope.get("path", ""))
        for prefix, mounted in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, mounted
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        receive = watch = BodyWatch(scope, receive)
        send = watch.sending(send)  # an answer before the whole body: connection: close
        mount = self._mounted(scope)
        if mount is not None and self.authorized(scope):
            prefix, mounted = mount
            root = str(scope.get("root_path", "")).rstrip("/")
            await mounted({**scope, "root_path": root + prefix}, receive, send)
            return
        try:
            if mount is not None and _wants_page(scope):
                response = login_redirect(str(scope.get("root_path", "")).rstrip("/"),
                                          str(scope.get("path", "")))
            elif mount is not None:
                raise HTTPError(
                    401, "missing or wrong bearer token", headers=[("www-authenticate", "Bearer")]
                )
            else:
                response = await self._dispatch(scope, receive)
        except HTTPError as exc:
            response = Response(exc.status, {"error": exc.message, **exc.extra}, exc.headers)
        except StorageUnavailableError as exc:
            response = Response(
                503, {"error": str(exc), "retryable": True}, (("retry-after", "1"),)
            )
        except Disconnected:
            return
        try:
            await send_json(send, response)
        except trio.BusyResourceError:
            # hypercorn 0.18 (trio/tcp_server.py): when the client hangs up mid-body, the
            # reading task answers the protocol error and closes the stream with send_eof()
            # outside the send lock, so our reply's send_all() finds the stream busy. The
            # connection is going away: there is nobody to answer.
            return

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
            return await handler(
                Request(self.app, scope, receive, params, self.max_body_bytes, self.body_timeout,
                        self.max_batch)
            )
        raise HTTPError(404, f"no route for {'/' + '/'.join(segments)!r}")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            segments = path_segments(scope)
        except HTTPError:
            segments = []
        guard = self.ws_guard
        for route in self.websocket_routes:
            params = match_path(route.path, segments)
            if params is None:
                continue
            if guard.origin_allowed(scope) and (
                route.public or self.authorized(scope) or guard.has_ticket(scope)
            ):
                await route.handler(self.app, scope, receive, guard.accepting(scope, send), params)
                return
            break
        if (await receive())["type"] == "websocket.connect":  # refused: HTTP 403
            await send({"type": "websocket.close", "code": 1008})


def _wants_page(scope: Scope) -> bool:
    """A browser navigating (GET, accepting HTML): sent to the login form, not a 401."""
    accept = b"".join(bytes(v) for k, v in scope["headers"] if bytes(k).lower() == b"accept")
    return scope.get("method") == "GET" and b"text/html" in accept


def _check_mounts(mounts: Mapping[str, AsgiCallable]) -> tuple[tuple[str, AsgiCallable], ...]:
    for prefix in mounts:
        if not prefix.startswith("/") or prefix.endswith("/") or "?" in prefix:
            raise ValueError(f"mount prefix must look like '/name' (no trailing '/'): {prefix!r}")
    return tuple(sorted(mounts.items(), key=lambda item: -len(item[0])))


def create_asgi_app(
    app: App,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    bearer_token: str | None = None,
    websocket_routes: Sequence[WebSocketRoute] = WEBSOCKET_ROUTES,
    mounts: Mapping[str, AsgiCallable] | None = None,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_batch: int = DEFAULT_MAX_BATCH,
    allowed_origins: Sequence[str] | None = None,
    ticket_ttl: float = DEFAULT_TICKET_TTL,
    session_ttl: float = DEFAULT_SESSION_TTL,
) -> AsgiApp:
    """The HTTP face of an open App: CloudEvents intake at ``POST /`` and a JSON API.

    ``max_body_bytes``: larger bodies are answered 413 without being read to the end.
    ``bearer_token``: when set, every route but ``/healthz`` needs ``Authorization: Bearer``.
    ``websocket_routes``: websocket endpoints (others are refused); by default the channel
    feed at ``/channels/ws`` (see ``romancy_trio.asgi._websocket``).
    ``mounts``: other ASGI apps by path prefix (``{"/mcp": endpoint}``), for HTTP requests to
    the prefix and below; they get the scope unchanged but for ``root_path`` (extended by the
    prefix), and the bearer token applies to them (401 without it) like to the routes.
    ``body_timeout``: seconds to receive a whole request body (then 408).
    ``max_batch``: events one CloudEvents batched-mode request may carry (more: 413).
    ``allowed_origins``: page origins whose websockets are accepted besides same-origin ones
    (``["*"]``: any); ``ticket_ttl``: seconds a ``POST /channels/ws/ticket`` ticket is valid
    (see ``romancy_trio.asgi._ws_auth``); ``session_ttl``: seconds a browser sign-in at
    ``/login`` lasts (see ``romancy_trio.asgi._login``).
    """
    return AsgiApp(
        app,
        max_body_bytes=max_body_bytes,
        bearer_token=bearer_token,
        websocket_routes=websocket_routes,
        mounts=mounts,
        body_timeout=body_timeout,
        max_batch=max_batch,
        allowed_origins=allowed_origins,
        ticket_ttl=ticket_ttl,
        session_ttl=session_ttl,
    )
