"""romancy_notify.pg with a multi-host URL (issue #30): the Trio adapter connects itself (not
through psycopg's asyncio ``connect``), so it must try the hosts in turn and honour
``target_session_attrs`` as libpq does. Against a private primary and standby
(``tests/pgcluster.py``), and the pool and hub built on it."""

from __future__ import annotations

import psycopg
import pytest
import trio

from romancy_notify import open_pg_hub
from romancy_notify.pg import connect
from romancy_notify.pool import open_pool
from tests.pgcluster import StandbyPair

pytestmark = pytest.mark.slow


def _url(pair: StandbyPair, attrs: str, *, standby_first: bool = True) -> str:
    ports = [pair.standby.port, pair.primary.port]
    if not standby_first:
        ports.reverse()
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs={attrs}"


async def _port(conn: psycopg.AsyncConnection[tuple[int]]) -> int:
    row = await (await conn.execute("SELECT inet_server_port()")).fetchone()
    assert row is not None
    return row[0]


async def test_connect_tries_each_host_and_honours_target_session_attrs(
        pg_standby_pair: StandbyPair) -> None:
    pair = pg_standby_pair
    for attrs, expected in (("read-write", pair.primary.port), ("primary", pair.primary.port)):
        async with await connect(_url(pair, attrs), autocommit=True) as conn:
            assert await _port(conn) == expected  # the standby, listed first, was skipped
    for attrs in ("standby", "read-only"):
        async with await connect(_url(pair, attrs, standby_first=False), autocommit=True) as conn:
            assert await _port(conn) == pair.standby.port  # the primary, first, was skipped
    async with await connect(_url(pair, "any"), autocommit=True) as conn:
        assert await _port(conn) == pair.standby.port  # the first that answers


async def test_with_the_primary_gone_every_attempt_is_reported(
        pg_standby_pair: StandbyPair) -> None:
    pair = pg_standby_pair
    pair.primary.stop("immediate")
    with pytest.raises(psycopg.OperationalError) as info:
        await connect(_url(pair, "read-write"), autocommit=True)
    message = str(info.value)
    assert f"port: '{pair.standby.port}'" in message and "read-only" in message, message
    assert f"port: '{pair.primary.port}'" in message and "refused" in message, message


async def test_pool_and_hub_follow_a_promotion(pg_standby_pair: StandbyPair) -> None:
    """A pooled connection and the hub's listener on a multi-host URL: after the primary
    crashes and the standby is promoted, new connections land on it and the listener
    reconnects there (and reports a gap: watchers rescan)."""
    pair = pg_standby_pair
    url = _url(pair, "read-write", standby_first=False)
    async with open_pool(url, autocommit=True) as pool, open_pg_hub(url, ["t"]) as hub:
        async with pool.connection() as conn:
            assert await _port(conn) == pair.primary.port
        with hub.watch("t") as watch:
            await trio.to_thread.run_sync(pair.fail_over)
            with trio.fail_after(30):
                wakeup = await watch.wait()
            assert wakeup.gap  # the listener reconnected: everybody rescans
            with trio.fail_after(30):
                while True:  # the pool's idle connection died with the primary
                    try:
                        async with pool.connection() as conn:
                            assert await _port(conn) == pair.standby.port
                            await conn.execute("SELECT pg_notify('t', 'after')")
                        break
                    except psycopg.OperationalError:
                        await trio.sleep(0.01)
                while "after" not in (await watch.wait()).keys:
                    pass
