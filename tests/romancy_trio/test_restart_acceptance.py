"""Acceptance (issue 17): a private PostgreSQL server restarted with ``-m immediate`` while 100
instances wait and 20 run, on two worker processes: every listener back and every waiting
instance woken by an event sent after the restart soon after the server accepts connections,
and nothing lost or duplicated (an effect ledger written by transactional activities).

The target is 1 s; the test asserts 3 s. On an idle machine a round measures about 0.1-0.3 s
(the listeners reconnect every ~75 ms while an outage is young, and the events are sent by
this process as soon as the server accepts). The margin is for a loaded 2-core machine
shared with other test runs; 3 s still fails the behaviour this replaces (the listener's
backoff reached 3.5 s, and an interrupted instance waited for its lease to expire: 5 s and
more). The measured values are printed.
"""

from __future__ import annotations

import pytest

from romancy_trio import open_app
from tests.pgcluster import PgCluster

from ._procs import stop
from .restart_proc import CONFIG, FLOWS, LEDGER_DDL, restart_round, start_worker

pytestmark = pytest.mark.slow

BOUND = 3.0


async def test_immediate_restart_wakes_every_waiting_instance_soon(pg_cluster: PgCluster
                                                                   ) -> None:
    async with open_app(pg_cluster.dsn, workflows=FLOWS, config=CONFIG,
                        run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        names = ["worker-a", "worker-b"]
        procs = [start_worker(pg_cluster.dsn, name) for name in names]
        try:
            result = await restart_round(app, pg_cluster, names)
        finally:
            for proc in procs:
                stop(proc)
    print(f"\nfrom the server accepting connections: listeners back "
          f"{result.listeners_last:.3f} s, last waiting instance resumed "
          f"{result.woken_last:.3f} s, last running instance resumed "
          f"{result.runners_resumed:.3f} s")
    assert result.listeners_last < BOUND
    assert result.woken_last < BOUND
    assert result.runners_resumed < BOUND
