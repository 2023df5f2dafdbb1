"""Four tools per workflow: ``{name}_start``, ``_status``, ``_result``, ``_cancel``.

Every outcome a caller can cause (bad arguments, an unknown or foreign instance id, a failed or
cancelled workflow, nothing left to cancel) is a *tool error* (``isError: true``) whose text
names the problem, so a model can read it and correct itself. Only an unknown tool name is a
protocol error (-32602), as the MCP specification asks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import mcp_types as types
from mcp.shared.exceptions import MCPError

from .. import (
    App,
    ConfigurationError,
    InstanceFinishedError,
    InstanceIdConflictError,
    InstanceInfo,
    InstanceNotFoundError,
    InvalidInputError,
    StorageUnavailableError,
    TimeoutWaitingError,
    UnknownWorkflowError,
    Workflow,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from . import _schemas

KINDS: Final = ("start", "status", "result", "cancel")
TOOL_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


class ToolError(Exception):
    """A tool call the caller can correct: answered ``isError: true`` with this text."""


@dataclass(frozen=True, slots=True)
class ToolRef:
    workflow: Workflow[Any, Any]
    kind: str


def text_result(text: str, structured: dict[str, Any] | None = None, *, error: bool = False,
                meta: dict[str, Any] | None = None) -> types.CallToolResult:
    result = types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                  structured_content=structured, is_error=error)
    if meta is not None:
        result.meta = meta
    return result


def error_json(info: InstanceInfo) -> dict[str, Any] | None:
    err = info.error
    if err is None:
        return None
    return {"type": err.type, "message": err.message, "activity_id": err.activity_id,
            "activity_name": err.activity_name, "attempts": err.attempts}


def status_json(info: InstanceInfo) -> dict[str, Any]:
    return {"instance_id": info.instance_id, "workflow": info.workflow_name,
            "status": str(info.status), "created_at": info.created_at.isoformat(),
            "updated_at": info.updated_at.isoformat(), "error": error_json(info)}


def _describe(wf: Workflow[Any, Any], explicit: str | None) -> str:
    doc = explicit or (wf.__doc__ or "").strip()
    return doc or f"The durable workflow {wf.name!r}."


class WorkflowTools:
    """The tools of the chosen workflows of one open App, and how to call them."""

    def __init__(self, app: App, workflows: Iterable[Workflow[Any, Any] | str] | None,
                 descriptions: Mapping[str, str] | None, *, max_wait: float,
                 default_wait: float) -> None:
        if not 0 <= default_wait <= max_wait < math.inf:
            raise ConfigurationError("need 0 <= default_wait <= max_wait < inf (seconds)")
        self.app = app
        self.max_wait = max_wait
        self.default_wait = default_wait
        known = app.workflows()
        chosen = list(known.values()) if workflows is None else [
            self._known(known, w if isinstance(w, str) else w.name) for w in workflows]
        self.descriptions = dict(descriptions or {})
        unknown = set(self.descriptions) - {wf.name for wf in chosen}
        if unknown:
            raise ConfigurationError(f"descriptions name workflows not served: {sorted(unknown)}")
        self.workflows = {wf.name: wf for wf in chosen}
        self.refs: dict[str, ToolRef] = {}
        for wf in chosen:
            if not TOOL_NAME.match(wf.name):
                raise ConfigurationError(
                    f"workflow name {wf.name!r} cannot be an MCP tool name (letters, digits, "
                    "'_', '-', '.'; at most 120): give it one with @workflow(name=...)")
            for kind in KINDS:
                self.refs[f"{wf.name}_{kind}"] = ToolRef(wf, kind)
        self.tools = [self._tool(name, ref) for name, ref in self.refs.items()]

    @staticmethod
    def _known(known: Mapping[str, Workflow[Any, Any]], name: str) -> Workflow[Any, Any]:
        if name not in known:
            raise UnknownWorkflowError(name, list(known))
        return known[name]

    # -- listing ---------------------------------------------------------------------------
    def _tool(self, name: str, ref: ToolRef) -> types.Tool:
        wf, about = ref.workflow, _describe(ref.workflow, self.descriptions.get(ref.workflow.name))
        if ref.kind == "start":
            return types.Tool(
                name=name, title=f"Start {wf.name}",
                description=f"Start the workflow {wf.name!r} and return its instance id at once "
                            f"(it runs durably in the background). {about}",
                input_schema=_schemas.start_input(wf), output_schema=_schemas.start_output(),
                execution=types.ToolExecution(task_support="optional"),
                annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                                  idempotent_hint=False, open_world_hint=True))
        if ref.kind == "status":
            return types.Tool(
                name=name, title=f"Status of {wf.name}",
                description=f"Status of one instance of {wf.name!r}: pending, running, waiting, "
                            "completed, failed or cancelled; timestamps; the error if it failed.",
                input_schema=_schemas.instance_input(), output_schema=_schemas.status_output(),
                annotations=types.ToolAnnotations(read_only_hint=True))
        if ref.kind == "result":
            return types.Tool(
                name=name, title=f"Result of {wf.name}",
                description=f"Wait up to wait_seconds for an instance of {wf.name!r} to finish "
                            "and return its result; if it is still running, say so (call "
                            "again later). A failed or cancelled instance is a tool error.",
                input_schema=_schemas.result_input(self.max_wait, self.default_wait),
                output_schema=_schemas.result_output(wf),
                annotations=types.ToolAnnotations(read_only_hint=True))
        return types.Tool(
            name=name, title=f"Cancel {wf.name}",
            description=f"Cancel a live instance of {wf.name!r}: it stops, the compensations of "
                        "its completed activities run (newest first), then it is cancelled.",
            input_schema=_schemas.instance_input(), output_schema=_schemas.cancel_output(),
            annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                              idempotent_hint=True))

    def ref(self, name: str) -> ToolRef:
        ref = self.refs.get(name)
        if ref is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}",
                           data={"tool": name, "known": sorted(self.refs)[:50]})
        return ref

    # -- calling ---------------------------------------------------------------------------
    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        ref = self.ref(name)
        try:
            if ref.kind == "start":
                iid = await self.start(ref.workflow, arguments)
                info = await self.app.status(iid)
                return text_result(f"started {ref.workflow.name!r} as instance {iid!r} "
                                   f"(status {info.status})",
                                   {"instance_id": iid, "status": str(info.status)})
            args = self._check(arguments, {"instance_id"} | (
                {"wait_seconds"} if ref.kind == "result" else set()))
            iid = self._instance_id(args)
            if ref.kind == "status":
                info = await self.instance(ref.workflow, iid)
                text = f"instance {iid!r} of {ref.workflow.name!r} is {info.status}"
                if info.error is not None:
                    text += f": {info.error.type}: {info.error.message}"
                return text_result(text, status_json(info))
            if ref.kind == "result":
                return await self.result(ref.workflow, iid, self._wait(args))
            return await self.cancel(ref.workflow, iid)
        except ToolError as exc:
            return text_result(str(exc), error=True)
        except StorageUnavailableError as exc:  # an outage: nothing decided, try again
            return text_result(f"the database is unavailable, try again: {exc}", error=True)

    @staticmethod
    def _check(arguments: Mapping[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
        args = dict(arguments or {})
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise ToolError(f"unknown argument(s) {unknown}; this tool takes {sorted(allowed)}")
        return args

    @staticmethod
    def _instance_id(args: Mapping[str, Any], required: bool = True) -> str:
        iid = args.get("instance_id")
        if iid is None and not required:
            return ""
        if not isinstance(iid, str) or not iid:
            raise ToolError(f"argument 'instance_id': expected a non-empty string, got "
                            f"{json.dumps(iid)[:80]}")
        if len(iid) > _schemas.MAX_INSTANCE_ID:
            raise ToolError(f"argument 'instance_id': at most {_schemas.MAX_INSTANCE_ID} "
                            "characters")
        return iid

    def _wait(self, args: Mapping[str, Any]) -> float:
        wait = args.get("wait_seconds", self.default_wait)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not (
                0 <= wait <= self.max_wait):
            raise ToolError(f"argument 'wait_seconds': expected a number of seconds from 0 to "
                            f"{self.max_wait:g}, got {json.dumps(wait)[:80]}")
        return float(wait)

    async def start(self, wf: Workflow[Any, Any], arguments: Mapping[str, Any] | None) -> str:
        """Start ``wf`` with tool arguments; ToolError (nothing written) on bad input."""
        params = _schemas.parameters(wf)
        args = self._check(arguments, {p.name for p in params} | {"instance_id"})
        iid = self._instance_id(args, required=False) or None
        missing = [p.name for p in params if p.required and p.name not in args]
        if missing:
            raise ToolError(f"missing argument(s) {missing} of workflow {wf.name!r}")
        positional = [args.pop(p.name) for p in params if p.positional_only and p.name in args]
        args.pop("instance_id", None)
        try:
            return await self.app.start(wf, *positional, instance_id=iid, **args)
        except (InvalidInputError, InstanceIdConflictError, UnknownWorkflowError) as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    async def instance(self, wf: Workflow[Any, Any], iid: str) -> InstanceInfo:
        try:
            info = await self.app.status(iid)
        except InstanceNotFoundError:
            raise ToolError(f"no instance {iid!r} exists (use the instance id that "
                            f"{wf.name}_start returned)") from None
        if info.workflow_name != wf.name:
            raise ToolError(f"instance {iid!r} belongs to workflow {info.workflow_name!r}, "
                            f"not {wf.name!r}")
        return info

    async def result(self, wf: Workflow[Any, Any], iid: str, wait: float | None,
                     meta: dict[str, Any] | None = None) -> types.CallToolResult:
        """The ``_result`` answer after waiting up to ``wait`` seconds (None: until done)."""
        info = await self.instance(wf, iid)
        try:
            await self.app.result(iid, timeout=wait)
        except TimeoutWaitingError:
            info = await self.app.status(iid)
            return text_result(
                f"instance {iid!r} of {wf.name!r} is still running (status {info.status}) "
                f"after {wait or 0:g} s; call {wf.name}_result again later",
                {"instance_id": iid, "status": str(info.status), "done": False}, meta=meta)
        except WorkflowFailedError as exc:
            where = f" (in activity {exc.activity_name!r})" if exc.activity_name else ""
            return text_result(f"instance {iid!r} of {wf.name!r} failed{where}: "
                               f"{exc.error_type}: {exc.message}", error=True, meta=meta)
        except WorkflowCancelledError:
            return text_result(f"instance {iid!r} of {wf.name!r} was cancelled; it has no "
                               "result", error=True, meta=meta)
        info = await self.app.status(iid)  # the stored JSON form of the result
        return text_result(json.dumps(info.result, ensure_ascii=False),
                           {"instance_id": iid, "status": "completed", "done": True,
                            "result": info.result}, meta=meta)

    async def cancel(self, wf: Workflow[Any, Any], iid: str) -> types.CallToolResult:
        await self.instance(wf, iid)
        try:
            await self.app.cancel(iid)
        except InstanceFinishedError as exc:
            raise ToolError(str(exc)) from None
        info = await self.app.status(iid)
        return text_result(
            f"cancel requested for instance {iid!r} of {wf.name!r}: it stops, the "
            "compensations of its completed activities run, then its status is cancelled "
            f"(now {info.status})",
            {"instance_id": iid, "cancel_requested": True, "status": str(info.status)})
