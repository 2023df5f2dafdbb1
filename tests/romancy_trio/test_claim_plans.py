"""The claim and wake queries read an index, not the backlog (issue #22).

With 100,000 waiting and 100,000 finished instances in the tables, every worker's claim and
every wake-up must find its rows through an index with a condition: a claim that compares the
waiting rows' ``wake_at`` with a volatile clock (``clock_timestamp()``), or an ``OR`` over two
partial indexes on SQLite, read every waiting row (100+ ms per claim, paid by every notified
worker). The plans are read from ``EXPLAIN``; nothing here is timed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from romancy_trio.storage._open import open_store
from romancy_trio.storage._store import Store

BACKLOG = 100_000
_BIG_TABLES = ("workflow_instances", "workflow_waits")
_WHOLE_SET_OK = ("workflow_instances_runnable",)
"""A partial index whose rows are exactly the instances that could be claimed (pending or
running): reading all of it is the active set, not the backlog."""


async def _fill(store: Store, dialect: str) -> None:
    """100,000 waiting instances (half on a timer far ahead, half on an event of their own)
    with their waits, and 100,000 finished ones; then fresh statistics."""
    db = store.db
    if dialect == "postgres":
        s = schema_of(store)
        rows = f"generate_series(1, {BACKLOG}) g(n)"
        prefix, table = "", f"{s}.workflow_instances"
        waits = f"{s}.workflow_waits"
    else:
        rows = "g"
        prefix = (f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g "
                  f"WHERE n < {BACKLOG}) ")
        table, waits = "workflow_instances", "workflow_waits"
    await db.execute(f"""{prefix}INSERT INTO {table} (instance_id, workflow_name, status, input,
            run_started_at, created_at, updated_at, wake_at)
        SELECT 'w' || n, 'plan_wf', 'waiting', '[]', 0, n, n,
            CASE WHEN n / 2 * 2 = n THEN NULL ELSE 4102444800 END FROM {rows}""")
    await db.execute(f"""{prefix}INSERT INTO {table} (instance_id, workflow_name, status, input,
            run_started_at, created_at, updated_at, result)
        SELECT 'f' || n, 'plan_wf', 'completed', '[]', 0, n, n, 'null' FROM {rows}""")
    await db.execute(f"""{prefix}INSERT INTO {waits} (instance_id, wait_id, kind, key,
            created_at)
        SELECT 'w' || n, 'w0', 'event', 'plan.ev.' || n, n FROM {rows}""")
    await db.execute("ANALYZE")


def _statements(store: Store) -> list[tuple[str, str, Any]]:
    q, w = store.q, store.waits.w
    claim = dict(owner="plan-worker", names=json.dumps(["plan_wf"]), limit=10, ttl=30.0,
                 now=None, versions="[]")
    found: list[tuple[str, str, Any]] = [
        ("claim", q.claim, claim),
        ("next_expiry", q.next_expiry, dict(owner="plan-worker", versions="[]", now=None,
                                            names=json.dumps(["plan_wf"]))),
        ("event_waiters", w.event_waiters, dict(type="plan.ev.77")),
        ("wake_waiters", w.wake_waiters,
         dict(now=1.0, kind="event", key="plan.ev.77", target=None, limit=100, topic="t")),
        ("wake_if_ready", w.wake_if_ready.replace("{ready}", "NULL"),
         dict(now=1.0, iid="w77", wait_id="w0", topic="t")),
        # what the end gives the child sweep / queue admission: probes, not scans
        ("finish", q.finish, dict(status="completed", result="1", error=None, now=1.0,
                                  iid="w77", owner="plan-worker", epoch=1, topic="t")),
    ]
    if q.claim_and_expiry is not None:
        found.append(("claim_and_expiry", q.claim_and_expiry, claim))
    return found


def _pg_scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Relation Name" in node or "Index Name" in node else []
    for child in node.get("Plans", []):
        found += _pg_scans(child)
    return found


def _pg_problems(plan: dict[str, Any]) -> list[str]:
    problems = []
    for scan in _pg_scans(plan["Plan"]):
        kind, table = scan["Node Type"], scan.get("Relation Name", "")
        index = scan.get("Index Name", "")
        if kind == "Seq Scan" and table in _BIG_TABLES:
            problems.append(f"Seq Scan on {table}")
        elif index and "Index Cond" not in scan and index not in _WHOLE_SET_OK:
            problems.append(f"{kind} reads all of {index} (no Index Cond)")
    return problems


def _sqlite_problems(lines: list[str]) -> list[str]:
    problems = []
    for line in lines:
        for table in _BIG_TABLES:
            if not line.startswith(f"SCAN {table}"):
                continue
            if not any(f"INDEX {ok}" in line for ok in _WHOLE_SET_OK):
                problems.append(line)
    return problems


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_claim_and_wake_queries_use_an_index_under_a_large_backlog(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    if dialect == "postgres":
        url, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    else:
        url, schema = f"sqlite:///{tmp_path / 'plans.db'}", "romancy"
    async with open_store(url, schema=schema) as store:
        await _fill(store, dialect)
        report = {}
        for name, statement, params in _statements(store):
            if dialect == "postgres":
                rows = await store.db.fetchall(f"EXPLAIN (FORMAT JSON) {statement}", params)
                plan = rows[0][0]
                plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
                report[name] = _pg_problems(plan)
            else:
                rows = await store.db.fetchall(f"EXPLAIN QUERY PLAN {statement}", params)
                details = [str(row[-1]) for row in rows]
                assert details, name
                report[name] = _sqlite_problems(details)
        assert {name: p for name, p in report.items() if p} == {}
        # and the plans are not vacuous: the claim does find a due timer through its index
        await store.db.execute(
            "UPDATE workflow_instances SET wake_at = 1 WHERE instance_id = 'w3'"
            if dialect == "sqlite" else
            f"UPDATE {schema_of(store)}.workflow_instances SET wake_at = 1 "
            "WHERE instance_id = 'w3'")
        claim = dict(owner="plan-worker", names=json.dumps(["plan_wf"]), limit=10, ttl=30.0,
                     now=None, versions="[]")
        claimed = await store.db.fetchall(store.q.claim, claim)
        assert [row[0] for row in claimed] == ["w3"]


def schema_of(store: Store) -> str:
    return store.q.select_instance.split("FROM ", 1)[1].split(".", 1)[0].strip()
