"""Versioning with ctx.patched: a golden history recorded by version 1 of a workflow replays
under a version 2 that guards its change with patched(), and fails clearly under a version 2
that does not; version 2's own histories record the decision and replay on it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from romancy_trio import (
    ActivityContext,
    AppConfig,
    NonDeterminismError,
    TimeoutWaitingError,
    Workflow,
    WorkflowContext,
    activity,
    sleep,
    testing,
    workflow,
)

DAY = 24 * 3600.0


@activity(transactional=False)
async def tpt_reserve(ctx: ActivityContext, item: str) -> str:
    return f"R-{item}"


@activity(transactional=False)
async def tpt_fraud_check(ctx: ActivityContext, item: str) -> str:
    return f"ok-{item}"


@activity(transactional=False)
async def tpt_charge(ctx: ActivityContext, item: str) -> str:
    return f"C-{item}"


async def v1(ctx: WorkflowContext, item: str) -> list[str]:
    reserved = await tpt_reserve(ctx, item)
    await sleep(ctx, 2 * DAY)
    return [reserved, await tpt_charge(ctx, item)]


async def v2_patched(ctx: WorkflowContext, item: str) -> list[str]:
    if ctx.patched("fraud-check"):
        checked = [await tpt_fraud_check(ctx, item)]
    else:
        checked = []
    reserved = await tpt_reserve(ctx, item)
    await sleep(ctx, 2 * DAY)
    return [*checked, reserved, await tpt_charge(ctx, item)]


async def v2_unguarded(ctx: WorkflowContext, item: str) -> list[str]:
    checked = await tpt_fraud_check(ctx, item)
    reserved = await tpt_reserve(ctx, item)
    await sleep(ctx, 2 * DAY)
    return [checked, reserved, await tpt_charge(ctx, item)]


async def v3_deprecated(ctx: WorkflowContext, item: str) -> list[str]:
    ctx.deprecate_patch("fraud-check")
    checked = await tpt_fraud_check(ctx, item)
    reserved = await tpt_reserve(ctx, item)
    await sleep(ctx, 2 * DAY)
    return [checked, reserved, await tpt_charge(ctx, item)]


ACTIVITIES = [tpt_reserve, tpt_fraud_check, tpt_charge]


def as_(fn: Any, history: dict[str, Any]) -> tuple[Workflow[..., Any], dict[str, Any]]:
    """``fn`` deployed under the name the history was recorded with."""
    return workflow(fn, name=f"tpt_{fn.__name__}"), {**history, "workflow": f"tpt_{fn.__name__}"}


async def record(fn: Any, path: Path) -> tuple[list[str], dict[str, Any]]:
    wf = workflow(fn, name=f"tpt_rec_{fn.__name__}")
    async with testing.environment([wf, *ACTIVITIES]) as env:
        iid = await env.app.start(wf, "book")
        result = await env.result(iid)
        path.write_text(json.dumps(await testing.export_history(env.app, iid)))
    return result, json.loads(path.read_text())


async def test_a_v1_golden_history_replays_under_v2_with_patched(tmp_path: Path) -> None:
    result, golden = await record(v1, tmp_path / "v1.json")
    assert result == ["R-book", "C-book"]
    assert "patch:fraud-check" not in [s["key"] for s in golden["history"]]

    testing.replay(*as_(v2_patched, golden))  # old instances take the old branch

    with pytest.raises(NonDeterminismError) as caught:
        testing.replay(*as_(v2_unguarded, golden))
    message = str(caught.value)
    assert "'tpt_reserve:1'" in message and "'tpt_fraud_check:1'" in message
    assert "ctx.patched(" in message  # the error says how to make the change safely


async def test_v2_records_its_decision_and_replays_on_it(tmp_path: Path) -> None:
    result, golden = await record(v2_patched, tmp_path / "v2.json")
    assert result == ["ok-book", "R-book", "C-book"]  # a new instance takes the new branch
    keys = [s["key"] for s in golden["history"]]
    assert keys[0] == "patch:fraud-check" and keys[1] == "tpt_fraud_check:1"

    testing.replay(*as_(v2_patched, golden))
    testing.replay(*as_(v3_deprecated, golden))  # clean-up step: old branch gone
    with pytest.raises(NonDeterminismError, match=r"deprecate_patch\('fraud-check'\)"):
        testing.replay(*as_(v2_unguarded, golden))  # the marker is in the way: say so


async def test_an_instance_waiting_on_v1_resumes_on_v2_and_finishes_the_old_way(
        tmp_path: Path) -> None:
    """A live deploy: the instance started on v1 sleeps; v2 (with patched) resumes it."""
    # two deployments of one workflow name (in one process here: built unregistered)
    old: Workflow[..., list[str]] = Workflow(v1, name="tpt_live")
    db = tmp_path / "live.db"
    auto = AppConfig(code_version="auto")  # versions derived from each workflow's source
    async with testing.environment([old, *ACTIVITIES], f"sqlite:///{db}", config=auto) as env:
        iid = await env.app.start(old, "book")
        await env.until_waiting(iid)
        v1_version = (await env.app.status(iid)).code_version
    new: Workflow[..., list[str]] = Workflow(v2_patched, name="tpt_live")
    assert v1_version is not None
    # v2 changed the source: it leaves v1's instances to v1 workers...
    async with testing.environment([new, *ACTIVITIES], f"sqlite:///{db}", config=auto) as env:
        with pytest.raises(TimeoutWaitingError):
            await env.result(iid, timeout=timedelta(days=30))
        info = await env.app.status(iid)
        assert (info.status, info.code_version) == ("waiting", v1_version)  # visible
    # ...unless it declares them compatible (its change is guarded by patched)
    async with testing.environment([new, *ACTIVITIES], f"sqlite:///{db}", config=AppConfig(
            code_version="auto", compatible_versions=(v1_version,))) as env:
        assert await env.result(iid) == ["R-book", "C-book"]
        steps = [e.key for e in await env.app.history(iid)]
    assert steps == ["tpt_reserve:1", "timer::1", "tpt_charge:1"]
