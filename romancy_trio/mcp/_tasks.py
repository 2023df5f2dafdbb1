"""MCP tasks backed by workflow instances: the task id *is* the instance id.

Built on the SDK's request hooks (``Server.middleware`` and ``add_request_handler``); the SDK
has no task support of its own. Two protocol generations:

* 2025-11-25 core tasks: ``tools/call`` with ``params.task`` on a ``{wf}_start`` tool
  (``execution.taskSupport: "optional"``) starts the workflow and answers ``CreateTaskResult``;
  ``tasks/get`` (status), ``tasks/result`` (blocks until the workflow ends, then answers what
  ``{wf}_result`` answers, with the related-task ``_meta``), ``tasks/cancel`` (cancels and
  waits, bounded, for the instance to end). Capability ``tasks.requests.tools.call`` and
  ``tasks.cancel``. No ``tasks/list``: one bearer token (or none) cannot tell requestors
  apart, so a list could not be limited to the requestor's own tasks, and the spec says a
  receiver that cannot identify requestors SHOULD NOT declare ``tasks.list`` (2026-07-28
  removed the method). No ``notifications/tasks/status`` (a MAY; requestors poll anyway):
  sending them would need a watcher per open task and session, for no new information.
* 2026-07-28 extension ``io.modelcontextprotocol/tasks``: when the request declares the
  extension, ``{wf}_start`` answers ``resultType: "task"``; ``tasks/get`` carries the final
  ``result``; ``tasks/cancel`` and ``tasks/update`` acknowledge (a workflow never asks for
  input, so there is nothing to update).

Everything a task is lives in the database, so a task outlives the MCP server process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import mcp_types as types
import trio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.methods import serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from .. import (
    InstanceFinishedError,
    InstanceInfo,
    InstanceNotFoundError,
    StorageUnavailableError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowStatus,
)
from ._tools import ToolError, WorkflowTools, text_result

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
LEGACY_TASKS_VERSION: Final = "2025-11-25"

_TASK_STATUS: Final = {
    WorkflowStatus.QUEUED: "working",  # waiting for its queue to admit it
    WorkflowStatus.PENDING: "working", WorkflowStatus.RUNNING: "working",
    WorkflowStatus.WAITING: "working", WorkflowStatus.COMPLETED: "completed",
    WorkflowStatus.FAILED: "failed", WorkflowStatus.CANCELLED: "cancelled",
}


class UpdateTaskRequestParams(types.RequestParams):
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


def declares_extension(params: Mapping[str, Any] | None) -> bool:
    meta = (params or {}).get("_meta")
    caps = meta.get(CLIENT_CAPABILITIES) if isinstance(meta, Mapping) else None
    exts = caps.get("extensions") if isinstance(caps, Mapping) else None
    return isinstance(exts, Mapping) and TASKS_EXTENSION in exts


class Tasks:
    """Task handlers over ``tools`` (their App and workflows)."""

    def __init__(self, tools: WorkflowTools, *, poll_interval: float, cancel_wait: float) -> None:
        self.tools = tools
        self.server_info: Callable[[], dict[str, Any]] = dict
        """The ``serverInfo`` stamp of 2026-07-28 results (the middleware builds its own)."""
        self.poll_interval_ms = max(1, round(poll_interval * 1000))
        self.cancel_wait = cancel_wait

    def task_json(self, info: InstanceInfo, *, modern: bool) -> dict[str, Any]:
        status = _TASK_STATUS[info.status]
        message = f"workflow {info.workflow_name!r} is {info.status}"
        if info.error is not None:
            message += f": {info.error.type}: {info.error.message}"
        task: dict[str, Any] = {
            "taskId": info.instance_id, "status": status, "statusMessage": message,
            "createdAt": info.created_at.isoformat(),
            "lastUpdatedAt": info.updated_at.isoformat(),
        }
        if modern:
            task.update(ttlMs=None, pollIntervalMs=self.poll_interval_ms)
            if status == "failed":  # a failed workflow is a tool error, not a JSON-RPC error
                task["status"] = "completed"
        else:
            task.update(ttl=None, pollInterval=self.poll_interval_ms)
        return task

    async def info(self, task_id: str) -> InstanceInfo:
        """The instance behind a task id of a served workflow; -32602 otherwise."""
        try:
            info = await self.tools.app.status(task_id)
        except InstanceNotFoundError:
            info = None
        if info is None or info.workflow_name not in self.tools.workflows:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown task: {task_id}",
                           data={"taskId": task_id})
        return info

    # -- tools/call with a task ------------------------------------------------------------
    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
                         ) -> HandlerResult:
        params = ctx.params
        if ctx.method != "tools/call" or not isinstance(params, Mapping):
            return await call_next(ctx)
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern:
            wanted = declares_extension(params)
        else:
            wanted = ctx.protocol_version == LEGACY_TASKS_VERSION and params.get("task") is not None
        name = params.get("name")
        if not wanted or not isinstance(name, str) or (
                not modern and ctx.session.client_params is None):  # before initialize:
            return await call_next(ctx)  # the SDK's gate answers
        ref = self.tools.ref(name)  # unknown tool: -32602
        if ref.kind != "start":
            if modern:  # the server decides: this tool answers at once
                return await call_next(ctx)
            raise MCPError(code=types.METHOD_NOT_FOUND,
                           message=f"tool {name!r} does not support task-augmented calls "
                                   "(only the *_start tools do)")
        if not modern:
            types.TaskMetadata.model_validate(params["task"], by_name=False)  # -32602 if bad
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise MCPError(code=types.INVALID_PARAMS, message="arguments must be an object")
        stamp = {types.SERVER_INFO_META_KEY: self.server_info()} if modern else None
        try:
            iid = await self.tools.start(ref.workflow, arguments)
        except (ToolError, StorageUnavailableError) as exc:
            # not accepted: answered like the plain call (a tool error), nothing written
            result = text_result(str(exc), error=True, meta=stamp).model_dump(
                by_alias=True, mode="json", exclude_none=True)
            return serialize_server_result("tools/call", ctx.protocol_version, result)
        task = self.task_json(await self.tools.app.status(iid), modern=modern)
        if modern:
            return {"resultType": "task", **task, "_meta": stamp}
        return {"task": task, "_meta": {RELATED_TASK: {"taskId": iid}}}

    # -- tasks/* ---------------------------------------------------------------------------
    async def get(self, ctx: ServerRequestContext[Any, Any],
                  params: types.GetTaskRequestParams) -> dict[str, Any]:
        info = await self.info(params.task_id)
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        task = self.task_json(info, modern=modern)
        if modern and info.status.is_terminal and info.status is not WorkflowStatus.CANCELLED:
            result = await self.tools.result(self.tools.workflows[info.workflow_name],
                                             info.instance_id, 0.0)
            task["result"] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return task

    async def result(self, ctx: ServerRequestContext[Any, Any],
                     params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        """Blocks until the workflow ends (the client may cancel the request)."""
        info = await self.info(params.task_id)
        related = {RELATED_TASK: {"taskId": info.instance_id}}
        result = await self.tools.result(self.tools.workflows[info.workflow_name],
                                         info.instance_id, None, meta=related)
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def cancel(self, ctx: ServerRequestContext[Any, Any],
                     params: types.CancelTaskRequestParams) -> dict[str, Any]:
        info = await self.info(params.task_id)
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        try:
            await self.tools.app.cancel(info.instance_id)
        except InstanceFinishedError:
            if modern:
                return {}
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"task {info.instance_id!r} already ended ({info.status}); "
                                   "nothing to cancel") from None
        if modern:
            return {}
        with trio.move_on_after(self.cancel_wait):  # compensations run before it is cancelled
            try:
                await self.tools.app.result(info.instance_id)
            except (WorkflowCancelledError, WorkflowFailedError):
                pass  # any ending will do: the status below says which
        return self.task_json(await self.tools.app.status(info.instance_id), modern=False)

    async def update(self, ctx: ServerRequestContext[Any, Any],
                     params: UpdateTaskRequestParams) -> dict[str, Any]:
        await self.info(params.task_id)
        return {}  # a workflow never asks its MCP client for input: nothing is outstanding
