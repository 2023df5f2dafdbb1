"""The sans-IO replay core: history in, commands out.

A workflow is an ``async def`` coroutine that only awaits workflow operations (activity calls,
``ctx.gather``, ``ctx.recur``). The machine steps it by hand with ``send``/``throw``: each time it
yields a request, the machine answers from recorded history if it can and keeps going; when it
cannot, :meth:`WorkflowMachine.advance` returns a command (run these activities, complete, fail,
continue-as-new) for a driver to carry out. The driver records the outcome and hands it back with
:meth:`WorkflowMachine.resolve`. No event loop, no database: this module is plain code.

Activity ids are deterministic: ``name:N`` for the N-th call of that activity in this run, or an
explicit id. On replay, the k-th request must match the k-th recorded event; anything else is a
:class:`NonDeterminismError` naming both sides, and the run fails with it.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from .._codec import convert
from .._errors import ActivityFailedError, InvalidInputError, NonDeterminismError, WorkflowAPIError
from ._events import (
    ActivityCommand,
    Command,
    CompleteWorkflow,
    ContinueAsNew,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
)
from ._requests import ActivityCall, GatherRequest, RecurRequest

_NOTHING = object()


class WorkflowMachine:
    """Drives one run of one workflow instance. Create, :meth:`start`, then :meth:`advance`."""

    def __init__(self, *, history: Sequence[HistoryEvent], started_at: float) -> None:
        self._history = list(history)
        self._cursor = 0
        self._counters: dict[str, int] = {}
        self._seen_ids: set[str] = set()
        self._results: dict[str, HistoryEvent] = {}
        self._waiting: tuple[ActivityCall[Any], ...] | None = None
        self._waiting_gather = False
        self._coro: Coroutine[Any, Any, Any] | None = None
        self._send: Any = None
        self._throw: BaseException | None = None
        self._finished = False
        self.clock = started_at

    @property
    def is_replaying(self) -> bool:
        """True while the workflow is re-executing steps that are already recorded."""
        return self._cursor < len(self._history)

    def start(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro

    def close(self) -> None:
        """Abandon the run (lease lost, shutdown): closes the coroutine; it never resumes."""
        if self._coro is not None and not self._finished:
            self._finished = True
            self._coro.close()

    def resolve(self, event: HistoryEvent) -> None:
        """Feed back the recorded outcome of an activity this machine asked the driver to run."""
        if self._waiting is None or event.key not in {c.explicit_id for c in self._waiting}:
            raise RuntimeError(f"resolve() for {event.key!r}, which nobody is waiting for")
        self._results[event.key] = event
        self.clock = max(self.clock, event.at)

    def advance(self) -> Command:
        """Run the workflow as far as history allows; return what the driver must do next."""
        if self._coro is None or self._finished:
            raise RuntimeError("advance() on a machine that is not running")
        while True:
            if self._waiting is not None:
                missing = [c for c in self._waiting if c.explicit_id not in self._results]
                if missing:
                    return RunActivities(tuple(_command(c) for c in missing))
                self._deliver_results()
            try:
                if self._throw is not None:
                    exc, self._throw = self._throw, None
                    yielded = self._coro.throw(exc)
                else:
                    value, self._send = self._send, None
                    yielded = self._coro.send(value)
            except StopIteration as stop:
                return self._finish(CompleteWorkflow(stop.value))
            except Exception as exc:  # noqa: BLE001 - the workflow's own error is its outcome
                return self._finish(FailWorkflow(ErrorInfo.from_exception(exc)))
            try:
                command = self._accept(yielded)
            except NonDeterminismError as exc:
                self._coro.close()
                return self._finish(FailWorkflow(ErrorInfo.from_exception(exc)))
            if command is not None:
                return command

    def _finish(self, command: Command) -> Command:
        self._finished = True
        if not isinstance(command, FailWorkflow) and self._cursor < len(self._history):
            leftover = self._history[self._cursor]
            exc = NonDeterminismError(
                f"replay: history records {leftover.key!r} next, but the workflow "
                f"{_describe(command)} without calling it"
            )
            return FailWorkflow(ErrorInfo.from_exception(exc))
        return command

    def _accept(self, yielded: Any) -> Command | None:
        if isinstance(yielded, ActivityCall):
            self._wait_for((yielded,), gather=False)
        elif isinstance(yielded, GatherRequest):
            self._wait_for(yielded.calls, gather=True)
        elif isinstance(yielded, RecurRequest):
            assert self._coro is not None
            self._coro.close()
            return self._finish(ContinueAsNew(yielded.input))
        else:
            self._throw = WorkflowAPIError(
                f"a workflow may only await activities and workflow operations (ctx.gather, "
                f"ctx.recur...), not {type(yielded).__qualname__}; use ctx.sleep/activities "
                "for anything that does I/O or waits"
            )
        return None

    def _wait_for(self, calls: tuple[ActivityCall[Any], ...], *, gather: bool) -> None:
        named = tuple(self._assign_id(c) for c in calls)
        ids = [c.explicit_id for c in named]
        if len(set(ids)) != len(ids):
            self._throw = WorkflowAPIError(f"duplicate activity ids in one gather: {ids}")
            return
        recorded = self._history[self._cursor : self._cursor + len(named)]
        for event in recorded:
            if event.key not in ids or event.key in self._results:
                raise NonDeterminismError(
                    f"replay: history records activity {event.key!r} at step {event.seq}, but "
                    f"the workflow now calls {', '.join(repr(i) for i in ids)} there"
                )
            self._results[event.key] = event
            self._cursor += 1
            self.clock = max(self.clock, event.at)
        self._waiting = named
        self._waiting_gather = gather

    def _assign_id(self, call: ActivityCall[Any]) -> ActivityCall[Any]:
        if call.explicit_id is None:
            n = self._counters.get(call.name, 0) + 1
            self._counters[call.name] = n
            activity_id = f"{call.name}:{n}"
        else:
            activity_id = call.explicit_id
        if activity_id in self._seen_ids:
            raise NonDeterminismError(f"activity id {activity_id!r} is used twice in one run")
        self._seen_ids.add(activity_id)
        return ActivityCall(call.name, call.args, call.kwargs, activity_id, call.result_hint)

    def _deliver_results(self) -> None:
        assert self._waiting is not None
        values: list[Any] = []
        failure: ActivityFailedError | None = None
        for call in self._waiting:
            event = self._results.pop(str(call.explicit_id))
            if event.kind is EventKind.ACTIVITY_FAILED:
                info = ErrorInfo.from_json(event.payload)
                failure = failure or ActivityFailedError(event.key, info.type, info.message)
                values.append(None)
            else:
                try:
                    values.append(
                        convert(event.payload, call.result_hint, f"result of {event.key}")
                    )
                except InvalidInputError as exc:
                    failure = failure or ActivityFailedError(
                        event.key, "romancy_trio.InvalidInputError", str(exc)
                    )
                    values.append(None)
        gather = self._waiting_gather
        self._waiting = None
        if failure is not None:
            self._throw = failure
        else:
            self._send = values if gather else values[0]


def _command(call: ActivityCall[Any]) -> ActivityCommand:
    return ActivityCommand(str(call.explicit_id), call.name, call.args, call.kwargs)


def _describe(command: Command) -> str:
    if isinstance(command, CompleteWorkflow):
        return "returned"
    if isinstance(command, ContinueAsNew):
        return "called recur"
    return "ended"
