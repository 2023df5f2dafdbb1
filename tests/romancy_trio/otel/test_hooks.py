"""The hook contract: once per real occurrence, never on replay; a hook that raises or blocks
neither stops nor slows durable progress, and its failure is counted and logged once."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from romancy_trio import (
    ActivityContext,
    AppConfig,
    ConfigurationError,
    Event,
    Hooks,
    InstanceNotFoundError,
    InvalidInputError,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailedError,
    activity,
    open_app,
    publish,
    receive,
    sleep,
    subscribe,
    wait_event,
    workflow,
)
from romancy_trio import hooks as h
from romancy_trio.otel import OpenTelemetryHooks

from ..conftest import Backend
from ..test_outbox import until

ATTEMPTS: Counter[str] = Counter()


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0.01))
async def otel_wobbly(ctx: ActivityContext, n: int) -> int:
    ATTEMPTS[ctx.instance_id] += 1
    if ATTEMPTS[ctx.instance_id] == 1:
        raise ConnectionError("once")
    return n * 2


@workflow
async def otel_naps(ctx: WorkflowContext, n: int) -> int:
    doubled = await otel_wobbly(ctx, n)
    await sleep(ctx, 1.0)  # long enough to suspend, however slow the machine
    got = await wait_event(ctx, "hooks.go", timeout=60)
    return doubled + int(got.data)


class Recorder(Hooks):
    def __init__(self) -> None:
        self.seen: list[h.HookEvent] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            async def record(event: h.HookEvent) -> None:
                self.seen.append(event)
            return record
        return super().__getattribute__(name)

    def kinds(self, instance_id: str) -> list[str]:
        return [type(e).__name__ for e in self.seen if e.instance_id == instance_id]

    def waits_for_an_event(self, instance_id: str) -> bool:
        """The instance's last run ended waiting for an event (a run the database interrupted
        ends suspended too, and another run follows)."""
        last = [e for e in self.seen if e.instance_id == instance_id][-1:]
        return bool(last) and isinstance(last[0], h.WorkflowSuspended) \
            and last[0].wait_kind == "event"


class Raising(Hooks):
    def instance_attributes(self, start: h.StartInfo) -> dict[str, str]:
        raise RuntimeError("supplier broken")

    async def on_activity_completed(self, event: h.ActivityCompleted) -> None:
        raise RuntimeError("hook broken")

    async def on_workflow_completed(self, event: h.WorkflowCompleted) -> None:
        raise RuntimeError("hook broken")


class Blocking(Hooks):
    """Every notification awaits forever."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            async def block(event: h.HookEvent) -> None:
                await trio.sleep_forever()
            return block
        return super().__getattribute__(name)


def _config(backend: Backend, **kw: Any) -> AppConfig:
    from dataclasses import replace

    return replace(backend.config, **kw)


async def test_each_real_occurrence_is_told_once_and_replay_tells_nothing(
        backend: Backend) -> None:
    rec = Recorder()
    async with open_app(backend.url, config=backend.config, workflows=[otel_naps, otel_wobbly],
                        hooks=[rec]) as app:
        iid = await app.start(otel_naps, 4, instance_attributes={"tenant": "t-1"})
        await until(lambda: "TimerFired" in rec.kinds(iid)
                    and rec.kinds(iid)[-1] == "WorkflowSuspended", timeout=30)
        await app.send_event(Event("hooks.go", "test://hooks", "go-1", data=1))
        assert await app.result(iid, timeout=30) == 9
        await until(lambda: rec.kinds(iid)[-1:] == ["WorkflowCompleted"], timeout=30)
    kinds = rec.kinds(iid)
    assert kinds == [
        "WorkflowStarted",
        "WorkflowResumed", "ActivityStarted", "ActivityRetried", "ActivityStarted",
        "ActivityCompleted", "WorkflowSuspended",               # the sleep
        "WorkflowResumed", "TimerFired", "WorkflowSuspended",   # the event wait
        "EventReceived",                                        # delivered by send_event
        "WorkflowResumed", "WorkflowCompleted",                 # replayed: nothing again
    ], kinds
    events = [e for e in rec.seen if e.instance_id == iid]
    resumed = [e for e in events if isinstance(e, h.WorkflowResumed)]
    # the worker that suspended it continues its live state: it replays nothing (#22)
    assert [r.replayed for r in resumed] == [0, 0, 0]
    assert all(r.attributes == {"tenant": "t-1"} for r in resumed)
    assert resumed[2].woken_by is not None and resumed[2].woken_by.id == "go-1"
    attempts = [e for e in events if isinstance(e, h.ActivityStarted)]
    assert [a.attempt for a in attempts] == [1, 2]
    suspended = [e for e in events if isinstance(e, h.WorkflowSuspended)]
    assert [(s.reason, s.wait_kind) for s in suspended] == [("wait", "timer"),
                                                           ("wait", "event")]
    with pytest.raises(AttributeError):  # frozen: a hook cannot change what it is told
        resumed[0].instance_id = "x"  # type: ignore[misc]


async def test_raising_and_blocking_hooks_neither_stop_nor_slow_durable_progress(
        backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    rec, raising, blocking = Recorder(), Raising(), Blocking()
    config = _config(backend, hook_timeout=0.2, hook_queue=50)
    caplog.set_level(logging.ERROR, logger="romancy_trio.hooks")
    async with open_app(backend.url, config=config, workflows=[otel_naps, otel_wobbly],
                        hooks=[raising, blocking, rec]) as app:

        def stats() -> dict[str, h.HookStatistics]:
            return {s.hook.split(":")[1]: s for s in app.hook_statistics()}

        ids = [await app.start(otel_naps, n) for n in range(6)]
        for iid in ids:  # the event reaches each once it waits for it
            await until(lambda iid=iid: rec.waits_for_an_event(iid), timeout=30)
        await app.send_event(Event("hooks.go", "test://hooks", "go-all", data=1))
        with trio.fail_after(30):
            results = [await app.result(iid) for iid in ids]
        assert results == [2 * n + 1 for n in range(6)]
        # the hook that behaves is told everything, whatever the others do
        for iid in ids:
            await until(lambda iid=iid: rec.kinds(iid)[-1:] == ["WorkflowCompleted"],
                        timeout=30)
        # the raising one: its supplier at each start, each activity completion, each end
        await until(lambda: stats()["Raising"].failed >= 6 + 6 + 6, timeout=30)
        # the blocking one: each call is cancelled once it has run hook_timeout, so it takes
        # a few notifications a second; bursts fill its bounded queue, and what does not fit
        # is dropped and counted (never waited for)
        with trio.fail_after(60):
            while stats()["Blocking"].dropped == 0:
                await app.publish_many("hooks.noise", list(range(10)))
        await until(lambda: stats()["Blocking"].timed_out >= 1, timeout=30)
        final = stats()
    assert final["Recorder"].failed == final["Recorder"].timed_out == 0
    assert final["Recorder"].dropped == 0
    logged = [r.getMessage() for r in caplog.records if r.name == "romancy_trio.hooks"]
    # each misbehaving hook is logged once (its first problem), then only counted
    assert len([m for m in logged if "Raising" in m]) == 1, logged
    assert len([m for m in logged if "Blocking" in m]) == 1, logged
    assert not [m for m in logged if "Recorder" in m], logged


async def test_hooks_must_be_hooks(backend: Backend) -> None:
    with pytest.raises(ConfigurationError, match="Hooks instances"):
        async with open_app(backend.url, config=backend.config, workflows=[otel_naps, otel_wobbly],
                            hooks=[object()]):  # type: ignore[list-item]
            pass


@activity(retry=RetryPolicy.no_retries())
async def otel_hold(ctx: ActivityContext, what: str) -> str:
    return f"held {what}"


@otel_hold.compensation
async def otel_release(ctx: ActivityContext, what: str, held: str) -> None:
    assert held == f"held {what}"


@workflow
async def otel_chatty(ctx: WorkflowContext, channel: str) -> str:
    await otel_hold(ctx, "seat")
    await subscribe(ctx, channel, mode="competing")
    await publish(ctx, channel, {"n": 1})
    message = await receive(ctx, channel, timeout=30)
    raise ValueError(f"give up after {message.data}")


async def test_channel_messages_and_compensations_are_told_and_traced(
        backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recorder()
    async with open_app(backend.url, config=backend.config,
                        workflows=[otel_chatty, otel_hold, otel_release],
                        hooks=[rec, OpenTelemetryHooks(tracer_provider=provider)]) as app:
        iid = await app.start(otel_chatty, "news")
        with pytest.raises(WorkflowFailedError, match="give up"):
            await app.result(iid, timeout=30)
        await until(lambda: rec.kinds(iid)[-1:] == ["WorkflowFailed"], timeout=30)
    events = [e for e in rec.seen if e.instance_id == iid]
    published = [e for e in events if isinstance(e, h.MessagePublished)]
    assert [(p.channel, p.workflow) for p in published] == [("news", "otel_chatty")]
    received = [e for e in events if isinstance(e, h.MessageReceived)]
    assert [r.channel for r in received] == ["news"]
    [undo] = [e for e in events if isinstance(e, h.CompensationRun)]
    assert (undo.ok, undo.activity_id) == (True, "compensate:otel_hold:1")
    failed = [e for e in events if isinstance(e, h.WorkflowFailed)]
    assert [f.error_type for f in failed] == ["ValueError"]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run = spans["run otel_chatty"]
    assert spans["compensate otel_hold.compensation"].parent.span_id == run.context.span_id
    assert spans["wait channel news"].context.trace_id == run.context.trace_id
    assert run.status.status_code.name == "ERROR"


async def test_bad_instance_attributes_are_refused_and_nothing_is_written(
        backend: Backend) -> None:
    async with open_app(backend.url, config=backend.config, run_workers=False,
                        workflows=[otel_naps, otel_wobbly]) as app:
        for bad in ({"k": 1}, {"": "v"}, {"k": "v\x00"}, {f"k{i}": "v" for i in range(33)}):
            with pytest.raises(InvalidInputError, match="instance_attributes"):
                await app.start(otel_naps, 1, instance_id="bad-attrs",
                                instance_attributes=bad)  # type: ignore[arg-type]
        with pytest.raises(InstanceNotFoundError):
            await app.status("bad-attrs")
