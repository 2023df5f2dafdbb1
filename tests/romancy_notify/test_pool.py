"""romancy_notify.pool: a bounded pool of TrioConnection, against a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import trio
from psycopg import pq, sql
from psycopg.abc import QueryNoTemplate

from romancy_notify.pg import TrioConnection, connect
from romancy_notify.pool import ConnectionPool, PoolClosed, PoolStatistics, open_pool


async def _scalar(
    conn: TrioConnection[tuple[Any, ...]], query: QueryNoTemplate, *args: object
) -> object:
    cur = await conn.execute(query, args or None)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def _backend_pid(pool: ConnectionPool) -> int:
    async with pool.connection() as conn:
        return conn.pgconn.backend_pid


async def test_max_size_respected_under_concurrency(pg_dsn: str) -> None:
    in_use = 0
    peak = 0
    peak_waiting = 0
    async with open_pool(pg_dsn, max_size=3, autocommit=True) as pool:

        async def worker() -> None:
            nonlocal in_use, peak, peak_waiting
            async with pool.connection() as conn:
                in_use += 1
                peak = max(peak, in_use)
                peak_waiting = max(peak_waiting, pool.statistics().waiting)
                assert pool.statistics().in_use <= 3
                assert await _scalar(conn, "SELECT pg_sleep(0.02)::text || 'ok'") == "ok"
                in_use -= 1

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(worker)
        stats = pool.statistics()
    assert peak == 3
    assert peak_waiting > 0
    assert stats == PoolStatistics(
        max_size=3, size=3, idle=3, in_use=0, waiting=0, opened=3, discarded=0
    )


async def test_connection_reused_and_statistics(pg_dsn: str) -> None:
    configured: list[int] = []

    async def configure(conn: TrioConnection[object]) -> None:
        configured.append(conn.pgconn.backend_pid)
        await conn.execute("SET application_name = 'pool-test'")

    async with open_pool(
        pg_dsn, max_size=2, autocommit=True, configure=configure, ping_after=0.0
    ) as pool:
        assert pool.statistics() == PoolStatistics(2, 0, 0, 0, 0, 0, 0)
        async with pool.connection() as conn:
            assert pool.statistics() == PoolStatistics(2, 1, 0, 1, 0, 1, 0)
            assert await _scalar(conn, "SELECT current_setting('application_name')") == (
                "pool-test"
            )
            pid = conn.pgconn.backend_pid
        assert pool.statistics() == PoolStatistics(2, 1, 1, 0, 0, 1, 0)
        # ping_after=0: the idle connection is checked with a round trip, then reused
        assert await _backend_pid(pool) == pid
        assert configured == [pid]
    assert pool.closed
    assert pool.statistics().idle == 0
    with pytest.raises(PoolClosed):
        async with pool.connection():
            pass


async def test_idle_check_round_trip_without_autocommit(pg_dsn: str) -> None:
    async with open_pool(pg_dsn, max_size=1, ping_after=0.0) as pool:
        pid = await _backend_pid(pool)
        async with pool.connection() as conn:  # checked with an empty query, then lent
            assert conn.pgconn.backend_pid == pid
            assert not conn.autocommit
            assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert (pool.statistics().opened, pool.statistics().discarded) == (1, 0)


async def test_configure_must_leave_connection_idle(pg_dsn: str, pg_schema: str) -> None:
    async def sloppy(conn: TrioConnection[object]) -> None:
        await conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))

    async def careful(conn: TrioConnection[object]) -> None:
        await sloppy(conn)
        await conn.commit()

    async with open_pool(pg_dsn, configure=sloppy) as pool:
        with pytest.raises(psycopg.ProgrammingError, match="configure left the connection"):
            async with pool.connection():
                pass
        assert pool.statistics().discarded == 1
    async with open_pool(pg_dsn, configure=careful, autocommit=True) as pool:
        async with pool.connection() as conn:
            assert await _scalar(conn, "SHOW search_path") == pg_schema


async def test_killed_idle_connection_is_not_handed_out(pg_dsn: str) -> None:
    async with open_pool(pg_dsn, max_size=2, autocommit=True) as pool:
        pid = await _backend_pid(pool)
        async with await connect(pg_dsn, autocommit=True) as killer:
            assert await _scalar(killer, "SELECT pg_terminate_backend(%s, 5000)", pid) is True
        async with pool.connection() as conn:  # well within ping_after: no round trip
            assert await _scalar(conn, "SELECT 1") == 1
            assert conn.pgconn.backend_pid != pid
        stats = pool.statistics()
        assert (stats.opened, stats.discarded, stats.idle) == (2, 1, 1)


async def test_exception_in_block_rolls_back(pg_dsn: str, pg_schema: str) -> None:
    table = sql.SQL("{}.{}").format(sql.Identifier(pg_schema), sql.Identifier("t"))
    async with open_pool(pg_dsn, max_size=1) as pool:
        async with pool.connection() as conn:
            async with conn.transaction():
                await conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(table))
        with pytest.raises(ValueError, match="boom"):
            async with pool.connection() as conn:
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
                assert conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS
                raise ValueError("boom")
        async with pool.connection() as conn:  # the same connection, clean
            assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
            async with conn.transaction():
                count = await _scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(table))
        assert count == 0
        assert (pool.statistics().opened, pool.statistics().discarded) == (1, 0)


async def test_normal_exit_inside_transaction_is_an_error(pg_dsn: str, pg_schema: str) -> None:
    table = sql.SQL("{}.{}").format(sql.Identifier(pg_schema), sql.Identifier("t"))
    async with open_pool(pg_dsn, max_size=1) as pool:
        async with pool.connection() as conn:
            async with conn.transaction():
                await conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(table))
        with pytest.raises(psycopg.ProgrammingError, match="inside a transaction"):
            async with pool.connection() as conn:
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
        async with await connect(pg_dsn, autocommit=True) as other:
            assert await _scalar(other, sql.SQL("SELECT count(*) FROM {}").format(table)) == 0
        async with pool.connection() as conn:
            assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert (pool.statistics().opened, pool.statistics().discarded) == (1, 0)


async def test_cancellation_mid_query_through_pool(pg_dsn: str) -> None:
    token = f"sleep_{uuid.uuid4().hex}"
    for autocommit in (True, False):
        async with open_pool(pg_dsn, max_size=1, autocommit=autocommit) as pool:
            start = trio.current_time()
            with trio.move_on_after(0.2) as scope:
                async with pool.connection() as conn:
                    await conn.execute(f"SELECT pg_sleep(60) /* {token} */")
            assert scope.cancelled_caught
            # generous on any machine, yet far from waiting the 60 s query out
            assert trio.current_time() - start < 30
            with trio.fail_after(30):
                async with pool.connection() as conn:
                    assert await _scalar(conn, "SELECT 2") == 2
                    await conn.rollback()
            async with await connect(pg_dsn, autocommit=True) as other:
                active = await _scalar(
                    other,
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                    f"%{token}%",
                )
            assert active == 0


async def test_waiting_for_a_slot_is_cancellable(pg_dsn: str) -> None:
    async with open_pool(pg_dsn, max_size=1, autocommit=True) as pool:
        async with pool.connection():
            with trio.move_on_after(0.1) as scope:
                async with pool.connection():
                    pytest.fail("got a second connection from a pool of one")
            assert scope.cancelled_caught
            assert pool.statistics().waiting == 0
        async with pool.connection() as conn:
            assert await _scalar(conn, "SELECT 7") == 7


async def test_idle_connections_expire(pg_dsn: str) -> None:
    async with open_pool(pg_dsn, autocommit=True, max_idle=0.05) as pool:
        first = await _backend_pid(pool)
        await trio.sleep(0.1)
        assert await _backend_pid(pool) != first
        stats = pool.statistics()
        assert (stats.opened, stats.discarded, stats.idle) == (2, 1, 1)


async def test_broken_connection_is_discarded(pg_dsn: str) -> None:
    async with open_pool(pg_dsn, autocommit=True) as pool:
        async with pool.connection() as conn:
            await conn.close()
        assert pool.statistics() == PoolStatistics(10, 0, 0, 0, 0, 1, 1)
        async with pool.connection() as conn:
            assert await _scalar(conn, "SELECT 8") == 8


async def test_connect_failure_releases_the_slot() -> None:
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with open_pool(f"host=127.0.0.1 port={port} user=root", max_size=1) as pool:
        for _ in range(2):
            with trio.fail_after(30), pytest.raises(psycopg.OperationalError):
                async with pool.connection():
                    pass
        assert pool.statistics() == PoolStatistics(1, 0, 0, 0, 0, 0, 0)
