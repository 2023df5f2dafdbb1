"""The trace of an instance that the starting process runs at once (`App.run`, `App.start`
with a free slot): no ``start`` span; its first run's span, opened at start, is the context
stored with the instance and the parent of every later run and wait."""

from __future__ import annotations

import time
from functools import partial

import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, sleep, workflow
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks
from romancy_trio.otel._tracing import _MAX_PENDING

from ..conftest import Backend


@activity
async def otel_eager_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def otel_eager(ctx: WorkflowContext, n: int) -> int:
    n = await otel_eager_step(ctx, n)
    await sleep(ctx, 0.1)  # a second run
    return n


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_run_at_once_roots_the_trace_in_its_first_run(backend: Backend) -> None:
    provider, exporter = _provider()
    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_eager, otel_eager_step],
                        hooks=[OpenTelemetryHooks(tracer_provider=provider)]) as app:
        assert await app.run(otel_eager, 1, timeout=30) == 2
    # closing the app told the hooks everything queued: every span is in
    spans = list(exporter.get_finished_spans())
    assert sorted(s.name for s in spans) == [
        "activity otel_eager_step", "run otel_eager", "run otel_eager", "wait timer"]
    assert len({s.context.trace_id for s in spans}) == 1
    first, second = sorted((s for s in spans if s.name == "run otel_eager"),
                           key=lambda s: s.start_time or 0)
    assert _parent(first) is None  # no caller span: the first run is the root
    root = first.context.span_id
    by_name = {s.name: s for s in spans}
    assert _parent(second) == root
    assert _parent(by_name["wait timer"]) == root
    assert _parent(by_name["activity otel_eager_step"]) == root
    attributes = dict(first.attributes or {})
    assert attributes["romancy.run_no"] == 1 and attributes["romancy.workflow"] == "otel_eager"
    assert attributes["romancy.worker_id"] == app.worker_id
    assert dict(second.attributes or {})["romancy.instance_id"] == \
        attributes["romancy.instance_id"]


async def test_an_idempotent_start_again_leaves_one_trace(backend: Backend) -> None:
    provider, exporter = _provider()
    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_eager, otel_eager_step],
                        hooks=[OpenTelemetryHooks(tracer_provider=provider)]) as app:
        async with trio.open_nursery() as nursery:  # two starts of one id at once, then one
            for _ in range(2):
                nursery.start_soon(partial(app.start, otel_eager, 5, instance_id="same-id"))
        assert await app.start(otel_eager, 5, instance_id="same-id") == "same-id"
        assert await app.result("same-id", timeout=30) == 6
        assert await app.start(otel_eager, 5, instance_id="same-id") == "same-id"  # ended
    # closing the app told the hooks everything queued: every span is in
    spans = list(exporter.get_finished_spans())
    assert sorted(s.name for s in spans) == [
        "activity otel_eager_step", "run otel_eager", "run otel_eager", "wait timer"]
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1 and len({s.context.trace_id for s in spans}) == 1
    assert {_parent(s) for s in spans if s.parent is not None} == {roots[0].context.span_id}


async def test_a_first_run_span_never_adopted_ends_as_the_start_span() -> None:
    """More eager starts than are remembered before their runs begin here (the hooks' task
    lags far behind, or the runs happen elsewhere after a crash of this process's worker):
    the oldest created instance's span ends as its ``start`` span, so its later runs keep
    their parent; one of an instance never created is dropped unsent."""
    provider, exporter = _provider()
    hooks = OpenTelemetryHooks(tracer_provider=provider)
    empty = h.frozen_map(None)
    stored = {}
    for i in range(_MAX_PENDING + 2):
        iid = f"i{i}"
        stored[iid] = h.frozen_map(hooks.instance_attributes(
            h.StartInfo("wf", iid, empty, runs_here=True)))
        if i != 1:  # "i1": its start failed (or found it there)
            await hooks.on_workflow_started(h.WorkflowStarted(iid, "wf", "w", time.time(),
                                                              stored[iid]))
    [start] = exporter.get_finished_spans()  # "i0" evicted and ended; "i1" dropped unsent
    assert start.name == "start wf"
    assert dict(start.attributes or {})["romancy.instance_id"] == "i0"
    assert stored["i0"]["traceparent"].split("-")[2] == f"{start.context.span_id:016x}"
    # a run of it elsewhere (another process's hooks: the stored context is all it has)
    other, exported = _provider()
    elsewhere = OpenTelemetryHooks(tracer_provider=other)
    now = time.time()
    await elsewhere.on_workflow_resumed(h.WorkflowResumed(
        "i0", "wf", "w2", now, 1, 2, stored["i0"], 0, None, now))
    await elsewhere.on_workflow_completed(h.WorkflowCompleted("i0", "wf", "w2", now, 1, 2))
    [run] = exported.get_finished_spans()
    assert run.name == "run wf" and _parent(run) == start.context.span_id
    assert run.context.trace_id == start.context.trace_id
