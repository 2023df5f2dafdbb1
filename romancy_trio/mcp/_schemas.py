"""JSON schemas of the tools, from a workflow's type annotations (pure code, no I/O).

Parameters and results are described with pydantic's JSON schema generator, which knows the
types the runtime accepts (JSON scalars, lists, dicts, unions, Literal, dataclasses, TypedDicts,
pydantic models). An annotation it cannot describe becomes ``{}`` (any value): the runtime's own
check, when the workflow starts, is the authority either way.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Final

from pydantic import TypeAdapter
from pydantic.errors import PydanticInvalidForJsonSchema, PydanticUserError

from .. import Workflow, WorkflowStatus

MAX_INSTANCE_ID: Final = 200
STATUSES: Final = tuple(str(s) for s in WorkflowStatus)  # every one an instance can report


def type_schema(hint: Any, defs: dict[str, Any], mode: str = "validation") -> dict[str, Any]:
    """The JSON schema of ``hint``; its ``$defs`` are merged into ``defs``."""
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return {}
    if typing.is_typeddict(hint):  # pydantic refuses typing.TypedDict before Python 3.12
        return _typeddict_schema(hint, defs, mode)
    try:
        schema = TypeAdapter(hint).json_schema(mode=mode)  # type: ignore[arg-type]
    except (PydanticUserError, PydanticInvalidForJsonSchema, TypeError, NameError):
        return {}
    defs.update(schema.pop("$defs", {}))
    return schema


def _typeddict_schema(cls: Any, defs: dict[str, Any], mode: str) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {"type": "object"}
    required = [k for k in hints if k in getattr(cls, "__required_keys__", frozenset())]
    schema: dict[str, Any] = {
        "type": "object", "title": cls.__name__,
        "properties": {k: type_schema(v, defs, mode) for k, v in hints.items()}}
    if required:
        schema["required"] = required
    return schema


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    hint: Any
    required: bool
    positional_only: bool


def parameters(wf: Workflow[Any, Any]) -> list[Param]:
    """The workflow's parameters after the context, with their annotations."""
    try:
        hints = typing.get_type_hints(wf.fn, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    params = list(inspect.signature(wf.fn).parameters.values())[1:]
    return [
        Param(p.name, hints.get(p.name, Any), p.default is inspect.Parameter.empty,
              p.kind is inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    ]


def result_hint(wf: Workflow[Any, Any]) -> Any:
    try:
        return typing.get_type_hints(wf.fn, include_extras=True).get("return", Any)
    except (NameError, TypeError):
        return Any


def _instance_id(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_INSTANCE_ID,
            "description": description}


def _object(properties: dict[str, Any], required: list[str], defs: dict[str, Any]
            ) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = required
    if defs:
        schema["$defs"] = defs
    return schema


def start_input(wf: Workflow[Any, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    props = {p.name: type_schema(p.hint, defs) for p in parameters(wf)}
    props["instance_id"] = _instance_id(
        "Optional idempotency key: starting the same id again with the same input returns "
        "the same instance and creates nothing.")
    return _object(props, [p.name for p in parameters(wf) if p.required], defs)


def instance_input(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {"instance_id": _instance_id("The instance id that the _start tool returned.")}
    props.update(extra or {})
    return _object(props, ["instance_id"], {})


def result_input(max_wait: float, default_wait: float) -> dict[str, Any]:
    return instance_input({"wait_seconds": {
        "type": "number", "minimum": 0, "maximum": max_wait, "default": default_wait,
        "description": f"How long to wait for the workflow to finish (at most {max_wait:g} s); "
                       "if it is still running then, the answer says so: call again."}})


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, as ``anyOf`` (a ``type`` array is less portable to LLM dialects)."""
    return {"anyOf": [schema, {"type": "null"}]}


_ERROR: Final = {
    **_nullable({"type": "object", "properties": {
        "type": {"type": "string"}, "message": {"type": "string"},
        "activity_id": _nullable({"type": "string"}),
        "activity_name": _nullable({"type": "string"}),
        "attempts": _nullable({"type": "integer"})}}),
    "description": "Why the workflow failed: the original error type and message, and the "
                   "activity it came from.",
}


def status_output() -> dict[str, Any]:
    return _object({
        "instance_id": {"type": "string"},
        "workflow": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "error": _ERROR,
    }, ["instance_id", "workflow", "status", "created_at", "updated_at"], {})


def start_output() -> dict[str, Any]:
    return _object({"instance_id": {"type": "string"},
                    "status": {"type": "string", "enum": list(STATUSES)}},
                   ["instance_id", "status"], {})


def result_output(wf: Workflow[Any, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    result = type_schema(result_hint(wf), defs, mode="serialization")
    result = {**result, "description": "The workflow's result (present when done)."}
    return _object({
        "instance_id": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "done": {"type": "boolean", "description": "False: still running; call again."},
        "result": result,
    }, ["instance_id", "status", "done"], defs)


def cancel_output() -> dict[str, Any]:
    return _object({"instance_id": {"type": "string"},
                    "cancel_requested": {"type": "boolean"},
                    "status": {"type": "string", "enum": list(STATUSES)}},
                   ["instance_id", "cancel_requested", "status"], {})
