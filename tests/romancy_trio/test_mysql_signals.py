"""Cross-process wake-ups on MySQL/MariaDB: the signal table and its reader (real server).

Two `MysqlDatabase` objects stand for two processes (each has its own origin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from romancy_notify import open_local_hub
from romancy_trio.storage import _mysql_signals
from romancy_trio.storage._migrate import migrate_mysql
from romancy_trio.storage._mysql import MysqlDatabase
from romancy_trio.storage._mysql_conn import parse_url
from romancy_trio.storage._mysql_signals import SignalReader

from ..conftest import mysql_url

TOPIC = "romancy_work_test"


@asynccontextmanager
async def two_processes(mysql_dsn: str, mysql_db: str
                        ) -> AsyncIterator[tuple[MysqlDatabase, MysqlDatabase]]:
    params = parse_url(mysql_url(mysql_dsn, mysql_db))
    a = MysqlDatabase(params, schema=mysql_db, max_size=3)
    b = MysqlDatabase(params, schema=mysql_db, max_size=3)
    try:
        await migrate_mysql(a)
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def _announce(db: MysqlDatabase, payload: str) -> None:
    async with db.transaction() as tx:
        await tx.notify(TOPIC, payload)


async def test_a_commit_in_one_process_wakes_a_waiter_in_another(
        mysql_dsn: str, mysql_db: str) -> None:
    async with two_processes(mysql_dsn, mysql_db) as (a, b):
        reader = SignalReader(b)
        async with open_local_hub([TOPIC], fetch_elsewhere=reader, poll_interval=0.02) as hub:
            with hub.watch(TOPIC) as watch:
                with trio.fail_after(10):
                    await watch.wait()  # the reader's start is a gap: re-check everything
                await _announce(a, "i:42")
                with trio.fail_after(10):
                    wakeup = await watch.wait()
                assert "i:42" in wakeup.keys
                # b's own signals are not read back (b woke its own waiters at COMMIT)
                await _announce(b, "i:own")
                await _announce(a, "i:43")
                with trio.fail_after(10):
                    wakeup = await watch.wait()
                assert "i:own" not in wakeup.keys


async def test_a_rolled_back_transaction_signals_nothing(mysql_dsn: str, mysql_db: str) -> None:
    async with two_processes(mysql_dsn, mysql_db) as (a, b):
        reader = SignalReader(b)
        assert await reader() is None  # start: a gap
        try:
            async with a.transaction() as tx:
                await tx.notify(TOPIC, "i:never")
                await tx.execute("SELECT 1")
                raise KeyError("roll back")
        except KeyError:
            pass
        await _announce(a, "i:after")
        assert await reader() == [(TOPIC, "i:after")]


async def test_a_signal_committed_after_a_later_one_was_read_is_not_missed(
        mysql_dsn: str, mysql_db: str) -> None:
    """Ids are drawn at INSERT, rows appear at COMMIT: the lower id may appear second."""
    async with two_processes(mysql_dsn, mysql_db) as (a, b):
        reader = SignalReader(b)
        assert await reader() is None
        async with a.pool.connection() as slow:
            # the slow transaction draws its id first and commits last
            await slow.fetch(*a.signal_statements([(TOPIC, "i:slow")])[0])
            await _announce(a, "i:fast")
            assert await reader() == [(TOPIC, "i:fast")]
            await slow.run(lambda raw: raw.commit())
        assert await reader() == [(TOPIC, "i:slow")]  # the hole, asked for again
        assert await reader() == []


async def test_the_cost_of_a_poll_does_not_depend_on_the_waiters(
        mysql_dsn: str, mysql_db: str) -> None:
    """One query per poll whatever the number of watches: the database sees the same count."""
    async with two_processes(mysql_dsn, mysql_db) as (_, b):
        reader = SignalReader(b)
        async with open_local_hub([TOPIC], fetch_elsewhere=reader, poll_interval=0.01) as hub:
            watches = [hub.watch(TOPIC, f"i:{n}") for n in range(2000)]
            before_polls, before_tx = reader.polls, b.transactions
            with trio.fail_after(20):
                while reader.polls < before_polls + 20:
                    await trio.sleep(0.01)
            polls, queries = reader.polls - before_polls, b.transactions - before_tx
            assert queries <= polls + 2  # +: a prune, and a poll that was under way
            for watch in watches:
                watch.close()


class _Clock:
    """The reader's ``time`` module, stopped: it moves only when the test moves it (a loaded
    machine could otherwise let ``idle_interval`` pass between two calls meant to be quick)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_quiet_reader_polls_slowly_and_a_busy_one_at_every_tick(
        mysql_dsn: str, mysql_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle, the reader queries once per ``idle_interval`` however often the hub calls it;
    once signals come from elsewhere, every call queries (the hub's fast tick)."""
    clock = _Clock()
    monkeypatch.setattr(_mysql_signals, "time", clock)
    async with two_processes(mysql_dsn, mysql_db) as (a, b):
        reader = SignalReader(b, idle_interval=2.0)
        assert await reader() is None  # started: one query
        await _announce(a, "i:1")
        clock.now += 1.9
        assert await reader() == [] and reader.polls == 1  # quiet: not asked yet
        clock.now += 0.1
        assert await reader() == [(TOPIC, "i:1")] and reader.polls == 2
        await _announce(a, "i:2")  # busy now: asked at the next call
        assert await reader() == [(TOPIC, "i:2")] and reader.polls == 3
