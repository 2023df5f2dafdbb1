"""One set-up of the otel overhead scenario in a process of its own, for a load-independent
count of its work: ``python -m loadtests.otel_cost ARM N [CLIENTS]`` runs the warm-up, then
``N`` one-activity workflows by ``CLIENTS`` clients (default 1), with ``ARM`` ``off``, ``on``
(every workflow sampled), ``zero`` (``ParentBased(TraceIdRatioBased(0))``: nothing
sampled), ``dispatch`` (a hook whose notifications do nothing: the dispatcher's cost) or
``floor`` (no app: the bare SDK calls that a one-activity workflow's spans and histogram
records need, every workflow sampled - the floor of any implementation on the SDK).
Under ``valgrind --tool=callgrind`` the difference between two ``N`` is the instructions per
workflow (every thread of the process; the database server's not)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.on.100 \\
        python -m loadtests.otel_cost on 100
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AsyncExitStack

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from romancy_trio import AppConfig, open_app
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks, observe_app

from ._common import DEFAULT_DSN, drop_schema, new_schema
from .otel_overhead import NoOpExporter, _sdk_floor_us
from .workflows import WARMUP, WORKFLOWS, bench_one


class _Nothing(h.Hooks):
    """Told what `OpenTelemetryHooks` is told, and does nothing with it."""

    async def on_workflow_started(self, event: h.WorkflowStarted) -> None:
        pass

    async def on_workflow_resumed(self, event: h.WorkflowResumed) -> None:
        pass

    async def on_workflow_completed(self, event: h.WorkflowCompleted) -> None:
        pass

    async def on_activity_completed(self, event: h.ActivityCompleted) -> None:
        pass


def _callgrind(switch: str) -> None:
    """With ``OTEL_COST_CALLGRIND=1`` (run under ``valgrind --tool=callgrind
    --instr-atstart=no``), count only the measured workflows: no start-up, compiling,
    warm-up or shutdown."""
    if os.environ.get("OTEL_COST_CALLGRIND") == "1":
        subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True,
                       capture_output=True)


async def main(arm: str, total: int, clients: int) -> None:
    if arm == "floor":  # the bare SDK calls alone: no app, no database
        _callgrind("on")
        _sdk_floor_us("on", total)
        _callgrind("off")
        return
    schema = new_schema()
    try:
        async with AsyncExitStack() as stack:
            hooks: list[h.Hooks] = []
            meter_provider = None
            if arm == "dispatch":
                hooks.append(_Nothing())
            elif arm != "off":
                tracer_provider = TracerProvider(
                    sampler=ParentBased(TraceIdRatioBased(0.0)) if arm == "zero" else None)
                tracer_provider.add_span_processor(
                    BatchSpanProcessor(NoOpExporter(), max_queue_size=1 << 16))
                stack.callback(tracer_provider.shutdown)
                meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
                stack.callback(meter_provider.shutdown)
                hooks.append(OpenTelemetryHooks(tracer_provider=tracer_provider,
                                                meter_provider=meter_provider))
            app = await stack.enter_async_context(open_app(
                DEFAULT_DSN, workflows=WORKFLOWS, config=AppConfig(schema=schema, pool_size=10),
                hooks=hooks))
            if meter_provider is not None:
                observe_app(app, meter_provider=meter_provider)
            for i in range(WARMUP):
                await app.run(bench_one, i, timeout=60)
            remaining = total
            _callgrind("on")

            async def client() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    assert await app.run(bench_one, 1, timeout=600) == 2

            async with trio.open_nursery() as nursery:
                for _ in range(clients):
                    nursery.start_soon(client)
            _callgrind("off")
    finally:
        drop_schema(DEFAULT_DSN, schema)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
