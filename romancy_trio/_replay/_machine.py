"""The sans-IO replay core: history in, commands out.

A workflow is an ``async def`` coroutine that only awaits workflow operations (activity calls,
``ctx.gather``, waits, ``recur``). The machine steps it by hand with ``send``/``throw``: each time
it yields a request, the machine answers from recorded history if it can and keeps going; when it
cannot, :meth:`WorkflowMachine.advance` returns a command (run these activities, suspend on a wait,
complete, fail, cancel, continue-as-new) for a driver to carry out. The driver records the
outcome and hands it back with :meth:`WorkflowMachine.resolve`. No event loop, no database.

Ids are deterministic: ``name:N`` for the N-th call of an activity in this run (or an explicit
id), ``event:<type>:N`` / ``channel:<name>:N`` / ``timer::N`` for waits. On replay, the k-th
request must match the k-th recorded event; anything else is a :class:`NonDeterminismError`
naming both sides, and the run fails with it.

When the workflow raises, or is cancelled, the machine runs the compensations of the completed
activities that declared one, newest first, each recorded (``compensate:<id>``), then ends.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from .._errors import NonDeterminismError, WorkflowAPIError
from ._compensation import Compensations
from ._deliver import deliver_activity, deliver_wait
from ._events import (
    ATTEMPT,
    COMPENSATE,
    PATCH,
    ActivityCommand,
    Command,
    CompleteWorkflow,
    ContinueAsNew,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
    Suspend,
    WaitCommand,
)
from ._guard import DeterminismGuard
from ._requests import ActivityCall, GatherRequest, RecurRequest, WaitRequest


class WorkflowMachine:
    """Drives one run of one workflow instance. Create, :meth:`start`, then :meth:`advance`."""

    def __init__(self, *, history: Sequence[HistoryEvent], started_at: float,
                 cancel_requested: bool = False, determinism_guard: bool = True) -> None:
        self._history = list(history)
        self._cursor = 0
        self._counters: dict[str, int] = {}
        self._seen_ids: set[str] = set()
        self._results: dict[str, HistoryEvent] = {}
        self._attempts: dict[str, list[Any]] = {}
        self._waiting: tuple[ActivityCall[Any], ...] | None = None
        self._waiting_gather = False
        self._wait: tuple[WaitCommand, WaitRequest[Any]] | None = None
        self._coro: Coroutine[Any, Any, Any] | None = None
        self._send: Any = None
        self._throw: BaseException | None = None
        self._finished = False
        self._cancel_requested = cancel_requested
        self._compensations = Compensations()
        self._check_determinism = determinism_guard
        self._guard: DeterminismGuard | None = None
        self.clock = started_at
        self._patches: dict[str, bool] = {}
        self._markers: list[str] = []

    @property
    def is_replaying(self) -> bool:
        """True while the workflow is re-executing steps that are already recorded."""
        return self._cursor < len(self._history)

    @property
    def next_seq(self) -> int:
        return self._history[-1].seq + 1 if self._history else 0

    def patched(self, patch_id: str) -> bool:
        """True where the code runs past this point for the first time (and then recorded, so
        it stays True on replay); False while replaying a history recorded without it."""
        key = PATCH + patch_id
        if key not in self._patches:
            if self.is_replaying:
                self._patches[key] = self._history[self._cursor].key == key
                if self._patches[key]:
                    self._consume()
            else:
                self._patches[key] = True
                self._markers.append(key)
        return self._patches[key]

    def deprecate_patch(self, patch_id: str) -> None:
        """The patch's old branch is gone: skip its marker where history has one."""
        if self.is_replaying and self._history[self._cursor].key == PATCH + patch_id:
            self._consume()

    def take_markers(self) -> list[str]:
        """Patch markers the driver must record (in this order) before the next command."""
        markers, self._markers = self._markers, []
        return markers

    @property
    def has_markers(self) -> bool:
        return bool(self._markers)

    def start(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        if self._check_determinism:
            code = getattr(coro, "cr_code", None)
            self._guard = DeterminismGuard(code.co_filename if code is not None else None)

    def close(self) -> None:
        """Abandon the run (lease lost, shutdown): closes the coroutine; it never resumes."""
        if self._coro is not None and not self._finished:
            self._finished = True
            self._coro.close()

    def resolve(self, event: HistoryEvent) -> None:
        """Feed back a freshly recorded event the machine asked the driver for."""
        if event.kind is EventKind.ATTEMPT_FAILED:
            return  # an intermediate attempt; the driver goes on retrying
        if self._compensations.active:
            self._compensations.resolve(event)
        elif self._wait is not None and event.key == self._wait[0].wait_id:
            self._results[event.key] = event
        elif self._waiting is not None and event.key in {c.explicit_id for c in self._waiting}:
            self._results[event.key] = event
        else:
            raise RuntimeError(f"resolve() for {event.key!r}, which nobody is waiting for")
        self.clock = max(self.clock, event.at)

    def advance(self) -> Command:
        """Run the workflow as far as history allows; return what the driver must do next."""
        if self._coro is None or self._finished:
            raise RuntimeError("advance() on a machine that is not running")
        while True:
            if self._compensations.active:
                return self._compensate()
            pending = self._pending_command()
            if pending is not None:
                if self._cancel_requested:
                    self._cancel()
                    continue
                return pending
            try:
                yielded = self._step()
            except StopIteration as stop:
                return self._finish(CompleteWorkflow(stop.value))
            except Exception as exc:  # noqa: BLE001 - the workflow's own error is its outcome
                self._compensations.start(ErrorInfo.of_failure(exc))
                continue
            try:
                command = self._accept(yielded)
            except NonDeterminismError as exc:
                self._coro.close()
                return self._finish(FailWorkflow(ErrorInfo.from_exception(exc)))
            if command is not None:
                return command

    # -- stepping ---------------------------------------------------------------------------
    def _step(self) -> Any:
        """One step of the workflow, under the determinism guard: a clock, random or uuid
        call of its own fails the run (even if the workflow caught the error)."""
        guard = self._guard
        if guard is None:
            return self._send_or_throw()
        try:
            yielded = guard.step(self._send_or_throw)
        except Exception:
            if guard.violation is None:
                raise
            yielded = None  # the workflow ended (returned or raised): the violation wins
        if guard.violation is not None:
            assert self._coro is not None
            self._coro.close()
            raise guard.violation
        return yielded

    def _send_or_throw(self) -> Any:
        assert self._coro is not None
        if self._throw is not None:
            exc, self._throw = self._throw, None
            return self._coro.throw(exc)
        value, self._send = self._send, None
        return self._coro.send(value)

    def _pending_command(self) -> Command | None:
        """What the workflow still waits for (None: its answer is ready, keep stepping)."""
        if self._wait is not None:
            command, request = self._wait
            event = self._results.pop(command.wait_id, None)
            if event is None:
                return Suspend(command)
            self._wait = None
            self._send, self._throw = deliver_wait(event, request)
            return None
        if self._waiting is not None:
            missing = [c for c in self._waiting if c.explicit_id not in self._results]
            if missing:
                return RunActivities(tuple(self._command(c) for c in missing))
            self._deliver_results()
        return None

    def _cancel(self) -> None:
        assert self._coro is not None
        self._coro.close()
        self._waiting = self._wait = None
        self._compensations.start(None)

    def _finish(self, command: Command) -> Command:
        self._finished = True
        if isinstance(command, CompleteWorkflow | ContinueAsNew) and self.is_replaying:
            leftover = self._history[self._cursor]
            exc = NonDeterminismError(
                f"replay: history records {leftover.key!r} next, but the workflow "
                f"{'returned' if isinstance(command, CompleteWorkflow) else 'called recur'} "
                f"without calling it{_hint(leftover.key)}")
            return FailWorkflow(ErrorInfo.from_exception(exc))
        return command

    def _accept(self, yielded: Any) -> Command | None:
        if isinstance(yielded, ActivityCall):
            self._wait_for((yielded,), gather=False)
        elif isinstance(yielded, GatherRequest):
            self._wait_for(yielded.calls, gather=True)
        elif isinstance(yielded, WaitRequest):
            self._wait_on(yielded)
        elif isinstance(yielded, RecurRequest):
            assert self._coro is not None
            self._coro.close()
            return self._finish(ContinueAsNew(yielded.input))
        else:
            self._throw = WorkflowAPIError(
                f"a workflow may only await activities and workflow operations (ctx.gather, "
                f"wait_event, sleep, receive, recur...), not {type(yielded).__qualname__}")
        return None

    # -- matching requests against history --------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}:{n}"

    def _claim_id(self, wanted: str) -> str:
        if wanted in self._seen_ids:
            raise NonDeterminismError(f"id {wanted!r} is used twice in one run")
        self._seen_ids.add(wanted)
        return wanted

    def _at_compensation_point(self) -> bool:
        """History shows a cancellation's compensations started here (crash while cancelling)."""
        return self.is_replaying and self._history[self._cursor].key.startswith(COMPENSATE)

    def _wait_on(self, request: WaitRequest[Any]) -> None:
        prefix = "timer:" if request.kind == "timer" else f"{request.kind}:{request.key}"
        wait_id = self._claim_id(self._next_id(prefix))
        command = WaitCommand(wait_id, request.kind, request.key, request.deadline)
        self._wait = (command, request)
        if self._at_compensation_point():
            self._cancel_requested = True
            return
        if self.is_replaying:
            event = self._history[self._cursor]
            if event.key != wait_id:
                raise NonDeterminismError(
                    f"replay: history records {event.key!r} at step {event.seq}, but the "
                    f"workflow now waits for {wait_id!r} there{_hint(event.key)}")
            self._cursor += 1
            self._results[wait_id] = event
            self.clock = max(self.clock, event.at)

    def _wait_for(self, calls: tuple[ActivityCall[Any], ...], *, gather: bool) -> None:
        named = tuple(self._assign_id(c) for c in calls)
        ids = {str(c.explicit_id) for c in named}
        if len(ids) != len(named):
            self._throw = WorkflowAPIError(f"duplicate activity ids in one gather: {sorted(ids)}")
            return
        self._waiting, self._waiting_gather = named, gather
        if self._at_compensation_point():
            self._cancel_requested = True
            return
        # consume every recorded event of these calls: failed attempts, then the outcome
        while self.is_replaying and len(self._results.keys() & ids) < len(ids):
            event = self._history[self._cursor]
            base = event.key.split(ATTEMPT, 1)[0]
            if base not in ids or event.key in self._results:
                raise NonDeterminismError(
                    f"replay: history records {event.key!r} at step {event.seq}, but the "
                    f"workflow now calls {', '.join(repr(i) for i in sorted(ids))} there"
                    f"{_hint(event.key)}")
            self._cursor += 1
            self.clock = max(self.clock, event.at)
            if event.kind is EventKind.ATTEMPT_FAILED:
                self._attempts.setdefault(base, []).append(event.payload)
            else:
                self._results[event.key] = event

    def _assign_id(self, call: ActivityCall[Any]) -> ActivityCall[Any]:
        wanted = call.explicit_id or self._next_id(call.name)
        return replace(call, explicit_id=self._claim_id(wanted))

    def _command(self, call: ActivityCall[Any]) -> ActivityCommand:
        aid = str(call.explicit_id)
        return ActivityCommand(aid, call.name, call.args, call.kwargs, call.retry,
                               tuple(self._attempts.get(aid, ())), call.compensation,
                               timeout=call.timeout, definition=call.definition)

    def _deliver_results(self) -> None:
        assert self._waiting is not None
        calls, gather = self._waiting, self._waiting_gather
        self._waiting = None
        events = [self._results.pop(str(c.explicit_id)) for c in calls]
        for call, event in sorted(zip(calls, events, strict=True), key=lambda ce: ce[1].seq):
            if event.kind is EventKind.ACTIVITY_COMPLETED and call.compensation:
                self._compensations.add(call, event.payload)
        values, failure = deliver_activity(calls, events)
        if failure is not None:
            self._throw = failure
        else:
            self._send = values if gather else values[0]

    # -- compensation ----------------------------------------------------------------------
    def _compensate(self) -> Command:
        while True:
            command = self._compensations.next_command()
            if command is None:
                self._finished = True
                return self._compensations.outcome()
            while self._replaying_key().startswith(command.activity_id + ATTEMPT):
                command = self._compensations.with_attempt(command, self._consume().payload)
            if self._replaying_key() == command.activity_id:
                self._compensations.resolve(self._consume())
                continue
            return RunActivities((command,))

    def _replaying_key(self) -> str:
        return self._history[self._cursor].key if self.is_replaying else ""

    def _consume(self) -> HistoryEvent:
        event = self._history[self._cursor]
        self._cursor += 1
        self.clock = max(self.clock, event.at)
        return event




def _hint(recorded_key: str) -> str:
    """What to do about a mismatch, in the error's message."""
    if recorded_key.startswith(PATCH):
        patch_id = recorded_key.removeprefix(PATCH)
        return (f". The history passed ctx.patched({patch_id!r}): keep that call, or replace "
                f"it with ctx.deprecate_patch({patch_id!r}) once the old branch is removed")
    return (". If the workflow's code changed, instances started on the old code still "
            "replay it: guard the change with `if ctx.patched(\"<change id>\"):` (new code) "
            "`else:` (old code)")
