"""Recovery after a failover to a standby: ``python -m loadtests.failover [--rounds N]
[--promote-after S] [--async]``, or the ``failover`` scenario of ``python -m loadtests``.

Each round: a fresh **private** primary with a synchronous streaming standby
(``tests/pgcluster.py``: initdb, pg_basebackup -R, spare ports; never the ``--dsn`` server),
two worker processes (``tests/romancy_trio/failover_proc.py``) and this process on the
multi-host URL ``postgresql://...@127.0.0.1:<primary>,127.0.0.1:<standby>/postgres
?target_session_attrs=read-write``. 60 instances wait for an event, 20 sleep (8 s), 20 run
transactional activities; the primary is stopped with ``-m immediate``, the standby promoted
(``pg_ctl promote``; ``--promote-after``: that many seconds later, as a failover manager that
first makes sure the primary is gone), and this process sends each waiter its event as soon as
the new primary accepts writes.

Latency: promoted standby accepting writes -> the last waiting instance resumed (its activity
after ``wait_event`` ran). Also printed: -> every worker's listener back, -> every instance
that was running recorded its next step, -> the last event sent. Checked each round: every
instance completed, every effect in the ledger exactly once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from romancy_trio import open_app
from tests.pgcluster import private_standby_pair
from tests.romancy_trio._drills import LEDGER_DDL
from tests.romancy_trio._procs import stop
from tests.romancy_trio.failover_proc import (
    CONFIG,
    FLOWS,
    Round,
    failover_round,
    start_worker,
)

from ._common import Result, Run, percentile


async def _one(promote_after: float, synchronous: bool) -> Round:
    with private_standby_pair(synchronous=synchronous) as pair, \
            tempfile.TemporaryDirectory(prefix="romancy_failover_") as logs:
        async with open_app(pair.url, workflows=FLOWS, config=CONFIG,
                            run_workers=False) as app:
            await app.store.db.execute(LEDGER_DDL)
            names = ["worker-a", "worker-b"]
            procs = [start_worker(pair.url, name, Path(logs, f"{name}.log")) for name in names]
            try:
                return await failover_round(app, pair, names, promote_after=promote_after,
                                            synchronous=synchronous)
            finally:
                for proc in procs:
                    stop(proc)


async def _rounds(rounds: int, promote_after: float = 0.0, synchronous: bool = True
                  ) -> tuple[list[Round], float]:
    started = time.perf_counter()
    done = [await _one(promote_after, synchronous) for _ in range(rounds)]
    return done, time.perf_counter() - started


def _summary(rounds: list[Round]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("woken_last", "sent_last", "listeners_last", "runners_resumed"):
        values = [getattr(r, name) * 1000 for r in rounds]
        out[f"{name}_p50_ms"] = round(percentile(values, 50), 1)
        out[f"{name}_min_ms"] = round(min(values), 1)
        out[f"{name}_max_ms"] = round(max(values), 1)
    return out


async def scenario(run: Run) -> list[Result]:
    rounds, seconds = await _rounds(run.sizes.failovers)
    return [Result("failover", len(rounds), seconds,
                   [r.woken_last * 1000 for r in rounds], extra=_summary(rounds),
                   checked="every effect exactly once; all woken, all finished", rate=False)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--promote-after", type=float, default=0.0,
                        help="seconds between the crash and the promotion (default 0)")
    parser.add_argument("--async", dest="asynchronous", action="store_true",
                        help="asynchronous replication (default: synchronous)")
    args = parser.parse_args()
    rounds, _ = trio.run(_rounds, args.rounds, args.promote_after, not args.asynchronous)
    for n, r in enumerate(rounds, 1):
        print(f"failover {n}: listeners back {r.listeners_last * 1000:7.1f} ms, last waiting "
              f"instance resumed {r.woken_last * 1000:7.1f} ms (events sent by "
              f"{r.sent_last * 1000:7.1f} ms), last running instance resumed "
              f"{r.runners_resumed * 1000:7.1f} ms; at the crash {r.in_flight} activity "
              f"transactions open, {r.sleeping_at_crash} asleep")
    for key, value in _summary(rounds).items():
        print(f"{key:>26} {value:8.1f}")


if __name__ == "__main__":
    main()
