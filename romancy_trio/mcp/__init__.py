"""Workflows as MCP tools for AI assistants (``pip install "romancy-trio[mcp]"``).

Each served workflow ``W`` becomes four tools - ``W_start``, ``W_status``, ``W_result``,
``W_cancel`` - with JSON schemas from its annotations, and a task-augmented ``W_start`` is an
MCP task backed by the workflow instance (task id = instance id), so it survives a restart of
the server. Built on the official ``mcp`` SDK, on Trio, using only romancy_trio's public API::

    async with open_app(url) as app:
        await McpServer(app).serve_stdio()                 # or: python -m romancy_trio mcp ...

    async with open_app(url) as app, McpServer(app).open_http() as endpoint:
        asgi = create_asgi_app(app, bearer_token=token, mounts={"/mcp": endpoint})
        await serve_asgi(asgi, port=8000)                  # or: python -m romancy_trio mcp --bind

    # the app opens at ASGI lifespan (python -m romancy_trio serve --mcp):
    app_from_env(open_mounts=http_mounts("/mcp", host="127.0.0.1", bearer_token=token))
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import trio

from .. import App, AppConfig, ConfigurationError, open_app
from ..asgi import create_asgi_app, serve_asgi
from ._server import McpServer as McpServer
from ._stdio import parse_line as parse_line
from ._tasks import TASKS_EXTENSION as TASKS_EXTENSION

__all__ = ["TASKS_EXTENSION", "McpServer", "http_mounts", "parse_line", "run"]


async def run(
    url: str | None,
    workflow_modules: Sequence[str],
    *,
    bind: str | None = None,
    bearer_token: str | None = None,
    config: AppConfig | None = None,
    **server_options: Any,
) -> None:
    """Open the App at ``url`` with the workflows of ``workflow_modules`` and serve MCP: over
    stdio until the client closes stdin, or with ``bind="HOST:PORT"`` over HTTP (the whole
    ASGI app - CloudEvents intake, JSON API - with MCP at ``/mcp``, behind ``bearer_token``
    when given). SIGINT or SIGTERM stops it gracefully (the App closes; unfinished instances
    go back to the database)."""
    for name in workflow_modules:
        try:
            importlib.import_module(name)  # its @workflow decorators register the workflows
        except ImportError as exc:
            raise ConfigurationError(f"cannot import workflows module {name!r}: {exc}") from exc
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_app(url, config=config) as app, trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            server = McpServer(app, **server_options)
            if bind is None:
                await server.serve_stdio()
            else:
                await _serve_http(server, app, bind, bearer_token)
            nursery.cancel_scope.cancel()


def http_mounts(
    path: str = "/mcp", *, host: str, bearer_token: str | None, **server_options: Any
) -> Callable[[App], AbstractAsyncContextManager[dict[str, Any]]]:
    """MCP over streamable HTTP at ``path``, for an HTTP server that opens its App itself:
    ``LifespanApp(..., open_mounts=http_mounts(...))`` (``python -m romancy_trio serve
    --mcp``). ``host``: where the server listens; on a loopback address without a
    ``bearer_token`` (which the ASGI app then checks for the mount too) only local ``Host``
    and ``Origin`` values are accepted, so a page a DNS-rebinding attack loads cannot call
    the tools. ``server_options`` go to `McpServer`."""

    @asynccontextmanager
    async def open_mounts(app: App) -> AsyncIterator[dict[str, Any]]:
        async with _open_endpoint(McpServer(app, **server_options), host,
                                  bearer_token) as endpoint:
            yield {path: endpoint}

    return open_mounts


def _open_endpoint(server: McpServer, host: str, token: str | None
                   ) -> AbstractAsyncContextManager[Any]:
    host = host.strip("[]") or "127.0.0.1"
    if host in ("127.0.0.1", "localhost", "::1") and token is None:
        # no token on a local port: refuse DNS-rebound pages
        return server.open_http(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    return server.open_http()


async def _serve_http(server: McpServer, app: App, bind: str, token: str | None) -> None:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    async with _open_endpoint(server, host, token) as endpoint:
        asgi = create_asgi_app(app, bearer_token=token, mounts={"/mcp": endpoint})
        async with trio.open_nursery() as nursery:
            bound: int = await nursery.start(partial(serve_asgi, asgi, host=host,
                                                     port=int(port)))
            shown = f"[{host}]" if ":" in host else host
            print(f"serving MCP at http://{shown}:{bound}/mcp", flush=True)
