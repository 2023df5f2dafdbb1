"""Statements per workflow (issue #22), counted from the driver: a one-activity workflow
started and run through ``App.run`` in one process costs at most 3 statements and 2 durable
commits - the insert that starts it, and the statement that records its activity's result
and finishes it; the result is handed over in process (no status SELECT), a fresh instance
reads no history, and an activity with no SQL of its own sends no BEGIN/COMMIT."""

from __future__ import annotations

from typing import Any

from loadtests._sqlcount import counting
from romancy_trio import ActivityContext, WorkflowContext, activity, open_app, workflow

from .conftest import Backend

RUNS = 10


@activity
async def stmt_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@activity
async def stmt_sql_step(ctx: ActivityContext, n: int) -> int:
    assert ctx.session is not None
    row = await ctx.session.fetchone("SELECT ? + 1", (n,))
    assert row is not None
    return int(row[0])


@workflow
async def stmt_one(ctx: WorkflowContext, n: int) -> int:
    return await stmt_step(ctx, n)


@workflow
async def stmt_sql(ctx: WorkflowContext, n: int) -> int:
    return await stmt_sql_step(ctx, n)


@workflow
async def stmt_two(ctx: WorkflowContext, n: int) -> int:
    return await stmt_step(ctx, await stmt_step(ctx, n))


def _mentions(params: Any, ids: set[str]) -> bool:
    values = params.values() if isinstance(params, dict) else (params or ())
    return any(isinstance(v, str) and v in ids for v in values)


async def _count(pg_backend: Backend, wf: Any) -> tuple[list[int], int, list[str]]:
    """Results, and the statements that name one of the runs' instances or open/close a
    transaction (the app's background - lease renewal, the listener's liveness check - is
    left out: it names none of them)."""
    config = pg_backend.config
    async with open_app(pg_backend.url, workflows=[wf], config=config) as app:
        await app.run(wf, 0, timeout=30)  # connections, prepared statements
        ids = {f"stmt-{wf.name}-{i}" for i in range(RUNS)}
        with counting(keep=True) as counts:
            results = [await app.run(wf, i, instance_id=f"stmt-{wf.name}-{i}", timeout=30)
                       for i in range(RUNS)]
        assert counts.sent is not None
        ours = [text.split(None, 1)[0].upper() for text, params in counts.sent
                if _mentions(params, ids) or text.split(None, 1)[0].upper() in ("BEGIN",
                                                                                 "COMMIT")]
    return results, counts.commits, ours


async def test_one_activity_workflow_costs_two_statements(pg_backend: Backend) -> None:
    results, commits, ours = await _count(pg_backend, stmt_one)
    assert results == list(range(1, RUNS + 1))
    # the start (INSERT ... RETURNING) and the finish that records the activity
    assert len(ours) == 2 * RUNS, ours
    assert "BEGIN" not in ours and commits == 0
    assert "SELECT" not in ours  # no status SELECT, no history SELECT


async def test_a_second_activity_is_recorded_before_the_next_runs(pg_backend: Backend) -> None:
    results, _, ours = await _count(pg_backend, stmt_two)
    assert results == list(range(2, RUNS + 2))
    assert len(ours) == 3 * RUNS, ours  # start, first record, record + finish


async def test_an_activity_with_sql_records_in_its_own_transaction(pg_backend: Backend) -> None:
    results, commits, ours = await _count(pg_backend, stmt_sql)
    assert results == list(range(1, RUNS + 1))
    assert commits == RUNS and ours.count("BEGIN") == RUNS
