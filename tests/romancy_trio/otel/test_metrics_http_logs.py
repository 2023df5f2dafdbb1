"""Metrics read back from the SDK's in-memory reader after a known workload; the HTTP
``traceparent`` of ``POST /workflows/...`` continues into the runs; JSON log records name the
instance, workflow and worker."""

from __future__ import annotations

import io
import json
import logging
from functools import partial
from typing import Any

import httpx
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from romancy_trio import (
    ActivityContext,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    activity,
    open_app,
    subscribe,
    wait_event,
    workflow,
)
from romancy_trio.asgi import serve_http
from romancy_trio.logs import ContextFilter, JsonFormatter
from romancy_trio.otel import OpenTelemetryHooks, observe_app, record_backlog

from ..conftest import Backend
from ..test_outbox import until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@activity(retry=RetryPolicy(max_attempts=2, initial_interval=0.01))
async def otel_maybe(ctx: ActivityContext, fail: bool) -> str:
    logging.getLogger("tests.otel.activity").warning("attempt in activity")
    if fail:
        raise ValueError("asked to fail")
    return "ok"


@workflow
async def otel_one_step(ctx: WorkflowContext, fail: bool) -> str:
    return await otel_maybe(ctx, fail)


@workflow
async def otel_listener(ctx: WorkflowContext, channel: str) -> None:
    await subscribe(ctx, channel, mode="competing")
    await wait_event(ctx, "otel.never", timeout=600)


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def _sum(points: dict[str, list[Any]], name: str, **labels: str) -> int:
    return sum(int(p.value) for p in points.get(name, [])
               if all(p.attributes.get(k) == v for k, v in labels.items()))


def _count(points: dict[str, list[Any]], name: str, **labels: str) -> int:
    return sum(int(p.count) for p in points.get(name, [])
               if all(p.attributes.get(k) == v for k, v in labels.items()))


async def test_metrics_match_a_known_workload(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with open_app(backend.url, config=backend.config, workflows=[otel_one_step, otel_maybe],
                        hooks=[OpenTelemetryHooks(meter_provider=meters)]) as app:
        observe_app(app, meter_provider=meters)
        ids = [await app.start(otel_one_step, n in (3, 7)) for n in range(10)]
        failed = 0
        for iid in ids:
            try:
                assert await app.result(iid, timeout=60) == "ok"
            except WorkflowFailedError:
                failed += 1
        assert failed == 2

        def settled() -> bool:
            points = _points(reader)
            return _sum(points, "romancy.workflow.ends") == 10 and \
                _count(points, "romancy.activity.duration") == 12
        await until(settled, timeout=30)
        points = _points(reader)
    assert _sum(points, "romancy.workflow.starts", workflow="otel_one_step") == 10
    assert _sum(points, "romancy.workflow.ends", status="completed") == 8
    assert _sum(points, "romancy.workflow.ends", status="failed") == 2
    # 8 attempts succeeded; each failing instance: one retried attempt, one final failure
    assert _sum(points, "romancy.activity.attempts", outcome="completed") == 8
    assert _sum(points, "romancy.activity.attempts", outcome="retried") == 2
    assert _sum(points, "romancy.activity.attempts", outcome="failed") == 2
    assert _count(points, "romancy.activity.duration", activity="otel_maybe") == 12
    assert _count(points, "romancy.wakeup.latency") == 10  # each instance's first run
    assert _sum(points, "romancy.lease.losses") == 0
    assert _sum(points, "romancy.claims") >= 1
    assert _sum(points, "romancy.hooks.problems") == 0


async def test_http_traceparent_continues_into_the_runs_and_logs_carry_context(
        backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.otel.activity")
    logger.addHandler(handler)
    try:
        async with open_app(backend.url, config=backend.config,
                            workflows=[otel_one_step, otel_maybe],
                            worker_id="w-http",
                            hooks=[OpenTelemetryHooks(tracer_provider=provider)]) as app, \
                trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, app, port=0))
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://127.0.0.1:{port}/workflows/otel_one_step", json={"input": False},
                    headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
            assert response.status_code == 202, response.text
            iid = response.json()["instance_id"]
            assert await app.result(iid, timeout=30) == "ok"
            await until(lambda: any(s.name == "run otel_one_step" and s.end_time
                                    for s in exporter.get_finished_spans()), timeout=30)
            nursery.cancel_scope.cancel()
    finally:
        logger.removeHandler(handler)
    spans = exporter.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in spans} == {TRACE}
    run = next(s for s in spans if s.name == "run otel_one_step")
    assert run.parent is not None and f"{run.parent.span_id:016x}" == PARENT
    activity_span = next(s for s in spans if s.name == "activity otel_maybe")
    assert activity_span.parent is not None
    assert activity_span.parent.span_id == run.context.span_id
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records and records[0]["message"] == "attempt in activity"
    assert {(r["instance_id"], r["workflow"], r["worker_id"]) for r in records} == {
        (iid, "otel_one_step", "w-http")}


async def test_backlog_gauges_count_what_waits(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_listener, otel_one_step, otel_maybe]) as app:
        waiting = [await app.start(otel_listener, "jobs") for _ in range(2)]
        for iid in waiting:
            await until(lambda iid=iid: _is_waiting(app, iid), timeout=30)
        await app.publish_many("jobs", ["a", "b", "c"])
    # a second process that runs no workflows: three instances stay runnable
    async with open_app(backend.url, config=backend.config, run_workers=False,
                        workflows=[otel_listener, otel_one_step, otel_maybe]) as app, \
            trio.open_nursery() as nursery:
        for _ in range(3):
            await app.start(otel_one_step, False)
        nursery.start_soon(partial(record_backlog, app, interval=0.05, meter_provider=meters))
        await until(lambda: _sum(_points(reader), "romancy.backlog.runnable") == 3, timeout=30)
        nursery.cancel_scope.cancel()
    points = _points(reader)
    assert _sum(points, "romancy.backlog.waiting") == 2
    assert _sum(points, "romancy.channel.depth", channel="jobs") == 3
    assert _sum(points, "romancy.outbox.pending") == _sum(points, "romancy.outbox.failed") == 0
    assert "romancy.backlog.stranded" in points  # no code versions here: nothing stranded
    assert _sum(points, "romancy.backlog.stranded") == 0


async def _is_waiting(app: Any, iid: str) -> bool:
    return (await app.status(iid)).status is WorkflowStatus.WAITING
