"""The hub with the in-process source: watch, publish_local, wait, fallback, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

import romancy_notify
from romancy_notify import HubClosed, NotifyConfig, Wakeup, WatchClosed, open_local_hub

TOPICS = ["romancy_work", "romancy_done"]
FAST = NotifyConfig(fallback_interval=0.05, fallback_jitter=0.2)


def test_public_surface() -> None:
    assert sorted(romancy_notify.__all__) == [
        "Hub",
        "HubClosed",
        "HubStatistics",
        "LinkTimeouts",
        "ListenProbeFailed",
        "NotifyConfig",
        "NotifyError",
        "Wakeup",
        "Watch",
        "WatchClosed",
        "check_notification",
        "notify_tx",
        "open_local_hub",
        "open_pg_hub",
    ]
    for name in romancy_notify.__all__:
        assert getattr(romancy_notify, name).__module__.startswith("romancy_notify")


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="fallback_interval"):
        NotifyConfig(fallback_interval=0)
    with pytest.raises(ValueError, match="fallback_jitter"):
        NotifyConfig(fallback_jitter=1.0)
    with pytest.raises(ValueError, match="max_pending_keys"):
        NotifyConfig(max_pending_keys=0)
    with pytest.raises(ValueError, match="reconnect_max"):
        NotifyConfig(reconnect_initial=2, reconnect_max=1)
    with pytest.raises(TypeError, match="probe_timeout"):
        NotifyConfig(probe_timeout="5")  # type: ignore[arg-type]


async def test_publish_wakes_a_waiting_keyed_watch() -> None:
    async with open_local_hub(TOPICS) as hub:
        woken: list[Wakeup] = []

        async def waiter(task_status: trio.TaskStatus[None]) -> None:
            with hub.watch("romancy_done", "i1") as w:
                task_status.started()
                woken.append(await w.wait())

        async with trio.open_nursery() as nursery:
            await nursery.start(waiter)
            await trio.testing.wait_all_tasks_blocked()
            hub.publish_local("romancy_done", "other")
            await trio.testing.wait_all_tasks_blocked()
            assert woken == []
            hub.publish_local("romancy_done", "i1")
        assert woken == [Wakeup(keys=frozenset({"i1"}))]
        stats = hub.statistics()
        assert (stats.watches, stats.received, stats.delivered) == (0, 2, 1)
        assert stats.listening


async def test_wait_returns_at_once_if_pending() -> None:
    async with open_local_hub(TOPICS) as hub:
        with hub.watch("romancy_done", "i1") as w:
            hub.publish_local("romancy_done", "i1")  # between the check and the wait
            with trio.fail_after(1):
                assert await w.wait() == Wakeup(keys=frozenset({"i1"}))
            assert w.wait_nowait() is None
            hub.publish_local("romancy_done", "i1")
            assert w.wait_nowait() == Wakeup(keys=frozenset({"i1"}))


async def test_wildcard_watch_collects_keys() -> None:
    async with open_local_hub(TOPICS) as hub:
        with hub.watch("romancy_work") as w:
            for key in ("a", "b", "a", "c"):
                hub.publish_local("romancy_work", key)
            hub.publish_local("romancy_done", "z")
            assert await w.wait() == Wakeup(keys=frozenset({"a", "b", "c"}))


async def test_a_quiet_taker_keeps_its_payloads_from_waking_the_watch() -> None:
    """What the taker takes never wakes the watch nor shows in a wakeup (nor counts towards
    its overflow); the rest does; another watch of the topic still gets everything."""
    taken: list[str] = []

    def take(payload: str) -> bool:
        if payload.startswith("peer:"):
            taken.append(payload)
            return True
        return False

    async with open_local_hub(TOPICS, NotifyConfig(max_pending_keys=2)) as hub:
        with hub.watch("romancy_work") as w, hub.watch("romancy_work") as other:
            w.set_quiet(take)
            for key in ("peer:1", "peer:2", "peer:3"):
                hub.publish_local("romancy_work", key)
            assert w.wait_nowait() is None
            assert taken == ["peer:1", "peer:2", "peer:3"]
            hub.publish_local("romancy_work", "mine")
            assert await w.wait() == Wakeup(keys=frozenset({"mine"}))
            assert other.wait_nowait() == Wakeup(gap=True)  # it overflowed: 4 payloads
            w.set_quiet(None)
            hub.publish_local("romancy_work", "peer:4")
            assert await w.wait() == Wakeup(keys=frozenset({"peer:4"}))
        with hub.watch("romancy_work", "k") as keyed, pytest.raises(ValueError, match="wildcard"):
            keyed.set_quiet(take)


async def test_overflow_reports_gap() -> None:
    async with open_local_hub(TOPICS, NotifyConfig(max_pending_keys=2)) as hub:
        with hub.watch("romancy_work") as w:
            for key in ("a", "b", "c"):
                hub.publish_local("romancy_work", key)
            assert await w.wait() == Wakeup(gap=True)
            assert hub.statistics().overflows == 1


def _on_mock_clock(test: Callable[[], Awaitable[None]]) -> None:
    """Run pure timer logic on Trio's virtual clock: it jumps ahead whenever every task waits,
    so a bound on elapsed time is exact and no busy machine can stretch it."""
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


def test_fallback_fires() -> None:
    async def check() -> None:
        async with open_local_hub(TOPICS, FAST) as hub:
            with hub.watch("romancy_done", "i1") as w:
                start = trio.current_time()
                assert await w.wait() == Wakeup(fallback=True)
                # the fallback interval, jittered by +-20 %: neither early nor late
                assert 0.04 <= trio.current_time() - start <= 0.06
                start = trio.current_time()
                assert await w.wait(timeout=10) == Wakeup(fallback=True)  # the nearer one
                assert 0.04 <= trio.current_time() - start <= 0.06
            assert hub.statistics().fallbacks == 2

    _on_mock_clock(check)


async def test_fallback_intervals_are_jittered() -> None:
    async with open_local_hub(
        TOPICS, NotifyConfig(fallback_interval=10, fallback_jitter=0.5)
    ) as hub:
        draws = {hub._fallback_interval() for _ in range(100)}
    assert len(draws) > 90
    assert all(5 <= d <= 15 for d in draws)
    assert min(draws) < 9 and max(draws) > 11


def test_timeout() -> None:
    async def check() -> None:
        async with open_local_hub(TOPICS) as hub:
            with hub.watch("romancy_done", "i1") as w:
                start = trio.current_time()
                assert await w.wait(timeout=0.05) == Wakeup(timed_out=True)
                assert trio.current_time() - start == pytest.approx(0.05)  # the timeout, exactly
                assert await w.wait(timeout=0) == Wakeup(timed_out=True)
                hub.publish_local("romancy_done", "i1")
                assert await w.wait(timeout=0) == Wakeup(keys=frozenset({"i1"}))
                with pytest.raises(ValueError, match="timeout"):
                    await w.wait(timeout=-1)
            assert hub.statistics().fallbacks == 0

    _on_mock_clock(check)


def test_timeout_with_autojump_clock() -> None:
    """Long intervals cost no real time; the earlier of timeout and fallback wins."""

    async def main() -> None:
        async with open_local_hub(TOPICS, NotifyConfig(fallback_interval=30)) as hub:
            with hub.watch("romancy_done") as w:
                assert await w.wait(timeout=20) == Wakeup(timed_out=True)
                assert await w.wait(timeout=40) == Wakeup(fallback=True)
                assert await w.wait(timeout=None) == Wakeup(fallback=True)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_several_waiters_on_one_key() -> None:
    async with open_local_hub(TOPICS) as hub:
        woken: list[Wakeup] = []

        async def waiter() -> None:
            with hub.watch("romancy_done", "i1") as w:
                woken.append(await w.wait())

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert hub.statistics().watches == 3
            hub.publish_local("romancy_done", "i1")
        assert woken == [Wakeup(keys=frozenset({"i1"}))] * 3


async def test_closing_the_hub_wakes_waiters_with_hub_closed() -> None:
    results: list[str] = []

    async def waiter(w: romancy_notify.Watch) -> None:
        try:
            await w.wait()
        except HubClosed:
            results.append("closed")

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            async with open_local_hub(TOPICS) as hub:
                w = hub.watch("romancy_done", "i1")
                nursery.start_soon(waiter, w)
                await trio.testing.wait_all_tasks_blocked()
            # the hub is closed; the waiter must finish on its own (no leaked task)
    assert results == ["closed"]
    assert hub.closed
    assert not hub.statistics().listening
    with pytest.raises(HubClosed):
        hub.watch("romancy_done", "i1")
    with pytest.raises(HubClosed):
        hub.publish_local("romancy_done", "i1")
    with pytest.raises(HubClosed):
        await w.wait(timeout=1)
    with pytest.raises(HubClosed):
        w.wait_nowait()
    w.close()  # harmless after the hub closed


async def test_closed_watch() -> None:
    async with open_local_hub(TOPICS) as hub:
        with hub.watch("romancy_done", "i1") as w:
            pass
        assert hub.statistics().watches == 0
        with pytest.raises(WatchClosed):
            await w.wait()

        # closing a watch from another task wakes its waiter with WatchClosed
        w2 = hub.watch("romancy_done", "i2")
        with pytest.RaisesGroup(WatchClosed):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(w2.wait)
                await trio.testing.wait_all_tasks_blocked()
                w2.close()


async def test_cancelling_a_wait_leaves_the_watch_usable() -> None:
    async with open_local_hub(TOPICS) as hub:
        with hub.watch("romancy_done", "i1") as w:
            with trio.move_on_after(0.01):
                await w.wait()
            hub.publish_local("romancy_done", "i1")
            assert await w.wait() == Wakeup(keys=frozenset({"i1"}))


async def test_body_exception_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with open_local_hub(TOPICS):
            raise KeyError("boom")


async def test_validation() -> None:
    async with open_local_hub(TOPICS) as hub:
        with pytest.raises(ValueError, match="unknown notify topic"):
            hub.watch("nope")
        with pytest.raises(ValueError, match="unknown notify topic"):
            hub.publish_local("nope", "x")
        with pytest.raises(ValueError, match="NUL"):
            hub.publish_local("romancy_done", "\x00")
        with pytest.raises(ValueError, match="more than 7999"):
            hub.publish_local("romancy_done", "x" * 8000)
        with pytest.raises(ValueError, match="NUL"):
            hub.watch("romancy_done", "\x00")
    with pytest.raises(ValueError, match="invalid notify topic"):
        async with open_local_hub(["bad-topic"]):
            pass


async def test_set_heard_on_a_local_hub_records_the_state_only() -> None:
    """Nothing to unlisten: the state shows at once, deliveries are unchanged, no gap."""
    async with open_local_hub(TOPICS) as hub:
        with hub.watch("romancy_done") as w:
            hub.set_heard("romancy_done", False)
            hub.set_heard("romancy_done", False)  # again: no change
            assert hub.statistics().unheard == frozenset({"romancy_done"})
            hub.publish_local("romancy_done", "i1")
            assert w.wait_nowait() == Wakeup(keys=frozenset({"i1"}))
            hub.set_heard("romancy_done", True)
            assert hub.statistics().unheard == frozenset()
            assert w.wait_nowait() is None
        with pytest.raises(ValueError, match="'nope'"):
            hub.set_heard("nope", False)
    with pytest.raises(HubClosed):
        hub.set_heard("romancy_done", False)


async def test_a_change_made_elsewhere_is_a_gap_for_every_watch() -> None:
    answers = [False, True]
    asked = trio.Event()

    async def changed_elsewhere() -> bool:
        if not answers:
            asked.set()
            await trio.sleep_forever()
        return answers.pop(0)

    async with open_local_hub(TOPICS, config=NotifyConfig(fallback_interval=3600),
                              changed_elsewhere=changed_elsewhere, poll_interval=0.01) as hub:
        with hub.watch("romancy_done", "i1") as keyed, hub.watch("romancy_work") as everything:
            await asked.wait()
            assert keyed.wait_nowait() == Wakeup(gap=True)
            assert everything.wait_nowait() == Wakeup(gap=True)
        assert hub.statistics().gaps == 1


async def test_the_change_check_is_validated_and_its_errors_propagate() -> None:
    async def fails() -> bool:
        raise OSError("disk gone")

    with pytest.raises(ValueError, match="poll_interval"):
        async with open_local_hub(TOPICS, changed_elsewhere=fails, poll_interval=0):
            pass
    with pytest.raises(ExceptionGroup) as failed:  # from the hub's task
        async with open_local_hub(TOPICS, changed_elsewhere=fails, poll_interval=0.01):
            await trio.sleep_forever()
    assert failed.group_contains(OSError, match="disk gone")
