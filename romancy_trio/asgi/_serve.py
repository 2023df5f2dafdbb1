"""Serving the ASGI app with hypercorn in Trio mode, two ways.

* :func:`serve_http` runs inside your nursery next to an App you opened yourself.
* :class:`LifespanApp` / :func:`app_from_env` open the App themselves during ASGI lifespan, for
  ``hypercorn -k trio 'romancy_trio.asgi:app_from_env()'``.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .._config import AppConfig
from .._errors import ConfigurationError
from .._interrupt import interrupt_as_one
from ._app import AsgiApp
from ._http import DEFAULT_MAX_BODY, Receive, Response, Scope, Send, send_json

if TYPE_CHECKING:
    from .._app import App
    from .._definitions import Activity, Workflow


async def serve_http(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    bearer_token: str | None = None,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 3.0,
    access_log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` over HTTP until cancelled (hard stop) or until ``shutdown`` is set
    (graceful: stop accepting, let running requests finish for up to ``graceful_timeout``).

    ``port=0`` picks a free port; ``await nursery.start(serve_http, app)`` returns the bound one.
    """
    asgi = AsgiApp(app, max_body_bytes=max_body_bytes, bearer_token=bearer_token)
    await serve_asgi(
        asgi,
        host=host,
        port=port,
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
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 3.0,
    access_log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_http` for any ASGI callable (e.g. a router that mounts ours)."""
    from hypercorn.config import Config as HypercornConfig  # only serving needs hypercorn
    from hypercorn.trio import serve as hypercorn_serve

    config = _config_class(HypercornConfig)()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]

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
    ) -> None:
        self.url = url
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
        from .._app import open_app  # late: keeps `import romancy_trio.asgi` light

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
            ) as app:
                self.asgi = AsgiApp(
                    app, max_body_bytes=self.max_body_bytes, bearer_token=self.bearer_token
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


def app_from_env() -> LifespanApp:
    """A :class:`LifespanApp` configured from the environment, for the command line::

        ROMANCY_TRIO_URL=postgresql://... ROMANCY_TRIO_WORKFLOWS=myapp.workflows \\
            hypercorn -k trio --bind 127.0.0.1:8000 'romancy_trio.asgi:app_from_env()'

    ``ROMANCY_TRIO_URL`` (required), ``ROMANCY_TRIO_WORKFLOWS`` (comma-separated modules to
    import), ``ROMANCY_TRIO_SCHEMA`` (PostgreSQL schema), ``ROMANCY_TRIO_TOKEN`` (bearer token),
    ``ROMANCY_TRIO_MAX_BODY`` (bytes).

    If the App cannot open, startup fails and hypercorn does not serve; but hypercorn 0.18's
    parent process exits 0 when its worker process failed (only ``--workers 0`` keeps the
    failure in the exit status, and then SIGTERM is not graceful). ``python -m romancy_trio
    serve`` runs this app in one process and exits 3 with one ``error:`` line instead.
    """
    url = os.environ.get("ROMANCY_TRIO_URL")
    if not url:
        raise ConfigurationError(
            "set ROMANCY_TRIO_URL to the database URL (sqlite:///, postgresql:// or mysql://)"
        )
    modules = [m.strip() for m in os.environ.get("ROMANCY_TRIO_WORKFLOWS", "").split(",")]
    schema = os.environ.get("ROMANCY_TRIO_SCHEMA")
    return LifespanApp(
        url,
        workflows_module=[m for m in modules if m],
        config=replace(AppConfig(), schema=schema) if schema else None,
        max_body_bytes=int(os.environ.get("ROMANCY_TRIO_MAX_BODY", DEFAULT_MAX_BODY)),
        bearer_token=os.environ.get("ROMANCY_TRIO_TOKEN") or None,
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
