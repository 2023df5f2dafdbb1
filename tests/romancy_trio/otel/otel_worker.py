"""A worker process exporting its spans: ``python -m tests.romancy_trio.otel.otel_worker``.

Arguments: URL SCHEMA WORKER_ID SPAN_FILE. Every span this worker ends is appended to
SPAN_FILE as one JSON line at once (a SIGKILL loses only spans that never ended).
Environment: ``MARKER_DIR`` (files the workflow's activities leave), ``HANG_CHARGE=1``: the
``otel_charge`` activity leaves a marker and hangs, so the test can SIGKILL this worker there.
Prints ``ready`` once the app is serving.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from romancy_trio import (
    ActivityContext,
    AppConfig,
    RetryPolicy,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    wait_event,
    workflow,
)
from romancy_trio.otel import OpenTelemetryHooks


def span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "attributes": dict(span.attributes or {}),
        "links": [f"{link.context.trace_id:032x}-{link.context.span_id:016x}"
                  for link in span.links],
        "error": span.status.status_code.name == "ERROR",
        "start": span.start_time,
        "end": span.end_time,
    }


class FileExporter(SpanExporter):
    """Appends each span as a JSON line, flushed at once."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(json.dumps(span_record(span)) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0.05))
async def otel_flaky(ctx: ActivityContext, n: int) -> int:
    """Fails its first attempt (a marker file remembers it), then succeeds."""
    marker = Path(os.environ["MARKER_DIR"], f"otel_flaky.{ctx.instance_id}")
    if not marker.exists():
        marker.write_text(ctx.worker_id)
        raise ConnectionError("first attempt fails")
    return n + 1


@activity
async def otel_charge(ctx: ActivityContext, amount: int) -> int:
    await ctx.send_event("com.example.charged", {"amount": amount})
    if os.environ.get("HANG_CHARGE") == "1":
        Path(os.environ["MARKER_DIR"], f"otel_charge.{ctx.instance_id}").write_text(ctx.worker_id)
        await trio.sleep_forever()
    return amount * 2


@workflow
async def otel_journey(ctx: WorkflowContext, n: int) -> int:
    first = await otel_flaky(ctx, n)
    await sleep(ctx, 0.2)
    approval = await wait_event(ctx, "com.example.approved", timeout=120)
    return await otel_charge(ctx, first + int(approval.data["extra"]))


async def main(url: str, schema: str, worker_id: str, span_file: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(span_file)))
    config = AppConfig(schema=schema, lease_ttl=2.0, heartbeat_interval=0.5,
                       fallback_interval=2.0)
    try:
        async with open_app(url, config=config, worker_id=worker_id,
                            workflows=[otel_journey, otel_flaky, otel_charge],
                            hooks=[OpenTelemetryHooks(tracer_provider=provider)]):
            print("ready", flush=True)
            await trio.sleep_forever()
    finally:
        provider.shutdown()


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
