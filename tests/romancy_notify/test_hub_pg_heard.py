"""`Hub.set_heard` on the PostgreSQL hub: a topic's channel UNLISTENed and LISTENed again.

Absence is shown without sleeping: the listener receives notifications in commit order on one
connection, so once a notification committed *later* on a heard topic (the sentinel) has
arrived, one sent earlier on an unheard topic would have arrived before it.
"""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing
from psycopg import sql
from psycopg.conninfo import make_conninfo

from romancy_notify import Hub, HubClosed, NotifyConfig, Wakeup, Watch, open_pg_hub
from romancy_notify.pg import connect
from tests.romancy_notify.test_hub_pg import (
    WOKEN,
    count_logged,
    eventually,
    login_role,
    running_proxy,
    send,
)

__all__ = ["login_role"]  # a fixture, used by name

FAST = NotifyConfig(reconnect_initial=0.05, reconnect_max=0.2, probe_timeout=10.0,
                    liveness_interval=600)
"""Quick reconnects; no liveness check during a test, so only `set_heard` wakes the idle
listener (a change applied at the end of a liveness window instead would be too late)."""


@pytest.fixture
def topics() -> tuple[str, str]:
    """Channel names of this test alone (LISTEN channels are shared by the whole database)."""
    tag = uuid.uuid4().hex[:10]
    return f"t{tag}_a", f"t{tag}_b"


async def applied(hub: Hub, *unheard: str) -> None:
    """Wait until the listener has applied ``set_heard``: exactly ``unheard`` are unheard."""
    await eventually(lambda: hub.statistics().unheard == frozenset(unheard))


async def assert_not_heard(dsn: str, a: str, wa: Watch, b: str, wb: Watch) -> None:
    """NOTIFY ``a``, then ``b`` in a later transaction: ``b`` arrives, ``a`` did not."""
    await send(dsn, a, "x")
    await send(dsn, b, "y")
    with trio.fail_after(WOKEN):
        assert await wb.wait() == Wakeup(keys=frozenset({"y"}))
    assert wa.wait_nowait() is None


async def reconnected(hub: Hub, old_pid: int | None, *watches: Watch) -> None:
    """Wait for the listener's reconnect: each watch gets the gap, on a new backend."""
    with trio.fail_after(WOKEN):
        for w in watches:
            assert await w.wait() == Wakeup(gap=True)
    assert hub.listener_pid not in (None, old_pid)


async def test_an_unheard_topic_is_not_heard_but_its_alias_is(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    a, b = topics
    mine = f"{a}_mine"
    async with open_pg_hub(pg_dsn, topics, FAST, aliases={mine: a}) as hub:
        assert hub.statistics().unheard == frozenset()
        with hub.watch(a) as wa, hub.watch(b) as wb:
            hub.set_heard(a, False)
            await applied(hub, a)
            await assert_not_heard(pg_dsn, a, wa, b, wb)
            await send(pg_dsn, mine, "z")  # a channel private to this process stays heard
            with trio.fail_after(WOKEN):
                assert await wa.wait() == Wakeup(keys=frozenset({"z"}))
        stats = hub.statistics()
        assert (stats.received, stats.gaps, stats.reconnects) == (2, 0, 0)


async def test_heard_again_gives_that_topic_a_gap_then_hears_it(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    a, b = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        hub.set_heard(a, False)
        await applied(hub, a)
        with hub.watch(a) as wa, hub.watch(a, "k") as keyed, hub.watch(b) as wb:
            hub.set_heard(b, True)  # already heard: nothing to do, no gap
            hub.set_heard(a, True)
            with trio.fail_after(WOKEN):
                assert await wa.wait() == Wakeup(gap=True)  # reported once LISTEN is done
            assert keyed.wait_nowait() == Wakeup(gap=True)
            assert hub.statistics().unheard == frozenset()
            await send(pg_dsn, a, "k")
            with trio.fail_after(WOKEN):
                assert await wa.wait() == Wakeup(keys=frozenset({"k"}))
                assert await keyed.wait() == Wakeup(keys=frozenset({"k"}))
            assert wb.wait_nowait() is None  # only that topic's watches had the gap
        assert hub.statistics().gaps == 0  # not a hub-wide gap


async def test_calls_coalesce_to_the_latest_state(pg_dsn: str, topics: tuple[str, str]) -> None:
    """Off and on again before the listener ran: it neither UNLISTENs nor reports a gap."""
    a, b = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(a) as wa, hub.watch(b) as wb:
            for _ in range(3):
                hub.set_heard(a, False)
                hub.set_heard(a, True)
            hub.set_heard(b, False)  # applied after (or with) the changes of ``a``
            await applied(hub, b)
            await assert_not_heard(pg_dsn, b, wb, a, wa)  # ``a`` heard, and had no gap


async def test_unheard_survives_a_reconnect(pg_dsn: str, topics: tuple[str, str]) -> None:
    a, b = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with hub.watch(a) as wa, hub.watch(b) as wb:
            hub.set_heard(a, False)
            await applied(hub, a)
            old_pid = hub.listener_pid
            async with await connect(pg_dsn, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            await reconnected(hub, old_pid, wa, wb)
            assert hub.statistics().unheard == frozenset({a})
            await assert_not_heard(pg_dsn, a, wa, b, wb)
            hub.set_heard(a, True)  # and heard again on the new connection
            with trio.fail_after(WOKEN):
                assert await wa.wait() == Wakeup(gap=True)
            await send(pg_dsn, a, "k")
            with trio.fail_after(WOKEN):
                assert await wa.wait() == Wakeup(keys=frozenset({"k"}))


async def test_a_change_while_disconnected_is_applied_by_the_next_connection(
        pg_dsn: str, topics: tuple[str, str], login_role: str) -> None:
    a, b = topics
    role = sql.Identifier(login_role)
    async with open_pg_hub(make_conninfo(pg_dsn, user=login_role), topics, FAST) as hub:
        with hub.watch(a) as wa, hub.watch(b) as wb:
            old_pid = hub.listener_pid
            async with await connect(pg_dsn, autocommit=True) as admin:
                await admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
                await admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
                await eventually(lambda: not hub.statistics().listening)
                hub.set_heard(a, False)  # cannot reconnect yet: the role may not log in
                assert hub.statistics().unheard == frozenset()
                await admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
            await reconnected(hub, old_pid, wa, wb)
            assert hub.statistics().unheard == frozenset({a})
            await assert_not_heard(pg_dsn, a, wa, b, wb)


async def test_a_lost_connection_during_unlisten_reconnects(
        pg_dsn: str, topics: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """The UNLISTEN goes into a silent network: it times out like a liveness check, the
    listener reconnects (gap to every watch), and the new connection does not hear ``a``."""
    a, b = topics
    config = NotifyConfig(liveness_interval=600, probe_timeout=1.0, reconnect_initial=0.05,
                          reconnect_max=0.2)
    async with running_proxy(pg_dsn) as (proxy, dsn), open_pg_hub(dsn, topics, config) as hub:
        with hub.watch(a) as wa, hub.watch(b) as wb:
            old_pid = hub.listener_pid
            proxy.freeze()
            hub.set_heard(a, False)
            await eventually(lambda: not hub.statistics().listening)
            assert count_logged(caplog, "UNLISTEN / LISTEN timed out") == 1
            assert hub.statistics().unheard == frozenset()
            proxy.thaw()
            await reconnected(hub, old_pid, wa, wb)
            assert hub.statistics().unheard == frozenset({a})
            await assert_not_heard(pg_dsn, a, wa, b, wb)


async def test_publish_local_still_delivers_an_unheard_topic(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    a, _ = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        hub.set_heard(a, False)
        await applied(hub, a)
        with hub.watch(a, "i1") as w:
            hub.publish_local(a, "i1")
            assert w.wait_nowait() == Wakeup(keys=frozenset({"i1"}))


async def test_set_heard_refuses_unknown_topics_and_a_closed_hub(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    a, _ = topics
    async with open_pg_hub(pg_dsn, topics, FAST) as hub:
        with pytest.raises(ValueError, match="t_elsewhere"):
            hub.set_heard("t_elsewhere", False)
        with pytest.raises(ValueError, match="invalid notify topic"):
            hub.set_heard("no such; topic", False)
        with pytest.raises(TypeError, match="bool"):
            hub.set_heard(a, 0)  # type: ignore[arg-type]
        assert hub.statistics().unheard == frozenset()
    with pytest.raises(HubClosed):
        hub.set_heard(a, False)


async def test_a_change_made_while_the_last_one_is_applied_is_applied_too(
        pg_dsn: str, topics: tuple[str, str]) -> None:
    """A change that comes while the listener runs an UNLISTEN / LISTEN is applied right after
    it, not at the end of the liveness window (600 s here)."""
    a, b = topics
    async with running_proxy(pg_dsn) as (proxy, dsn), open_pg_hub(dsn, topics, FAST) as hub:
        proxy.freeze()  # the UNLISTEN goes out but is held on its way
        hub.set_heard(a, False)
        await trio.testing.wait_all_tasks_blocked()  # the listener waits for its answer
        hub.set_heard(b, False)
        proxy.thaw()
        await applied(hub, a, b)
