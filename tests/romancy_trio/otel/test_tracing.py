"""One trace per workflow instance across processes, a SIGKILL and a CloudEvent, with the real
OpenTelemetry SDK: worker subprocesses export their spans to files as they end them; the test
process (which starts the instance, sends the waking event and relays the outbox) keeps its
own in an in-memory exporter."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from romancy_trio import Event, WorkflowStatus, open_app
from romancy_trio.otel import OpenTelemetryHooks
from romancy_trio.outbox import RelayerConfig

from .._procs import start_proc, stop
from ..conftest import Backend, fetch
from ..test_outbox import Sink, open_sink, until
from .otel_worker import otel_charge, otel_flaky, otel_journey, span_record

WORKER = "tests.romancy_trio.otel.otel_worker"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_SPAN = "b7ad6b7169203331"


def _spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _schema(backend: Backend) -> str:
    return backend.config.schema


@pytest.mark.slow
async def test_one_trace_across_workers_a_sigkill_a_retry_a_sleep_and_an_event(
        backend: Backend, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    markers = tmp_path / "markers"
    markers.mkdir()
    spans_a, spans_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    env = {"MARKER_DIR": str(markers)}
    sink = Sink()
    procs = []
    try:
        # the app of the caller: starts the instance, sends the event, relays the outbox
        async with open_sink(sink) as sink_url, open_app(
                backend.url, config=backend.config, run_workers=False,
                workflows=[otel_journey, otel_flaky, otel_charge],
                hooks=[OpenTelemetryHooks(tracer_provider=provider)],
                relayer=RelayerConfig(sink_url, initial_backoff=0.05, claim_ttl=60.0,
                                      request_timeout=20.0)) as app:
            worker_a = _start(backend, "worker-a", spans_a, HANG_CHARGE="1", **env)
            procs.append(worker_a)
            with tracer.start_as_current_span("client request") as client:
                iid = await app.start(otel_journey, 5)
            trace_id = f"{client.get_span_context().trace_id:032x}"

            async def waiting_for_the_event() -> bool:
                rows = await fetch(app, "SELECT kind FROM workflow_waits WHERE instance_id = ?",
                                   (iid,))
                return [str(r[0]) for r in rows] == ["event"]

            await until(waiting_for_the_event, timeout=60)
            receipt = await app.send_event(Event(
                type="com.example.approved", source="test://approvals", id="a-1",
                data={"extra": 100},
                extensions={"traceparent": f"00-{OTHER_TRACE}-{OTHER_SPAN}-01"}))
            assert receipt.delivered_to == (iid,)
            # worker A resumes it and hangs in `otel_charge`; kill it there
            await until(lambda: (markers / f"otel_charge.{iid}").exists(), timeout=60)
            os.kill(worker_a.pid, signal.SIGKILL)
            worker_a.wait(timeout=10)
            worker_b = _start(backend, "worker-b", spans_b, **env)
            procs.append(worker_b)
            assert await app.result(iid, timeout=90) == (5 + 1 + 100) * 2
            await until(lambda: len(sink.ok()) >= 1, timeout=60)
            outbox_event = sink.ok()[0].event
        stop(worker_b)  # its spans are written as they end; stop it to read them whole
    finally:
        for proc in procs:
            stop(proc)

    local = [span_record(s) for s in exporter.get_finished_spans()]
    a, b = _spans(spans_a), _spans(spans_b)
    everything = local + a + b
    # one trace: everything the instance did, in three processes
    ours = [s for s in everything if s["name"] != "client request"]
    assert {s["trace_id"] for s in ours} == {trace_id}, ours
    by_id = {s["span_id"]: s for s in everything}
    start = _one(local, "start otel_journey")
    assert start["parent_id"] == f"{client.get_span_context().span_id:016x}"
    runs_a = [s for s in a if s["name"] == "run otel_journey"]
    runs_b = [s for s in b if s["name"] == "run otel_journey"]
    # A: the first run (retry, then sleep), the timer's run (then the event wait); the run
    # woken by the event never ended on A (killed), B's run finished it
    assert len(runs_a) == 2 and len(runs_b) == 1, (runs_a, runs_b)
    for run in runs_a + runs_b:
        assert run["parent_id"] == start["span_id"]  # the stored context, whatever process
        assert run["attributes"]["romancy.instance_id"] == iid
        assert run["attributes"]["romancy.workflow"] == "otel_journey"
    assert {r["attributes"]["romancy.worker_id"] for r in runs_a} == {"worker-a"}
    assert runs_b[0]["attributes"]["romancy.worker_id"] == "worker-b"
    # the retry: two attempt spans of otel_flaky, the first an error, both under A's first run
    flakies = sorted((s for s in everything if s["name"] == "activity otel_flaky"),
                     key=lambda s: s["attributes"]["romancy.activity.attempt"])
    assert [s["attributes"]["romancy.activity.attempt"] for s in flakies] == [1, 2]
    assert [s["error"] for s in flakies] == [True, False]
    first_run = min(runs_a, key=lambda r: r["start"])
    assert {s["parent_id"] for s in flakies} == {first_run["span_id"]}
    # replay on B emitted nothing again: one otel_charge span (B's; A's never ended), no otel_flaky
    assert not [s for s in b if s["name"] == "activity otel_flaky"]
    charges = [s for s in everything if s["name"] == "activity otel_charge"]
    assert len(charges) == 1 and charges[0]["parent_id"] == runs_b[0]["span_id"]
    assert Counter(s["span_id"] for s in everything).most_common(1)[0][1] == 1
    # the waits: the sleep (on A's second run) and the event wait
    timer = _one(a, "wait timer")
    assert timer["parent_id"] == start["span_id"]
    event_wait = _one(b, "wait event com.example.approved")
    assert event_wait["links"] == [f"{OTHER_TRACE}-{OTHER_SPAN}"]
    # the run the event woke (B's, after A's died) links to the event's trace
    assert runs_b[0]["links"] == [f"{OTHER_TRACE}-{OTHER_SPAN}"]
    # the outbox event sent by otel_charge carries a traceparent of this trace, from a send span
    version, sent_trace, sent_span, _ = outbox_event["traceparent"].split("-")
    assert (version, sent_trace) == ("00", trace_id)
    assert by_id[sent_span]["name"] == "send com.example.charged"
    assert by_id[sent_span]["attributes"]["romancy.worker_id"] == "worker-b"
    status = await _status(backend, iid)
    assert status is WorkflowStatus.COMPLETED


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def _start(backend: Backend, worker_id: str, span_file: Path, **env: str) -> Any:
    return start_proc(WORKER, backend.url, _schema(backend), worker_id, str(span_file),
                      env=env, quiet=True)


async def _status(backend: Backend, iid: str) -> WorkflowStatus:
    async with open_app(backend.url, config=backend.config, run_workers=False,
                        workflows=[otel_journey, otel_flaky, otel_charge]) as app:
        return (await app.status(iid)).status
