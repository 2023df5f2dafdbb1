"""What one run of an instance tells the hooks: the notifications, built only if a hook listens.

The driver calls these at the points where something really happened (after its record
committed); replayed steps never reach them, since the replay core answers them from history
without asking the driver.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._replay import ActivityCommand, ErrorInfo, EventKind, HistoryEvent, WaitCommand
from ..hooks import (
    ActivityCompleted,
    ActivityFailed,
    ActivityRetried,
    ActivityStarted,
    CompensationRun,
    EventInfo,
    EventReceived,
    HookEvent,
    LeaseLost,
    MessagePublished,
    MessageReceived,
    SendInfo,
    TimerFired,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowSuspended,
    frozen_map,
)
from ..storage import Claimed, Lease
from ._hooks import NO_HOOKS, HookDispatcher


def event_info(body: Any) -> EventInfo | None:
    """The hooks' view of a recorded CloudEvent body (`Event.body`)."""
    if not isinstance(body, dict) or "source" not in body:
        return None
    ext = body.get("extensions") or {}
    return EventInfo(str(body.get("type")), str(body["source"]), str(body.get("id")),
                     frozen_map({str(k): str(v) for k, v in ext.items()}))


class RunNotes:
    """Notifications of one run (instance, run number, claim epoch) on this worker."""

    def __init__(self, hooks: HookDispatcher, lease: Lease, workflow: str, run_no: int,
                 attributes: Mapping[str, str]) -> None:
        self.hooks = hooks
        self.on = hooks.supplies_extensions
        """Whether some hook adds extensions to the events an activity sends."""
        self.wanted = hooks.wanted
        """Kinds some hook listens to: a notification nobody wants is never built."""
        self.lease = lease
        self.workflow = workflow
        self.run_no = run_no
        self.attributes = attributes
        self.closed = False

    def _ids(self) -> tuple[str, str, str, float, int, int]:
        """The fields every `RunEvent` begins with, in order (positional arguments build a
        notification faster than keywords)."""
        lease = self.lease
        return (lease.instance_id, self.workflow, lease.worker_id, time.time(), self.run_no,
                lease.epoch)

    # -- the run --------------------------------------------------------------------------
    def resumed(self, history: Sequence[HistoryEvent], started_at: float,
                runnable_since: float | None, *, resident_since: float | None = None) -> None:
        """``resident_since``: the run continues its live state (suspended then), replaying
        nothing; ``history`` is only what was written since."""
        if WorkflowResumed not in self.wanted:
            return
        woken = waited_since = None
        if history and history[-1].kind is EventKind.EVENT_RECEIVED:
            woken = event_info(history[-1].payload)
            runnable_since = history[-1].at
            waited_since = (resident_since if resident_since is not None else
                            history[-2].at if len(history) > 1 else started_at)
        elif history:
            runnable_since = None
        replayed = 0 if resident_since is not None else len(history)
        self.hooks.emit(WorkflowResumed(*self._ids(), self.attributes, replayed, woken,
                                        runnable_since, waited_since))

    def ended(self, status: str, error: ErrorInfo | None = None) -> None:
        """The instance ended: ``completed``, ``failed`` or ``cancelled``."""
        self.closed = True
        if status == "completed":
            if WorkflowCompleted in self.wanted:
                self.hooks.emit(WorkflowCompleted(*self._ids()))
        elif status == "cancelled":
            if WorkflowCancelled in self.wanted:
                self.hooks.emit(WorkflowCancelled(*self._ids()))
        elif WorkflowFailed in self.wanted:
            self.hooks.emit(WorkflowFailed(*self._ids(), error.type if error else "",
                                           error.message if error else ""))

    def suspended(self, reason: str, wait: WaitCommand | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if WorkflowSuspended not in self.wanted:
            return
        self.hooks.emit(WorkflowSuspended(
            *self._ids(), reason=reason, wait_kind=None if wait is None else str(wait.kind),
            wait_key=None if wait is None else wait.key,
            deadline=None if wait is None else wait.deadline))

    def recur(self, run_no: int) -> None:
        """The run continued as new (``recur``): this one ends, run ``run_no`` begins."""
        self.suspended("recur")
        self.run_no, self.closed = run_no, False

    def waited(self, found: Sequence[tuple[HistoryEvent, WaitCommand, float]]) -> None:
        """Waits resolved (and recorded) by this run: the event, message or timer each got,
        and when the wait began (the workflow's clock then: its last recorded step)."""
        wanted = self.wanted
        if not wanted:
            return
        for event, wait, since in found:
            if event.kind is EventKind.EVENT_RECEIVED:
                info = event_info(event.payload) if EventReceived in wanted else None
                if info is not None:
                    self.hooks.emit(EventReceived(*self._ids()[:4], info))
            elif event.kind is EventKind.MESSAGE_RECEIVED:
                if MessageReceived in wanted:
                    self.hooks.emit(MessageReceived(*self._ids(), channel=wait.key, since=since))
            elif (event.kind in (EventKind.TIMER_FIRED, EventKind.WAIT_TIMED_OUT)
                  and wait.deadline is not None and TimerFired in wanted):
                self.hooks.emit(TimerFired(
                    *self._ids(), deadline=wait.deadline, late_by=event.at - wait.deadline,
                    timed_out=event.kind is EventKind.WAIT_TIMED_OUT, since=since))

    # -- activities -----------------------------------------------------------------------
    def attempt(self, cmd: ActivityCommand, attempt: int) -> float:
        """An attempt starts; returns its start time (for the outcome's notification)."""
        now = time.time()
        if ActivityStarted in self.wanted and not cmd.compensates:
            self.hooks.emit(ActivityStarted(*self._ids(), cmd.activity_id, cmd.name, attempt))
        return now

    def outcome(self, cmd: ActivityCommand, attempt: int, started_at: float,
                error: ErrorInfo | None, *, next_at: float | None = None) -> None:
        """The attempt's outcome is recorded: success, a retry (``next_at``) or the end."""
        kind: type[HookEvent]
        if cmd.compensates:
            if next_at is not None:
                return
            kind = CompensationRun
        elif error is None:
            kind = ActivityCompleted
        else:
            kind = ActivityFailed if next_at is None else ActivityRetried
        if kind not in self.wanted:
            return
        ids = (*self._ids(), cmd.activity_id, cmd.name, attempt, started_at)
        if kind is CompensationRun:
            self.hooks.emit(CompensationRun(*ids, ok=error is None,
                                            error_type=error.type if error else None))
        elif error is None:
            self.hooks.emit(ActivityCompleted(*ids))
        elif next_at is None:
            self.hooks.emit(ActivityFailed(*ids, error_type=error.type, message=error.message))
        else:
            self.hooks.emit(ActivityRetried(*ids, error_type=error.type, message=error.message,
                                            next_at=next_at))

    def published(self, channel: str, message_id: int) -> None:
        if MessagePublished in self.wanted:
            self.hooks.emit(MessagePublished(*self._ids()[:4], channel, message_id))

    def event_extensions(self, activity_id: str, type_: str) -> Mapping[str, str]:
        if not self.on:
            return frozen_map(None)
        lease = self.lease
        return self.hooks.event_extensions(SendInfo(
            lease.instance_id, self.workflow, activity_id, lease.worker_id, type_,
            self.attributes))


def lease_lost(hooks: HookDispatcher, claimed: Claimed | None) -> None:
    if LeaseLost in hooks.wanted and claimed is not None:
        lease = claimed.lease
        hooks.emit(LeaseLost(lease.instance_id, claimed.workflow_name, lease.worker_id,
                             time.time(), claimed.run_no, lease.epoch))


def no_notes(lease: Lease, workflow: str, run_no: int) -> RunNotes:
    return RunNotes(NO_HOOKS, lease, workflow, run_no, frozen_map(None))
