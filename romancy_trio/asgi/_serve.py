"""Serving the ASGI app with hypercorn in Trio mode, two ways.

* :func:`serve_http` runs inside your nursery next to an App you opened yourself.
* :class:`LifespanApp` / :func:`app_from_env` open the App themselves during ASGI lifespan, for
  ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'``.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._config import AppConfig
from .._errors import ConfigurationError
from .._interrupt import interrupt_as_one
from ._app import AsgiApp, AsgiCallable
from ._http import DEFAULT_MAX_BODY, Receive, Response, Scope, Send, send_json

if TYPE_CHECKING:
    from .._app import App
    from .._definitions import Activity, Workflow


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """How long the server waits for a client (seconds). The defaults bound what one slow or
    silent client can hold, and leave room for the longest legitimate silence: a
    ``GET /instances/{id}/result`` long poll (at most 60 s) and an idle websocket feed (kept
    alive by pings)."""

    keep_alive: float = 5.0
    """An idle keep-alive connection, or one whose request headers stall, is closed after this
    (hypercorn ``keep_alive_timeout``)."""
    read: float = 90.0
    """No bytes at all from a client with a request open for this long: the connection is
    closed (hypercorn ``read_timeout``)."""
    body: float = 30.0
    """A request body must arrive in full within this (a client that drips it slowly is
    answered 408 and the connection is closed)."""
    websocket_ping: float = 20.0
    """The server pings websocket clients this often, so an idle feed stays within ``read``."""

    def __post_init__(self) -> None:
        for name in ("keep_alive", "read", "body", "websocket_ping"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < float("inf")):
                raise ValueError(f"HttpTimeouts.{name} must be a number > 0, not {value!r}")
        if self.websocket_ping >= self.read:
            raise ValueError("HttpTimeouts.websocket_ping must be shorter than read")

    def apply(self, config: Any) -> Any:
        """Set these on a hypercorn ``Config``; returns it."""
        config.keep_alive_timeout = self.keep_alive
        config.read_timeout = self.read
        config.websocket_ping_interval = self.websocket_ping
        return config


def server_config(bind: str, timeouts: HttpTimeouts | None = None) -> Any:
    """The hypercorn ``Config`` this package serves with: ``bind`` (``host:port``), the
    `HttpTimeouts`, and a send-stall bound on the sockets (`SEND_STALL_TIMEOUT_MS`)."""
    from hypercorn.config import Config as HypercornConfig  # only serving needs hypercorn

    config = _config_class(HypercornConfig)()
    config.bind = [bind]
    return (timeouts or HttpTimeouts()).apply(config)


async def serve_http(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    bearer_token: str | None = None,
    timeouts: HttpTimeouts | None = None,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 3.0,
    access_log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Serve ``app`` over HTTP until cancelled (hard stop) or until ``shutdown`` is set
    (graceful: stop accepting, let running requests finish for up to ``graceful_timeout``).

    ``port=0`` picks a free port; ``await nursery.start(serve_http, app)`` returns the bound one.
    ``timeouts``: see `HttpTimeouts`. Other keyword ``options`` go to `create_asgi_app`.
    """
    timeouts = timeouts or HttpTimeouts()
    asgi = AsgiApp(
        app,
        max_body_bytes=max_body_bytes,
        bearer_token=bearer_token,
        body_timeout=timeouts.body,
        **options,
    )
    await serve_asgi(
        asgi,
        host=host,
        port=port,
        timeouts=timeouts,
        shutdown=shutdown,
        graceful_timeout=graceful_timeout,
        access_log=access_log,
        task_status=task_status,
    )


async def serve_asgi(
    asgi: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeouts: HttpTimeouts | None = None,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 3.0,
    access_log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_http` for any ASGI callable (e.g. a router that mounts ours)."""
    from hypercorn.trio import serve as hypercorn_serve

    config = server_config(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", timeouts)

    config.accesslog = "-" if access_log else None
    config.graceful_timeout = graceful_timeout
    trigger = shutdown.wait if shutdown is not None else None
    async with interrupt_as_one(), trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(hypercorn_serve, asgi, config, shutdown_trigger=trigger, mode="asgi")
        )
        task_status.started(int(binds[0].rsplit(":", 1)[1]))


class LifespanApp:
    """An ASGI app that opens its own :class:`~romancy_trio.App` at lifespan startup and
    closes it at shutdown. Under hypercorn's Trio worker the lifespan runs as a Trio task for
    the server's whole life, so the App's nursery (scheduler, notify hub) lives in it.

    Requests that arrive before startup finished (or after shutdown began) get 503.

    ``open_mounts``: called with the open App at startup; the context manager it returns
    yields other ASGI apps by path prefix (`create_asgi_app`'s ``mounts``) and stays open
    until shutdown, closed before the App (e.g. ``romancy_trio.mcp.http_mounts(...)``: MCP).
    """

    def __init__(
        self,
        url: str,
        *,
        workflows: Iterable[Workflow[Any, Any] | Activity[..., Any]] | None = None,
        workflows_module: str | Sequence[str] | None = None,
        config: AppConfig | None = None,
        run_workers: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        bearer_token: str | None = None,
        allowed_origins: Sequence[str] | None = None,
        open_mounts: Callable[[App], AbstractAsyncContextManager[Mapping[str, AsgiCallable]]]
        | None = None,
    ) -> None:
        self.url = url
        self.open_mounts = open_mounts
        self.allowed_origins = None if allowed_origins is None else list(allowed_origins)
        self.workflows = None if workflows is None else list(workflows)
        modules = [workflows_module] if isinstance(workflows_module, str) else workflows_module
        self.workflows_modules = list(modules or ())
        self.config = config
        self.run_workers = run_workers
        self.max_body_bytes = max_body_bytes
        self.bearer_token = bearer_token
        self.asgi: AsgiApp | None = None
        self.startup_error: Exception | None = None
        """Why the App did not open at lifespan startup (the server then refuses to serve)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.asgi is not None:
            await self.asgi(scope, receive, send)
        elif scope["type"] == "http":
            unavailable = {"error": "the application is not running", "retryable": True}
            await send_json(send, Response(503, unavailable, (("retry-after", "1"),)))
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        from .._open_app import open_app  # late: keeps `import romancy_trio.asgi` light

        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = False
        try:
            trio.lowlevel.current_trio_token()  # RuntimeError: not under Trio (hypercorn -k trio)
            for name in self.workflows_modules:
                importlib.import_module(name)  # its @workflow decorators register the workflows
            async with open_app(
                self.url, workflows=self.workflows, config=self.config, run_workers=self.run_workers
            ) as app, (nullcontext({}) if self.open_mounts is None
                       else self.open_mounts(app)) as mounts:
                self.asgi = AsgiApp(
                    app,
                    max_body_bytes=self.max_body_bytes,
                    bearer_token=self.bearer_token,
                    allowed_origins=self.allowed_origins,
                    mounts=mounts,
                )
                await send({"type": "lifespan.startup.complete"})
                started = True
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                self.asgi = None
        except Exception as exc:
            if not started:  # tell the server, which then refuses to serve; never swallowed
                self.startup_error = exc
                text = f"romancy_trio app did not start: {type(exc).__name__}: {exc}"
                await send({"type": "lifespan.startup.failed", "message": text})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def app_from_env(
    open_mounts: Callable[[App], AbstractAsyncContextManager[Mapping[str, AsgiCallable]]]
    | None = None,
) -> LifespanApp:
    """A :class:`LifespanApp` configured from the environment, for the command line::

        ROMANCY_TRIO_URL=postgresql://... ROMANCY_TRIO_WORKFLOWS=myapp.workflows \\
            hypercorn -k trio --bind 127.0.0.1:8000 'romancy_trio.asgi:app_from_env()'

    ``ROMANCY_TRIO_URL`` (required), ``ROMANCY_TRIO_WORKFLOWS`` (comma-separated modules to
    import), ``ROMANCY_TRIO_SCHEMA`` (PostgreSQL schema), ``ROMANCY_TRIO_TOKEN`` (bearer token),
    ``ROMANCY_TRIO_MAX_BODY`` (bytes), ``ROMANCY_TRIO_LISTENER_URL`` (a direct PostgreSQL URL
    when ``ROMANCY_TRIO_URL`` is a transaction pooler; `open_app` reads it),
    ``ROMANCY_TRIO_ALLOWED_ORIGINS`` (comma-separated page origins allowed to open websockets,
    see ``romancy_trio.asgi._ws_auth``).

    If the App cannot open, startup fails and hypercorn does not serve; but hypercorn 0.18's
    parent process exits 0 when its worker process failed (only ``--workers 0`` keeps the
    failure in the exit status, and then SIGTERM is not graceful). ``python -m romancy_trio
    serve`` runs this app in one process and exits 3 with one ``error:`` line instead.
    ``open_mounts``: see `LifespanApp` (``serve --mcp`` mounts MCP with it).
    """
    url = os.environ.get("ROMANCY_TRIO_URL")
    if not url:
        raise ConfigurationError(
            "set ROMANCY_TRIO_URL to the database URL (sqlite:///, postgresql:// or mysql://)"
        )
    modules = [m.strip() for m in os.environ.get("ROMANCY_TRIO_WORKFLOWS", "").split(",")]
    schema = os.environ.get("ROMANCY_TRIO_SCHEMA")
    origins = os.environ.get("ROMANCY_TRIO_ALLOWED_ORIGINS", "")
    return LifespanApp(
        url,
        workflows_module=[m for m in modules if m],
        config=replace(AppConfig(), schema=schema) if schema else None,
        max_body_bytes=int(os.environ.get("ROMANCY_TRIO_MAX_BODY", DEFAULT_MAX_BODY)),
        bearer_token=os.environ.get("ROMANCY_TRIO_TOKEN") or None,
        allowed_origins=[o.strip() for o in origins.split(",") if o.strip()] or None,
        open_mounts=open_mounts,
    )


SEND_STALL_TIMEOUT_MS = 30_000
"""TCP_USER_TIMEOUT on the listening sockets (inherited by accepted ones): a peer that stops
reading cannot pin one of hypercorn's shielded socket writes - and so the server's shutdown -
longer than this."""


def _config_class(base: Any) -> Any:
    class _Config(base):  # type: ignore[misc]
        def create_sockets(self) -> Any:
            sockets = super().create_sockets()
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(
                    socket, "TCP_USER_TIMEOUT"
                ):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                                    SEND_STALL_TIMEOUT_MS)
            return sockets

    return _Config
