"""The determinism guard: workflow code that reads the clock or a random source itself fails
with a WorkflowAPIError naming the deterministic alternative; libraries and ctx's helpers work."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from romancy_trio import (
    ActivityContext,
    WorkflowAPIError,
    WorkflowContext,
    WorkflowFailedError,
    activity,
    open_app,
    workflow,
)
from romancy_trio._replay import (
    ActivityCall,
    CompleteWorkflow,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
    WorkflowMachine,
)

from .conftest import Backend

Body = Callable[[WorkflowContext], Any]


def _machine(body: Body, *, guard: bool = True, history: list[HistoryEvent] | None = None
             ) -> WorkflowMachine:
    async def wf(ctx: WorkflowContext) -> Any:
        return body(ctx)

    m = WorkflowMachine(history=history or [], started_at=50.0, determinism_guard=guard)
    m.start(wf(WorkflowContext(m, instance_id="i-1", workflow_name="wf", run_no=1)))
    return m


FORBIDDEN: list[tuple[str, Body, str]] = [
    ("time.time()", lambda ctx: time.time(), "ctx.now()"),
    ("time.time_ns()", lambda ctx: time.time_ns(), "ctx.now()"),
    ("datetime.now()", lambda ctx: datetime.datetime.now(datetime.UTC), "ctx.now()"),
    ("datetime.utcnow()", lambda ctx: datetime.datetime.utcnow(), "ctx.now()"),
    ("datetime.today()", lambda ctx: datetime.datetime.today(), "ctx.now()"),
    ("date.today()", lambda ctx: datetime.date.today(), "ctx.now()"),
    ("random.random()", lambda ctx: random.random(), "ctx.random()"),
    ("random.randint()", lambda ctx: random.randint(1, 6), "ctx.random()"),
    ("random.choice()", lambda ctx: random.choice("abc"), "ctx.random()"),
    ("random.getrandbits()", lambda ctx: random.getrandbits(8), "ctx.random()"),
    ("uuid.uuid4()", lambda ctx: uuid.uuid4(), "ctx.uuid4()"),
    ("uuid.uuid1()", lambda ctx: uuid.uuid1(), "ctx.uuid4()"),
    ("os.urandom()", lambda ctx: os.urandom(4), "ctx.random()"),
    ("secrets.token_hex()", lambda ctx: secrets.token_hex(4), "ctx.random()"),
    ("SystemRandom.random()", lambda ctx: random.SystemRandom().random(), "ctx.random()"),
]


@pytest.mark.parametrize(("name", "body", "alternative"), FORBIDDEN,
                         ids=[f[0] for f in FORBIDDEN])
def test_a_forbidden_call_fails_the_workflow_naming_the_alternative(
        name: str, body: Body, alternative: str) -> None:
    command = _machine(body).advance()
    assert isinstance(command, FailWorkflow)
    assert command.error.type.endswith("WorkflowAPIError")
    assert command.error.message.startswith(f"{name} was called in workflow code")
    assert alternative in command.error.message
    assert sys.getprofile() is None


def test_deterministic_helpers_libraries_and_seeded_randoms_work() -> None:
    def body(ctx: WorkflowContext) -> list[Any]:
        logging.getLogger("tests.guard").info("inside a workflow")  # logging reads the clock
        own = random.Random(42)
        return [ctx.now().timestamp(), ctx.random().randint(1, 1000), str(ctx.uuid4()),
                own.randint(1, 1000), own.random() < 1, dataclasses.asdict(_Point(1, 2)),
                uuid.uuid5(uuid.NAMESPACE_URL, "x").hex[:4],
                datetime.datetime.fromtimestamp(0, datetime.UTC).year]

    first, again = _machine(body).advance(), _machine(body).advance()
    assert isinstance(first, CompleteWorkflow)
    assert first == again  # the same answers on replay
    assert first.result[0] == 50.0 and first.result[3] == random.Random(42).randint(1, 1000)


@dataclasses.dataclass
class _Point:
    x: int
    y: int


def test_catching_the_error_does_not_save_the_workflow() -> None:
    def body(ctx: WorkflowContext) -> str:
        try:
            time.time()
        except WorkflowAPIError:
            pass
        return "carried on"

    command = _machine(body).advance()
    assert isinstance(command, FailWorkflow) and "time.time()" in command.error.message


def test_the_guard_can_be_turned_off() -> None:
    command = _machine(lambda ctx: (time.time(), random.random(), uuid.uuid4()) and "ok",
                       guard=False).advance()
    assert command == CompleteWorkflow("ok")


def test_only_steps_are_guarded_and_a_previous_profiler_is_chained_and_restored() -> None:
    seen: list[str] = []

    def profiler(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen.append(frame.f_code.co_name)

    async def wf(ctx: WorkflowContext) -> float:
        stamp = await ActivityCall("stamp", (), {}, None, Any)
        return float(stamp)

    m = WorkflowMachine(history=[], started_at=50.0)
    m.start(wf(WorkflowContext(m, instance_id="i-1", workflow_name="wf", run_no=1)))
    sys.setprofile(profiler)
    try:
        command = m.advance()
        assert sys.getprofile() is profiler
        assert isinstance(command, RunActivities)
        assert "wf" in seen  # the previous profiler saw the workflow's step
        time.time()  # between steps (the driver, an activity) the clock is free
        m.resolve(HistoryEvent(0, EventKind.ACTIVITY_COMPLETED, "stamp:1", time.time(), 60.0))
        assert m.advance() == CompleteWorkflow(pytest.approx(time.time(), abs=60))
    finally:
        sys.setprofile(None)


def test_a_violation_in_a_later_step_runs_compensations_like_any_error() -> None:
    async def wf(ctx: WorkflowContext) -> None:
        await ActivityCall("book", (), {}, None, Any, None, "book.compensation")
        time.time()

    m = WorkflowMachine(history=[], started_at=50.0)
    m.start(wf(WorkflowContext(m, instance_id="i-1", workflow_name="wf", run_no=1)))
    assert isinstance(m.advance(), RunActivities)
    m.resolve(HistoryEvent(0, EventKind.ACTIVITY_COMPLETED, "book:1", "booked", 60.0))
    undo = m.advance()
    assert isinstance(undo, RunActivities)
    assert undo.commands[0].name == "book.compensation"
    assert sys.getprofile() is None


# -- end to end, on both backends -------------------------------------------------------------

@activity
async def wall_clock(ctx: ActivityContext) -> float:
    return time.time()  # activities may read the clock: their result is recorded


@workflow
async def reads_the_clock(ctx: WorkflowContext, how: str) -> float:
    stamp = await wall_clock(ctx)
    if how == "time":
        return time.time()
    if how == "uuid":
        return float(uuid.uuid4().int % 7)
    logging.getLogger("tests.guard").info("fine: %s", ctx.uuid4())
    return stamp + ctx.random().random() * 0 + ctx.now().timestamp() * 0


@workflow(determinism_guard=False)
async def knows_better(ctx: WorkflowContext) -> float:
    return time.time()


async def _run(app: Any, wf: Any, arg: Any = None) -> Any:
    iid = await app.start(wf, arg)
    return await app.result(iid, timeout=30)


async def test_end_to_end_the_workflow_fails_and_the_switches_work(backend: Backend) -> None:
    items = [reads_the_clock, wall_clock, knows_better]
    async with open_app(backend.url, workflows=items, config=backend.config) as app:
        assert await _run(app, reads_the_clock, "helpers") > 0
        assert await _run(app, knows_better) > 0
        for how, name, alternative in [("time", "time.time()", "ctx.now()"),
                                       ("uuid", "uuid.uuid4()", "ctx.uuid4()")]:
            with pytest.raises(WorkflowFailedError) as failed:
                await _run(app, reads_the_clock, how)
            assert failed.value.error_type.endswith("WorkflowAPIError")
            assert name in failed.value.message and alternative in failed.value.message
    off = dataclasses.replace(backend.config, determinism_guard=False)
    async with open_app(backend.url, workflows=items, config=off) as app:
        assert await _run(app, reads_the_clock, "time") > 0
