"""Failover drill: worker processes on a multi-host URL, and one round of "the primary crashes
and the standby is promoted while instances wait, sleep and run", measured from the promotion.

``python -m tests.romancy_trio.failover_proc URL WORKER_ID LOG_FILE`` runs a worker: it logs
at INFO to LOG_FILE, prints ``ready`` once serving, and each time its notify listener is back
after losing its connection it records ``(worker_id, 'listening', time)`` in the ledger. Used
by tests/romancy_trio/test_failover.py and ``python -m loadtests.failover``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    wait_event,
    workflow,
)
from tests.pgcluster import StandbyPair
from tests.romancy_trio._drills import (
    assert_each_effect_once,
    listeners_back,
    note_reconnects,
    record_effect,
    retrying,
    send_go,
    until,
)
from tests.romancy_trio._procs import start_proc

CONFIG = AppConfig(fallback_interval=60.0)
"""Defaults, but a fallback re-check too slow to be what recovers the instances."""


@activity
async def fo_resumed(ctx: ActivityContext, step: str) -> None:
    await record_effect(ctx, step)


@workflow
async def fo_waiter(ctx: WorkflowContext) -> str:
    data: str = (await wait_event(ctx, "go")).data
    await fo_resumed(ctx, "resumed")
    return data


@workflow
async def fo_sleeper(ctx: WorkflowContext, seconds: float) -> str:
    await sleep(ctx, seconds)
    await fo_resumed(ctx, "woke")
    return "woke"


@activity
async def fo_step(ctx: ActivityContext, n: int, hold: float) -> int:
    """A pause that holds no connection, then an effect, then its transaction stays open for
    ``hold`` s (inside one statement, so a crash of the primary can find it in the middle)."""
    await trio.sleep(PAUSE_SECONDS)
    await record_effect(ctx, f"step{n}")
    await ctx.db.execute("SELECT pg_sleep(?)", (hold,))
    return n


@workflow
async def fo_runner(ctx: WorkflowContext, steps: int, hold: float) -> int:
    for n in range(steps):
        await fo_step(ctx, n, hold)
    return steps


PAUSE_SECONDS = 0.05
HOLD_SECONDS = 0.25
"""How long a *holding* runner's activities keep their transaction open (the others: 5 ms,
after a pause of PAUSE_SECONDS that holds no connection). A few holders are enough to be
caught mid-transaction by the crash; if every runner kept a transaction open most of the time,
the runners would take every transaction slot of both workers, and a worker claims nothing
while its activities wait for one: waiters woken after the failover would wait for the runners
to finish, which measures the load, not the failover."""


FLOWS: list[Any] = [fo_waiter, fo_sleeper, fo_resumed, fo_runner, fo_step]


async def main(url: str, worker_id: str, log_file: str) -> None:
    logging.basicConfig(level=logging.INFO, filename=log_file,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    async with open_app(url, worker_id=worker_id, workflows=FLOWS, config=CONFIG,
                        wait_for_database=30) as app, trio.open_nursery() as nursery:
        nursery.start_soon(note_reconnects, app, worker_id)
        print("ready", flush=True)


def start_worker(url: str, worker_id: str, log_file: Path) -> subprocess.Popen[str]:
    return start_proc("tests.romancy_trio.failover_proc", url, worker_id, str(log_file),
                      quiet=True)


@dataclass(frozen=True, slots=True)
class Round:
    woken_last: float
    """Seconds from the promoted standby accepting writes to the last waiting instance resumed
    (its activity after ``wait_event`` ran)."""
    listeners_last: float
    """... to the last worker's notify listener back (on the new primary)."""
    sent_last: float
    """... to this process's last event committed (the application's side of the recovery)."""
    runners_resumed: float
    """... to the last instance that was running at the crash recording its next step."""
    in_flight: int
    """Running instances whose activity transaction was open when the primary crashed (each
    such effect must then be recorded once, by the attempt after the failover)."""
    sleeping_at_crash: int
    """Sleeping instances whose timer had not fired yet when the primary crashed."""


WAIT_SECONDS = 90.0
"""How long a round waits for each state it sets up (and for the listeners to be back)."""


async def failover_round(app: Any, pair: StandbyPair, workers: list[str], *,
                         waiting: int = 60, sleeping: int = 20, running: int = 20,
                         holding: int = 4, steps: int = 50, sleep_seconds: float = 8.0,
                         promote_after: float = 0.0, synchronous: bool = True) -> Round:
    """Start ``waiting`` instances that wait for an event, ``sleeping`` that sleep for
    ``sleep_seconds`` and ``running`` that run ``steps`` activities (``holding`` of them a
    quarter as many, each keeping its transaction open for `HOLD_SECONDS`); once each is in
    that state and an activity's transaction is open, crash the primary and promote the
    standby, then send each waiter its event. Checks that every instance completes with each
    effect in the ledger exactly once."""
    tag = uuid.uuid4().hex[:6]
    waiters = [f"w{tag}-{n}" for n in range(waiting)]
    runners = [f"r{tag}-{n}" for n in range(running)]
    plans = {iid: (steps // 4, HOLD_SECONDS) if n < holding else (steps, 0.005)
             for n, iid in enumerate(runners)}
    sleepers = [f"s{tag}-{n}" for n in range(sleeping)]
    db, schema = app.store.db, app.config.schema

    async def count_status(prefix: str, status: str) -> int:
        row = await retrying(db.fetchone,
                             f"SELECT count(*) FROM {schema}.workflow_instances "
                             "WHERE instance_id LIKE %s AND status = %s",
                             (prefix + "%", status))
        return int(row[0])

    for iid in waiters:
        await app.start(fo_waiter, instance_id=iid)
    for iid in sleepers:
        await app.start(fo_sleeper, sleep_seconds, instance_id=iid)
    await until(lambda: _equals(count_status(f"w{tag}-", "waiting"), waiting), WAIT_SECONDS)
    await until(lambda: _equals(count_status(f"s{tag}-", "waiting"), sleeping), WAIT_SECONDS)
    for iid in runners:
        await app.start(fo_runner, *plans[iid], instance_id=iid)

    async def all_running() -> bool:
        row = await db.fetchone("SELECT count(DISTINCT instance_id) FROM ledger "
                                "WHERE instance_id LIKE %s", (f"r{tag}-%",))
        return row is not None and row[0] == running

    await until(all_running, WAIT_SECONDS)
    sleeping_at_crash = await count_status(f"s{tag}-", "waiting")
    [(sync,)] = pair.primary.query("SELECT string_agg(sync_state, ',') FROM pg_stat_replication")
    assert sync == ("sync" if synchronous else "async"), f"the standby's sync_state: {sync}"

    async def in_flight_now() -> int:
        return len(await trio.to_thread.run_sync(
            pair.primary.query, "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND "
            "query LIKE 'SELECT pg_sleep%' AND wait_event = 'PgSleep'"))

    await until(lambda: _at_least(in_flight_now(), 1), WAIT_SECONDS)
    in_flight = await in_flight_now()
    promoted = await trio.to_thread.run_sync(
        lambda: pair.fail_over(promote_after=promote_after))

    sent = await send_go(app, waiters, "failover")
    for prefix, count in ((f"w{tag}-", waiting), (f"s{tag}-", sleeping),
                          (f"r{tag}-", running)):
        await until(lambda p=prefix, c=count: _equals(count_status(p, "completed"), c), 120)
    listeners_last = await listeners_back(app, workers, promoted - 1, WAIT_SECONDS)
    rows = await db.fetchall("SELECT instance_id, step, at FROM ledger WHERE instance_id LIKE "
                             "%s OR instance_id LIKE %s OR instance_id LIKE %s",
                             (f"w{tag}-%", f"r{tag}-%", f"s{tag}-%"))
    assert_each_effect_once(rows, {(iid, "resumed") for iid in waiters}
                            | {(iid, "woke") for iid in sleepers}
                            | {(iid, f"step{n}") for iid in runners
                               for n in range(plans[iid][0])})
    return Round(
        woken_last=max(at for _, s, at in rows if s == "resumed") - promoted,
        listeners_last=listeners_last - promoted,
        sent_last=sent - promoted,
        runners_resumed=max(min((at for i, _, at in rows if i == iid and at > promoted),
                                default=promoted) for iid in runners) - promoted,
        in_flight=in_flight,
        sleeping_at_crash=sleeping_at_crash,
    )


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _at_least(value: Any, expected: int) -> bool:
    return bool(await value >= expected)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
