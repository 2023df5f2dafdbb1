"""The sans-IO replay core: history in, commands out. No event loop, no database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from romancy_trio import ActivityFailedError, WorkflowContext
from romancy_trio._replay import (
    ActivityCall,
    CompleteWorkflow,
    ContinueAsNew,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
    WorkflowMachine,
)


@dataclass
class Point:
    x: int
    y: int


def call(name: str, *args: Any, hint: Any = Any) -> ActivityCall[Any]:
    return ActivityCall(name, args, {}, None, hint)


def done(seq: int, key: str, payload: Any, at: float = 100.0) -> HistoryEvent:
    return HistoryEvent(seq, EventKind.ACTIVITY_COMPLETED, key, payload, at)


def machine_for(fn: Any, history: list[HistoryEvent], arg: Any = None) -> WorkflowMachine:
    m = WorkflowMachine(history=history, started_at=50.0)
    ctx = WorkflowContext(m, instance_id="i-1", workflow_name="wf", run_no=1)
    m.start(fn(ctx, arg))
    return m


async def three_steps(ctx: WorkflowContext, _: Any) -> int:
    a = await call("add", 1)
    b = await call("add", a)
    c = await call("mul", b)
    return int(c)


def test_fresh_run_asks_for_first_activity_with_deterministic_id() -> None:
    m = machine_for(three_steps, [])
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    assert [(c.activity_id, c.name, c.args) for c in cmd.commands] == [("add:1", "add", (1,))]
    assert not m.is_replaying


def test_live_run_resolves_step_by_step_and_completes() -> None:
    m = machine_for(three_steps, [])
    results = {"add:1": 2, "add:2": 3, "mul:1": 6}
    seq = 0
    while isinstance(cmd := m.advance(), RunActivities):
        (c,) = cmd.commands
        m.resolve(done(seq, c.activity_id, results[c.activity_id]))
        seq += 1
    assert cmd == CompleteWorkflow(6)


def test_replay_returns_recorded_results_without_running_anything() -> None:
    history = [done(0, "add:1", 2), done(1, "add:2", 3), done(2, "mul:1", 6)]
    m = machine_for(three_steps, history)
    assert m.is_replaying
    assert m.advance() == CompleteWorkflow(6)


def test_partial_history_resumes_at_the_first_unrecorded_step() -> None:
    m = machine_for(three_steps, [done(0, "add:1", 2), done(1, "add:2", 3)])
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    assert cmd.commands[0].activity_id == "mul:1"
    assert cmd.commands[0].args == (3,)


def test_changed_call_order_is_a_non_determinism_error_naming_both_sides() -> None:
    async def reordered(ctx: WorkflowContext, _: Any) -> int:
        await call("mul", 1)
        await call("add", 1)
        return 0

    m = machine_for(reordered, [done(0, "add:1", 2)])
    cmd = m.advance()
    assert isinstance(cmd, FailWorkflow)
    assert cmd.error.type == "romancy_trio._errors.NonDeterminismError"
    assert "'add:1'" in cmd.error.message and "'mul:1'" in cmd.error.message


def test_returning_before_recorded_steps_are_consumed_is_non_determinism() -> None:
    async def shorter(ctx: WorkflowContext, _: Any) -> int:
        return 1

    cmd = machine_for(shorter, [done(0, "add:1", 2)]).advance()
    assert isinstance(cmd, FailWorkflow)
    assert "NonDeterminismError" in cmd.error.type and "add:1" in cmd.error.message


def test_recorded_failure_is_raised_in_the_workflow_and_can_be_caught() -> None:
    async def catches(ctx: WorkflowContext, _: Any) -> str:
        try:
            await call("charge")
        except ActivityFailedError as exc:
            return f"caught {exc.error_type}: {exc.message}"
        return "no"

    failed = HistoryEvent(
        0,
        EventKind.ACTIVITY_FAILED,
        "charge:1",
        ErrorInfo("ValueError", "card declined").to_json(),
        1.0,
    )
    assert machine_for(catches, [failed]).advance() == CompleteWorkflow(
        "caught ValueError: card declined"
    )


def test_uncaught_workflow_exception_fails_with_type_and_message() -> None:
    async def boom(ctx: WorkflowContext, _: Any) -> None:
        raise KeyError("nope")

    cmd = machine_for(boom, []).advance()
    assert isinstance(cmd, FailWorkflow)
    assert (cmd.error.type, cmd.error.message) == ("KeyError", "'nope'")
    assert "raise KeyError" in cmd.error.traceback


def test_gather_asks_for_all_calls_at_once_and_returns_results_in_call_order() -> None:
    async def fan_out(ctx: WorkflowContext, _: Any) -> list[Any]:
        return await ctx.gather(call("a"), call("b"), call("a").with_id("third"))

    m = machine_for(fan_out, [])
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    assert [c.activity_id for c in cmd.commands] == ["a:1", "b:1", "third"]
    # completions arrive in any order
    m.resolve(done(0, "third", 3))
    m.resolve(done(1, "a:1", 1))
    m.resolve(done(2, "b:1", 2))
    assert m.advance() == CompleteWorkflow([1, 2, 3])


def test_gather_replays_in_any_recorded_order_and_resumes_a_partial_gather() -> None:
    async def fan_out(ctx: WorkflowContext, _: Any) -> list[Any]:
        return await ctx.gather(call("a"), call("b"))

    assert machine_for(
        fan_out, [done(0, "b:1", 2), done(1, "a:1", 1)]
    ).advance() == CompleteWorkflow([1, 2])
    m = machine_for(fan_out, [done(0, "b:1", 2)])
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    assert [c.activity_id for c in cmd.commands] == ["a:1"]


def test_results_are_rebuilt_as_the_declared_type() -> None:
    async def typed(ctx: WorkflowContext, _: Any) -> int:
        p = await call("point", hint=Point)
        assert isinstance(p, Point)
        return p.x + p.y

    assert machine_for(typed, [done(0, "point:1", {"x": 2, "y": 5})]).advance() == CompleteWorkflow(
        7
    )


def test_recur_returns_continue_as_new_with_the_new_input() -> None:
    async def counter(ctx: WorkflowContext, n: int) -> int:
        if n < 3:
            await ctx.recur(n + 1)
        return n

    assert machine_for(counter, [], 0).advance() == ContinueAsNew(1)
    assert machine_for(counter, [], 3).advance() == CompleteWorkflow(3)


def test_awaiting_a_foreign_awaitable_raises_a_clear_error_inside_the_workflow() -> None:
    class Foreign:
        def __await__(self) -> Any:
            yield "not ours"

    async def bad(ctx: WorkflowContext, _: Any) -> None:
        await Foreign()

    cmd = machine_for(bad, []).advance()
    assert isinstance(cmd, FailWorkflow)
    assert cmd.error.type == "romancy_trio._errors.WorkflowAPIError"
    assert "may only await activities" in cmd.error.message


def test_now_random_and_uuid_are_identical_on_replay() -> None:
    seen: list[Any] = []

    async def wf(ctx: WorkflowContext, _: Any) -> None:
        seen.append((ctx.now(), ctx.random().random(), ctx.uuid4()))
        await call("step")
        seen.append(ctx.now())

    live = machine_for(wf, [])
    cmd = live.advance()
    assert isinstance(cmd, RunActivities)
    live.resolve(done(0, "step:1", None, at=123.5))
    assert live.advance() == CompleteWorkflow(None)
    first = list(seen)
    seen.clear()
    assert machine_for(wf, [done(0, "step:1", None, at=123.5)]).advance() == CompleteWorkflow(None)
    assert seen == first
    assert first[0][0].timestamp() == 50.0 and first[1].timestamp() == 123.5


def test_resolve_for_an_unknown_activity_is_a_driver_bug() -> None:
    m = machine_for(three_steps, [])
    m.advance()
    with pytest.raises(RuntimeError, match="nobody is waiting"):
        m.resolve(done(0, "zzz:1", 1))
