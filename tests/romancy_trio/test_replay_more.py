"""The replay core on waits, retries, compensation and cancellation - and a golden history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from romancy_trio import EventTimeoutError, WorkflowContext, sleep, wait_event
from romancy_trio._replay import (
    ActivityCall,
    CancelWorkflow,
    CompleteWorkflow,
    ErrorInfo,
    EventKind,
    FailWorkflow,
    HistoryEvent,
    RunActivities,
    Suspend,
    WaitKind,
    WorkflowMachine,
)

GOLDEN = Path(__file__).parent / "golden"


def call(name: str, *args: Any, comp: str | None = None) -> ActivityCall[Any]:
    return ActivityCall(name, args, {}, None, Any, None, comp)


def ev(seq: int, kind: EventKind, key: str, payload: Any = None, comp: str | None = None
       ) -> HistoryEvent:
    return HistoryEvent(seq, kind, key, payload, 100.0 + seq, comp)


def machine(fn: Any, history: list[HistoryEvent], *, cancel: bool = False,
            arg: Any = None) -> WorkflowMachine:
    m = WorkflowMachine(history=history, started_at=100.0, cancel_requested=cancel)
    m.start(fn(WorkflowContext(m, instance_id="i", workflow_name="wf", run_no=1), arg))
    return m


async def saga(ctx: WorkflowContext, _: Any) -> str:
    await call("reserve", "order-7", comp="reserve.compensation")
    await call("charge", "order-7", comp="charge.compensation")
    await wait_event(ctx, "shipped")
    return "done"


def test_wait_suspends_with_a_deterministic_id_and_deadline() -> None:
    async def wf(ctx: WorkflowContext, _: Any) -> Any:
        return (await wait_event(ctx, "paid", timeout=30)).data

    cmd = machine(wf, []).advance()
    assert isinstance(cmd, Suspend)
    assert (cmd.wait.wait_id, cmd.wait.kind, cmd.wait.key, cmd.wait.deadline) == (
        "event:paid:1", WaitKind.EVENT, "paid", 130.0)


def test_recorded_event_and_timeout_replay() -> None:
    async def wf(ctx: WorkflowContext, _: Any) -> Any:
        got = (await wait_event(ctx, "paid")).data
        try:
            await wait_event(ctx, "paid", timeout=1)
        except EventTimeoutError:
            got = f"{got}+timeout"
        await sleep(ctx, 5)
        return got

    body = {"id": "e1", "source": "s", "type": "paid", "data": 42}
    history = [ev(0, EventKind.EVENT_RECEIVED, "event:paid:1", body),
               ev(1, EventKind.WAIT_TIMED_OUT, "event:paid:2"),
               ev(2, EventKind.TIMER_FIRED, "timer::1")]
    assert machine(wf, history).advance() == CompleteWorkflow("42+timeout")


def test_failure_compensates_newest_first_and_keeps_the_original_error() -> None:
    async def wf(ctx: WorkflowContext, _: Any) -> None:
        await call("a", comp="a.comp")
        await call("b")  # nothing to undo
        await call("c", comp="c.comp")
        raise RuntimeError("boom")

    history = [ev(0, EventKind.ACTIVITY_COMPLETED, "a:1", "A", "a.comp"),
               ev(1, EventKind.ACTIVITY_COMPLETED, "b:1", "B"),
               ev(2, EventKind.ACTIVITY_COMPLETED, "c:1", "C", "c.comp")]
    m = machine(wf, history)
    first = m.advance()
    assert isinstance(first, RunActivities)
    assert [(c.activity_id, c.name, c.args) for c in first.commands] == [
        ("compensate:c:1", "c.comp", ("C",))]
    m.resolve(ev(3, EventKind.COMPENSATION_FAILED, "compensate:c:1",
                 ErrorInfo("OSError", "undo failed").to_json()))
    second = m.advance()
    assert isinstance(second, RunActivities)
    assert second.commands[0].activity_id == "compensate:a:1"
    m.resolve(ev(4, EventKind.COMPENSATION_COMPLETED, "compensate:a:1"))
    end = m.advance()
    assert isinstance(end, FailWorkflow)
    assert (end.error.type, end.error.message) == ("RuntimeError", "boom")
    assert [e.message for e in end.compensation_errors] == ["undo failed"]


def test_cancel_replays_history_then_compensates_instead_of_going_on() -> None:
    history = [ev(0, EventKind.ACTIVITY_COMPLETED, "reserve:1", "R", "reserve.compensation")]
    m = machine(saga, history, cancel=True)
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    assert [c.activity_id for c in cmd.commands] == ["compensate:reserve:1"]
    m.resolve(ev(1, EventKind.COMPENSATION_COMPLETED, "compensate:reserve:1"))
    assert m.advance() == CancelWorkflow(())


def test_cancel_with_nothing_to_undo_ends_at_once() -> None:
    assert machine(saga, [], cancel=True).advance() == CancelWorkflow(())


def test_golden_history_resumes_compensation_after_a_crash() -> None:
    golden = json.loads((GOLDEN / "order_saga_cancelled_mid_compensation.json").read_text())
    history = [HistoryEvent(h["seq"], EventKind(h["kind"]), h["key"], h["payload"], h["at"],
                            h.get("compensation")) for h in golden["history"]]
    m = WorkflowMachine(history=history, started_at=golden["started_at"],
                        cancel_requested=golden["cancel_requested"])
    m.start(saga(WorkflowContext(m, instance_id="i", workflow_name="saga", run_no=1), None))
    cmd = m.advance()
    assert isinstance(cmd, RunActivities)
    (only,) = cmd.commands
    expected = golden["expect_next"]
    assert (only.activity_id, only.name, list(only.args)) == (
        expected["activity_id"], expected["name"], expected["args"])


def test_recorded_attempts_are_handed_to_the_driver_to_continue_the_schedule() -> None:
    async def wf(ctx: WorkflowContext, _: Any) -> Any:
        return await call("charge")

    attempt = {"type": "E", "message": "m", "attempt": 1, "first_at": 1.0, "next_at": 9.0}
    cmd = machine(wf, [ev(0, EventKind.ATTEMPT_FAILED, "charge:1#attempt-1", attempt)]).advance()
    assert isinstance(cmd, RunActivities)
    assert cmd.commands[0].attempts == (attempt,)
