"""Sampling is the SDK's: a workflow its sampler leaves out exports no span in any run (its
stored trace context says so), while metrics count every workflow; the counters of several
apps on one meter provider add up, and their attribute sets are bounded."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import NoOpTracerProvider

from romancy_trio import (
    ActivityContext,
    Hooks,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    workflow,
)
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks

from ..conftest import Backend
from ..test_outbox import until
from .test_metrics_http_logs import _points, _sum


@activity
async def otel_sampled_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def otel_sampled(ctx: WorkflowContext, n: int) -> int:
    n = await otel_sampled_step(ctx, n)
    await sleep(ctx, 0.2)  # a second run, decided by the stored context too
    return n


class Runs(Hooks):
    def __init__(self) -> None:
        self.resumed: list[h.WorkflowResumed] = []
        self.ended: list[str] = []

    async def on_workflow_resumed(self, event: h.WorkflowResumed) -> None:
        self.resumed.append(event)

    async def on_workflow_completed(self, event: h.WorkflowCompleted) -> None:
        self.ended.append(event.instance_id)


async def test_a_workflow_the_sampler_leaves_out_exports_nothing_and_is_still_counted(
        backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    # roots are not sampled; a span with a parent follows its parent's decision
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caller = TracerProvider().get_tracer("caller")  # a sampled request elsewhere
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    runs = Runs()
    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_sampled, otel_sampled_step],
                        hooks=[OpenTelemetryHooks(tracer_provider=provider,
                                                  meter_provider=meters), runs]) as app:
        quiet = await app.start(otel_sampled, 1)
        with caller.start_as_current_span("request") as request:
            traced = await app.start(otel_sampled, 10)
        assert await app.result(quiet, timeout=30) == 2
        assert await app.result(traced, timeout=30) == 11
        await until(lambda: sorted(runs.ended) == sorted([quiet, traced]), timeout=30)
    spans = exporter.get_finished_spans()
    assert {(s.attributes or {}).get("romancy.instance_id") for s in spans} == {traced}
    # started and run here at once: the first run is the instance's first span, under the
    # request, and the parent of what follows
    assert sorted(s.name for s in spans) == [
        "activity otel_sampled_step", "run otel_sampled", "run otel_sampled", "wait timer"]
    first, second = sorted((s for s in spans if s.name == "run otel_sampled"),
                           key=lambda s: s.start_time or 0)
    assert first.parent is not None and second.parent is not None
    assert first.parent.span_id == request.get_span_context().span_id
    assert second.parent.span_id == first.context.span_id
    # every run of the left-out one was handed its context, whose flags say "not sampled"
    quiet_runs = [r for r in runs.resumed if r.instance_id == quiet]
    assert len(quiet_runs) == 2
    assert {int(r.attributes["traceparent"][-2:], 16) & 1 for r in quiet_runs} == {0}
    points = _points(reader)
    assert _sum(points, "romancy.workflow.starts", workflow="otel_sampled") == 2
    assert _sum(points, "romancy.workflow.ends", status="completed") == 2
    assert _sum(points, "romancy.activity.attempts", outcome="completed") == 2


async def test_counters_of_two_apps_on_one_meter_provider_add_up(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])

    def hooks() -> list[Hooks]:
        return [OpenTelemetryHooks(meter_provider=meters)]

    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_sampled, otel_sampled_step], hooks=hooks()) as one, \
            open_app(backend.url, config=backend.config,
                     workflows=[otel_sampled, otel_sampled_step], hooks=hooks()) as two:
        ids = [await one.start(otel_sampled, n) for n in range(3)]
        ids += [await two.start(otel_sampled, n) for n in range(2)]
        for iid in ids:
            await one.result(iid, timeout=30)
        await until(lambda: _sum(_points(reader), "romancy.workflow.ends") == 5, timeout=30)
    points = _points(reader)
    assert _sum(points, "romancy.workflow.starts", workflow="otel_sampled") == 5
    assert _sum(points, "romancy.activity.attempts", activity="otel_sampled_step") == 5


async def test_counter_attribute_sets_are_bounded() -> None:
    reader = InMemoryMetricReader()
    hook = OpenTelemetryHooks(tracer_provider=NoOpTracerProvider(),
                              meter_provider=MeterProvider(metric_readers=[reader]))
    for i in range(2005):  # as many workflow names
        await hook.on_workflow_started(h.WorkflowStarted(f"i{i}", f"wf{i}", "w", 0.0,
                                                         h.frozen_map()))
    points = _points(reader)["romancy.workflow.starts"]
    overflow = [p for p in points if p.attributes.get("otel.metric.overflow")]
    assert len(points) == 2001
    assert [p.value for p in overflow] == [5]
    assert sum(p.value for p in points) == 2005
