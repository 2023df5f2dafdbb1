"""Traces: one per workflow instance, across its runs, workers and days.

At start the instance gets its first span, a child of the caller's current span (or of the
``traceparent`` the caller gave, e.g. the HTTP header):

- an instance that the starting process runs at once (an eager start: `App.run`, or
  `App.start` with a free slot) gets no span of its own at start: its first run's ``run
  <workflow>`` span is opened then, and the run adopts it (a start costs no extra span);
- any other gets a ``start <workflow>`` span.

The instance's context - the parent of every later run and wait - is stored with it as W3C
trace-context attributes: the ``traceparent`` the caller gave, else that first span's. Every
later run is a ``run <workflow>`` span whose parent is that context, wherever and whenever it
runs; activities (one span per attempt) and compensations are children of their run; a wait
is a ``wait ...`` span under the instance's
context, from its last step before the wait until the wait ended (a wait ended by an event is
told by the run it woke once that run records a step: a run killed before that tells nothing,
and the one that takes over tells it once). A run woken by a CloudEvent
that carries ``traceparent`` links to it. Events sent through the outbox carry the
``traceparent`` of a ``send <type>`` span of the instance's trace.

Spans are made from the notifications after the fact, with the times they carry, so a span
never waits in memory across a suspension: the context is what travels.

Sampling is the SDK's (its sampler decides at the instance's first span; the stored context carries
the decision to every run, as the default ``ParentBased`` sampler reads it). A span whose
parent is not sampled gets its attributes only if it records anyway, and a run that does not
record makes no activity, compensation or wait spans: an unsampled workflow builds no
attributes and costs little more than its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from romancy_trio import hooks as h

_W3C = TraceContextTextMapPropagator()
_MAX_RUNS = 10_000
"""Open runs remembered at most (a run whose closing notification was dropped is forgotten)."""
_MAX_PENDING = 1024
"""First-run spans opened at start and not yet adopted, at most (one whose instance was not
created - the start failed, or found it there - is never adopted: it is dropped unsent)."""


def _ns(at: float) -> int:
    return int(at * 1e9)


_PARSED: dict[tuple[str, str], tuple[Context, bool] | None] = {}
"""Parsed carriers: the context and whether it is sampled (None: not a valid one)."""
_MAX_PARSED = 4096


def _parent_of(carrier: Mapping[str, str]) -> tuple[Context, bool] | None:
    """`context_of` ``carrier``, and whether that parent is sampled."""
    parent = carrier.get("traceparent")
    if parent is None:
        return None
    key = (parent, carrier.get("tracestate", ""))
    if key in _PARSED:  # every run of an instance parses the same one
        return _PARSED[key]
    ctx = _W3C.extract(dict(carrier))
    sc = trace.get_current_span(ctx).get_span_context()
    found = (ctx, sc.trace_flags.sampled) if sc.is_valid else None
    if len(_PARSED) >= _MAX_PARSED:
        _PARSED.clear()
    _PARSED[key] = found
    return found


def context_of(carrier: Mapping[str, str]) -> Context | None:
    """The remote parent a ``traceparent`` (and ``tracestate``) describe, if valid."""
    found = _parent_of(carrier)
    return None if found is None else found[0]


def carrier_of(span: Span) -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) naming ``span``: what the W3C propagator's
    ``inject`` writes, formatted here without building a context for it."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return {}
    carrier = {"traceparent": f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"}
    if sc.trace_state:
        carrier["tracestate"] = sc.trace_state.to_header()
    return carrier


def _remembered_carrier(span: Span) -> dict[str, str]:
    """`carrier_of` ``span``, seeding `context_of`'s cache with what parsing it gives (when it
    has no tracestate), so the instance's first run here does not parse it again."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return {}
    parent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
    if sc.trace_state:
        return {"traceparent": parent, "tracestate": sc.trace_state.to_header()}
    if len(_PARSED) >= _MAX_PARSED:
        _PARSED.clear()
    flags = sc.trace_flags
    _PARSED[parent, ""] = (trace.set_span_in_context(trace.NonRecordingSpan(
        trace.SpanContext(sc.trace_id, sc.span_id, is_remote=True, trace_flags=flags,
                          trace_state=None)), Context()), flags.sampled)
    return {"traceparent": parent}


def _sampled(parent: Context | None) -> bool:
    """Whether ``parent`` is sampled (no parent: a root, the sampler decides)."""
    return parent is None or trace.get_current_span(parent).get_span_context().trace_flags.sampled


def _ids(event: h.HookEvent) -> dict[str, str | int]:
    out: dict[str, str | int] = {"romancy.instance_id": event.instance_id,
                                 "romancy.worker_id": event.worker_id}
    if event.workflow:
        out["romancy.workflow"] = event.workflow
    if isinstance(event, h.RunEvent):
        out["romancy.run_no"] = event.run_no
    return out


@dataclass(slots=True)
class _Wait:
    """The event wait a run was woken from, told once the run records a step past it."""

    name: str
    links: list[Link]
    start: float
    end: float
    attributes: dict[str, str | int]


@dataclass(slots=True)
class _Pending:
    """A first run's span, opened at an eager start; adopted by the run's `Tracing.resumed`."""

    span: Span
    workflow: str
    created: bool = False
    """`WorkflowStarted` told: the instance exists, and its stored context names this span."""


@dataclass(slots=True)
class _Run:
    span: Span
    parent: Context | None
    """The instance's context (the parent of the run and of its waits)."""
    recording: bool
    """Whether the run's span records (sampled): if not, it makes no child spans."""
    wait: _Wait | None = None
    context: Context | None = None
    """The run's span as a parent (made at its first child)."""

    def as_parent(self) -> Context:
        if self.context is None:
            self.context = trace.set_span_in_context(self.span)
        return self.context


class Tracing:
    """The span bookkeeping of `OpenTelemetryHooks` (one per app process)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._runs: dict[tuple[str, int], _Run] = {}
        self._pending: dict[str, _Pending] = {}

    # -- suppliers (synchronous, in the caller's context) -----------------------------------
    def start_attributes(self, start: h.StartInfo) -> Mapping[str, str]:
        given = context_of(start.attributes)
        if start.runs_here:  # the first run's span, opened now: it names the instance
            pending = self._pending.get(start.instance_id)
            if pending is None:
                span = self.tracer.start_span(f"run {start.workflow}", context=given,
                                              kind=SpanKind.CONSUMER)
                if len(self._pending) >= _MAX_PENDING:
                    self._evict()
                self._pending[start.instance_id] = _Pending(span, start.workflow)
            else:  # a start of the same id in flight (or one that failed): whichever creates
                span = pending.span  # the instance, the run adopts the span it names
        else:
            span = self.tracer.start_span(
                f"start {start.workflow}", context=given, kind=SpanKind.PRODUCER,
                attributes={"romancy.instance_id": start.instance_id,
                            "romancy.workflow": start.workflow})
            span.end()
        return {} if given is not None else _remembered_carrier(span)

    def created(self, event: h.WorkflowStarted) -> None:
        """The instance exists: its first-run span, if opened here, is its stored context."""
        pending = self._pending.get(event.instance_id)
        if pending is not None:
            pending.created = True

    def _evict(self) -> None:
        """Make room: drop the oldest first-run span not adopted. One of an instance that
        was created (its stored context names it) ends as that instance's ``start`` span, so
        later runs keep their parent; one of an instance never created is dropped unsent."""
        iid = next(iter(self._pending))
        pending = self._pending.pop(iid)
        if pending.created:
            pending.span.update_name(f"start {pending.workflow}")
            if pending.span.is_recording():
                pending.span.set_attributes({"romancy.instance_id": iid,
                                             "romancy.workflow": pending.workflow})
            pending.span.end()

    def send_extensions(self, send: h.SendInfo) -> Mapping[str, str]:
        parent = context_of(send.attributes)
        sampled = _sampled(parent)
        span = self.tracer.start_span(
            f"send {send.type}", context=parent, kind=SpanKind.PRODUCER,
            attributes=_send_attributes(send) if sampled else None)
        if not sampled and span.is_recording():
            span.set_attributes(_send_attributes(send))
        span.end()
        return carrier_of(span)

    # -- runs -------------------------------------------------------------------------------
    def resumed(self, event: h.WorkflowResumed) -> None:
        found = _parent_of(event.attributes)
        parent, sampled = (None, True) if found is None else found
        links = []
        woken = event.woken_by
        if woken is not None and (remote := context_of(woken.extensions)) is not None:
            links.append(Link(trace.get_current_span(remote).get_span_context(),
                              {"cloudevents.event_id": woken.id,
                               "cloudevents.event_type": woken.type}))
        pending = self._pending.pop(event.instance_id, None)
        if pending is not None and pending.created:  # the first run of an eager start: its
            # span is open already (one not created is of a start that found the instance)
            span = pending.span
            recording = span.is_recording()
            if recording:  # (never woken by an event: no links)
                span.set_attributes(_run_attributes(event))
        else:
            span = self.tracer.start_span(
                f"run {event.workflow}", context=parent, kind=SpanKind.CONSUMER, links=links,
                start_time=_ns(event.at),
                attributes=_run_attributes(event) if sampled else None)
            recording = span.is_recording()
            if recording and not sampled:
                span.set_attributes(_run_attributes(event))
        if len(self._runs) >= _MAX_RUNS:
            self._runs.pop(next(iter(self._runs)))
        run = self._runs[event.instance_id, event.epoch] = _Run(span, parent, recording)
        if recording and woken is not None and event.waited_since is not None:
            # told once this run records a step: a run that dies first (and the one that
            # takes over, woken by the same event) must not tell it twice
            run.wait = _Wait(f"wait event {woken.type}", links, event.waited_since,
                             event.runnable_since or event.at,
                             {**_ids(event), "romancy.wait.kind": "event",
                              "cloudevents.event_id": woken.id})

    def _progressed(self, run: _Run) -> None:
        wait, run.wait = run.wait, None
        if wait is not None:
            span = self.tracer.start_span(wait.name, context=run.parent, links=wait.links,
                                          start_time=_ns(wait.start),
                                          attributes=wait.attributes)
            span.end(end_time=_ns(wait.end))

    def ended(self, event: h.RunEvent, error: tuple[str, str] | None = None,
              outcome: str = "") -> None:
        run = self._runs.pop((event.instance_id, event.epoch), None)
        pending = None if run is not None else self._pending.pop(event.instance_id, None)
        if pending is not None and pending.created:
            # an eager start's run that ended without a `resumed` (its input could not be
            # read, or that notification was dropped from a full queue)
            run = _Run(pending.span, None, pending.span.is_recording())
            if run.recording:
                run.span.set_attributes(_ids(event))
        if run is None or not run.recording:
            return
        if outcome not in ("stopped", "lease lost"):
            self._progressed(run)
        if outcome:
            run.span.set_attribute("romancy.outcome", outcome)
        if error is not None:
            _fail(run.span, *error, at=event.at)
        run.span.end(end_time=_ns(event.at))

    def waited(self, event: h.TimerFired | h.MessageReceived) -> None:
        run = self._runs.get((event.instance_id, event.epoch))
        if run is not None:
            if not run.recording:
                return
            self._progressed(run)
        if isinstance(event, h.TimerFired):
            name, kind = ("wait timeout" if event.timed_out else "wait timer"), "timer"
        else:
            name, kind = f"wait channel {event.channel}", "channel"
        span = self.tracer.start_span(name, context=None if run is None else run.parent,
                                      start_time=_ns(event.since),
                                      attributes={**_ids(event), "romancy.wait.kind": kind})
        span.end(end_time=_ns(event.at))

    # -- activities -------------------------------------------------------------------------
    def activity_ended(self, event: h.ActivityCompleted | h.ActivityFailed | h.ActivityRetried
                       ) -> None:
        """The attempt's span, made once its outcome is recorded (an attempt cut short by a
        crash or a lost lease makes none)."""
        run = self._runs.get((event.instance_id, event.epoch))
        if run is None or not run.recording:
            return
        self._progressed(run)
        span = self.tracer.start_span(
            f"activity {event.activity}", context=run.as_parent(),
            start_time=_ns(event.started_at),
            attributes=_activity_attributes(event))
        if isinstance(event, h.ActivityRetried):
            span.set_attribute("romancy.activity.retry_at", event.next_at)
        if not isinstance(event, h.ActivityCompleted):
            _fail(span, event.error_type, event.message, at=event.at)
        span.end(end_time=_ns(event.at))

    def compensation(self, event: h.CompensationRun) -> None:
        run = self._runs.get((event.instance_id, event.epoch))
        if run is not None:
            if not run.recording:
                return
            self._progressed(run)
        span = self.tracer.start_span(
            f"compensate {event.activity}", context=None if run is None else run.as_parent(),
            start_time=_ns(event.started_at),
            attributes={**_ids(event), "romancy.activity_id": event.activity_id,
                        "romancy.activity": event.activity})
        if not event.ok:
            _fail(span, event.error_type or "", "compensation failed", at=event.at)
        span.end(end_time=_ns(event.at))


def _run_attributes(event: h.WorkflowResumed) -> dict[str, str | int]:
    attributes = _ids(event)  # added to in place: one dict per span
    attributes["romancy.replayed"] = event.replayed
    return attributes


def _activity_attributes(event: h.ActivityCompleted | h.ActivityFailed | h.ActivityRetried
                         ) -> dict[str, str | int]:
    attributes = _ids(event)
    attributes["romancy.activity_id"] = event.activity_id
    attributes["romancy.activity"] = event.activity
    attributes["romancy.activity.attempt"] = event.attempt
    return attributes


def _send_attributes(send: h.SendInfo) -> dict[str, str]:
    return {"romancy.instance_id": send.instance_id, "romancy.workflow": send.workflow,
            "romancy.worker_id": send.worker_id, "romancy.activity_id": send.activity_id,
            "cloudevents.event_type": send.type}


def _fail(span: Span, error_type: str, message: str, *, at: float) -> None:
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
    span.add_event("exception", {"exception.type": error_type, "exception.message": message},
                   timestamp=_ns(at))
