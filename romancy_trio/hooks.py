"""Hooks: the one extension point the runtime calls into.

Implement :class:`Hooks` (override only what you need) and pass instances to
``open_app(..., hooks=[...])``. Every notification is a frozen value describing something that
really happened, in the process that did it, once: a replay re-running recorded steps emits
nothing. A hook can never change what is recorded: it is told after the fact.

How hooks run (the contract):

- Notifications (``on_*``, ``async def``) are queued, per hook, in a bounded queue
  (``hook_queue``) and awaited in order by one task per hook that the app's nursery owns.
  Durable progress never waits for a hook: queuing does not block, and a full queue drops the
  notification (counted in `HookStatistics.dropped`). A run's notifications are handed over
  together once it ends or suspends (completed, failed, cancelled, suspended, lease lost), or
  sooner when the queue is half full; any other queued notification (a step of a run still
  going) waits at most 0.25 s (a quarter of ``hook_timeout`` if that is shorter).
- A notification that raises is counted (``failed``) and logged once per hook (with its
  traceback, at ERROR on the ``romancy_trio.hooks`` logger); later failures are only counted.
- A notification still running after ``hook_timeout`` seconds (checked every 0.25 s, or every
  quarter of it if that is shorter) is cancelled, counted (``timed_out``) and logged once per hook;
  the hook goes on with the next one. Hooks run on the Trio thread: a hook that blocks
  the thread (``time.sleep``, a blocking socket) stalls the whole process like any blocking
  call in Trio code; do blocking work with ``trio.to_thread``.
- The two *suppliers*, :meth:`Hooks.instance_attributes` and :meth:`Hooks.event_extensions`,
  are called synchronously where their answer is needed (starting an instance; an activity's
  ``ctx.send_event``). They must be quick. One that raises is counted and logged once like a
  notification, and contributes nothing: the start or the send goes ahead.

`App.hook_statistics` reads the counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


def frozen_map(values: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only copy (what hook values carry instead of a dict)."""
    return MappingProxyType(dict(values)) if values else _EMPTY


@dataclass(frozen=True, slots=True)
class HookEvent:
    """What every notification says: which instance, which workflow, which worker, when
    (``at``: seconds since the epoch)."""

    instance_id: str
    workflow: str
    worker_id: str
    at: float


@dataclass(frozen=True, slots=True)
class RunEvent(HookEvent):
    """A notification from one run of an instance on a worker: ``run_no`` (``recur``) and
    ``epoch`` (the claim: each claim of an instance has a new one) tell runs apart."""

    run_no: int
    epoch: int


@dataclass(frozen=True, slots=True)
class WorkflowStarted(HookEvent):
    """An instance was created (in the process that called ``start``); ``attributes``: the
    instance attributes stored with it."""

    attributes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """A CloudEvent as the hooks see it: its identity and its string extension attributes
    (``traceparent``/``tracestate`` of the distributed-tracing extension among them)."""

    type: str
    source: str
    id: str
    extensions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class WorkflowResumed(RunEvent):
    """A worker began a run of the instance: its first (``replayed == 0``), after a wait, a
    crash of another worker, a hand-over or a restart. ``replayed``: recorded steps it
    replays first (no notification is emitted for them). ``woken_by``: the event whose
    delivery made it runnable, if one did. ``runnable_since``: when it became runnable, where
    known (creation, the waking event's delivery), for wake-up latency."""

    attributes: Mapping[str, str]
    replayed: int
    woken_by: EventInfo | None
    runnable_since: float | None
    waited_since: float | None = None
    """With ``woken_by``: when the wait it ended began (the run's last recorded step)."""


@dataclass(frozen=True, slots=True)
class WorkflowCompleted(RunEvent):
    pass


@dataclass(frozen=True, slots=True)
class WorkflowFailed(RunEvent):
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class WorkflowCancelled(RunEvent):
    pass


@dataclass(frozen=True, slots=True)
class WorkflowSuspended(RunEvent):
    """The run ended without ending the instance: it waits (``wait_kind`` ``event``,
    ``channel`` or ``timer``, ``wait_key``, ``deadline``), or ``reason`` says why it stopped
    (``"handed over"``, ``"stopped"`` - shutdown, lease loss, database outage - or ``"recur"``
    when a new run continues it)."""

    reason: str
    wait_kind: str | None = None
    wait_key: str | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class ActivityEvent(RunEvent):
    activity_id: str
    activity: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ActivityStarted(ActivityEvent):
    pass


@dataclass(frozen=True, slots=True)
class ActivityCompleted(ActivityEvent):
    started_at: float


@dataclass(frozen=True, slots=True)
class ActivityFailed(ActivityEvent):
    """The activity's last attempt failed (retries exhausted or not retryable)."""

    started_at: float
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class ActivityRetried(ActivityEvent):
    """Attempt ``attempt`` failed and is recorded; the next starts at ``next_at``."""

    started_at: float
    error_type: str
    message: str
    next_at: float


@dataclass(frozen=True, slots=True)
class CompensationRun(ActivityEvent):
    """A compensation ran (``activity``: the compensation's name) and its outcome recorded."""

    started_at: float
    ok: bool
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class EventReceived(HookEvent):
    """An event was recorded in the instance's history (by the process that delivered it:
    ``send_event``, ``send_events``, the HTTP intake, or the worker taking it from the
    inbox). Delivered by ``send_event``/``send_events``, ``workflow`` is empty: that process
    does not look the instance up."""

    event: EventInfo


@dataclass(frozen=True, slots=True)
class MessagePublished(HookEvent):
    """A channel message committed. ``instance_id``/``workflow`` are empty when it was
    published from outside any workflow (``App.publish``)."""

    channel: str
    message_id: int


@dataclass(frozen=True, slots=True)
class MessageReceived(RunEvent):
    """A ``receive`` took a message (``since``: when the wait began)."""

    channel: str
    since: float


@dataclass(frozen=True, slots=True)
class TimerFired(RunEvent):
    """A ``sleep`` (or a wait's deadline: ``timed_out``) passed and was recorded;
    ``late_by``: seconds between the deadline and the record."""

    deadline: float
    late_by: float
    timed_out: bool
    since: float
    """When the wait began (the run's last recorded step before it)."""


@dataclass(frozen=True, slots=True)
class LeaseLost(RunEvent):
    """This worker lost its claim on the instance (another took it over); its run stops."""


@dataclass(frozen=True, slots=True)
class StartInfo:
    """What :meth:`Hooks.instance_attributes` is told about an instance being started."""

    workflow: str
    instance_id: str
    attributes: Mapping[str, str]
    """The attributes the caller gave (e.g. the HTTP ``traceparent`` header)."""
    runs_here: bool = False
    """This process creates the instance leased to itself and runs it at once (an eager
    start: `App.run`, or `App.start` with a free slot); its first run follows here unless the
    creation fails or finds the instance already there (an idempotent start)."""


@dataclass(frozen=True, slots=True)
class SendInfo:
    """What :meth:`Hooks.event_extensions` is told about an event an activity sends."""

    instance_id: str
    workflow: str
    activity_id: str
    worker_id: str
    type: str
    attributes: Mapping[str, str]
    """The sending instance's attributes."""


@dataclass(frozen=True, slots=True)
class HookStatistics:
    """Per hook (by position in ``hooks=[...]``): notifications delivered, raised, timed
    out, dropped because its queue was full; suppliers that raised count in ``failed``."""

    hook: str
    delivered: int
    failed: int
    timed_out: int
    dropped: int


class Hooks:
    """Base class of hooks: every method is a no-op; override what you need."""

    def instance_attributes(self, start: StartInfo) -> Mapping[str, str]:
        """Attributes to store with a new instance (strings; keys the caller gave win).
        Called synchronously in the task that starts it (its context is the caller's)."""
        return _EMPTY

    def event_extensions(self, send: SendInfo) -> Mapping[str, str]:
        """CloudEvents extension attributes to add to an event an activity sends through the
        outbox (extensions the activity gave win); stored with the event, so the relayer
        sends them. Called synchronously in the activity."""
        return _EMPTY

    async def on_workflow_started(self, event: WorkflowStarted) -> None: ...
    async def on_workflow_resumed(self, event: WorkflowResumed) -> None: ...
    async def on_workflow_completed(self, event: WorkflowCompleted) -> None: ...
    async def on_workflow_failed(self, event: WorkflowFailed) -> None: ...
    async def on_workflow_cancelled(self, event: WorkflowCancelled) -> None: ...
    async def on_workflow_suspended(self, event: WorkflowSuspended) -> None: ...
    async def on_activity_started(self, event: ActivityStarted) -> None: ...
    async def on_activity_completed(self, event: ActivityCompleted) -> None: ...
    async def on_activity_failed(self, event: ActivityFailed) -> None: ...
    async def on_activity_retried(self, event: ActivityRetried) -> None: ...
    async def on_compensation_run(self, event: CompensationRun) -> None: ...
    async def on_event_received(self, event: EventReceived) -> None: ...
    async def on_message_published(self, event: MessagePublished) -> None: ...
    async def on_message_received(self, event: MessageReceived) -> None: ...
    async def on_timer_fired(self, event: TimerFired) -> None: ...
    async def on_lease_lost(self, event: LeaseLost) -> None: ...


METHODS: Mapping[type[HookEvent], str] = MappingProxyType({
    WorkflowStarted: "on_workflow_started",
    WorkflowResumed: "on_workflow_resumed",
    WorkflowCompleted: "on_workflow_completed",
    WorkflowFailed: "on_workflow_failed",
    WorkflowCancelled: "on_workflow_cancelled",
    WorkflowSuspended: "on_workflow_suspended",
    ActivityStarted: "on_activity_started",
    ActivityCompleted: "on_activity_completed",
    ActivityFailed: "on_activity_failed",
    ActivityRetried: "on_activity_retried",
    CompensationRun: "on_compensation_run",
    EventReceived: "on_event_received",
    MessagePublished: "on_message_published",
    MessageReceived: "on_message_received",
    TimerFired: "on_timer_fired",
    LeaseLost: "on_lease_lost",
})
"""The method of :class:`Hooks` each notification goes to."""

__all__ = [
    "ActivityCompleted", "ActivityEvent", "ActivityFailed", "ActivityRetried",
    "ActivityStarted", "CompensationRun", "EventInfo", "EventReceived", "HookEvent",
    "HookStatistics", "Hooks", "LeaseLost", "MessagePublished", "MessageReceived", "RunEvent",
    "SendInfo", "StartInfo", "TimerFired", "WorkflowCancelled", "WorkflowCompleted",
    "WorkflowFailed", "WorkflowResumed", "WorkflowStarted", "WorkflowSuspended",
]
