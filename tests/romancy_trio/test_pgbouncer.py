"""Behind PgBouncer (issue #30), in transaction mode and in session mode: the pool goes through a
private PgBouncer (tests/pgbouncer.py), LISTEN and the worker's own session straight to
PostgreSQL (``ROMANCY_TRIO_LISTENER_URL``). Real worker processes, real SIGKILLs."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import psycopg
import pytest
import trio

from romancy_trio import AppConfig, Event, WorkflowStatus, open_app
from tests.pgbouncer import PgBouncer

from ._procs import start_worker, stop
from .worker_proc import ALL, EFFECTS_DDL, awaits_go, consumer, effect, steps

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
FAST = dict(lease_ttl=2.0, heartbeat_interval=0.5)


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
            ) -> PgBouncer:
    """A PgBouncer in either mode; ``ROMANCY_TRIO_LISTENER_URL`` names the direct server for
    this test's apps and the worker processes it starts (they inherit the environment)."""
    monkeypatch.setenv("ROMANCY_TRIO_LISTENER_URL", pg_dsn)
    found: PgBouncer = request.getfixturevalue(f"pgbouncer_{request.param}")
    return found


async def _rows(app: Any, query: str) -> list[tuple[Any, ...]]:
    return await app.store.db.fetchall(query)


async def _until_status(app: Any, ids: list[str], status: WorkflowStatus, seconds: float
                        ) -> None:
    with trio.fail_after(seconds):
        while any(info.status != status for info in [await app.status(i) for i in ids]):
            await trio.sleep(0.05)


async def test_what_needs_a_session_goes_direct(pgbouncer_transaction: PgBouncer, pg_dsn: str,
                                                pg_schema: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's statements run on PgBouncer's server connections; the LISTEN connection and
    the backend holding the worker's session-level advisory lock are none of them."""
    bouncer = pgbouncer_transaction
    monkeypatch.setenv("ROMANCY_TRIO_LISTENER_URL", pg_dsn)
    config = AppConfig(schema=pg_schema, **FAST)
    async with open_app(bouncer.url(schema=pg_schema), worker_id="pgb-worker", config=config,
                        workflows=[steps, effect]) as app:
        await app.store.db.execute(EFFECTS_DDL)
        assert await app.run(steps, 2, timeout=30) == [10, 20]
        (pooled_pid,) = await app.store.db.fetchone("SELECT pg_backend_pid()") or (0,)
        with psycopg.connect(pg_dsn, autocommit=True) as direct:
            lock_holders = {pid for (pid,) in direct.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND ((classid::text::bigint << 32) | objid::text::bigint)"
                "     = hashtextextended(%s || ':' || %s, 0)", (pg_schema, "pgb-worker"))}
        servers = bouncer.server_pids()
        assert pooled_pid in servers, "the pool should go through PgBouncer"
        assert lock_holders, "the worker's session should hold its advisory lock"
        assert not lock_holders & servers, "the worker's lock must not sit on a pooled session"
        assert app.hub.listener_pid is not None and app.hub.listener_pid not in servers


async def test_workers_killed_every_step_exactly_once(bouncer: PgBouncer, pg_schema: str
                                                      ) -> None:
    """Three worker processes through PgBouncer, 60 three-step workflows; two workers are
    SIGKILLed along the way (one replaced): every workflow completes, and the effect ledger
    (written in each activity's transaction) has every step exactly once."""
    n = 60
    url = bouncer.url(schema=pg_schema)
    config = AppConfig(schema=pg_schema, **FAST)
    async with open_app(url, workflows=[steps, effect], config=config, run_workers=False) as app:
        await app.store.db.execute(EFFECTS_DDL)
        workers = [start_worker(url, pg_schema, f"w{i}") for i in range(3)]
        try:
            ids = [await app.start(steps, 3) for _ in range(n)]
            for victim, after in ((0, n // 4), (1, n // 2)):
                with trio.fail_after(90):
                    while len(await app.list_instances(status="completed", limit=n)) < after:
                        await trio.sleep(0.05)
                workers[victim].send_signal(signal.SIGKILL)
                if victim == 0:
                    workers.append(start_worker(url, pg_schema, "w3"))
            for iid in ids:
                assert await app.result(iid, timeout=90) == [10, 20, 30]
        finally:
            for w in workers:
                stop(w)
        effects = Counter((i, s) for i, s, _ in
                          await _rows(app, "SELECT instance_id, step, worker_id FROM effects"))
    assert len(effects) == 3 * n and set(effects.values()) == {1}


async def test_waits_and_channels_woken_across_processes(bouncer: PgBouncer, pg_schema: str
                                                         ) -> None:
    """A worker process whose fallback re-check is 10 minutes away runs waiting workflows and
    competing consumers; this process starts them, sends the event and publishes the messages
    through PgBouncer: only NOTIFY (sent through the pooler, heard on the direct listener)
    can wake them within the test's deadlines."""
    url = bouncer.url(schema=pg_schema)
    config = AppConfig(schema=pg_schema, fallback_interval=600.0, **FAST)
    async with open_app(url, workflows=ALL, config=config, run_workers=False) as app:
        await app.store.db.execute(EFFECTS_DDL)
        worker = start_worker(url, pg_schema, "sleepy", FALLBACK="600")
        try:
            waiters = [await app.start(awaits_go) for _ in range(10)]
            consumers = [await app.start(consumer, {"channel": "jobs", "idle": 5.0})
                         for _ in range(2)]
            await _until_status(app, waiters + consumers, WorkflowStatus.WAITING, 60)
            await app.send_event(Event(type="go", source="test", id="go-1", data={"n": 1}))
            for iid in waiters:
                assert await app.result(iid, timeout=60) == {"n": 1}
            for i in range(20):
                await app.publish("jobs", {"job": i})
            taken = [await app.result(iid, timeout=60) for iid in consumers]
        finally:
            stop(worker)
        effects = Counter(m for _, m, _ in
                          await _rows(app, "SELECT instance_id, step, worker_id FROM effects"))
    assert sum(taken) == 20
    assert len(effects) == 20 and set(effects.values()) == {1}



async def _prepared_on_pooled_connection(app: Any) -> int:
    """Run one statement often enough to be prepared (psycopg: after 5 uses), then count the
    statements prepared on that pooled connection (the pool lends its last idle one)."""
    async with app.store.db.pool.connection() as conn:
        for _ in range(8):
            await conn.execute("SELECT %s::int", (1,))
        cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_prepared_statements_only_where_the_connection_keeps_them(
        pgbouncer_transaction: PgBouncer, pg_dsn: str, pg_schema: str) -> None:
    """Direct: prepared (the faster default). With a separate listener URL (a pooler): none,
    unless the configuration asks for them (PgBouncer >= 1.21 with max_prepared_statements)."""
    config = AppConfig(schema=pg_schema)
    async with open_app(pg_dsn, config=config, run_workers=False, workflows=[]) as app:
        assert await _prepared_on_pooled_connection(app) >= 1
    url = pgbouncer_transaction.url()
    async with open_app(url, listener_url=pg_dsn, config=config, run_workers=False,
                        workflows=[]) as app:
        assert await _prepared_on_pooled_connection(app) == 0
    forced = AppConfig(schema=pg_schema, prepared_statements=True)
    async with open_app(pg_dsn, listener_url=pg_dsn + "?application_name=listener",
                        config=forced, run_workers=False, workflows=[]) as app:
        assert await _prepared_on_pooled_connection(app) >= 1
