"""Saga bookkeeping: which completed activities can be undone, and undoing them newest first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ._events import (
    COMPENSATE,
    ActivityCommand,
    CancelWorkflow,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
)
from ._requests import ActivityCall


class Compensations:
    def __init__(self) -> None:
        self._done: list[tuple[ActivityCall[Any], Any]] = []
        self._queue: list[tuple[ActivityCall[Any], Any]] = []
        self._failures: list[ErrorInfo] = []
        self._error: ErrorInfo | None = None
        self.active = False

    def add(self, call: ActivityCall[Any], result: Any) -> None:
        """A completed activity that declared a compensation (in completion order)."""
        self._done.append((call, result))

    def start(self, error: ErrorInfo | None) -> None:
        """Begin undoing: ``error`` is why the workflow failed (None: it was cancelled)."""
        self.active = True
        self._error = error
        self._queue = list(reversed(self._done))

    def next_command(self) -> ActivityCommand | None:
        if not self._queue:
            return None
        call, result = self._queue[0]
        return ActivityCommand(
            activity_id=f"{COMPENSATE}{call.explicit_id}", name=str(call.compensation),
            args=(*call.args, result), kwargs=call.kwargs, compensates=str(call.explicit_id),
            definition=call.compensation_definition)

    @staticmethod
    def with_attempt(command: ActivityCommand, attempt: Any) -> ActivityCommand:
        return replace(command, attempts=(*command.attempts, attempt))

    def resolve(self, event: HistoryEvent) -> None:
        if not self._queue or event.key != f"{COMPENSATE}{self._queue[0][0].explicit_id}":
            raise RuntimeError(f"resolve() for {event.key!r}, which no compensation waits for")
        self._queue.pop(0)
        if event.kind is EventKind.COMPENSATION_FAILED:
            self._failures.append(ErrorInfo.from_json(event.payload))

    def outcome(self) -> FailWorkflow | CancelWorkflow:
        failures = tuple(self._failures)
        if self._error is None:
            return CancelWorkflow(failures)
        return FailWorkflow(self._error, failures)
