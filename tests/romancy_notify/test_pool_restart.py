"""The pool across a server restart (a private cluster, ``tests/pgcluster.py``): connections
the restart killed are discarded and replaced; a caller meets at most one of them."""

from __future__ import annotations

import psycopg
import pytest
import trio

from romancy_notify.pool import open_pool
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.slow


async def test_connections_killed_by_a_restart_are_replaced_without_failing_callers(
        pg_cluster: PgCluster) -> None:
    async with open_pool(pg_cluster.dsn, max_size=5, autocommit=True) as pool:
        in_use, restarted, give_back = trio.Event(), trio.Event(), trio.Event()
        failed_in_flight: list[BaseException] = []

        async def hold_one() -> None:  # a connection lent across the restart
            try:
                async with pool.connection() as conn:
                    in_use.set()
                    await restarted.wait()
                    await conn.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                failed_in_flight.append(exc)

        async def use_one(ready: trio.Event) -> None:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
                ready.set()
                await give_back.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_one)
            await in_use.wait()
            for _ in range(4):  # four more connections, then idle in the pool
                ready = trio.Event()
                nursery.start_soon(use_one, ready)
                await ready.wait()
            give_back.set()
            with trio.fail_after(10):
                while pool.statistics().idle < 4:
                    await trio.sleep(0.01)
            await trio.to_thread.run_sync(pg_cluster.restart)
            restarted.set()
        assert len(failed_in_flight) == 1  # the one lent across the restart, used after it
        discarded_before = pool.statistics().discarded
        failures = 0
        for _ in range(10):
            try:
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
            except psycopg.OperationalError:
                failures += 1
        assert failures == 0
        assert pool.statistics().discarded >= discarded_before + 4  # the dead idle ones
