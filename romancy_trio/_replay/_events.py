"""Values the replay core consumes (history events) and produces (commands). Frozen, pure data."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as recorded: qualified type name, message, and (for humans) the traceback text."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        tp = type(exc)
        name = (
            tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"
        )
        tb = "".join(traceback.format_exception(exc))
        return cls(type=name, message=str(exc), traceback=tb)

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        return cls(
            type=str(data["type"]),
            message=str(data["message"]),
            traceback=str(data.get("traceback", "")),
        )


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One recorded step of a run. ``payload`` is decoded JSON (result, or ErrorInfo json)."""

    seq: int
    kind: EventKind
    key: str
    payload: Any
    at: float


@dataclass(frozen=True, slots=True)
class ActivityCommand:
    """Run activity ``name`` (not yet recorded) under the deterministic id ``activity_id``."""

    activity_id: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunActivities:
    """The workflow waits for these activities; the driver runs them and resolves each."""

    commands: tuple[ActivityCommand, ...]


@dataclass(frozen=True, slots=True)
class CompleteWorkflow:
    result: Any


@dataclass(frozen=True, slots=True)
class FailWorkflow:
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    """``recur``: archive this run's history and start the next run with ``input``."""

    input: Any


Command = RunActivities | CompleteWorkflow | FailWorkflow | ContinueAsNew
