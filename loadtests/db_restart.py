"""Recovery after a database restart: ``python -m loadtests.db_restart [--restarts N]``, or
the ``db-restart`` scenario of ``python -m loadtests``.

A private PostgreSQL server (``tests/pgcluster.py``: initdb + pg_ctl on a spare port, never
the shared one), two worker processes (``tests/romancy_trio/restart_proc.py``). Each round:
100 instances wait for an event and 20 run activities; the server is restarted with
``-m immediate``; as soon as it accepts connections this process sends each waiter its event.
Latency: server accepting connections -> the last waiting instance resumed (its activity after
``wait_event`` ran). Also printed: -> every worker's listener back, -> every instance that was
running recorded its next step. Checked each round: every effect recorded exactly once.
Target (issue 17): p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import time

import trio

from romancy_trio import open_app
from tests.pgcluster import private_cluster
from tests.romancy_trio._drills import LEDGER_DDL
from tests.romancy_trio._procs import stop
from tests.romancy_trio.restart_proc import (
    CONFIG,
    FLOWS,
    Round,
    restart_round,
    start_worker,
)

from ._common import Result, Run, percentile


async def _rounds(restarts: int) -> tuple[list[Round], float]:
    with private_cluster() as cluster:
        async with open_app(cluster.dsn, workflows=FLOWS, config=CONFIG,
                            run_workers=False) as app:
            await app.store.db.execute(LEDGER_DDL)
            names = ["worker-a", "worker-b"]
            procs = [start_worker(cluster.dsn, name) for name in names]
            started = time.perf_counter()
            try:
                rounds = [await restart_round(app, cluster, names) for _ in range(restarts)]
            finally:
                for proc in procs:
                    stop(proc)
            return rounds, time.perf_counter() - started


def _summary(rounds: list[Round]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("woken_last", "sent_last", "listeners_last", "runners_resumed"):
        values = [getattr(r, name) * 1000 for r in rounds]
        out[f"{name}_p50_ms"] = round(percentile(values, 50), 1)
        out[f"{name}_p99_ms"] = round(percentile(values, 99), 1)
    return out


async def scenario(run: Run) -> list[Result]:
    rounds, seconds = await _rounds(run.sizes.db_restarts)
    return [Result("db-restart", len(rounds), seconds,
                   [r.woken_last * 1000 for r in rounds], extra=_summary(rounds),
                   checked="every effect exactly once; all woken, all finished", rate=False)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.db_restart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=5)
    args = parser.parse_args()
    rounds, _ = trio.run(_rounds, args.restarts)
    for n, r in enumerate(rounds, 1):
        print(f"restart {n}: listeners back {r.listeners_last * 1000:7.1f} ms, last waiting "
              f"instance resumed {r.woken_last * 1000:7.1f} ms (events sent by "
              f"{r.sent_last * 1000:7.1f} ms), last running instance resumed "
              f"{r.runners_resumed * 1000:7.1f} ms")
    for key, value in _summary(rounds).items():
        print(f"{key:>26} {value:8.1f}")


if __name__ == "__main__":
    main()
