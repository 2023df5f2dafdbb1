"""The docs' OTLP set-up (docs/examples/otlp_setup.py), run as written in a separate process,
exports to a collector-like OTLP/HTTP (protobuf) receiver served by hypercorn on 127.0.0.1:
the workflow's spans (one trace) and its metrics arrive there, under the configured service name."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from tests._paths import PYTHONPATH, ROOT

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: F401
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("opentelemetry-exporter-otlp-proto-http is not installed",
                allow_module_level=True)

SETUP = (ROOT / "docs" / "examples" / "otlp_setup.py").read_text()  # the docs' OTLP set-up
assert "OTLPSpanExporter()" in SETUP, "the docs' OTLP set-up no longer uses the OTLP exporter"

PROGRAM = SETUP + '''
import sys
import trio
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow
from romancy_trio.otel import OpenTelemetryHooks, observe_app

@activity
async def otlp_greet(ctx: ActivityContext, name: str) -> str:
    return f"hello {name}"

@workflow
async def otlp_flow(ctx: WorkflowContext, name: str) -> str:
    return await otlp_greet(ctx, name)

async def main() -> None:
    async with open_app(sys.argv[1], hooks=[OpenTelemetryHooks()]) as app:
        observe_app(app)
        print(await app.run(otlp_flow, "otlp", timeout=30))
    tracer_provider.shutdown()
    metrics.get_meter_provider().shutdown()

trio.run(main)
'''


@dataclass
class Collector:
    """What an OTLP/HTTP collector receives: decoded span and metric export requests."""

    spans: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    """(resource attributes, span) per span received."""
    metrics: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    content_types: set[str] = field(default_factory=set)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.content_types.add(headers.get("content-type", ""))
        if scope["path"] == "/v1/traces":
            traces = ExportTraceServiceRequest.FromString(body)
            for rs in traces.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                self.spans.extend((resource, span) for ss in rs.scope_spans for span in ss.spans)
            reply = ExportTraceServiceResponse().SerializeToString()
        elif scope["path"] == "/v1/metrics":
            request = ExportMetricsServiceRequest.FromString(body)
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        self.metrics[metric.name].append(metric)
            reply = ExportMetricsServiceResponse().SerializeToString()
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body", "body": reply})


def _attrs(span: Any) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


async def test_readme_otlp_setup_exports_spans_and_metrics(tmp_path: Path) -> None:
    collector = Collector()
    script = tmp_path / "otlp_example.py"
    script.write_text(PROGRAM)
    config = HyperConfig.from_mapping({"bind": ["127.0.0.1:0"], "graceful_timeout": 0.1})
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, collector, config))
        env = {"PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", ""),
               "OTEL_EXPORTER_OTLP_ENDPOINT": binds[0]}
        with trio.fail_after(120):
            done = await trio.run_process(
                [sys.executable, str(script), f"sqlite:///{tmp_path / 'otlp.db'}"],
                env=env, capture_stdout=True, capture_stderr=True, check=False)
        nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "hello otlp"
    assert collector.content_types == {"application/x-protobuf"}

    by_name = {span.name: (resource, span) for resource, span in collector.spans}
    # `app.run` runs the instance here at once: its run is the instance's first span
    assert set(by_name) == {"run otlp_flow", "activity otlp_greet"}
    assert all(resource.get("service.name") == "orders" for resource, _ in collector.spans)
    (_, run), (_, act) = by_name["run otlp_flow"], by_name["activity otlp_greet"]
    assert run.trace_id == act.trace_id  # one trace for the instance
    assert act.parent_span_id == run.span_id
    assert not run.parent_span_id  # the root
    assert _attrs(run)["romancy.instance_id"] == _attrs(act)["romancy.instance_id"]
    assert _attrs(act)["romancy.activity.attempt"] == 1
    assert len(collector.spans) == len(by_name)  # nothing sent twice

    starts = collector.metrics["romancy.workflow.starts"]
    assert starts, f"no starts metric among {sorted(collector.metrics)}"
    points = [p for m in starts for p in m.sum.data_points]
    assert max(p.as_int for p in points) == 1
    assert {a.value.string_value for p in points for a in p.attributes} == {"otlp_flow"}
    assert "romancy.activity.duration" in collector.metrics
