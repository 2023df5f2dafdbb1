"""Deadline hints: a suspension tells every worker of its deadline only when a worker might
otherwise look too late. A far deadline is learnt from the next claim, which every waiting
worker makes within the hub's longest fallback wait."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from contextlib import aclosing

import pytest
import trio
import trio.testing
from psycopg import sql

from romancy_notify import NotifyConfig, open_local_hub
from romancy_notify.pg import connect
from romancy_trio import AppConfig, WorkflowContext, WorkflowStatus, open_app, sleep, workflow
from romancy_trio._definitions import Registry
from romancy_trio._engine._claimwait import ClaimWaiter
from romancy_trio._engine._scheduler import Scheduler
from romancy_trio._engine._stats import _Counters
from romancy_trio.storage import hints

from .conftest import Backend, fetch


@workflow
async def hint_sleeper(ctx: WorkflowContext, seconds: float) -> str:
    await sleep(ctx, seconds)
    return "woke"


@pytest.mark.postgres
async def test_a_suspension_announces_a_near_deadline_but_not_a_far_one(
        pg_backend: Backend) -> None:
    b = pg_backend
    async with open_app(b.url, workflows=[hint_sleeper], config=b.config) as app:
        horizon = app.store.waits.deadline_hint_horizon
        assert horizon == 2 * b.config.fallback_interval * (1 + NotifyConfig().fallback_jitter)
        listener = await connect(b.direct_url or b.url, autocommit=True)
        try:
            await listener.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(app.store.topics.work)))
            announced = {}
            for seconds in (horizon / 2, horizon * 10):
                iid = await app.start(hint_sleeper, seconds)
                with trio.fail_after(10):
                    while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                        await trio.sleep(0.01)
                # notifications arrive in commit order: whatever the suspension sent comes
                # before this marker
                async with app.store.db.transaction() as tx:
                    await tx.notify(app.store.topics.work, "marker")
                deadlines = []
                async with aclosing(listener.notifies(timeout=10)) as notes:
                    async for note in notes:
                        if note.payload == "marker":
                            break
                        if (at := hints.parse_deadline(note.payload)) is not None:
                            deadlines.append(at)
                announced[seconds] = deadlines
            near, far = announced.values()
            assert len(near) == 1 and near[0] > time.time(), announced
            assert far == [], announced
        finally:
            await listener.close()


@pytest.mark.postgres
async def test_a_far_timer_left_by_a_worker_that_stopped_fires_on_time_elsewhere(
        pg_backend: Backend) -> None:
    """The timer is never announced; the other worker, idle, learns it from its next
    fallback claim and fires it when it is due, not a fallback later."""
    config = dataclasses.replace(pg_backend.config, fallback_interval=1.0)
    longest = NotifyConfig(fallback_interval=1.0).longest_fallback
    seconds = 2 * 2 * longest  # past the hint horizon (2 * longest)
    async with open_app(pg_backend.url, workflows=[hint_sleeper], config=config,
                        worker_id="stays") as stays:
        async with open_app(pg_backend.url, workflows=[hint_sleeper], config=config,
                            worker_id="leaves") as leaves:
            assert leaves.store.waits.deadline_hint_horizon < seconds
            started = time.time()
            iid = await leaves.start(hint_sleeper, seconds)  # runs here: started eagerly
            with trio.fail_after(10):
                while (await leaves.status(iid)).status is not WorkflowStatus.WAITING:
                    await trio.sleep(0.01)
        assert await stays.result(iid, timeout=seconds + 10) == "woke"
        fired = await fetch(stays, "SELECT worker_id, created_at FROM workflow_history "
                            "WHERE instance_id = ? AND kind = 'timer_fired'", (iid,))
        assert [w for w, _ in fired] == ["stays"]
        late = float(fired[0][1]) - (started + seconds)
        print(f"fired {late:.3f} s after it was due")
        assert 0 <= late < longest


async def _never_asked(instance_ids: Sequence[str]) -> bool:
    raise AssertionError("no wake-up was left to a peer")


def test_a_waiting_worker_looks_again_within_the_longest_fallback_whatever_it_hears() -> None:
    """Deadline hints restart each wait's fallback timer; the claim loop still returns (to
    claim, and learn the next deadline) within the hub's longest fallback wait."""
    notify_config = NotifyConfig(fallback_interval=1.0, fallback_jitter=0.2)

    async def main() -> None:
        async with open_local_hub(["work"], config=notify_config) as hub:
            scheduler = Scheduler(
                None,  # type: ignore[arg-type]  # waiting for work needs no store
                Registry.of([hint_sleeper]), hub, AppConfig(), "w0",
                None)  # type: ignore[arg-type]
            with hub.watch("work") as watch:
                waiter = ClaimWaiter(watch, scheduler.peers, _Counters(), peer_claim_delay=0.1,
                                     longest_fallback=hub.config.longest_fallback,
                                     any_unclaimed=_never_asked)
                async with trio.open_nursery() as nursery:

                    async def hint_now_and_then() -> None:
                        while True:  # deadlines a minute away, every half second
                            await trio.sleep(0.5)
                            hub.publish_local("work", hints.deadline_hint(time.time() + 60))

                    nursery.start_soon(hint_now_and_then)
                    for _ in range(3):
                        started = trio.current_time()
                        assert await waiter.until_claim_is_due(None) is None
                        waited = trio.current_time() - started
                        assert 0.5 < waited <= notify_config.longest_fallback, waited
                    nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
