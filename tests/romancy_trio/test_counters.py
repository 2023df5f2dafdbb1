"""ActivityContext.count: numbers an activity counts are recorded with its result, exactly once,
and App.status(...).counters sums them per instance over every run (recur included)."""

from __future__ import annotations

from romancy_trio import (
    ActivityContext,
    RetryPolicy,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    workflow,
)

from .conftest import Backend, fetch

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, max_interval=0.05)
_flaky_tries: dict[str, int] = {}


@activity
async def cnt_in_tx(ctx: ActivityContext, n: int) -> int:
    await ctx.db.execute("SELECT 1")
    ctx.count("items", n)
    ctx.count("cost.usd", 0.25)
    return n


@activity(transactional=False, retry=FAST)
async def cnt_flaky(ctx: ActivityContext, n: int) -> int:
    ctx.count("items", 100)  # counted by every attempt: only the one that succeeds is kept
    _flaky_tries[ctx.instance_id] = _flaky_tries.get(ctx.instance_id, 0) + 1
    if _flaky_tries[ctx.instance_id] < 3:
        raise ConnectionError("try again")
    ctx.count("items", n - 100)
    return n


@activity
def cnt_in_thread(ctx: ActivityContext, n: int) -> int:
    ctx.count("items", n)
    return n


@activity(transactional=False)
async def cnt_bad(ctx: ActivityContext) -> None:
    ctx.count("", 1)


@workflow
async def cnt_flow(ctx: WorkflowContext, state: dict[str, int]) -> int:
    total = state["total"] + await cnt_in_tx(ctx, 1) + await cnt_flaky(ctx, 2)
    total += await cnt_in_thread(ctx, 3)
    if state["runs"] > 1:
        await ctx.recur({"total": total, "runs": state["runs"] - 1})
    return total


@workflow
async def cnt_refused(ctx: WorkflowContext) -> str:
    try:
        await cnt_bad(ctx)
    except Exception as exc:  # noqa: BLE001 - the activity's error, as the workflow sees it
        return str(exc)
    return "counted"


async def test_counts_are_summed_per_instance_over_every_run(backend: Backend) -> None:
    async with open_app(backend.url, config=backend.config,
                        workflows=[cnt_flow, cnt_refused]) as app:
        iid = await app.start(cnt_flow, {"total": 0, "runs": 3})
        assert await app.result(iid, timeout=60) == 18
        info = await app.status(iid)
        assert info.status is WorkflowStatus.COMPLETED and info.run_no == 3
        # 3 runs x (1 + 2 + 3) items: the failed attempts' 100s are not kept
        assert info.counters == {"cost.usd": 0.75, "items": 18}
        other = await app.start(cnt_flow, {"total": 0, "runs": 1})
        await app.result(other, timeout=60)
        assert (await app.status(other)).counters == {"cost.usd": 0.25, "items": 6}
        assert (await app.status(iid)).counters["items"] == 18  # per instance
        refused = await app.run(cnt_refused, timeout=60)
        assert "a counter's name is a non-empty str" in refused
        rows = await fetch(app, "SELECT instance_id, name, value FROM instance_counters "
                                "ORDER BY instance_id, name")
        assert sorted((r[0], r[1], float(r[2])) for r in rows) == sorted([
            (iid, "cost.usd", 0.75), (iid, "items", 18.0),
            (other, "cost.usd", 0.25), (other, "items", 6.0)])
