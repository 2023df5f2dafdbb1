"""Packing (``AppConfig.placement="pack"``, issue #22): every wake-up goes to one worker (the
taker) until it is full, only it and the standby hear the work channel, and the standby takes
over what the taker leaves."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)
from romancy_trio._engine import _packing
from romancy_trio._engine._packing import BUSY_FREE, BUSY_FULL, Fullness
from romancy_trio._engine._peers import Peers

from .conftest import Backend


def _group(n: int, placement: str = "pack") -> list[Peers]:
    peers = [Peers(f"w{i}", ["a"], expire_after=30.0, placement=placement) for i in range(n)]
    _tell(peers)
    return peers


def _tell(peers: list[Peers], now: float = 0.0) -> None:
    """Every worker hears every other's current announcement."""
    for p in peers:
        for other in peers:
            p.heard(other.announcement(joining=True), now=now)


def test_the_group_agrees_on_one_taker_and_one_standby_and_only_they_hear_work() -> None:
    group = _group(4)
    views = {p.roles() for p in group}
    assert len(views) == 1
    [(taker, standby)] = views
    assert taker is not None and standby is not None and taker != standby
    for n in range(200):
        assert [p.worker_id for p in group if p.chooses_me(f"i{n}")] == [taker]
    assert sorted(p.worker_id for p in group if p.hears_work()) == sorted([taker, standby])


def test_a_full_taker_passes_the_work_to_the_next_and_takes_it_back_when_free() -> None:
    group = _group(4)
    by_id = {p.worker_id: p for p in group}
    first, second = group[0].roles()
    assert first is not None and second is not None
    by_id[first].full = True
    _tell(group, now=1.0)
    taker, standby = group[0].roles()
    assert taker == second and standby not in (first, second, None)
    assert {p.roles() for p in group} == {(taker, standby)}
    # the full worker no longer hears the work channel, the new standby does
    assert not by_id[first].hears_work() and by_id[standby].hears_work()
    by_id[first].full = False
    _tell(group, now=2.0)
    assert {p.roles() for p in group} == {(first, second)}


def test_a_standby_that_watches_the_taker_does_not_hear_the_work_channel() -> None:
    group = _group(3)
    taker, standby = group[0].roles()
    for p in group:
        p.standby_listens = False
    assert [p.worker_id for p in group if p.hears_work()] == [taker]
    watcher = next(p for p in group if p.worker_id == standby)
    assert taker is not None
    watcher.forget(taker)  # its session is gone: the standby is the taker now, and hears
    assert watcher.roles()[0] == standby and watcher.hears_work()


def test_when_every_worker_is_full_wake_ups_are_spread_and_every_worker_hears_them() -> None:
    group = _group(3)
    for p in group:
        p.full = True
    _tell(group)
    assert {p.roles() for p in group} == {(None, None)}
    assert all(p.hears_work() for p in group)
    chosen = Counter()
    for n in range(600):
        who = [p.worker_id for p in group if p.chooses_me(f"i{n}")]
        assert len(who) == 1
        chosen[who[0]] += 1
    assert len(chosen) == 3 and min(chosen.values()) > 100


def test_a_taker_that_left_or_expired_is_replaced_and_a_lone_worker_takes_all() -> None:
    group = _group(3)
    taker, standby = group[0].roles()
    rest = [p for p in group if p.worker_id != taker]
    gone = next(p for p in group if p.worker_id == taker)
    rest[0].heard(gone.announcement(joining=False), now=1.0)  # a clean stop
    assert rest[0].roles()[0] == standby
    rest[1].expire(now=31.0)  # a crash: not heard from for three intervals
    assert rest[1].count == 1 and rest[1].roles() == (rest[1].worker_id, None)
    lone = Peers("solo", ["a"], expire_after=30.0, placement="pack")
    assert lone.chooses_me("x") and lone.hears_work()


def test_packing_and_spreading_workers_do_not_count_each_other() -> None:
    packing = Peers("p", ["a"], expire_after=30.0, placement="pack")
    spreading = Peers("s", ["a"], expire_after=30.0)
    assert packing.fingerprint != spreading.fingerprint
    assert not packing.heard(spreading.announcement(joining=True), now=0.0)
    assert not spreading.heard(packing.announcement(joining=True), now=0.0)
    assert packing.count == spreading.count == 1
    # a spreading worker never says it is full, and hears every wake-up
    spreading.full = True
    assert spreading.announcement(joining=True).startswith("+") and spreading.hears_work()


def test_fullness_has_hysteresis_and_counts_slots() -> None:
    f = Fullness()
    assert not f.update(busy=BUSY_FULL - 0.01, free=5) and not f.full
    assert f.update(busy=BUSY_FULL, free=5) and f.full
    assert not f.update(busy=BUSY_FREE, free=5) and f.full  # still busy enough: stays full
    assert f.update(busy=BUSY_FREE - 0.01, free=5) and not f.full
    assert f.update(busy=0.0, free=0) and f.full  # every slot taken
    assert not f.update(busy=0.0, free=0) and f.full
    assert f.update(busy=0.0, free=1) and not f.full


def test_placement_is_checked() -> None:
    with pytest.raises(ValueError, match="placement must be 'spread' or 'pack', not 'packed'"):
        AppConfig(placement="packed")  # type: ignore[arg-type]


# -- a packing group of in-process workers on PostgreSQL ------------------------------------

RELEASE: dict[str, trio.Event] = {}


@activity
async def pk_where(ctx: ActivityContext, hold: str | None) -> str:
    if hold is not None:
        await RELEASE[hold].wait()
    return ctx.worker_id


@activity
async def pk_block_loop(ctx: ActivityContext, seconds: float) -> str:
    end = time.perf_counter() + seconds  # CPU-bound in the event loop: busy, not waiting
    while time.perf_counter() < end:
        pass
    return ctx.worker_id


@workflow
async def pk_work(ctx: WorkflowContext, hold: str | None = None) -> str:
    return await pk_where(ctx, hold)


@workflow
async def pk_hog(ctx: WorkflowContext, seconds: float) -> str:
    return await pk_block_loop(ctx, seconds)


WORKFLOWS = [pk_work, pk_where, pk_hog, pk_block_loop]


async def _agreed(apps: list[Any], count: int) -> tuple[str, str]:
    """Wait until every worker sees ``count`` live workers and all agree on the roles."""
    with trio.fail_after(20):
        while True:
            views = {a._scheduler.peers.roles() for a in apps}
            if all(a._scheduler.peers.count == count for a in apps) and len(views) == 1:
                [(taker, standby)] = views
                if taker is not None and standby is not None:
                    return taker, standby
            await trio.sleep(0.02)


async def _unheard(app: Any) -> bool:
    return app.store.topics.work in app.hub.statistics().unheard


class _Worker:
    """An in-process packing worker, run by a task of its own (so it can stop alone)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def run(self, url: str, cfg: AppConfig, worker_id: str,
                  task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                async with open_app(url, workflows=WORKFLOWS, config=cfg,
                                    worker_id=worker_id) as app:
                    task_status.started(app)
                    await trio.sleep_forever()
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        """A clean stop (the app closes: it tells the others it leaves)."""
        self.scope.cancel()
        await self.stopped.wait()


@asynccontextmanager
async def _pack_group(b: Backend, **config: Any
                      ) -> AsyncIterator[tuple[list[Any], Any, dict[str, _Worker]]]:
    """Three packing workers and a client."""
    cfg = dataclasses.replace(b.config, placement="pack", fallback_interval=60.0,
                              member_interval=1.0, **config)
    async with open_app(b.url, workflows=WORKFLOWS, config=cfg, run_workers=False) as client, \
            trio.open_nursery() as nursery:
        workers = {w: _Worker() for w in ("pa", "pb", "pc")}
        apps = [await nursery.start(workers[w].run, b.url, cfg, w) for w in workers]
        yield apps, client, workers
        nursery.cancel_scope.cancel()


@pytest.mark.postgres
async def test_a_packing_group_runs_new_work_on_one_worker_and_spills_when_it_is_full(
        pg_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    # only full slots make a worker full here (a loaded test machine must not move the taker)
    monkeypatch.setattr(_packing, "BUSY_FULL", 2.0)
    async with _pack_group(pg_backend, max_concurrent=2) as (apps, client, _):
        by_id = {a._scheduler.worker_id: a for a in apps}
        taker, standby = await _agreed(apps, 3)
        [idle] = [w for w in by_id if w not in (taker, standby)]
        # only the taker hears the work channel (the standby watches the taker's session)
        with trio.fail_after(20):
            while not (await _unheard(by_id[idle]) and await _unheard(by_id[standby])):
                await trio.sleep(0.02)
        assert not await _unheard(by_id[taker])
        ran = [await client.result(await client.start(pk_work), timeout=20) for _ in range(15)]
        assert set(ran) == {taker}
        assert {w: a.statistics().role for w, a in by_id.items()} == {
            taker: "taker", standby: "standby", idle: "idle"}
        # the taker's two slots taken: it says it is full, the standby takes the new work
        # (it hears the work channel now, the full taker does not)
        RELEASE.update(first=trio.Event())
        held = [await client.start(pk_work, "first") for _ in range(2)]
        with trio.fail_after(20):
            while {a._scheduler.peers.roles() for a in apps} != {(standby, idle)}:
                await trio.sleep(0.02)
        assert by_id[taker].statistics().role == "full"
        with trio.fail_after(20):
            while await _unheard(by_id[standby]) or not await _unheard(by_id[taker]):
                await trio.sleep(0.02)
        # (its rescan on hearing again races the first start: taken either way)
        ran = [await client.result(await client.start(pk_work), timeout=20) for _ in range(5)]
        assert set(ran) == {standby}
        RELEASE["first"].set()
        assert [await client.result(i, timeout=20) for i in held] == [taker, taker]
        with trio.fail_after(20):  # free again: it takes the work again
            while {a._scheduler.peers.roles() for a in apps} != {(taker, standby)}:
                await trio.sleep(0.02)
        assert await client.result(await client.start(pk_work), timeout=20) == taker


@pytest.mark.postgres
async def test_a_packing_worker_whose_loop_is_busy_hands_new_work_to_the_next(
        pg_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    # a third of a core: a test machine kept busy by others still gives the hog that much
    monkeypatch.setattr(_packing, "BUSY_FULL", 0.35)
    monkeypatch.setattr(_packing, "BUSY_FREE", 0.25)
    async with _pack_group(pg_backend) as (apps, client, _):
        taker, standby = await _agreed(apps, 3)
        # (the workers share this process's event loop: all of them find it busy)
        with client.hub.watch(client.store.topics.members) as members:
            hog = await client.start(pk_hog, 1.5)  # burns 1.5 s of CPU in the taker's loop
            assert await client.result(hog, timeout=20) == taker
            # the taker measured a busy tick and said so at once ('*')
            with trio.fail_after(20):
                said: set[str] = set()
                while not any(k.startswith("*") and k.endswith(f"|{taker}") for k in said):
                    said.update((await members.wait()).keys)
        # it goes back to taking work once its loop is idle
        with trio.fail_after(20):
            while {a._scheduler.peers.roles() for a in apps} != {(taker, standby)}:
                await trio.sleep(0.02)


@pytest.mark.postgres
async def test_a_packing_taker_that_stops_hands_the_work_to_the_standby(
        pg_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packing, "BUSY_FULL", 2.0)
    async with _pack_group(pg_backend) as (apps, client, workers):
        taker, standby = await _agreed(apps, 3)
        await workers[taker].stop()  # a clean stop: it says so, the others drop it at once
        rest = [a for a in apps if a._scheduler.worker_id != taker]
        [idle] = [a for a in rest if a._scheduler.worker_id != standby]
        by_id = {a._scheduler.worker_id: a for a in rest}
        with trio.fail_after(20):  # the standby is the taker now: it hears the work channel
            while {a._scheduler.peers.roles() for a in rest} != {
                    (standby, idle._scheduler.worker_id)} or await _unheard(by_id[standby]):
                await trio.sleep(0.02)
        ran = [await client.result(await client.start(pk_work), timeout=20) for _ in range(5)]
        assert set(ran) == {standby}
