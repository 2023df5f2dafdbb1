"""A private PostgreSQL server stopped, restarted and started late: clear errors, quick recovery.

Never the shared server: each test gets its own cluster (``tests/pgcluster.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    StorageUnavailableError,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)
from tests.pgcluster import PgCluster

from ._waits import LogSeen

pytestmark = pytest.mark.slow

_gate: dict[str, trio.Event] = {}


@activity
async def outage_record(ctx: ActivityContext, step: str) -> str:
    await ctx.db.execute("INSERT INTO ledger (instance_id, step) VALUES (?, ?)",
                         (ctx.instance_id, step))
    if (gate := _gate.get(step)) is not None:
        _gate["reached"].set()  # its INSERT is in an open transaction
        await gate.wait()
    return step


@workflow
async def outage_gated(ctx: WorkflowContext) -> str:
    return await outage_record(ctx, "gated")


@workflow
async def outage_waits_go(ctx: WorkflowContext) -> Any:
    data = (await wait_event(ctx, "go")).data
    await outage_record(ctx, "woken")
    return data


LEDGER_DDL = "CREATE TABLE IF NOT EXISTS ledger (instance_id text, step text)"
FLOWS: list[Any] = [outage_gated, outage_waits_go, outage_record]
CONFIG = AppConfig(fallback_interval=60.0, lease_ttl=60.0)
"""Neither the fallback re-check nor a lease's expiry may be what recovers an instance: both
come after 60 s here, so recovering within half of that shows the fast paths worked, however
loaded the machine (the times themselves are printed; ``python -m loadtests db-restart``
measures them)."""
NOT_THE_SLOW_PATHS = min(CONFIG.fallback_interval, CONFIG.lease_ttl) / 2


async def test_open_app_during_an_outage_names_the_server_and_the_cause(
        pg_cluster: PgCluster) -> None:
    pg_cluster.stop()
    with pytest.raises(StorageUnavailableError) as info:
        async with open_app(pg_cluster.dsn, workflows=FLOWS):
            pytest.fail("open_app entered without a server")
    message = str(info.value)
    assert f"127.0.0.1:{pg_cluster.port}" in message
    assert "refused" in message.lower(), message


async def test_open_app_waits_for_the_database_when_asked(pg_cluster: PgCluster) -> None:
    pg_cluster.stop()
    seen = LogSeen("waiting up to 60 s")
    logger = logging.getLogger("romancy_trio.storage")
    logger.addHandler(seen)
    try:
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def app_user() -> None:
                async with open_app(pg_cluster.dsn, workflows=FLOWS, config=CONFIG,
                                    wait_for_database=60) as app:
                    await app.store.db.execute(LEDGER_DDL)
                    results.append(await app.run(outage_gated, timeout=30))

            nursery.start_soon(app_user)
            with trio.fail_after(30):
                while not seen.seen:  # open_app is waiting for the server
                    await trio.sleep(0.01)
            await trio.to_thread.run_sync(pg_cluster.start)
    finally:
        logger.removeHandler(seen)
    assert results == ["gated"]


async def test_bad_wait_for_database_is_refused(pg_cluster: PgCluster) -> None:
    with pytest.raises(Exception, match="wait_for_database must be"):
        async with open_app(pg_cluster.dsn, workflows=FLOWS, wait_for_database=-1):
            pass


async def _ledger(app: Any) -> list[tuple[str, str]]:
    rows = await app.store.db.fetchall("SELECT instance_id, step FROM ledger ORDER BY 1, 2")
    return [(r[0], r[1]) for r in rows]


async def test_restart_immediate_in_flight_and_waiting_instances_recover(
        pg_cluster: PgCluster) -> None:
    """An activity in flight across ``-m immediate`` runs again once (its first transaction
    died with the server), a waiting instance is woken by an event sent after the restart:
    both soon after the server accepts connections, and each effect is recorded once."""
    _gate["gated"], _gate["reached"] = trio.Event(), trio.Event()
    try:
        async with open_app(pg_cluster.dsn, workflows=FLOWS, config=CONFIG) as app:
            await app.store.db.execute(LEDGER_DDL)
            busy = await app.start(outage_gated)
            waiting = await app.start(outage_waits_go)
            with trio.fail_after(30):
                await _gate["reached"].wait()
                while (await app.status(waiting)).status != "waiting":
                    await trio.sleep(0.01)
            accepting = await trio.to_thread.run_sync(pg_cluster.restart)
            _gate["gated"].set()
            with trio.fail_after(30):
                while True:  # the application's first send may meet a dead pooled connection
                    try:
                        await app.send_event(Event(type="go", source="test", id="1",
                                                   target_instance_id=waiting, data="hi"))
                        break
                    except StorageUnavailableError:
                        await trio.sleep(0.01)
                assert await app.result(waiting) == "hi"
                woken = time.time() - accepting
                assert await app.result(busy) == "gated"
                finished = time.time() - accepting
                while not app.hub.statistics().listening:
                    await trio.sleep(0.005)
                listening = time.time() - accepting
            print(f"after the restart: waiting instance done {woken:.3f} s, "
                  f"in-flight instance done {finished:.3f} s, listener back {listening:.3f} s")
            # the listener came back by reconnecting (its schedule, close attempts while an
            # outage is young, is pinned by test_reconnect_delays.py), the waiter was woken by
            # the event's notification, and the interrupted run was handed back to this worker
            # at once, not left until its lease expired
            assert app.hub.statistics().reconnects >= 1
            assert listening < NOT_THE_SLOW_PATHS
            assert woken < NOT_THE_SLOW_PATHS
            assert finished < NOT_THE_SLOW_PATHS, "the in-flight instance waited out its lease"
            assert await _ledger(app) == sorted([(busy, "gated"), (waiting, "woken")])
            kinds = [e.kind for e in await app.store.load_history(busy, 1)]
            assert "attempt_failed" not in kinds  # the database's failure, not the activity's
    finally:
        _gate.clear()
