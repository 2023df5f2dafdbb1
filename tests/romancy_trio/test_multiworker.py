"""Several worker processes on one PostgreSQL or MySQL/MariaDB server: every workflow completes
exactly once, and no
instance ever runs on two workers at the same time - even when one worker is SIGKILLed."""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from romancy_trio import WorkflowStatus, open_app

from ._procs import start_worker, stop
from .conftest import Backend
from .worker_proc import EFFECTS_DDL, effect, steps

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
N = 200


async def _rows(app: Any, query: str) -> list[tuple[Any, ...]]:
    async with app.store.db.transaction() as tx:
        return await tx.fetchall(query)


@asynccontextmanager
async def _client(b: Backend) -> AsyncIterator[Any]:
    """An app that starts workflows and runs none, with the workers' effects table made."""
    async with open_app(
        b.url, workflows=[steps, effect], config=b.config, run_workers=False
    ) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(EFFECTS_DDL)
        yield app


async def test_three_workers_two_hundred_workflows_one_killed(server_backend: Backend) -> None:
    b = server_backend
    async with _client(b) as app:
        workers = [start_worker(b.url, b.config.schema, f"w{i}") for i in range(3)]
        try:
            ids = [await app.start(steps, 3) for _ in range(N)]
            with trio.fail_after(60):
                while len(await app.list_instances(status="completed", limit=N)) < N // 4:
                    await trio.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)
            for iid in ids:
                assert await app.result(iid, timeout=60) == [10, 20, 30]
        finally:
            for w in workers:
                stop(w)
        done = await app.list_instances(status=WorkflowStatus.COMPLETED, limit=N + 1)
        assert len(done) == N
        effects = Counter(
            (i, s)
            for i, s, _ in await _rows(app, "SELECT instance_id, step, worker_id FROM effects")
        )
        assert set(effects.values()) == {1} and len(effects) == 3 * N
        history = await _rows(
            app,
            "SELECT instance_id, seq, worker_id, lease_epoch "
            "FROM workflow_history ORDER BY instance_id, seq",
        )
        owner_of_epoch: dict[tuple[str, int], set[str]] = defaultdict(set)
        last_epoch: dict[str, int] = {}
        for iid, _seq, worker, epoch in history:
            owner_of_epoch[(iid, epoch)].add(worker)
            assert epoch >= last_epoch.get(iid, 0), f"{iid}: an older owner wrote after a newer"
            last_epoch[iid] = epoch
        assert all(len(w) == 1 for w in owner_of_epoch.values())
        assert len({w for ws in owner_of_epoch.values() for w in ws}) >= 2


async def test_wake_ups_chosen_for_a_killed_worker_run_on_the_other_before_the_fallback(
        server_backend: Backend) -> None:
    """Two worker processes; workflows started in a third process run on both (each wake-up
    is claimed at once by the worker chosen for it). One is SIGKILLed: the survivor still
    counts it as a peer for a while and leaves it the wake-ups chosen for it, but when the
    delay is up it finds them unclaimed and runs every one - long before its 120 s fallback
    re-check, the only other thing that would look."""
    b = server_backend
    async with _client(b) as app:
        workers = [start_worker(b.url, b.config.schema, f"w{i}", FALLBACK="120")
                   for i in range(2)]
        try:
            # both serve once they know each other (each announces itself when it starts and
            # answers a newcomer; on MySQL through the polled signal table): until then one
            # may take every wake-up, so start batches until both have run some
            ran: set[str] = set()
            n = 0
            with trio.fail_after(60):
                while ran != {"w0", "w1"}:
                    first = [await app.start(steps, 1, instance_id=f"first-{n + k}")
                             for k in range(10)]
                    n += 10
                    for iid in first:
                        assert await app.result(iid) == [10]
                    ran = {w for _, _, w in await _rows(app, "SELECT * FROM effects")}
                    assert ran <= {"w0", "w1"}
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait(timeout=10)
            later = [await app.start(steps, 1, instance_id=f"later-{n}") for n in range(20)]
            with trio.fail_after(60):  # well before the fallback
                for iid in later:
                    assert await app.result(iid) == [10]
        finally:
            for w in workers:
                stop(w)
        effects = await _rows(app, "SELECT instance_id, worker_id FROM effects "
                                   "WHERE instance_id LIKE 'later-%'")
        assert sorted(i for i, _ in effects) == sorted(later)
        assert {w for _, w in effects} == {"w0"}


async def test_a_packing_group_runs_on_when_its_taker_is_killed(
        server_backend: Backend) -> None:
    """Three worker processes with ``placement="pack"``: the new work runs on one of them (the
    taker; on PostgreSQL the third does not even hear it). That one is SIGKILLed: the others
    still count it as live for a while, but the standby finds what it was left unclaimed and
    runs every workflow - long before the 120 s fallback re-check."""
    b = server_backend
    async with _client(b) as app:
        workers = {f"w{i}": start_worker(b.url, b.config.schema, f"w{i}", FALLBACK="120",
                                         PLACEMENT="pack") for i in range(3)}
        try:
            # until they know each other every worker takes what it is chosen for alone;
            # then a batch runs on one worker (a loaded machine may spill some: try again)
            n, ran = 0, set[str]()
            with trio.fail_after(60):
                while len(ran) != 1:
                    batch = [await app.start(steps, 1, instance_id=f"first-{n + k}")
                             for k in range(10)]
                    n += 10
                    for iid in batch:
                        assert await app.result(iid) == [10]
                    ran = {w for _, w in await _rows(
                        app, "SELECT instance_id, worker_id FROM effects WHERE instance_id IN ("
                             + ", ".join(f"'{i}'" for i in batch) + ")")}
            [taker] = ran
            workers[taker].send_signal(signal.SIGKILL)
            workers[taker].wait(timeout=10)
            later = [await app.start(steps, 1, instance_id=f"later-{k}") for k in range(20)]
            with trio.fail_after(60):  # well before the fallback
                for iid in later:
                    assert await app.result(iid) == [10]
        finally:
            for w in workers.values():
                stop(w)
        effects = await _rows(app, "SELECT instance_id, worker_id FROM effects "
                                   "WHERE instance_id LIKE 'later-%'")
        assert sorted(i for i, _ in effects) == sorted(later)
        assert taker not in {w for _, w in effects}
