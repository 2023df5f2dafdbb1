"""The hub fed by PostgreSQL LISTEN/NOTIFY: real server, real connections, no mocks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from romancy_notify import ListenProbeFailed, NotifyConfig, Wakeup, notify_tx, open_pg_hub
from romancy_notify._pg_source import _await_token
from romancy_notify.pg import connect

# Quick reconnects and short probes so failures show within a test's time.
FAST = NotifyConfig(reconnect_initial=0.05, reconnect_max=0.2, probe_timeout=10.0)
WOKEN = 20.0
"""A deadline for a wake-up that is on its way (generous: the machine may be loaded). The wait
still tells a notification from the fallback by its result, `Wakeup.keys` vs ``fallback``
(and the fallback comes after 24 s at the earliest here)."""


@pytest.fixture
def topics() -> tuple[str, str]:
    """Channel names of this test alone (LISTEN channels are shared by the whole database)."""
    tag = uuid.uuid4().hex[:10]
    return f"t{tag}_work", f"t{tag}_done"


async def send(dsn: str, topic: str, *payloads: str, rollback: bool = False) -> None:
    """NOTIFY ``payloads`` in one transaction of a separate connection; commit or roll back."""
    async with await connect(dsn) as conn:
        for payload in payloads:
            await notify_tx(conn, topic, payload)
        if rollback:
            await conn.rollback()


async def eventually(predicate: Callable[[], bool], limit: float = 15) -> None:
    """Poll state we do not own (logs, statistics) until ``predicate()`` holds."""
    with trio.fail_after(limit):
        while not predicate():
            await trio.sleep(0.02)


def count_logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


async def test_committed_notify_wakes_keyed_watch(pg_dsn: str, topics: tuple[str, str]) -> None:
    work, done = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        stats = hub.statistics()
        assert stats.listening and stats.reconnects == 0
        assert isinstance(hub.listener_pid, int)
        with hub.watch(done, "i1") as w:
            await send(pg_dsn, done, "i2")
            await send(pg_dsn, work, "i1")
            await send(pg_dsn, done, "i1")
            with trio.fail_after(WOKEN):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))
        assert hub.statistics().received >= 1


async def test_rolled_back_notify_does_not_wake(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(done, "i1") as w:
            await send(pg_dsn, done, "i1", rollback=True)
            assert await w.wait(timeout=0.5) == Wakeup(timed_out=True)
        assert hub.statistics().received == 0


async def test_notify_is_sent_at_commit_not_before(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub, await connect(pg_dsn) as conn:
        with hub.watch(done, "i1") as w:
            await notify_tx(conn, done, "i1")
            assert await w.wait(timeout=0.3) == Wakeup(timed_out=True)
            await conn.commit()
            with trio.fail_after(WOKEN):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))


async def test_wildcard_watch_collects_several_keys(pg_dsn: str, topics: tuple[str, str]) -> None:
    work, _ = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(work) as w:
            await send(pg_dsn, work, "a", "b", "a", "c")
            await send(pg_dsn, work, "d")
            seen: set[str] = set()
            with trio.fail_after(WOKEN):
                while seen != {"a", "b", "c", "d"}:
                    wakeup = await w.wait()
                    assert not (wakeup.gap or wakeup.fallback or wakeup.timed_out)
                    seen |= wakeup.keys
        # PostgreSQL folded the repeated ("work", "a") of one transaction
        assert hub.statistics().received == 4


async def test_an_alias_channel_is_delivered_as_its_topic(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    """A process's private channel (an alias) wakes the watches of the topic it maps to; the
    other channels of the database do not."""
    work, done = topics
    private = f"{done}_mine"
    async with open_pg_hub(pg_dsn, topics, FAST, aliases={private: done}) as hub:
        with hub.watch(done, "i1") as w, hub.watch(work) as other:
            await send(pg_dsn, f"{done}_theirs", "i1")
            await send(pg_dsn, private, "i1")
            with trio.fail_after(WOKEN):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))
            assert other.wait_nowait() is None
        assert hub.statistics().received == 1


@pytest.mark.parametrize("case", ["maps to no topic", "not a channel name", "is a topic"])
async def test_a_bad_alias_is_refused(pg_dsn: str, topics: tuple[str, str], case: str) -> None:
    work, done = topics
    alias = {"maps to no topic": {f"{done}_x": "nope"}, "not a channel name": {"bad name": done},
             "is a topic": {work: done}}[case]
    with pytest.raises(ValueError, match="notify"):
        async with open_pg_hub(pg_dsn, topics, FAST, aliases=alias):
            pass


async def test_a_burst_arriving_together_wakes_with_every_key(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    """Many notifications read in one wake-up (and some during the liveness query, which a
    short liveness interval makes frequent): none is lost or delivered twice."""
    work, _ = topics
    config = NotifyConfig(reconnect_initial=0.05, reconnect_max=0.2, probe_timeout=10.0,
                          liveness_interval=0.01)
    keys = {f"k{i}" for i in range(300)}
    async with open_pg_hub(pg_dsn, topics, config) as hub:
        with hub.watch(work) as w:
            async with await connect(pg_dsn) as conn:
                for i, key in enumerate(sorted(keys)):
                    await notify_tx(conn, work, key)
                    if i % 7 == 0:
                        await conn.commit()
                await conn.commit()
            seen: set[str] = set()
            with trio.fail_after(WOKEN):
                while seen != keys:
                    wakeup = await w.wait()
                    assert not (wakeup.gap or wakeup.fallback)
                    seen |= wakeup.keys
        assert hub.statistics().received == len(keys)
        assert hub.statistics().reconnects == 0


async def test_publish_local_on_a_pg_hub(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(done, "i1") as w:
            hub.publish_local(done, "i1")
            assert w.wait_nowait() == Wakeup(keys=frozenset({"i1"}))


async def test_terminated_listener_reconnects_and_reports_gap(
    pg_dsn: str, topics: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    work, done = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(done, "i1") as keyed, hub.watch(work) as wild:
            old_pid = hub.listener_pid
            async with await connect(pg_dsn, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            with trio.fail_after(10):
                assert await keyed.wait() == Wakeup(gap=True)
                assert await wild.wait() == Wakeup(gap=True)
            stats = hub.statistics()
            assert (stats.reconnects, stats.gaps, stats.listening) == (1, 1, True)
            assert hub.listener_pid not in (None, old_pid)
            await send(pg_dsn, done, "i1")
            with trio.fail_after(WOKEN):
                assert await keyed.wait() == Wakeup(keys=frozenset({"i1"}))
    assert any(
        r.levelno == logging.WARNING and "lost its connection" in r.getMessage()
        for r in caplog.records
    )


async def test_idle_listener_passes_liveness_checks(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    config = NotifyConfig(liveness_interval=0.05, probe_timeout=30.0)
    async with open_pg_hub(pg_dsn, topics, config) as hub:
        with hub.watch(done, "i1") as w:
            await trio.sleep(0.5)  # ~10 liveness SELECT 1s
            await send(pg_dsn, done, "i1")
            with trio.fail_after(WOKEN):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))
        assert hub.statistics().reconnects == 0


async def test_leaving_the_hub_closes_the_listener(pg_dsn: str, topics: tuple[str, str]) -> None:
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        pid = hub.listener_pid
    assert hub.closed and hub.listener_pid is None
    async with await connect(pg_dsn, autocommit=True) as admin:
        with trio.fail_after(WOKEN):
            while True:
                cur = await admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                if await cur.fetchone() is None:
                    break
                await trio.sleep(0.02)


async def test_body_exception_propagates_unwrapped(pg_dsn: str, topics: tuple[str, str]) -> None:
    with pytest.raises(KeyError):
        async with open_pg_hub(pg_dsn, topics, FAST):
            raise KeyError("boom")


async def test_outer_cancellation_passes_through(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    with trio.CancelScope() as scope:
        async with open_pg_hub(pg_dsn, topics, FAST) as hub:
            with hub.watch(done, "i1") as w:
                # armed only now: opening the hub may take longer than 0.2 s on a busy machine
                scope.deadline = trio.current_time() + 0.2
                await w.wait()
    assert scope.cancelled_caught
    assert hub.closed


def _other_database_dsn(dsn: str) -> str:
    current = conninfo_to_dict(dsn).get("dbname")
    return make_conninfo(dsn, dbname="template1" if current == "postgres" else "postgres")


async def test_probe_fails_if_listener_cannot_hear_the_sender(
    pg_dsn: str, topics: tuple[str, str]
) -> None:
    """NOTIFY does not cross databases: a listener on another database never hears the probe
    sent through ``dsn``, just as a listener behind a transaction pooler would not."""
    config = NotifyConfig(probe_timeout=0.5)
    with pytest.raises(ListenProbeFailed, match=r"cannot LISTEN.*listener_dsn"):
        async with open_pg_hub(pg_dsn, topics, config, listener_dsn=_other_database_dsn(pg_dsn)):
            pytest.fail("the hub must not open")


async def test_probe_delivers_what_arrives_with_its_token(
    pg_dsn: str, topics: tuple[str, str]
) -> None:
    """Notifications committed together with the probe token arrive in one batch; the probe
    hands every one of them to the hub, also those after the token (it used to stop reading
    at the token and drop the rest of the batch)."""
    work, _ = topics
    probe = f"{work}_probe"
    async with await connect(pg_dsn, autocommit=True) as listener:
        await listener.execute(sql.SQL("LISTEN {}; LISTEN {}").format(
            sql.Identifier(work), sql.Identifier(probe)))
        async with await connect(pg_dsn) as sender:  # one transaction: one batch
            await notify_tx(sender, work, "before")
            await notify_tx(sender, probe, "token")
            for i in range(3):
                await notify_tx(sender, work, f"after-{i}")
            await notify_tx(sender, f"{work}_unrouted", "ignored")
        delivered: list[tuple[str, str]] = []
        assert await _await_token(listener, probe, "token", {work: "work-topic"},
                                  lambda topic, payload: delivered.append((topic, payload)),
                                  WOKEN)
        assert delivered == [("work-topic", p) for p in ("before", "after-0", "after-1",
                                                         "after-2")]
        # and a token that never comes: False after the timeout, nothing delivered
        assert not await _await_token(listener, probe, "other", {work: "work-topic"},
                                      lambda topic, payload: delivered.append((topic, payload)),
                                      0.2)
        assert len(delivered) == 4


async def test_start_up_connection_failure_propagates(topics: tuple[str, str]) -> None:
    with pytest.raises(psycopg.OperationalError):
        async with open_pg_hub("postgresql://root@127.0.0.1:1/test", topics, FAST):
            pytest.fail("the hub must not open")


async def test_notify_tx_validates(pg_dsn: str, topics: tuple[str, str]) -> None:
    _, done = topics
    async with await connect(pg_dsn) as conn:
        with pytest.raises(ValueError, match="more than 7999"):
            await notify_tx(conn, done, "x" * 8000)
        with pytest.raises(ValueError, match="NUL"):
            await notify_tx(conn, done, "a\x00")
        with pytest.raises(ValueError, match="invalid notify topic"):
            await notify_tx(conn, 'x"; DROP TABLE y; --', "a")
        await notify_tx(conn, done, "é" * 3999)  # 7998 bytes: accepted by PostgreSQL too
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture
def login_role(pg_dsn: str) -> Iterator[str]:
    """A throw-away role whose LOGIN a test can revoke to keep the server "down" for it."""
    name = f"rt_notify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


async def test_long_outage_keeps_retrying_then_recovers(
    pg_dsn: str, topics: tuple[str, str], login_role: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, done = topics
    role = sql.Identifier(login_role)
    dsn = make_conninfo(pg_dsn, user=login_role)
    async with open_pg_hub(dsn, topics, FAST) as hub:
        with hub.watch(done, "i1") as w:
            async with await connect(pg_dsn, autocommit=True) as admin:
                await admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
                await admin.execute("SELECT pg_terminate_backend(%s)", (hub.listener_pid,))
                await eventually(lambda: count_logged(caplog, "reconnect attempt") >= 3)
                stats = hub.statistics()
                assert not stats.listening and hub.listener_pid is None
                assert stats.reconnects == 0
                assert await w.wait(timeout=0.1) == Wakeup(timed_out=True)
                await admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
            with trio.fail_after(10):
                assert await w.wait() == Wakeup(gap=True)
            assert hub.statistics().reconnects == 1
            assert hub.statistics().listening
    assert any("not permitted to log in" in r.getMessage() for r in caplog.records)


class FreezableProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding, like a network that went silent."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._thawed = trio.Event()
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed = trio.Event()

    def thaw(self) -> None:
        self._thawed.set()

    async def serve(self, *, task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._handle, listeners, task_status=task_status)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            await self._thawed.wait()
            async with await trio.open_tcp_stream(*self.target) as server:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, server, nursery.cancel_scope)
                    nursery.start_soon(self._pump, server, client, nursery.cancel_scope)

    async def _pump(self, src: Any, dst: Any, scope: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                await self._thawed.wait()
                await dst.send_all(data)
        except trio.BrokenResourceError:
            pass
        scope.cancel()


@asynccontextmanager
async def running_proxy(dsn: str) -> AsyncIterator[tuple[FreezableProxy, str]]:
    params = conninfo_to_dict(dsn)
    proxy = FreezableProxy(str(params.get("host", "127.0.0.1")), int(params.get("port") or 5432))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy, make_conninfo(dsn, host="127.0.0.1", hostaddr="", port=proxy.port)
        nursery.cancel_scope.cancel()


async def test_silent_network_fails_liveness_check_then_reconnects(
    pg_dsn: str, topics: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, done = topics
    config = NotifyConfig(
        liveness_interval=0.1, probe_timeout=1.0, reconnect_initial=0.05, reconnect_max=0.2
    )
    async with running_proxy(pg_dsn) as (proxy, dsn), open_pg_hub(dsn, topics, config) as hub:
        with hub.watch(done, "i1") as w:
            proxy.freeze()
            await eventually(lambda: not hub.statistics().listening)
            assert count_logged(caplog, "liveness check timed out") == 1
            await eventually(lambda: count_logged(caplog, "reconnect attempt") >= 1)
            assert count_logged(caplog, "ConnectionTimeout") >= 1  # still silent
            proxy.thaw()
            with trio.fail_after(15):
                assert await w.wait() == Wakeup(gap=True)
            assert hub.statistics().reconnects == 1
            await send(pg_dsn, done, "i1")
            with trio.fail_after(WOKEN):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))
