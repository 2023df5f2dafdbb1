"""The MCP server of an open App, on the SDK's low-level ``Server``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .. import App, Workflow
from ._http import StrictJsonRpc
from ._stdio import strict_stdio
from ._tasks import TASKS_EXTENSION, Tasks, UpdateTaskRequestParams
from ._tools import WorkflowTools


class _TaskServer(Server[Any]):
    """Advertises the 2025-11-25 ``tasks`` capability (the SDK derives capabilities only from
    the handlers it knows)."""

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        caps = super().get_capabilities(notification_options, experimental_capabilities,
                                        extensions, protocol_version=protocol_version)
        if protocol_version in MODERN_PROTOCOL_VERSIONS:
            return caps
        tasks = types.ServerTasksCapability(
            cancel=types.TasksCancelCapability(),
            requests=types.ServerTasksRequestsCapability(
                tools=types.TasksToolsCapability(call=types.TasksCallCapability())))
        return caps.model_copy(update={"tasks": tasks})


class McpServer:
    """Every chosen workflow of ``app`` as four MCP tools, plus durable MCP tasks.

    ``workflows``: the workflows (or names) to serve; default all of the app's.
    ``descriptions``: a tool description per workflow name (default: the docstring).
    ``max_wait`` / ``default_wait``: bounds of ``{wf}_result``'s ``wait_seconds``.
    ``poll_interval``: the task poll interval suggested to clients (seconds).
    ``cancel_wait``: how long ``tasks/cancel`` waits for the instance to end (2025-11-25).

    Serve it with :meth:`serve_stdio`, or mount :meth:`open_http` in the ASGI app.
    """

    def __init__(
        self,
        app: App,
        *,
        name: str = "romancy-trio",
        version: str = "0.1.0",
        instructions: str | None = None,
        workflows: Iterable[Workflow[Any, Any] | str] | None = None,
        descriptions: Mapping[str, str] | None = None,
        max_wait: float = 60.0,
        default_wait: float = 10.0,
        poll_interval: float = 1.0,
        cancel_wait: float = 10.0,
    ) -> None:
        self.app = app
        self.tools = WorkflowTools(app, workflows, descriptions, max_wait=max_wait,
                                   default_wait=default_wait)
        self.tasks = Tasks(self.tools, poll_interval=poll_interval, cancel_wait=cancel_wait)
        server = _TaskServer(
            name, version=version,
            instructions=instructions or (
                "Durable workflows. Each workflow W has tools W_start (returns an instance id "
                "at once), W_status, W_result (waits a bounded time) and W_cancel."),
            on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        server.middleware.append(self.tasks.middleware)
        self.tasks.server_info = lambda: server.server_info_stamp
        server.extensions[TASKS_EXTENSION] = {}
        server.add_request_handler("tasks/get", types.GetTaskRequestParams, self.tasks.get)
        server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams,
                                   self.tasks.result)
        server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams,
                                   self.tasks.cancel)
        server.add_request_handler("tasks/update", UpdateTaskRequestParams, self.tasks.update)
        self.server = server
        """The SDK's low-level ``mcp.server.lowlevel.Server``."""

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools.tools)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        return await self.tools.call(params.name, params.arguments)

    async def serve_stdio(self) -> None:
        """Serve one client over stdin/stdout until it closes stdin."""
        async with strict_stdio() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    @asynccontextmanager
    async def open_http(
        self,
        *,
        stateless: bool = False,
        json_response: bool = False,
        allowed_hosts: Iterable[str] | None = None,
        allowed_origins: Iterable[str] = (),
        session_idle_timeout: float | None = 30 * 60,
    ) -> AsyncIterator[Any]:
        """The streamable-HTTP endpoint as an ASGI callable, valid inside this block: mount
        it, e.g. ``create_asgi_app(app, bearer_token=..., mounts={"/mcp": endpoint})``.

        ``allowed_hosts``: ``Host`` values to accept, and ``allowed_origins`` the ``Origin``
        values (DNS-rebinding protection, e.g. ``["127.0.0.1:*", "localhost:*"]`` and
        ``["http://127.0.0.1:*", "http://localhost:*"]``); default: any host.
        """
        security = None
        if allowed_hosts is not None:
            security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                                 allowed_hosts=list(allowed_hosts),
                                                 allowed_origins=list(allowed_origins))
        manager = StreamableHTTPSessionManager(
            self.server, stateless=stateless, json_response=json_response,
            security_settings=security, session_idle_timeout=session_idle_timeout)
        async with manager.run():
            yield StrictJsonRpc(StreamableHTTPASGIApp(manager), manager.max_request_body_size)
