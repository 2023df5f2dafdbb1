"""``python -m loadtests [scenario ...] [--dsn DSN] [--n N]``: print a table, write JSON."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import trio

from ._common import (
    DEFAULT_DSN,
    Result,
    baseline_insert_commit,
    check_local,
    print_table,
    write_json,
)
from .waits import idle_cost, wakeup_latency
from .workflows import bench_one, bench_ten, run_workflows


Scenario = Callable[[str, int], Awaitable[Result]]

SCENARIOS: dict[str, Scenario] = {
    "one-sequential": lambda dsn, n: run_workflows(
        dsn, name="1-activity wf, sequential", wf=bench_one, total=n, concurrency=1
    ),
    "one-concurrent": lambda dsn, n: run_workflows(
        dsn, name="1-activity wf, 50 concurrent", wf=bench_one, total=n * 2, concurrency=50
    ),
    "ten-sequential": lambda dsn, n: run_workflows(
        dsn, name="10-activity wf, sequential", wf=bench_ten, total=n // 4, concurrency=1
    ),
    "wakeup": lambda dsn, n: wakeup_latency(dsn, n),
    "idle": lambda dsn, n: idle_cost(dsn, n * 10),
}



def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests")
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--n", type=int, default=1000, help="workflows per scenario (scaled)")
    args = parser.parse_args()
    check_local(args.dsn)
    names = args.scenarios or list(SCENARIOS)
    base = baseline_insert_commit(args.dsn)
    results = [base]
    for name in names:
        print(f"running {name} ...", flush=True)
        results.append(trio.run(SCENARIOS[name], args.dsn, args.n))
    base_ms = base.pct(50)
    rows = [r.row(base_ms) for r in results]
    print()
    print_table(rows)
    print(f"\nJSON: {write_json(rows, results)}")


if __name__ == "__main__":
    main()
