"""Database-restart drill: worker processes, and one round of "restart while instances wait
and run" measured from the server accepting connections again.

``python -m tests.romancy_trio.restart_proc URL WORKER_ID`` runs a worker: it prints ``ready``
once serving, and each time its notify listener is back after losing its connection it
records ``(worker_id, 'listening', time)`` in the ledger. Used by
tests/romancy_trio/test_restart_acceptance.py and ``python -m loadtests.db_restart``.
"""

from __future__ import annotations

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
    wait_event,
    workflow,
)
from tests.pgcluster import PgCluster
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

STEP_SECONDS = 0.05
CONFIG = AppConfig(fallback_interval=60.0, lease_ttl=60.0)
"""Defaults, but a fallback re-check and a lease too long to be what recovers the instances
(however long the restart takes on a loaded machine: the instances must be woken by
notifications and handed back to their own workers, not taken over after lease expiry)."""
ROOT = Path(__file__).resolve().parents[2]


@activity
async def drill_resumed(ctx: ActivityContext, data: str) -> None:
    await record_effect(ctx, "resumed")


@workflow
async def drill_waiter(ctx: WorkflowContext) -> str:
    data: str = (await wait_event(ctx, "go")).data
    await drill_resumed(ctx, data)
    return data


@activity
async def drill_step(ctx: ActivityContext, n: int) -> int:
    await trio.sleep(STEP_SECONDS)  # before the first statement: holds no connection
    await record_effect(ctx, f"step{n}")
    return n


@workflow
async def drill_runner(ctx: WorkflowContext, steps: int) -> int:
    for n in range(steps):
        await drill_step(ctx, n)
    return steps


FLOWS: list[Any] = [drill_waiter, drill_resumed, drill_runner, drill_step]


async def main(url: str, worker_id: str) -> None:
    async with open_app(url, worker_id=worker_id, workflows=FLOWS, config=CONFIG,
                        wait_for_database=30) as app, trio.open_nursery() as nursery:
        nursery.start_soon(note_reconnects, app, worker_id)
        print("ready", flush=True)


def start_worker(url: str, worker_id: str) -> subprocess.Popen[str]:
    return start_proc("tests.romancy_trio.restart_proc", url, worker_id, quiet=True)


@dataclass(frozen=True, slots=True)
class Round:
    woken_last: float
    """Seconds from the server accepting connections to the last waiting instance resumed."""
    listeners_last: float
    """... to the last worker's notify listener back."""
    sent_last: float
    """... to this process's last event committed (the application's side of the recovery)."""
    runners_resumed: float
    """... to the last instance that was running at the restart recording its next step."""
    runners_moved: int
    """Instances running at the restart whose steps after it were recorded by another worker
    than before it (0 when each was handed back to its own worker, not taken over after its
    lease expired)."""


WAIT_SECONDS = 60.0
"""How long a round waits for each state it sets up (and for the listeners to be back)."""


async def restart_round(app: Any, cluster: PgCluster, workers: list[str], *,
                        waiting: int = 100, running: int = 20, steps: int = 60) -> Round:
    """Start ``waiting`` instances that wait for an event and ``running`` that run activities;
    once all wait and all run, restart the server with ``-m immediate``, then send each waiter
    its event. Checks that every instance ends with each effect recorded exactly once."""
    tag = uuid.uuid4().hex[:6]
    waiters = [f"w{tag}-{n}" for n in range(waiting)]
    runners = [f"r{tag}-{n}" for n in range(running)]
    for iid in waiters:
        await app.start(drill_waiter, instance_id=iid)
    for iid in runners:
        await app.start(drill_runner, steps, instance_id=iid)
    db = app.store.db

    async def all_waiting() -> bool:
        row = await db.fetchone(
            f"SELECT count(*) FROM {app.config.schema}.workflow_instances "
            "WHERE instance_id LIKE %s AND status = 'waiting'", (f"w{tag}-%",))
        return row is not None and row[0] == waiting

    async def all_running() -> bool:
        row = await db.fetchone("SELECT count(DISTINCT instance_id) FROM ledger "
                                "WHERE instance_id LIKE %s", (f"r{tag}-%",))
        return row is not None and row[0] == running

    await until(all_waiting, WAIT_SECONDS)
    await until(all_running, WAIT_SECONDS)
    accepting = await trio.to_thread.run_sync(cluster.restart)

    sent = await send_go(app, waiters, "drill")

    async def ended(prefix: str, count: int) -> bool:
        row = await retrying(db.fetchone,
                             f"SELECT count(*) FROM {app.config.schema}.workflow_instances "
                             "WHERE instance_id LIKE %s AND status = 'completed'",
                             (prefix + "%",))
        return row is not None and row[0] == count

    await until(lambda: ended(f"w{tag}-", waiting), WAIT_SECONDS)
    await until(lambda: ended(f"r{tag}-", running), 120)
    listeners_last = await listeners_back(app, workers, accepting - 1, WAIT_SECONDS)
    rows_w = await db.fetchall("SELECT instance_id, step, at, worker_id FROM ledger WHERE "
                               "instance_id LIKE %s OR instance_id LIKE %s",
                               (f"w{tag}-%", f"r{tag}-%"))
    rows = [(iid, s, at) for iid, s, at, _ in rows_w]
    assert_each_effect_once(rows, {(iid, "resumed") for iid in waiters} | {
        (iid, f"step{n}") for iid in runners for n in range(steps)})
    return Round(
        woken_last=max(at for iid, s, at in rows if s == "resumed") - accepting,
        listeners_last=listeners_last - accepting,
        sent_last=sent - accepting,
        runners_resumed=max(min(at for i, s, at in rows if i == iid and at > accepting)
                            for iid in runners) - accepting,
        runners_moved=sum(
            1 for iid in runners
            if {w for i, _, at, w in rows_w if i == iid and at < accepting}
            != {w for i, _, at, w in rows_w if i == iid and at > accepting}),
    )


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
