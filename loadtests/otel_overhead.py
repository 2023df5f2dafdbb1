"""OpenTelemetry overhead: one-activity workflows, N concurrent clients, with tracing and
metrics on (the SDK, a batch span processor and a no-op exporter; a metric reader) beside the
same run with them off, in alternating repetitions on fresh schemas. Prints both throughputs
(median and range over the repetitions) and the overhead of the medians."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from romancy_trio import AppConfig, open_app
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks, observe_app

from ._common import Result, Run, drop_schema, new_schema, require
from .workflows import WARMUP, WORKFLOWS, bench_one

REPETITIONS = int(os.environ.get("LOADTEST_OTEL_REPS", "4"))
"""Alternating off/on pairs (more of them for a steadier median on a busy machine)."""


class NoOpExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def _one_run(run: Run, *, otel: bool, total: int, concurrency: int
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
            if otel:
                tracer_provider = TracerProvider()
                # a queue that holds a burst (the default 2048 drops spans at this rate)
                tracer_provider.add_span_processor(
                    BatchSpanProcessor(exporter, max_queue_size=1 << 16))
                stack.callback(tracer_provider.shutdown)
                meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
                stack.callback(meter_provider.shutdown)
                hooks.append(OpenTelemetryHooks(tracer_provider=tracer_provider,
                                                meter_provider=meter_provider))
            app = await stack.enter_async_context(
                open_app(run.dsn, workflows=WORKFLOWS, config=config, hooks=hooks))
            if otel:
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


async def _hook_work_us(n: int = 3000) -> float:
    """CPU microseconds per workflow of `OpenTelemetryHooks` alone (no database, no
    dispatcher): the supplier at start and the notifications of a one-activity workflow, with
    the same SDK set-up. Steadier than the end-to-end figures on a busy machine."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoOpExporter(),
                                                          max_queue_size=1 << 16))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hook = OpenTelemetryHooks(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        c0 = time.process_time()
        for i in range(n):
            iid, now = f"bench-{i}", time.time()
            attrs = h.frozen_map(hook.instance_attributes(
                h.StartInfo("bench_one", iid, h.frozen_map(None))))
            await hook.on_workflow_started(h.WorkflowStarted(iid, "bench_one", "w", now, attrs))
            await hook.on_workflow_resumed(h.WorkflowResumed(iid, "bench_one", "w", now, 1, 1,
                                                             attrs, 0, None, now))
            await hook.on_activity_completed(h.ActivityCompleted(
                iid, "bench_one", "w", now, 1, 1, "a1", "bench_act", 1, now))
            await hook.on_workflow_completed(h.WorkflowCompleted(iid, "bench_one", "w", now,
                                                                 1, 1))
        tracer_provider.force_flush()
        return (time.process_time() - c0) / n * 1e6
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


async def scenario(run: Run) -> list[Result]:
    total = max(run.sizes.concurrent // 4, 50)
    c = run.sizes.concurrency
    rates: dict[bool, list[float]] = {False: [], True: []}
    latencies: dict[bool, list[float]] = {False: [], True: []}
    seconds: dict[bool, float] = {False: 0.0, True: 0.0}
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    spans = 0
    bar = run.progress("otel overhead", 2 * REPETITIONS)
    for rep in range(REPETITIONS):
        for otel in ((False, True) if rep % 2 == 0 else (True, False)):
            took, cpu, lat, exported = await _one_run(run, otel=otel, total=total,
                                                      concurrency=c)
            rates[otel].append(total / took)
            cpu_us[otel].append(cpu / total * 1e6)
            latencies[otel].extend(lat)
            seconds[otel] += took
            spans += exported
            bar.advance()
    bar.close()
    alone = statistics.median([await _hook_work_us() for _ in range(5)])
    # each workflow: run + activity spans at least (and a start span)
    require(spans >= REPETITIONS * total * 3, f"otel overhead: only {spans} spans exported")
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    overhead = (off - on) / off * 100
    cpu_off, cpu_on = statistics.median(cpu_us[False]), statistics.median(cpu_us[True])
    print(f"otel overhead: off {off:.0f} wf/s (range {min(rates[False]):.0f}-"
          f"{max(rates[False]):.0f}), on {on:.0f} wf/s (range {min(rates[True]):.0f}-"
          f"{max(rates[True]):.0f}), overhead {overhead:.1f}% of throughput (medians of "
          f"{REPETITIONS} alternating repetitions, {total} workflows each, {c} clients); "
          f"CPU of this process per workflow: off {cpu_off:.0f} us (range "
          f"{min(cpu_us[False]):.0f}-{max(cpu_us[False]):.0f}), on {cpu_on:.0f} us (range "
          f"{min(cpu_us[True]):.0f}-{max(cpu_us[True]):.0f}), +{cpu_on - cpu_off:.0f} us = "
          f"{(cpu_on - cpu_off) / cpu_off * 100:.1f}%; OpenTelemetryHooks' own work alone "
          f"(no database, median of 5): {alone:.0f} us per workflow = "
          f"{alone / cpu_off * 100:.1f}% of the off CPU per workflow")
    return [
        Result(f"1-activity wf, {c} concurrent, otel off", REPETITIONS * total, seconds[False],
               latencies[False], {"median_wf_s": round(off), "reps": REPETITIONS,
                                  "cpu_us_per_wf": round(cpu_off)},
               checked="all completed"),
        Result(f"1-activity wf, {c} concurrent, otel on", REPETITIONS * total, seconds[True],
               latencies[True], {"median_wf_s": round(on), "overhead_pct": round(overhead, 1),
                                 "cpu_us_per_wf": round(cpu_on), "spans": spans,
                                 "hook_work_us_per_wf": round(alone)},
               checked="all completed, spans exported"),
    ]
