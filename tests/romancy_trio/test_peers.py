"""One claim per wake-up: the worker chosen for a woken instance claims it at once, the others
only after ``peer_claim_delay`` - so a wake-up left to a dead worker is still run."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

import pytest
import trio
import trio.testing
from psycopg import sql

from loadtests._sqlcount import counting
from romancy_notify import NotifyConfig, open_local_hub
from romancy_notify.pg import connect
from romancy_trio import (
    ActivityContext,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    receive,
    subscribe,
    workflow,
)
from romancy_trio._engine._claimwait import ClaimWaiter
from romancy_trio._engine._peers import Peers, fingerprint
from romancy_trio._engine._stats import _Counters
from romancy_trio.storage import hints

from .conftest import Backend


def _group(n: int) -> list[Peers]:
    names = ["a", "b"]
    peers = [Peers(f"w{i}", names, expire_after=30.0) for i in range(n)]
    for p in peers:
        for other in peers:
            p.heard(other.announcement(joining=True), now=0.0)
    return peers


def test_exactly_one_live_worker_is_chosen_for_each_instance_and_the_load_spreads() -> None:
    peers = _group(4)
    chosen = Counter()
    for n in range(2000):
        key = hints.instance_hint(f"instance-{n}")
        who = [p.worker_id for p in peers if p.chooses_me(key)]
        assert len(who) == 1, key
        chosen[who[0]] += 1
    assert set(chosen) == {"w0", "w1", "w2", "w3"}
    assert all(300 < c < 700 for c in chosen.values()), chosen  # about 500 each


def test_membership_join_leave_expire_and_workflow_sets() -> None:
    me = Peers("me", ["a"], expire_after=3.0)
    assert me.count == 1 and me.chooses_me("x")  # alone: everything is mine
    other = Peers("other", ["a"], expire_after=3.0)
    assert me.heard(other.announcement(joining=True), now=0.0)  # a newcomer: answer it
    assert not me.heard(other.announcement(joining=True), now=1.0)  # known: no answer
    assert me.count == 2
    stranger = Peers("stranger", ["a", "b"], expire_after=3.0)  # runs other workflows
    assert not me.heard(stranger.announcement(joining=True), now=1.0) and me.count == 2
    assert not me.heard(me.announcement(joining=True), now=1.0) and me.count == 2
    me.expire(now=3.5)
    assert me.count == 2  # heard 2.5 s ago
    me.expire(now=4.5)
    assert me.count == 1  # not heard for 3.5 s: gone
    me.heard(other.announcement(joining=True), now=5.0)
    me.heard(other.announcement(joining=False), now=5.1)
    assert me.count == 1
    for junk in ("", "+", "?" + me.fingerprint + "x", "+short"):
        assert not me.heard(junk, now=6.0)
    assert me.count == 1
    assert fingerprint(["b", "a"]) == fingerprint(["a", "b"]) != fingerprint(["a"])


def test_hint_payloads() -> None:
    assert hints.parse_deadline(hints.deadline_hint(1790000000.123456)) == 1790000000.123456
    # an instance id that looks like a deadline is still an instance hint
    assert hints.parse_deadline(hints.instance_hint("t:1.5")) is None
    assert hints.parse_deadline("t:not-a-number") is None
    assert hints.parse_deadline("") is None


@workflow
async def peer_echo(ctx: WorkflowContext, value: int) -> int:
    return value * 2


@workflow
async def peer_receiver(ctx: WorkflowContext, channel: str) -> list[Any]:
    await subscribe(ctx, channel, "competing")
    return [(await receive(ctx, channel, timeout=30)).data for _ in range(2)]


@pytest.mark.postgres
async def test_a_publish_names_the_instance_it_woke(pg_backend: Backend) -> None:
    """The wake-up is sent by the publish's own statement, with its COMMIT: its payload is
    the instance hint the workers' choice is made on."""
    b = pg_backend
    async with open_app(b.url, workflows=[peer_receiver], config=b.config) as app:
        listener = await connect(b.direct_url or b.url, autocommit=True)
        try:
            await listener.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(app.store.topics.work)))
            iid = await app.start(peer_receiver, "named")
            for n in range(2):
                with trio.fail_after(10):
                    while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                        await trio.sleep(0.01)
                await app.publish("named", n)
                async with aclosing(listener.notifies(timeout=10)) as notes:
                    payloads = []
                    async for note in notes:
                        payloads.append(note.payload)
                        if note.payload == hints.instance_hint(iid):
                            break
                assert payloads[-1] == hints.instance_hint(iid), payloads
            assert await app.result(iid, timeout=20) == [0, 1]
        finally:
            await listener.close()


STEPS: list[str] = []


@activity
async def peer_step(ctx: ActivityContext, name: str) -> str:
    STEPS.append(name)
    return name.upper()


@workflow
async def peer_steps_then_receive(ctx: WorkflowContext, channel: str) -> list[Any]:
    await subscribe(ctx, channel, "competing")
    done = [await peer_step(ctx, "a"), await peer_step(ctx, "b")]
    return [*done, (await receive(ctx, channel, timeout=30)).data]


@pytest.mark.postgres
async def test_the_claim_of_a_named_wake_up_brings_the_history_along(
        pg_backend: Backend) -> None:
    """The worker a wake-up names claims the instance and reads its history in one round
    trip: the replay gets every recorded step (none runs twice) without a separate load."""
    b = pg_backend
    STEPS.clear()
    async with open_app(b.url, workflows=[peer_steps_then_receive, peer_step],
                        config=b.config) as app:
        loads = []
        load_history = app.store.load_history

        async def counted(instance_id: str, run_no: int) -> Any:
            loads.append(instance_id)
            return await load_history(instance_id, run_no)

        app.store.load_history = counted  # type: ignore[method-assign]
        iid = await app.start(peer_steps_then_receive, "along")
        with trio.fail_after(10):
            while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                await trio.sleep(0.01)
        await app.publish("along", "msg")
        assert await app.result(iid, timeout=20) == ["A", "B", "msg"]
        assert STEPS == ["a", "b"]  # replayed from the history, not run again
        assert loads == []  # the wake-up's claim brought it


@pytest.mark.postgres
async def test_a_wake_up_chosen_for_a_dead_worker_runs_after_the_delay(
        pg_backend: Backend) -> None:
    b = pg_backend
    # the fallback re-check is far off: only the delayed claim can run the ghost's instances
    config = dataclasses.replace(b.config, peer_claim_delay=0.3, fallback_interval=60.0)
    async with open_app(b.url, workflows=[peer_echo], config=config) as worker, \
            open_app(b.url, workflows=[peer_echo], config=config, run_workers=False) as client:
        scheduler = worker._scheduler
        assert scheduler is not None
        # a worker that announces itself and then dies without a word
        ghost = Peers("ghost", [peer_echo.name], expire_after=30.0)
        async with worker.store.db.transaction() as tx:
            await tx.notify(worker.store.topics.members, ghost.announcement(joining=True))
        with trio.fail_after(10):
            while scheduler.peers.count < 2:
                await trio.sleep(0.01)
        ids = [f"peer-{n}" for n in range(40)]
        ghosts = [i for i in ids if not scheduler.peers.chooses_me(i)]
        mine = [i for i in ids if i not in ghosts]
        assert ghosts and mine
        for n, iid in enumerate(ghosts[:2]):
            deferred = scheduler.statistics().deferred
            started = trio.current_time()
            await client.start(peer_echo, n, instance_id=iid)
            assert await client.result(iid, timeout=30) == 2 * n  # well before the fallback
            # left to the ghost first, then claimed here once the delay was up
            assert scheduler.statistics().deferred == deferred + 1
            assert trio.current_time() - started >= 0.25
        for n, iid in enumerate(mine[:2]):
            deferred = scheduler.statistics().deferred
            await client.start(peer_echo, n, instance_id=iid)
            assert await client.result(iid, timeout=20) == 2 * n
            assert scheduler.statistics().deferred == deferred  # claimed at once


def test_announcements_carry_the_load_and_the_excess_goes_to_the_least_loaded() -> None:
    me = Peers("me", ["a"], expire_after=30.0)
    for name, load in (("b", 3), ("c", 3), ("d", 0)):
        me.heard(Peers(name, ["a"], expire_after=30.0).announcement(joining=True, load=load),
                 now=0.0)
    assert me.fresh(now=1.0, within=5.0) == {"b": 3, "c": 3, "d": 0}
    # 4 + 3 + 3 + 0 over 4 workers: share 3; the one extra goes to d
    assert me.excess_targets(4, now=1.0, fresh_within=5.0) == ["d"]
    assert me.excess_targets(3, now=1.0, fresh_within=5.0) == []
    # a peer not heard from lately is neither a target nor part of the share (it may be dead)
    assert me.excess_targets(4, now=10.0, fresh_within=5.0) == []
    me.heard(Peers("d", ["a"], expire_after=30.0).announcement(joining=True, load=0), now=9.0)
    assert me.excess_targets(6, now=10.0, fresh_within=5.0) == ["d", "d", "d"]  # 6+0 -> 3/3


def test_every_worker_of_an_uneven_group_hands_over_only_its_excess() -> None:
    loads = {"a": 8, "b": 4, "c": 0}
    group = {n: Peers(n, ["x"], expire_after=30.0) for n in loads}
    for p in group.values():
        for n, load in loads.items():
            p.heard(group[n].announcement(joining=True, load=load), now=0.0)
    moves = {n: p.excess_targets(loads[n], now=0.0, fresh_within=5.0)
             for n, p in group.items()}
    assert moves == {"a": ["c", "c", "c", "c"], "b": [], "c": []}  # -> 4/4/4


def test_placement_hints_round_trip() -> None:
    hint = hints.placed_hint("inst:1", "host:12:ab|c")
    assert hints.parse_placed(hint) == ("inst:1", "host:12:ab|c")
    assert hints.parse_placed("i:inst") is None
    assert hints.parse_placed("w:99:short") is None
    assert hints.parse_deadline(hint) is None


async def _peers_of(app: Any, count: int) -> None:
    with trio.fail_after(10):
        while app._scheduler.peers.count < count:
            await trio.sleep(0.01)


@pytest.mark.postgres
async def test_a_worker_not_chosen_does_not_claim_what_the_chosen_peer_took(
        server_backend: Backend) -> None:
    """Every worker hears a new workflow's wake-up; the one not chosen for it leaves it to
    the chosen peer and, when the delay is up, finds it taken with one look-up: it claims
    nothing and runs nothing (issue #22: a worker pays little for wake-ups of others)."""
    b = server_backend
    config = dataclasses.replace(b.config, peer_claim_delay=1.0, fallback_interval=60.0)
    async with open_app(b.url, workflows=[peer_echo], config=config, worker_id="wa") as a, \
            open_app(b.url, workflows=[peer_echo], config=config, worker_id="wb") as bee, \
            open_app(b.url, workflows=[peer_echo], config=config, run_workers=False) as client:
        await _peers_of(a, 2)
        await _peers_of(bee, 2)
        assert bee._scheduler is not None
        ids = [f"chosen-{n}" for n in range(40)]
        for_a = [i for i in ids if not bee._scheduler.peers.chooses_me(i)]
        for_b = [i for i in ids if i not in for_a]
        assert for_a and for_b
        before, a_before = bee.statistics(), a.statistics()
        assert before is not None and a_before is not None
        await client.start(peer_echo, 1, instance_id=for_a[0])
        assert await client.result(for_a[0], timeout=20) == 2
        with trio.fail_after(10):  # its delay ends: it looks, finds it taken, goes on waiting
            while (after := bee.statistics()) is not None and \
                    after.peer_claimed == before.peer_claimed:
                await trio.sleep(0.02)
        assert after is not None
        assert after.deferred == before.deferred + 1
        # it ran nothing (a claim may still come from a wake-up that names no instance - on
        # MySQL the signal reader's first poll after connecting - and finds nothing here)
        assert after.started == before.started
        ran = a.statistics()
        assert ran is not None and ran.started == a_before.started + 1  # the chosen peer ran it
        # what is chosen for it, it runs at once; a new instance has no history to read first
        with counting(keep=True) as counts:
            await client.start(peer_echo, 2, instance_id=for_b[0])
            assert await client.result(for_b[0], timeout=20) == 4
        assert counts.sent is not None
        read_history = bee.store.q.select_current_history
        assert not [q for q, _ in counts.sent if q == read_history]
        last = bee.statistics()
        assert last is not None and last.started == before.started + 1
        assert last.deferred == after.deferred


def test_a_wake_up_left_to_a_peer_is_looked_up_after_the_delay_and_claimed_if_untaken() -> None:
    """The claim wait of a worker not chosen for a wake-up: no claim while the peer takes
    what it was left (one look-up per delay at most, each instance within two delays); a
    claim as soon as a look-up finds one untaken; while look-ups keep finding work untaken
    (every worker busy), the next looks claim without one."""
    delay = 0.1
    me = Peers("me", ["a"], expire_after=30.0)
    me.heard(Peers("peer", ["a"], expire_after=30.0).announcement(joining=True), now=0.0)
    theirs = [i for i in (f"x{n}" for n in range(200))
              if not me.chooses_me(i)]
    lookups: list[tuple[float, list[str]]] = []
    untaken: set[str] = set()
    sent: dict[str, float] = {}

    async def any_unclaimed(ids: Sequence[str]) -> bool:
        lookups.append((trio.current_time(), list(ids)))
        return bool(untaken & set(ids))

    async def main() -> None:
        async with open_local_hub(["work"], config=NotifyConfig(fallback_interval=60.0)) as hub:
            with hub.watch("work") as watch:
                counters = _Counters()
                waiter = ClaimWaiter(watch, me, counters, peer_claim_delay=delay,
                                     longest_fallback=hub.config.longest_fallback,
                                     any_unclaimed=any_unclaimed)
                async with trio.open_nursery() as nursery:

                    async def wake_ups(ids: list[str]) -> None:
                        for iid in ids:  # one every 30 ms
                            sent[iid] = trio.current_time()
                            hub.publish_local("work", hints.instance_hint(iid))
                            await trio.sleep(0.03)

                    # the peer takes everything: no claim until the fallback, few look-ups
                    nursery.start_soon(wake_ups, theirs[:20])
                    started = trio.current_time()
                    assert await waiter.until_claim_is_due(None) is None
                    shortest = (1 - hub.config.fallback_jitter) * hub.config.fallback_interval
                    assert trio.current_time() - started >= shortest
                    looked = [i for _, ids in lookups for i in ids]
                    assert sorted(looked) == sorted(theirs[:20])  # each one looked at once
                    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(lookups)]
                    assert all(g >= delay - 1e-9 for g in gaps)  # at most one per delay
                    assert all(delay - 1e-9 <= at - sent[i] <= 2 * delay + 1e-9
                               for at, ids in lookups for i in ids)
                    assert counters.deferred == 20 and counters.peer_claimed == len(lookups)
                    # the first woke the claim loop; the others came while a look was due:
                    # taken without a wake-up
                    assert hub.statistics().delivered == 1
                    # one the peer did not take: claimed once its look-up finds it
                    untaken.add(theirs[20])
                    lookups.clear()
                    hub.publish_local("work", hints.instance_hint(theirs[20]))
                    started = trio.current_time()
                    assert await waiter.until_claim_is_due(None) is None
                    assert delay - 1e-9 <= trio.current_time() - started < 2 * delay
                    assert lookups and lookups[-1][1] == [theirs[20]]
                    # it found work untaken: the next look claims without a look-up
                    lookups.clear()
                    hub.publish_local("work", hints.instance_hint(theirs[21]))
                    assert await waiter.until_claim_is_due(None) is None
                    assert lookups == []
                    # what is chosen for this worker, it claims at once
                    mine = next(i for i in (f"y{n}" for n in range(50))
                                if me.chooses_me(i))
                    hub.publish_local("work", hints.instance_hint(mine))
                    assert await waiter.until_claim_is_due(None) == mine
                    # a new one chosen for it: at once too, and with no history to read
                    new = next(i for i in (f"z{n}" for n in range(50)) if me.chooses_me(i))
                    hub.publish_local("work", hints.new_hint(new))
                    started = trio.current_time()
                    assert await waiter.until_claim_is_due(None) is None
                    assert trio.current_time() == started

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
