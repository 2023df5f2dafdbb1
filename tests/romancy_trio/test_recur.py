"""recur (continue-as-new): many iterations, bounded history per run, lineage intact."""

from __future__ import annotations

from typing import Any

from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

from .conftest import Backend, fetch


@activity
async def tick(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def counter(ctx: WorkflowContext, state: dict[str, int]) -> dict[str, int]:
    n = await tick(ctx, state["n"])
    if n < state["until"]:
        await ctx.recur({"n": n, "until": state["until"]})
    return {"n": n, "runs": ctx.run_no}


async def _count(app: Any, table: str, iid: str) -> list[tuple[Any, ...]]:
    return await fetch(
        app, f"SELECT run_no, count(*) FROM {table} WHERE instance_id = ? "
        "GROUP BY run_no ORDER BY run_no", (iid,))


async def test_a_thousand_iterations_keep_history_bounded_and_lineage_intact(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=[counter, tick], config=backend.config) as app:
        iid = await app.start(counter, {"n": 0, "until": 1000})
        assert await app.result(iid, timeout=120) == {"n": 1000, "runs": 1000}
        # only the last run's history is live; every earlier run is archived, one event each
        assert await _count(app, "workflow_history", iid) == [(1000, 1)]
        archived = await _count(app, "workflow_history_archive", iid)
        assert len(archived) == 999 and {c for _, c in archived} == {1}
        runs = await app.runs(iid)
        assert [r.run_no for r in runs] == list(range(1, 1001))
        assert [r.continued_from for r in runs] == [None, *range(1, 1000)]
        assert all(r.ended_at is not None for r in runs[:-1])
        info = await app.status(iid)
        assert info.run_no == 1000 and info.input == {"n": 999, "until": 1000}
