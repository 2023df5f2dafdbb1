"""OpenTelemetry overhead: one-activity workflows, N concurrent clients, with tracing and
metrics on (the SDK, a batch span processor and a no-op exporter; a metric reader) beside the
same run with them off, and with tracing sampled (``ParentBased(TraceIdRatioBased(r))``: the
workflows left out cost their metrics and little else), in rotating repetitions on fresh
schemas. Prints the throughputs and this process's CPU per workflow (median and range over
the repetitions; CPU time is the steadier figure on a busy machine) and the overheads of the
medians."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager

import trio
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from romancy_trio import AppConfig, open_app
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks, observe_app

from ._common import Result, Run, drop_schema, new_schema, require
from .workflows import WARMUP, WORKFLOWS, bench_one

REPETITIONS = int(os.environ.get("LOADTEST_OTEL_REPS", "4"))
"""Repetitions of the three set-ups, in rotating order (more for a steadier median on a busy
machine)."""
RATIO = float(os.environ.get("LOADTEST_OTEL_RATIO", "0.1"))
"""The sampled set-up's trace id ratio."""
ARMS = ("off", "on", "sampled")


class NoOpExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _tracer_provider(arm: str) -> tuple[TracerProvider, NoOpExporter]:
    sampler: Sampler | None = ParentBased(TraceIdRatioBased(RATIO)) if arm == "sampled" else None
    provider = TracerProvider(sampler=sampler)
    exporter = NoOpExporter()
    # a queue that holds a burst (the default 2048 drops spans at this rate)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 16))
    return provider, exporter


async def _one_run(run: Run, *, arm: str, total: int, concurrency: int
                   ) -> tuple[float, float, list[float], int]:
    """Seconds for ``total`` workflows, this process's CPU seconds (every thread: the batch
    processor's too) for them, their latencies (ms), spans exported."""
    schema = new_schema()
    config = AppConfig(schema=schema, pool_size=max(10, concurrency // 2))
    exporter = NoOpExporter()
    latencies: list[float] = []
    wrong = 0
    try:
        async with AsyncExitStack() as stack:
            hooks = []
            tracer_provider = meter_provider = None
            if arm != "off":
                tracer_provider, exporter = _tracer_provider(arm)
                stack.callback(tracer_provider.shutdown)
                meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
                stack.callback(meter_provider.shutdown)
                hooks.append(OpenTelemetryHooks(tracer_provider=tracer_provider,
                                                meter_provider=meter_provider))
            app = await stack.enter_async_context(
                open_app(run.dsn, workflows=WORKFLOWS, config=config, hooks=hooks))
            if meter_provider is not None:
                observe_app(app, meter_provider=meter_provider)
            for i in range(WARMUP):
                await app.run(bench_one, i, timeout=30)
            remaining = total

            async def client() -> None:
                nonlocal remaining, wrong
                while remaining > 0:
                    remaining -= 1
                    t = time.perf_counter()
                    wrong += await app.run(bench_one, 1, timeout=60) != 2
                    latencies.append((time.perf_counter() - t) * 1000)

            t0, c0 = time.perf_counter(), time.process_time()
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(client)
            seconds = time.perf_counter() - t0
            if tracer_provider is not None:
                tracer_provider.force_flush()
            cpu = time.process_time() - c0
    finally:
        drop_schema(run.dsn, schema)
    require(wrong == 0, f"otel overhead: {wrong} wrong results")
    return seconds, cpu, latencies, exporter.spans


@contextmanager
def _providers(arm: str) -> Iterator[tuple[TracerProvider, MeterProvider]]:
    """The scenario's SDK set-up for ``arm``, shut down on exit (the stand-alone figures)."""
    tracer_provider, _ = _tracer_provider(arm)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        yield tracer_provider, meter_provider
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


async def _hook_work_us(arm: str, n: int = 3000) -> float:
    """CPU microseconds per workflow of `OpenTelemetryHooks` alone (no database, no
    dispatcher): the supplier at start and the notifications of a one-activity workflow
    started and run here at once, with the same SDK set-up. Steadier than the end-to-end
    figures on a busy machine."""
    with _providers(arm) as (tracer_provider, meter_provider):
        hook = OpenTelemetryHooks(tracer_provider=tracer_provider, meter_provider=meter_provider)
        c0 = time.process_time()
        for i in range(n):
            iid, now = f"bench-{i}", time.time()
            attrs = h.frozen_map(hook.instance_attributes(
                h.StartInfo("bench_one", iid, h.frozen_map(None), runs_here=True)))
            await hook.on_workflow_started(h.WorkflowStarted(iid, "bench_one", "w", now, attrs))
            await hook.on_workflow_resumed(h.WorkflowResumed(iid, "bench_one", "w", now, 1, 1,
                                                             attrs, 0, None, now))
            await hook.on_activity_completed(h.ActivityCompleted(
                iid, "bench_one", "w", now, 1, 1, "a1", "bench_act", 1, now))
            await hook.on_workflow_completed(h.WorkflowCompleted(iid, "bench_one", "w", now,
                                                                 1, 1))
        tracer_provider.force_flush()
        return (time.process_time() - c0) / n * 1e6


def _sdk_floor_us(arm: str, n: int = 3000) -> float:
    """CPU microseconds per workflow of the bare SDK calls that a one-activity workflow's
    telemetry needs, with no romancy_trio code at all: its two spans (``run`` with the run's
    attributes, ``activity`` as its child with the attempt's) and its two histogram
    measurements, with the same SDK set-up as the scenario. No implementation on the SDK
    can cost less (the counters are left out: they can be kept without the SDK)."""
    by_workflow = {"romancy.workflow": "bench_one"}
    by_attempt = {"workflow": "bench_one", "activity": "bench_act", "outcome": "completed"}
    with _providers(arm) as (tracer_provider, meter_provider):
        tracer = tracer_provider.get_tracer("floor")
        meter = meter_provider.get_meter("floor")
        duration = meter.create_histogram("duration", unit="s")
        latency = meter.create_histogram("latency", unit="s")
        c0 = time.process_time()
        for i in range(n):
            iid, now = f"bench-{i}", time.time_ns()
            run = tracer.start_span("run bench_one", kind=SpanKind.CONSUMER)
            if run.is_recording():
                run.set_attributes({"romancy.instance_id": iid, "romancy.worker_id": "w",
                                    "romancy.workflow": "bench_one", "romancy.run_no": 1,
                                    "romancy.replayed": 0})
                activity = tracer.start_span(
                    "activity bench_act", context=trace.set_span_in_context(run),
                    start_time=now, attributes={
                        "romancy.instance_id": iid, "romancy.worker_id": "w",
                        "romancy.workflow": "bench_one", "romancy.run_no": 1,
                        "romancy.activity_id": "a1", "romancy.activity": "bench_act",
                        "romancy.activity.attempt": 1})
                activity.end(end_time=now)
            latency.record(0.001, by_workflow)
            duration.record(0.001, by_attempt)
            run.end(end_time=now)
        tracer_provider.force_flush()
        return (time.process_time() - c0) / n * 1e6


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} (range {min(values):.0f}-{max(values):.0f})"


async def scenario(run: Run) -> list[Result]:
    # runs long enough for the steady state (500 workflows: a third of a second, in which
    # the set-up's fixed costs hid about a third of the difference)
    total = max(run.sizes.concurrent, 50)
    c = run.sizes.concurrency
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    latencies: dict[str, list[float]] = {arm: [] for arm in ARMS}
    seconds = dict.fromkeys(ARMS, 0.0)
    cpu_us: dict[str, list[float]] = {arm: [] for arm in ARMS}
    spans = dict.fromkeys(ARMS, 0)
    bar = run.progress("otel overhead", len(ARMS) * REPETITIONS)
    for rep in range(REPETITIONS):
        k = rep % len(ARMS)
        for arm in ARMS[k:] + ARMS[:k]:  # each set-up in turn first, middle and last
            took, cpu_s, lat, exported = await _one_run(run, arm=arm, total=total,
                                                      concurrency=c)
            rates[arm].append(total / took)
            cpu_us[arm].append(cpu_s / total * 1e6)
            latencies[arm].extend(lat)
            seconds[arm] += took
            spans[arm] += exported
            bar.advance()
    bar.close()
    alone = {arm: statistics.median([await _hook_work_us(arm) for _ in range(5)])
             for arm in ("on", "sampled")}
    floor = {arm: statistics.median([_sdk_floor_us(arm) for _ in range(5)])
             for arm in ("on", "sampled")}
    # each workflow: run and activity spans (run here at once: no start span)
    require(spans["on"] >= REPETITIONS * total * 2,
            f"otel overhead: only {spans['on']} spans exported")
    rate = {arm: statistics.median(rates[arm]) for arm in ARMS}
    cpu = {arm: statistics.median(cpu_us[arm]) for arm in ARMS}
    overhead = {arm: (rate["off"] - rate[arm]) / rate["off"] * 100 for arm in ARMS}
    cpu_pct = {arm: (cpu[arm] - cpu["off"]) / cpu["off"] * 100 for arm in ARMS}
    # each rotation's set-ups ran back to back: their ratio is steadier than the ratio of
    # medians when the machine's load drifts between rotations
    paired = {arm: statistics.median((o - r) / o * 100 for o, r in zip(rates["off"], rates[arm],
                                                                      strict=True))
              for arm in ARMS}
    print(f"otel overhead (medians of {REPETITIONS} rotating repetitions, {total} workflows "
          f"each, {c} clients; sampled = ParentBased(TraceIdRatioBased({RATIO}))): "
          f"throughput wf/s off {_median_range(rates['off'])}, on "
          f"{_median_range(rates['on'])} ({overhead['on']:.1f}% less; "
          f"paired by rotation {paired['on']:.1f}%), sampled "
          f"{_median_range(rates['sampled'])} ({overhead['sampled']:.1f}% less; "
          f"paired {paired['sampled']:.1f}%); CPU of this "
          f"process per workflow (us) off {_median_range(cpu_us['off'])}, on "
          f"{_median_range(cpu_us['on'])} ({cpu_pct['on']:+.1f}%), sampled "
          f"{_median_range(cpu_us['sampled'])} ({cpu_pct['sampled']:+.1f}%); "
          f"OpenTelemetryHooks' own work alone (no database, median of 5): on "
          f"{alone['on']:.0f} us per workflow = {alone['on'] / cpu['off'] * 100:.1f}% of the "
          f"off CPU, sampled {alone['sampled']:.0f} us = "
          f"{alone['sampled'] / cpu['off'] * 100:.1f}%; the bare SDK calls they need (2 spans, "
          f"2 histogram records; the floor of any implementation on the SDK): on "
          f"{floor['on']:.0f} us = {floor['on'] / cpu['off'] * 100:.1f}%, sampled "
          f"{floor['sampled']:.0f} us = {floor['sampled'] / cpu['off'] * 100:.1f}%")
    label = {"off": "otel off", "on": "otel on", "sampled": f"otel on, {RATIO:.0%} sampled"}
    return [
        Result(f"1-activity wf, {c} concurrent, {label[arm]}", REPETITIONS * total,
               seconds[arm], latencies[arm],
               {"median_wf_s": round(rate[arm]), "reps": REPETITIONS,
                "cpu_us_per_wf": round(cpu[arm]),
                **({} if arm == "off" else {
                    "overhead_pct": round(overhead[arm], 1),
                    "paired_overhead_pct": round(paired[arm], 1),
                    "cpu_overhead_pct": round(cpu_pct[arm], 1), "spans": spans[arm],
                    "hook_work_us_per_wf": round(alone[arm]),
                    "sdk_floor_us_per_wf": round(floor[arm])})},
               checked="all completed" + (", spans exported" if arm == "on" else ""))
        for arm in ARMS
    ]
