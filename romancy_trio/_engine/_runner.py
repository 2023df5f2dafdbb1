"""Drive one claimed instance: replay its history through the core, carry out its commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from .. import _clock
from .._codec import convert, dumps, loads
from .._definitions import Registry
from .._errors import InvalidInputError, RomancyError, UnknownWorkflowError
from .._replay import (
    CancelWorkflow,
    CompleteWorkflow,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    Outcome,
    RetryPolicy,
    RunActivities,
    Suspend,
    WaitCommand,
    WorkflowContext,
    WorkflowMachine,
)
from ..logs import log_context
from ..storage import Claimed, Store, WorkflowStatus
from ._activities import ActivityRunner
from ._hooks import NO_HOOKS, HookDispatcher
from ._hosts import ActivityHosts
from ._notes import RunNotes
from ._resident import Resident, ResidentStates


class Suspended:
    """The run waits for an event, message or timer; the instance was let go."""


class HandedBack:
    """The run stopped at a suspension point because its worker hands it to another one."""


_T = TypeVar("_T")


def _never() -> bool:
    return False


def _ignore(ending: bool) -> None:
    pass


async def _letting_go(mark: Callable[[bool], None], write: Awaitable[_T]) -> _T:
    """Await a write that may let the instance go (its finish, its suspension), marked as such
    while it runs and, once it succeeded, until the run ends (`run_claimed`)."""
    mark(True)
    try:
        return await write
    except BaseException:
        mark(False)
        raise


def _error(exc: RomancyError) -> ErrorInfo:
    return ErrorInfo.from_exception(exc)


async def run_claimed(store: Store, registry: Registry, claimed: Claimed,
                      default_retry: RetryPolicy, *, hosts: ActivityHosts,
                      determinism_guard: bool = True,
                      handing_back: Callable[[], bool] = _never,
                      on_attempt: Callable[[], None] | None = None,
                      hooks: HookDispatcher = NO_HOOKS,
                      resident: ResidentStates | None = None,
                      letting_go: Callable[[bool], None] = _ignore) -> bool:
    """Run the instance until it completes, fails, is cancelled or suspends (continuing as new
    as often as it recurs). Raises LeaseLostError if another worker took it over.

    ``handing_back``: asked at each suspension point (a wait, also one resolved at once, as a
    receive that finds a message): True stops the run there, with everything before it
    recorded, and run_claimed returns True - the caller releases the instance for the worker
    it is handed to, which replays it to that same point. Otherwise it returns False.
    ``on_attempt``: called as each activity attempt starts. ``hooks``: told what each run
    really does (`RunNotes`). ``resident``: this worker's live states of suspended runs, to
    continue from instead of replaying (`ResidentStates`). ``letting_go(True)``: the run is
    in a write that lets the instance go itself (its finish or suspension; False again if that
    write failed or the wait was resolved at once) - a renewal that no longer returns the
    instance meanwhile tells nothing about another worker: the fenced write says whether the
    lease was still held."""
    lease = claimed.lease
    token = log_context.set((lease.instance_id, claimed.workflow_name, lease.worker_id))
    notes = RunNotes(hooks, lease, claimed.workflow_name, claimed.run_no, claimed.attributes)
    try:
        with store.handover.running(lease.instance_id):  # an App.run here waits for its end
            return await _run_claimed(store, registry, claimed, default_retry, hosts,
                                      determinism_guard, handing_back, on_attempt, notes,
                                      resident, letting_go)
    finally:
        notes.suspended("stopped")  # unless the run said how it ended
        log_context.reset(token)


async def _run_claimed(store: Store, registry: Registry, claimed: Claimed,
                       default_retry: RetryPolicy, hosts: ActivityHosts, determinism_guard: bool,
                       handing_back: Callable[[], bool], on_attempt: Callable[[], None] | None,
                       notes: RunNotes, resident: ResidentStates | None,
                       letting_go: Callable[[bool], None]) -> bool:
    lease = claimed.lease
    now = _clock.now

    async def finish(status: WorkflowStatus, **fields: Any) -> None:
        """Fenced: the run's end (`Store.finish`); it lets the instance go."""
        await _letting_go(letting_go, store.finish(lease, status, now=now(), **fields))

    try:
        wf = registry.workflow(claimed.workflow_name)
    except UnknownWorkflowError as exc:
        await finish(WorkflowStatus.FAILED, error=_error(exc))
        notes.ended("failed", _error(exc))
        return False
    run_no, input_json, started_at = claimed.run_no, claimed.input_json, claimed.run_started_at
    fresh = claimed.fresh
    known = claimed.history  # brought along by the claim, for the run it claimed
    while True:
        try:
            args, kwargs = wf.input.restore(loads(input_json))
        except InvalidInputError as exc:
            await finish(WorkflowStatus.FAILED, error=_error(exc))
            notes.ended("failed", _error(exc))
            return False
        kept = None if resident is None or fresh else resident.take(claimed)
        if kept is not None:  # continue the live state: only the rows written since
            assert resident is not None
            new = ([e for e in known if e.seq >= kept.seq] if known is not None else
                   await store.load_history_since(lease.instance_id, run_no, kept.seq))
            if resident.accept(kept, new):
                notes.resumed(new, started_at, None, resident_since=kept.suspended_at)
            else:
                kept = None
        if kept is not None:
            machine, next_seq = kept.machine, kept.seq
        else:
            if fresh:
                history = []
            elif known is not None:
                history = list(known)
            else:
                history = await store.load_history(lease.instance_id, run_no)
            notes.resumed(history, started_at, started_at if not history else None)
            machine = WorkflowMachine(history=history, started_at=started_at,
                                      cancel_requested=claimed.cancel_requested,
                                      determinism_guard=determinism_guard
                                      and wf.determinism_guard)
            ctx = WorkflowContext(machine, instance_id=lease.instance_id, workflow_name=wf.name,
                                  run_no=run_no)
            machine.start(wf.fn(ctx, *args, **kwargs))
            next_seq = machine.next_seq
        known = None
        runner = ActivityRunner(store, registry.activities, default_retry, lease=lease,
                                run_no=run_no, next_seq=next_seq, workflow_name=wf.name,
                                hosts=hosts, on_attempt=on_attempt, notes=notes)
        try:
            outcome = await _drive(store, machine, runner, handing_back, notes, letting_go)
        except BaseException:
            machine.close()
            raise
        if resident is not None and isinstance(outcome, Suspended):
            # the seq its suspension reserved: the wait's answer is the next row
            resident.keep(lease.instance_id, Resident(machine, run_no, lease.epoch,
                                                      runner.next_seq - 1, runner.next_seq,
                                                      now()))
        else:
            machine.close()
        deferred = None if runner.deferred is None else (run_no, runner.deferred)
        assert deferred is None or isinstance(outcome, CompleteWorkflow)  # (kept only for it)
        if isinstance(outcome, Suspended | HandedBack):
            if isinstance(outcome, HandedBack):
                notes.suspended("handed over")
            return isinstance(outcome, HandedBack)
        if isinstance(outcome, CompleteWorkflow):
            try:
                result = convert(loads(dumps(outcome.result)), wf.result_hint, "result")
            except InvalidInputError as exc:
                await finish(WorkflowStatus.FAILED, error=_error(exc), record=deferred)
                notes.ended("failed", _error(exc))
                return False
            await finish(WorkflowStatus.COMPLETED, result=result, record=deferred)
            notes.ended("completed")
            return False
        if isinstance(outcome, FailWorkflow):
            await finish(WorkflowStatus.FAILED, error=outcome.error,
                         compensation_errors=outcome.compensation_errors)
            notes.ended("failed", outcome.error)
            return False
        if isinstance(outcome, CancelWorkflow):
            await finish(WorkflowStatus.CANCELLED, compensation_errors=outcome.compensation_errors)
            notes.ended("cancelled")
            return False
        try:
            input_json = dumps(outcome.input)
            wf.input.restore(loads(input_json), "recur input")
        except InvalidInputError as exc:
            await finish(WorkflowStatus.FAILED, error=_error(exc))
            notes.ended("failed", _error(exc))
            return False
        started_at = now()
        run_no = await store.continue_as_new(lease, run_no, input_json, now=started_at)
        notes.recur(run_no)
        fresh = True  # the new run's history was just created empty


async def _drive(store: Store, machine: WorkflowMachine, runner: ActivityRunner,
                 handing_back: Callable[[], bool], notes: RunNotes,
                 letting_go: Callable[[bool], None]) -> Outcome | Suspended | HandedBack:
    command = machine.advance()
    while True:
        for key in machine.take_markers():  # ctx.patched() decisions, before what follows
            await store.record_event(runner.lease, runner.run_no, HistoryEvent(
                runner.take_seq(), EventKind.PATCH_MARKER, key, True, machine.clock, None))
        if isinstance(command, Suspend):
            if handing_back():
                return HandedBack()
            found: list[tuple[HistoryEvent, WaitCommand, float]] = []

            def then(event: HistoryEvent) -> WaitCommand | None:
                """The event to the workflow, before it commits (a lost lease then fails
                the commit and this run is dropped); its next wait, if it waits again."""
                nonlocal command
                assert isinstance(command, Suspend)
                # (noqa: `then` is called before the loop goes on)
                found.append((event, command.wait, machine.clock))  # noqa: B023
                machine.resolve(event)
                command = machine.advance()
                if not isinstance(command, Suspend) or handing_back() or machine.has_markers:
                    return None  # (handing back: record this one, stop at the next wait;
                    # patch markers: recorded by the loop before the next wait's events)
                return command.wait

            event = await _letting_go(letting_go, store.waits.suspend(
                runner.lease, runner.run_no, runner.take_seq(), command.wait, now=_clock.now(),
                then=then, next_seq=runner.take_seq))
            notes.waited(found)
            if event is None:  # suspended: let go
                assert isinstance(command, Suspend)
                notes.suspended("wait", command.wait)
                return Suspended()
            letting_go(False)  # resolved at once: still running, the lease still held
            continue  # `then` handed it over: `command` is what the workflow does next
        if not isinstance(command, RunActivities):
            return command
        calls = command.commands
        if len(calls) == 1:  # a lone no-SQL success is recorded with the run's next write
            runner.defer = True
            try:
                event = await runner.run(calls[0])
            finally:
                runner.defer = False
            machine.resolve(event)
            command = machine.advance()
            if not isinstance(command, CompleteWorkflow):
                await runner.flush()  # (a completion records it in the finishing statement)
            continue
        else:

            async def one(cmd: Any) -> None:
                machine.resolve(await runner.run(cmd))

            async with trio.open_nursery() as nursery:
                for cmd in calls:
                    nursery.start_soon(one, cmd)
        command = machine.advance()


