"""OpenTelemetry for romancy_trio: traces and metrics from the app's hooks.

Needs the ``otel`` extra (the OpenTelemetry API); configure the SDK (exporters) in your
program as usual::

    from romancy_trio.otel import OpenTelemetryHooks, observe_app

    async with open_app(url, hooks=[OpenTelemetryHooks()]) as app:
        observe_app(app)      # gauges read from the app's statistics
        ...

Built only on the public facade (``romancy_trio``, ``romancy_trio.hooks``): an
import-linter contract keeps it so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import trio
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from romancy_trio import App, Backlog, StorageUnavailableError
from romancy_trio import hooks as h

from ._counts import counters
from ._tracing import Tracing, carrier_of, context_of

_log = logging.getLogger("romancy_trio.otel")

_SCOPE = "romancy_trio"
_MAX_LABELS = 4096
"""Distinct histogram attribute sets kept for reuse (past it the cache starts over)."""
_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


_KEYS: dict[str, tuple[str, ...]] = {"w": ("workflow",),
                                     "wao": ("workflow", "activity", "outcome")}


class OpenTelemetryHooks(h.Hooks):
    """Spans (see `romancy_trio.otel._tracing`) and metrics for every instance this process
    starts or runs. ``tracer_provider``/``meter_provider``: default, the global ones.

    The counters are observable counters over totals kept here (see `._counts`: the SDK
    reads them at each collection); the durations are histograms."""

    def __init__(self, *, tracer_provider: TracerProvider | None = None,
                 meter_provider: MeterProvider | None = None) -> None:
        self.tracing = Tracing(trace.get_tracer(_SCOPE, tracer_provider=tracer_provider))
        self.counts = counters(_SCOPE, meter_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self.activity_duration = meter.create_histogram(
            "romancy.activity.duration", unit="s", description="Activity attempt duration",
            explicit_bucket_boundaries_advisory=_SECONDS)
        self.wakeup_latency = meter.create_histogram(
            "romancy.wakeup.latency", unit="s",
            description="From becoming runnable (commit of the waking event, a timer's "
                        "deadline, creation) to running on a worker",
            explicit_bucket_boundaries_advisory=_SECONDS)
        self._labels: dict[tuple[str, ...], dict[str, str]] = {}

    def _label(self, *values: str) -> dict[str, str]:
        """The attribute set of a histogram measurement, made once per distinct set (no dict
        per measurement); keyed by the values, in the positions the callers below use."""
        labels = self._labels.get(values)
        if labels is None:
            if len(self._labels) >= _MAX_LABELS:
                self._labels.clear()
            labels = self._labels[values] = dict(zip(_KEYS[values[0]], values[1:],
                                                     strict=True))
        return labels

    # -- suppliers ----------------------------------------------------------------------
    def instance_attributes(self, start: h.StartInfo) -> Mapping[str, str]:
        return self.tracing.start_attributes(start)

    def event_extensions(self, send: h.SendInfo) -> Mapping[str, str]:
        return self.tracing.send_extensions(send)

    # -- notifications ------------------------------------------------------------------
    async def on_workflow_started(self, event: h.WorkflowStarted) -> None:
        self.tracing.created(event)
        self.counts.starts.add(event.workflow)

    async def on_workflow_resumed(self, event: h.WorkflowResumed) -> None:
        self.tracing.resumed(event)
        if event.runnable_since is not None:
            self.wakeup_latency.record(max(event.at - event.runnable_since, 0.0),
                                       self._label("w", event.workflow))

    async def on_workflow_completed(self, event: h.WorkflowCompleted) -> None:
        self.tracing.ended(event, outcome="completed")
        self.counts.ends.add(event.workflow, "completed")

    async def on_workflow_failed(self, event: h.WorkflowFailed) -> None:
        self.tracing.ended(event, (event.error_type, event.message), outcome="failed")
        self.counts.ends.add(event.workflow, "failed")

    async def on_workflow_cancelled(self, event: h.WorkflowCancelled) -> None:
        self.tracing.ended(event, outcome="cancelled")
        self.counts.ends.add(event.workflow, "cancelled")

    async def on_workflow_suspended(self, event: h.WorkflowSuspended) -> None:
        self.tracing.ended(event, outcome=event.reason)

    async def on_lease_lost(self, event: h.LeaseLost) -> None:
        self.tracing.ended(event, ("LeaseLost", "another worker took the instance over"),
                           outcome="lease lost")
        self.counts.lease_losses.add(event.workflow)

    async def on_activity_completed(self, event: h.ActivityCompleted) -> None:
        self._attempt(event, "completed")

    async def on_activity_failed(self, event: h.ActivityFailed) -> None:
        self._attempt(event, "failed")

    async def on_activity_retried(self, event: h.ActivityRetried) -> None:
        self._attempt(event, "retried")

    def _attempt(self, event: h.ActivityCompleted | h.ActivityFailed | h.ActivityRetried,
                 outcome: str) -> None:
        self.tracing.activity_ended(event)
        self.counts.attempts.add(event.workflow, event.activity, outcome)
        self.activity_duration.record(max(event.at - event.started_at, 0.0),
                                      self._label("wao", event.workflow, event.activity, outcome))

    async def on_compensation_run(self, event: h.CompensationRun) -> None:
        self.tracing.compensation(event)

    async def on_timer_fired(self, event: h.TimerFired) -> None:
        self.tracing.waited(event)
        self.wakeup_latency.record(max(event.late_by, 0.0), self._label("w", event.workflow))

    async def on_message_received(self, event: h.MessageReceived) -> None:
        self.tracing.waited(event)
        self.counts.messages.add(event.channel, "received")

    async def on_message_published(self, event: h.MessagePublished) -> None:
        self.counts.messages.add(event.channel, "published")

    async def on_event_received(self, event: h.EventReceived) -> None:
        self.counts.events.add(event.event.type)


def observe_app(app: App, *, meter_provider: MeterProvider | None = None) -> None:
    """Observable instruments read from ``app``'s statistics at each collection: claims,
    runs in progress, listener reconnects (gaps) and fallbacks, hook failures and drops."""
    meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)

    def scheduler(field: str) -> Iterable[Observation]:
        stats = app.statistics()
        return [] if stats is None else [Observation(getattr(stats, field))]

    def claims(options: CallbackOptions) -> Iterable[Observation]:
        return scheduler("claims")

    def running(options: CallbackOptions) -> Iterable[Observation]:
        return scheduler("running")

    def gaps(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(app.hub.statistics().gaps)]

    def fallbacks(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(app.hub.statistics().fallbacks)]

    def hook_problems(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(s.failed + s.timed_out + s.dropped, {"hook": s.hook})
                for s in app.hook_statistics()]

    meter.create_observable_counter("romancy.claims", [claims],
                                    description="Claim statements this worker ran")
    meter.create_observable_gauge("romancy.runs.active", [running],
                                  description="Runs in progress on this worker")
    meter.create_observable_counter(
        "romancy.listener.gaps", [gaps],
        description="Listener reconnects (notifications may have been lost: a rescan follows)")
    meter.create_observable_counter("romancy.listener.fallbacks", [fallbacks],
                                    description="Waits that ended on the fallback timer")
    meter.create_observable_counter("romancy.hooks.problems", [hook_problems],
                                    description="Hook notifications failed, timed out, dropped")


async def record_backlog(app: App, *, interval: float = 15.0,
                         meter_provider: MeterProvider | None = None) -> None:
    """Sample ``app.backlog()`` every ``interval`` seconds (until cancelled: run it in your
    nursery) into observable gauges: ``romancy.backlog.runnable``, ``romancy.backlog.waiting``,
    ``romancy.outbox.pending``, ``romancy.outbox.failed`` (delivery failures: rows that used
    their last attempt), ``romancy.channel.depth`` (per channel) and
    ``romancy.backlog.stranded`` (instances of this app's workflows whose code version none
    of its workers resumes, per ``version``: ``'<workflow>|<version>'``). Counts are for the
    whole database, so one process recording them is enough (``stranded``: one per
    deployed version). A database outage does not end it: the gauges report nothing while
    the database cannot be read (one WARNING on the ``romancy_trio.otel`` logger when it
    starts, one when sampling works again); any other error propagates."""
    meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
    last: list[Backlog] = []

    def gauge(name: str, field: str, description: str) -> None:
        def read(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(last[-1], field))] if last else []
        meter.create_observable_gauge(name, [read], description=description)

    gauge("romancy.backlog.runnable", "runnable", "Instances runnable and not yet claimed")
    gauge("romancy.backlog.waiting", "waiting", "Instances waiting for an event, message or timer")
    gauge("romancy.outbox.pending", "outbox_pending", "Outbox events not delivered yet")
    gauge("romancy.outbox.failed", "outbox_failed", "Outbox events whose delivery failed")

    def depth(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"channel": c}) for c, n in last[-1].channels.items()] if last \
            else []

    meter.create_observable_gauge("romancy.channel.depth", [depth],
                                  description="Messages not yet delivered, per channel")

    def stranded(options: CallbackOptions) -> Iterable[Observation]:
        if not last:
            return []
        per = last[-1].stranded_versions
        return [Observation(n, {"version": v}) for v, n in per.items()] or [Observation(0)]

    meter.create_observable_gauge(
        "romancy.backlog.stranded", [stranded],
        description="Instances no worker of this app may resume (their code version)")
    down_since: float | None = None
    while True:
        try:
            sample = await app.backlog()
        except StorageUnavailableError as exc:  # an outage: the sampling goes on after it
            last.clear()  # no stale figures while the database cannot be read
            if down_since is None:
                down_since = trio.current_time()
                _log.warning("backlog not sampled: %s; the gauges report nothing until the "
                             "database answers (tried every %s s)", exc, interval)
        else:
            last[:] = [sample]
            if down_since is not None:
                _log.warning("backlog sampled again after %.1f s",
                             trio.current_time() - down_since)
                down_since = None
        await trio.sleep(interval)


__all__ = ["OpenTelemetryHooks", "carrier_of", "context_of", "observe_app", "record_backlog"]
