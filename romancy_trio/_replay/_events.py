"""Values the replay core consumes (history events) and produces (commands). Frozen, pure data."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .._errors import ActivityFailedError, RetriesExhaustedError


class EventKind(StrEnum):
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"
    ATTEMPT_FAILED = "attempt_failed"  # key: "<activity id>#attempt-<n>"
    COMPENSATION_COMPLETED = "compensation_completed"  # key: "compensate:<activity id>"
    COMPENSATION_FAILED = "compensation_failed"
    EVENT_RECEIVED = "event_received"  # key: the wait id
    MESSAGE_RECEIVED = "message_received"
    TIMER_FIRED = "timer_fired"
    WAIT_TIMED_OUT = "wait_timed_out"
    WAIT_FAILED = "wait_failed"  # e.g. receive on a channel the instance is not subscribed to
    PATCH_MARKER = "patch_marker"  # key: "patch:<patch id>"; ctx.patched() was True here


class WaitKind(StrEnum):
    EVENT = "event"
    CHANNEL = "channel"
    TIMER = "timer"


COMPENSATE = "compensate:"
PATCH = "patch:"
ATTEMPT = "#attempt-"


def type_name(tp: type[BaseException]) -> str:
    """How errors name their type: ``module.QualName``, bare for builtins (``ValueError``)."""
    qualname = tp.__qualname__
    return qualname if tp.__module__ == "builtins" else f"{tp.__module__}.{qualname}"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as recorded: qualified type name, message, and (for humans) the traceback text.

    A workflow that failed because an activity's failure went uncaught records the activity's
    own error type and message, with ``activity_id`` / ``activity_name`` (and ``attempts`` if
    its retries were exhausted); these are None otherwise, and in rows written before they
    existed."""

    type: str
    message: str
    traceback: str = ""
    activity_id: str | None = None
    activity_name: str | None = None
    attempts: int | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        tb = "".join(traceback.format_exception(exc))
        return cls(type=type_name(type(exc)), message=str(exc), traceback=tb)

    @classmethod
    def of_failure(cls, exc: BaseException) -> ErrorInfo:
        """Why a workflow failed: like `from_exception`, but a failed activity's error is
        told as the activity's own (type, message, which activity, how many attempts)."""
        info = cls.from_exception(exc)
        if not isinstance(exc, ActivityFailedError):
            return info
        return cls(type=exc.error_type, message=exc.message, traceback=info.traceback,
                   activity_id=exc.activity_id, activity_name=exc.activity_name,
                   attempts=exc.attempts if isinstance(exc, RetriesExhaustedError) else None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "message": self.message,
                                "traceback": self.traceback}
        if self.activity_id is not None:
            data["activity_id"] = self.activity_id
            data["activity_name"] = self.activity_name
        if self.attempts is not None:
            data["attempts"] = self.attempts
        return data

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        activity_id, name = data.get("activity_id"), data.get("activity_name")
        # an activity's own failure payload has "attempts" too: only a workflow's error
        # that came from an activity carries it as its own
        attempts = None if activity_id is None else data.get("attempts")
        return cls(
            type=str(data["type"]),
            message=str(data["message"]),
            traceback=str(data.get("traceback", "")),
            activity_id=None if activity_id is None else str(activity_id),
            activity_name=None if name is None else str(name),
            attempts=None if attempts is None else int(attempts),
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a failing activity is tried again. Waiting between attempts is
    durable: attempts are recorded, so a crash neither resets the count nor loses the schedule."""

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0
    max_duration: float | None = None
    """Give up once this many seconds have passed since the first attempt began."""
    non_retryable: tuple[str, ...] = ()
    """Qualified names (or bare class names) of exception types never retried."""
    retry_forever: tuple[str, ...] = ()
    """Exception types (qualified or bare names) retried without limit - past
    ``max_attempts`` and ``max_duration``, at most ``max_interval`` apart: mistakes an operator
    fixes (a missing key or setting), which must not fail the instance. An attempt failing
    with one is recorded only when its error differs from the last one recorded (the history
    stays bounded); meanwhile ``App.status(...).error`` shows it."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff_coefficient < 1:
            raise ValueError("intervals must be >= 0 and backoff_coefficient >= 1")

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.initial_interval * self.backoff_coefficient ** (attempt - 1),
                   self.max_interval)

    def is_retryable(self, error_type: str) -> bool:
        short = error_type.rsplit(".", 1)[-1]
        return error_type not in self.non_retryable and short not in self.non_retryable

    def retries_forever(self, error_type: str) -> bool:
        short = error_type.rsplit(".", 1)[-1]
        return (error_type in self.retry_forever or short in self.retry_forever) and (
            self.is_retryable(error_type))


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One recorded step of a run. ``payload`` is decoded JSON (result, or ErrorInfo json)."""

    seq: int
    kind: EventKind
    key: str
    payload: Any
    at: float
    compensation: str | None = None
    """For a completed activity that declared one: the compensation activity's name."""


@dataclass(frozen=True, slots=True)
class ActivityCommand:
    """Run activity ``name`` (not yet recorded) under the deterministic id ``activity_id``."""

    activity_id: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    """None: the app's default policy."""
    attempts: tuple[Any, ...] = ()
    """Payloads of attempts that already failed (recorded), oldest first."""
    compensation: str | None = None
    """Name of the compensation activity to record with the result (None: none declared)."""
    compensates: str | None = None
    """Set when this command IS a compensation: the id of the activity it undoes."""
    timeout: float | None = None
    """Seconds one attempt may run, set at the call (None: the definition's own, if any)."""
    definition: object | None = field(default=None, compare=False, repr=False)
    """The activity's definition as the call carried it (opaque to the core; None: look the
    activity up by name)."""


@dataclass(frozen=True, slots=True)
class RunActivities:
    """The workflow waits for these activities; the driver runs them and resolves each."""

    commands: tuple[ActivityCommand, ...]


@dataclass(frozen=True, slots=True)
class WaitCommand:
    wait_id: str
    kind: WaitKind
    key: str
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Suspend:
    """The workflow waits for an event, a message or a timer. The driver either resolves it at
    once (already there / already due) or records the wait and lets the instance go."""

    wait: WaitCommand


@dataclass(frozen=True, slots=True)
class CompleteWorkflow:
    result: Any


@dataclass(frozen=True, slots=True)
class FailWorkflow:
    error: ErrorInfo
    compensation_errors: tuple[ErrorInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelWorkflow:
    compensation_errors: tuple[ErrorInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    """``recur``: archive this run's history and start the next run with ``input``."""

    input: Any


Command = (RunActivities | Suspend | CompleteWorkflow | FailWorkflow | CancelWorkflow
           | ContinueAsNew)
Outcome = CompleteWorkflow | FailWorkflow | CancelWorkflow | ContinueAsNew
