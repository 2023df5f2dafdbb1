"""Resident workflow states (issue #22): a run that suspended continues on the worker that ran
it without replaying, reading only the history written since; any sign that another worker
ran it in between (a lease epoch it did not expect, history it did not expect) drops the state
and the run replays, with the same outcome."""

from __future__ import annotations

from typing import Any

from loadtests._sqlcount import counting
from romancy_trio import (
    ActivityContext,
    Event,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio._engine._hosts import ActivityHosts
from romancy_trio._engine._resident import ResidentStates
from romancy_trio._engine._runner import run_claimed

from .conftest import Backend

CALLS: list[int] = []


@activity
async def res_step(ctx: ActivityContext, i: int) -> int:
    CALLS.append(i)
    return i * 10


@workflow
async def res_counter(ctx: WorkflowContext) -> list[int]:
    seen = []
    for i in range(3):
        await wait_event(ctx, "res.tick")
        seen.append(await res_step(ctx, i))
    return seen


async def _turn(app: Any, worker: str, states: ResidentStates | None) -> None:
    """Claim the instance as ``worker`` and run it until it suspends or ends."""
    (claimed,) = await app.store.claim(worker, limit=1, lease_ttl=30.0,
                                       workflows=[res_counter.name])
    await run_claimed(app.store, app.registry, claimed, app.config.default_retry,
                      hosts=ActivityHosts(2), resident=states)


async def _tick(app: Any, iid: str, n: int) -> None:
    await app.send_event(Event(type="res.tick", source="res", id=f"{iid}-{n}",
                               target_instance_id=iid))


async def test_a_resume_continues_the_live_state_and_reads_only_new_rows(
        backend: Backend) -> None:
    CALLS.clear()
    states = ResidentStates()
    async with open_app(backend.url, workflows=[res_counter, res_step], config=backend.config,
                        run_workers=False) as app:
        iid = await app.start(res_counter)
        await _turn(app, "res-a", states)
        assert iid in states
        for n in range(3):
            await _tick(app, iid, n)
            with counting(keep=True) as counts:
                await _turn(app, "res-a", states)
            if backend.name == "postgres":  # no read of the whole history: only new rows
                assert counts.sent is not None
                reads = [t for t, _ in counts.sent if "workflow_history" in t
                         and t.lstrip().upper().startswith("SELECT")]
                assert reads and all("seq >=" in t for t in reads), reads
        assert await app.result(iid, timeout=10) == [0, 10, 20]
        stats = states.statistics()
        assert (stats.hits, stats.invalidated, stats.kept) == (3, 0, 0)
        assert CALLS == [0, 1, 2]


async def test_the_state_is_dropped_when_another_worker_ran_the_instance(
        backend: Backend) -> None:
    CALLS.clear()
    states = ResidentStates()
    async with open_app(backend.url, workflows=[res_counter, res_step], config=backend.config,
                        run_workers=False) as app:
        iid = await app.start(res_counter)
        await _turn(app, "res-a", states)
        await _tick(app, iid, 0)
        await _turn(app, "res-a", states)  # continues its live state
        assert states.statistics().hits == 1
        await _tick(app, iid, 1)
        await _turn(app, "res-b", None)  # another worker runs step 1 and writes its history
        await _tick(app, iid, 2)
        await _turn(app, "res-a", states)  # its state is stale: replayed from the history
        assert await app.result(iid, timeout=10) == [0, 10, 20]
        stats = states.statistics()
        assert (stats.hits, stats.invalidated) == (1, 1)
        assert CALLS == [0, 1, 2]  # each step ran once: nothing was redone, nothing skipped
        history = await app.history(iid)
        assert sum(e.kind == "activity_completed" for e in history) == 3
