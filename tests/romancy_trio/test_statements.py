"""Statements per workflow (issue #22), counted from the driver: a one-activity workflow
started and run through ``App.run`` in one process costs at most 3 statements and 2 durable
commits - the insert that starts it, and the statement that records its activity's result
and finishes it; the result is handed over in process (no status SELECT), a fresh instance
reads no history, and an activity with no SQL of its own sends no BEGIN/COMMIT."""

from __future__ import annotations

from typing import Any

from loadtests._sqlcount import Counts, counting
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


def _ours(counts: Counts, ids: set[str]) -> list[str]:
    """The first words of the statements that name one of ``ids``, with the BEGIN/COMMIT of
    the transactions they ran in. The app's background (lease renewal, the listener's
    liveness check, the first pass of the schedule loop and queue admission, a new pooled
    connection's set-up) names none of them, and its transactions are left out whole."""
    assert counts.sent is not None and counts.sent_on is not None
    words = [(text.split(None, 1)[0].upper(), _mentions(params, ids), conn)
             for (text, params), conn in zip(counts.sent, counts.sent_on, strict=True)]
    keep = [mentions for _, mentions, _ in words]
    open_at: dict[int, int] = {}  # connection -> index of its open transaction's BEGIN
    for i, (word, _, conn) in enumerate(words):
        if word == "BEGIN":
            open_at[conn] = i
        elif word in ("COMMIT", "ROLLBACK") and conn in open_at:
            begin = open_at.pop(conn)
            inside = any(m for _, m, c in words[begin + 1:i] if c == conn)
            keep[begin] = keep[i] = inside
    return [word for (word, _, _), k in zip(words, keep, strict=True) if k]


async def _count(pg_backend: Backend, wf: Any) -> tuple[list[int], int, list[str]]:
    """Results, the COMMITs sent, and the statements that name one of the runs' instances
    with the BEGIN/COMMIT of their transactions (`_ours`)."""
    config = pg_backend.config
    async with open_app(pg_backend.url, workflows=[wf], config=config) as app:
        await app.run(wf, 0, timeout=30)  # connections, prepared statements
        ids = {f"stmt-{wf.name}-{i}" for i in range(RUNS)}
        with counting(keep=True) as counts:
            results = [await app.run(wf, i, instance_id=f"stmt-{wf.name}-{i}", timeout=30)
                       for i in range(RUNS)]
        ours = _ours(counts, ids)
        commits = ours.count("COMMIT")
    return results, commits, ours


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
