"""Golden histories: one recorded on a real worker replays against the code that recorded it,
and a change of the code that a resuming worker could not follow fails the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from romancy_trio import (
    ActivityContext,
    NonDeterminismError,
    Workflow,
    WorkflowContext,
    activity,
    sleep,
    testing,
    workflow,
)

DAY = 24 * 3600.0


@activity(transactional=False)
async def trg_reserve(ctx: ActivityContext, item: str) -> str:
    return f"R-{item}"


@activity(transactional=False)
async def trg_fraud_check(ctx: ActivityContext, item: str) -> bool:
    return True


async def _v1(ctx: WorkflowContext, item: str) -> str:
    reservation = await trg_reserve(ctx, item)
    await sleep(ctx, 3 * DAY)
    return reservation


trg_order = workflow(_v1, name="trg_order")


async def test_a_recorded_history_replays_and_a_changed_order_of_steps_is_caught(
        tmp_path: Path) -> None:
    async with testing.environment([trg_order, trg_reserve]) as env:
        iid = await env.app.start(trg_order, "book")
        assert await env.result(iid) == "R-book"
        golden = tmp_path / "trg_order.json"
        golden.write_text(json.dumps(await testing.export_history(env.app, iid)))

    recorded = json.loads(golden.read_text())
    assert [s["key"] for s in recorded["history"]] == ["trg_reserve:1", "timer::1"]
    testing.replay(trg_order, golden)  # the code that recorded it fits

    async def v2_check_first(ctx: WorkflowContext, item: str) -> str:
        await trg_fraud_check(ctx, item)  # a new first step: old instances never ran it
        reservation = await trg_reserve(ctx, item)
        await sleep(ctx, 3 * DAY)
        return reservation

    changed: Workflow[..., str] = workflow(v2_check_first, name="trg_order_v2")
    recorded["workflow"] = "trg_order_v2"
    with pytest.raises(NonDeterminismError, match=r"trg_reserve:1.*trg_fraud_check:1"):
        testing.replay(changed, recorded)

    async def v2_sleeps_less(ctx: WorkflowContext, item: str) -> str:
        return await trg_reserve(ctx, item)  # the sleep is gone: history has one step more

    shorter: Workflow[..., str] = workflow(v2_sleeps_less, name="trg_order_v3")
    recorded["workflow"] = "trg_order_v3"
    with pytest.raises(NonDeterminismError, match="timer::1"):
        testing.replay(shorter, recorded)


def test_a_history_of_another_workflow_is_refused() -> None:
    with pytest.raises(ValueError, match="trg_order"):
        testing.replay(trg_order, {"format": 1, "workflow": "other", "input": None,
                                   "started_at": 0.0, "history": []})
