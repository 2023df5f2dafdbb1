"""``python -m loadtests [scenario ...]``: run scenarios against the local PostgreSQL, print a
table of throughput and p50/p95/p99 latency (with ratios to a baseline INSERT+COMMIT measured in
the same run), write JSON, optionally a PNG. Exits 1 if any correctness check failed, a
scenario crashed or timed out, or the run hit ``--max-seconds``. See loadtests/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
import typing
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psycopg
import trio

from . import (
    channels_bench,
    compose,
    db_restart,
    failover,
    http_intake,
    otel_overhead,
    pgbouncer,
    processes_cpu,
    resume,
    takeover,
    waits,
    workflows,
)
from ._common import (
    DEFAULT_DSN,
    CheckFailed,
    Result,
    Run,
    Sizes,
    baseline_insert_commit,
    check_local,
    merged_baseline,
    print_table,
    write_json,
)

ScenarioFn = Callable[[Run], Awaitable[list[Result]]]
BASELINE_N = 400
"""round trips per baseline sample (one before the first scenario and one after each)"""


@dataclass(frozen=True, slots=True)
class Scenario:
    fn: ScenarioFn
    about: str


SCENARIOS: dict[str, Scenario] = {
    "one-sequential": Scenario(workflows.one_sequential,
                               "1. one-activity workflows, one after another"),
    "one-concurrent": Scenario(workflows.one_concurrent,
                               "1. one-activity workflows, N concurrent clients (--concurrency)"),
    "ten-sequential": Scenario(workflows.ten_sequential, "2. ten-activity workflows"),
    "wakeup": Scenario(waits.wakeup_latency,
                       "3. event wake-up: producer COMMIT -> waiting workflow resumed (NOTIFY)"),
    "timers": Scenario(waits.timer_lateness, "4. lateness of sleep() wake-ups under load"),
    "queue": Scenario(compose.queue_throughput,
                      "queue with concurrency limit 50 vs unthrottled starts (alternating)"),
    "schedule-lateness": Scenario(compose.schedule_lateness,
                                  "schedule tick lateness p50/p99 with 3 worker processes"),
    "competing": Scenario(channels_bench.competing,
                          "5. competing channel over worker processes, receive + transactional "
                          "side effect per message, exactly-once check"),
    "competing-delivery": Scenario(channels_bench.competing_delivery,
                                   "5. competing channel over worker processes, delivery only "
                                   "(received and recorded), exactly-once check"),
    "competing-latency": Scenario(channels_bench.competing_latency,
                                  "5. competing channel, publish -> receive latency at a paced, "
                                  "moderate rate"),
    "broadcast": Scenario(channels_bench.broadcast,
                          "5. broadcast fan-out over worker processes"),
    "http": Scenario(http_intake.http_intake,
                     "6. CloudEvents intake over HTTP against hypercorn -k trio"),
    "takeover": Scenario(takeover.scenario,
                         "8. SIGKILL of a worker mid-activity -> the instance running on "
                         "another worker (p50/p99 over repeated kills), exactly-once check"),
    "resume": Scenario(resume.scenario,
                       "resume cost with 10 vs 1,000 history events (resident states vs "
                       "replay, alternating) and a 3,000-step suspending workflow"),
    "cpu-processes": Scenario(processes_cpu.scenario,
                              "CPU per one-activity workflow with 4 worker processes "
                              "(spreading, packing) vs 1 (alternating repetitions)"),
    "idle": Scenario(waits.idle_cost,
                     "7. idle cost of a worker with 10,000 waiting workflows"),
    "otel": Scenario(otel_overhead.scenario,
                     "9. one-activity workflows, N concurrent, OpenTelemetry tracing + metrics "
                     "on (SDK, batch processor, no-op exporter) vs off, alternating"),
    "db-restart": Scenario(db_restart.scenario,
                           "8. private server restarted (-m immediate) while 100 instances "
                           "wait and 20 run: accepting connections -> last waiter resumed"),
    "pgbouncer": Scenario(pgbouncer.scenario,
                          "9. one-activity workflows, N concurrent: through PgBouncer "
                          "(transaction mode) vs direct, with/without prepared statements"),
    "failover": Scenario(failover.scenario,
                         "10. private primary crashed (-m immediate), its synchronous standby "
                         "promoted, while 60 instances wait, 20 sleep and 20 run: promotion "
                         "-> last waiter resumed"),
}


def _optional_scenarios() -> None:
    """``loadtests/websocket_fanout.py``, when present, joins the suite as ``websocket`` through
    its ``async def scenario(run: Run) -> list[Result]``."""
    try:
        module = importlib.import_module(f"{__package__}.websocket_fanout")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.websocket_fanout":
            return
        raise
    fn = getattr(module, "scenario", None)
    if callable(fn):
        SCENARIOS["websocket"] = Scenario(fn, "websocket channel subscriptions: fan-out")


@dataclass
class Failure:
    scenario: str
    reason: str


def _parser() -> argparse.ArgumentParser:
    epilog = "scenarios:\n" + "\n".join(f"  {k:<15} {v.about}" for k, v in SCENARIOS.items())
    p = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="scenario",
                   help="scenarios to run (default: all, in the order listed below)")
    p.add_argument("--backend", choices=("postgres", "mysql"), default="postgres",
                   help="mysql: the MySQL/MariaDB scenarios next to PostgreSQL in the same run "
                        "(python -m loadtests --backend mysql --help)")
    p.add_argument("--dsn", default=DEFAULT_DSN,
                   help="local PostgreSQL only (default: $ROMANCY_BENCH_PG_DSN, "
                        "$ROMANCY_TEST_PG_DSN or postgresql://root@127.0.0.1:5432/test)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every count (0.1 for a quick smoke run)")
    p.add_argument("--concurrency", type=int, default=Sizes().concurrency,
                   help="concurrent clients in one-concurrent (default: %(default)s)")
    p.add_argument("--workers", type=int, default=Sizes().workers,
                   help="worker processes in the channel scenarios (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="stop the whole run after this long; the rest fails (default: 600)")
    p.add_argument("--scenario-timeout", type=float, default=240.0,
                   help="fail a scenario that runs longer than this (default: 240)")
    p.add_argument("--json", type=Path, help="write the JSON here (default: loadtests/results/)")
    p.add_argument("--chart", type=Path, help="also draw a PNG here (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--compare-dbos", action="store_true",
                   help="also run the one-activity scenarios with DBOS Transact and print ratios")
    p.add_argument("--dbos-python", help="an interpreter where `dbos` is importable "
                                         "(default: $ROMANCY_BENCH_DBOS_PYTHON or this one)")
    p.add_argument("--dbos-pairs", type=int, default=3,
                   help="alternating repetitions (ours, DBOS) for --compare-dbos (default: 3)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


class ScenarioTimeout(Exception):
    pass


async def _guarded(fn: ScenarioFn, run: Run, timeout: float) -> list[Result]:
    """Run a scenario under its time bound (a TooSlowError from inside the scenario is the
    scenario's own bound, reported with its traceback)."""
    with trio.move_on_after(timeout) as scope:
        return await fn(run)
    assert scope.cancelled_caught
    raise ScenarioTimeout


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=("postgres", "mysql"), default="postgres")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.backend == "mysql":  # MySQL/MariaDB next to PostgreSQL (loadtests.mysql_bench)
        from . import mysql_bench

        return mysql_bench.run(rest)
    _optional_scenarios()
    args = _parser().parse_args(rest)
    if args.list:
        for name, sc in SCENARIOS.items():
            print(f"{name:<15} {sc.about}")
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        _parser().error(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(SCENARIOS)}")
    bounds = {"--scale": (args.scale, 0.001, 10), "--workers": (args.workers, 1, 16),
              "--concurrency": (args.concurrency, 1, 500)}
    for flag, (value, low, high) in bounds.items():
        if not low <= value <= high:
            _parser().error(f"{flag} must be between {low} and {high} (bounded by design)")
    check_local(args.dsn)
    names = list(dict.fromkeys(args.scenarios)) or list(SCENARIOS)
    if args.compare_dbos:  # the comparison needs our side of it in the same run
        names = list(dict.fromkeys(["one-sequential", "one-concurrent", *names]))
    sizes = replace(Sizes().scaled(args.scale), concurrency=args.concurrency,
                    workers=args.workers)
    run = Run(args.dsn, sizes, show_progress=not args.no_progress)
    t_start = time.perf_counter()
    deadline = t_start + args.max_seconds
    failures: list[Failure] = []
    measured: list[tuple[Result, Result]] = []  # (result, the baseline it is compared with)
    by_name: dict[str, list[Result]] = {}

    _say("baseline: raw INSERT+COMMIT round trips with psycopg, before and after each scenario")
    samples = [baseline_insert_commit(args.dsn, BASELINE_N, label="sample")]
    for i, name in enumerate(names, 1):
        remaining = deadline - time.perf_counter()
        if remaining <= 5:
            failures.append(Failure(name, f"not run: --max-seconds {args.max_seconds:g} reached"))
            continue
        _say(f"[{i}/{len(names)}] {name}: {SCENARIOS[name].about} "
             f"(at {time.perf_counter() - t_start:.0f}s)")
        timeout = min(args.scenario_timeout, remaining)
        got: list[Result] = []
        try:
            got = trio.run(_guarded, SCENARIOS[name].fn, run, timeout)
        except CheckFailed as exc:
            failures.append(Failure(name, f"check failed: {exc}"))
        except ScenarioTimeout:
            failures.append(Failure(name, f"timed out after {timeout:.0f}s"))
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails
            failures.append(Failure(name, "crashed: " + "".join(
                traceback.format_exception_only(exc)).strip()))
            traceback.print_exc()
        samples.append(baseline_insert_commit(args.dsn, BASELINE_N, label="sample"))
        local = merged_baseline(samples[-2:])
        measured.extend((r, local) for r in got)
        by_name[name] = got

    dbos_version: str | None = None
    dbos_lines: list[str] = []
    if args.compare_dbos:
        dbos_version, dbos_lines, dbos = _compare_dbos(args, run, sizes, deadline, by_name,
                                                       failures)
        if dbos:
            samples.append(baseline_insert_commit(args.dsn, BASELINE_N, label="sample"))
            local = merged_baseline(samples[-2:])
            measured.extend((r, local) for r in dbos)
    base = merged_baseline(samples)
    total = time.perf_counter() - t_start

    all_results = [base, *(r for r, _ in measured)]
    rows = [base.row(base), *(r.row(b) for r, b in measured)]
    rows += [{"scenario": f.scenario, "check": "FAILED (see below)"} for f in failures]
    print()
    print_table(rows)
    print(f"\nbase_ms: p50 of the INSERT+COMMIT samples taken just before and after that "
          f"scenario; *_x_base = latency / base_ms; per_s_x_base = per_s / (commits per second "
          f"of one connection in those samples). Whole run: {len(samples)} samples, p50 "
          f"{base.pct(50):.3f} ms.")
    for line in dbos_lines:
        print(f"DBOS Transact {dbos_version} vs romancy_trio: {line}" if dbos_version
              else f"DBOS comparison {line}")
    print(f"total {total:.1f}s for {len(names)} scenario(s)")
    meta = {
        "title": f"romancy_trio loadtests, {time.strftime('%Y-%m-%d %H:%M')}, "
                 f"{platform.node()}, baseline p50 {base.pct(50):.3f} ms",
        "dsn_host": _host(args.dsn), "scenarios": names, "sizes": asdict(sizes),
        "total_seconds": round(total, 1), "python": platform.python_version(),
        "trio": trio.__version__, "cpus": os.cpu_count(), "dbos": dbos_version,
        "failures": [asdict(f) for f in failures],
    }
    print(f"JSON: {write_json(rows, all_results, path=args.json, meta=meta)}")
    if args.chart is not None:
        from .chart import ChartUnavailable, render

        try:
            print(f"chart: {render(rows, args.chart, title=str(meta['title']))}")
        except ChartUnavailable as exc:
            print(f"chart skipped: {exc}")
    if failures:
        print(f"\nFAILED ({len(failures)}):")
        for f in failures:
            print(f"  {f.scenario}: {f.reason}")
        return 1
    print("all checks passed")
    return 0


def _compare_dbos(args: argparse.Namespace, run: Run, sizes: Sizes, deadline: float,
                  by_name: dict[str, list[Result]], failures: list[Failure]
                  ) -> tuple[str | None, list[str], list[Result]]:
    from ._compare import DbosUnavailable, alternate, annotate, find_python, run_dbos

    try:
        python = find_python(args.dbos_python)
    except DbosUnavailable as exc:
        return None, [f"not run: {exc}"], []
    remaining = deadline - time.perf_counter()
    if remaining <= 5:
        failures.append(Failure("dbos", "not run: --max-seconds reached"))
        return None, [], []
    _say(f"DBOS Transact comparison, one-activity workflows ({python}), "
         f"{args.dbos_pairs} alternating pairs ...")
    found: dict[str, typing.Any] = {}

    def ours() -> dict[int, Result]:
        got = [r for name in ("one-sequential", "one-concurrent")
               for r in trio.run(_guarded, SCENARIOS[name].fn, run, args.scenario_timeout)]
        return {int(r.extra.get("concurrency", 0)): r for r in got}

    def theirs() -> dict[int, Result]:
        found["version"], found["dbos"] = run_dbos(python, args.dsn, sizes,
                                                   timeout=args.scenario_timeout)
        return {int(r.extra.get("concurrency", 0)): r for r in found["dbos"]}

    try:
        lines, _ = alternate(args.dbos_pairs, ours, theirs)
    except CheckFailed as exc:
        failures.append(Failure("dbos", str(exc)))
        return None, [], []
    last = {int(r.extra.get("concurrency", 0)): r
            for name in ("one-sequential", "one-concurrent") for r in by_name.get(name, [])}
    return found["version"], [*lines, *annotate(found["dbos"], last)], found["dbos"]


def _host(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn).get("host", "localhost"))


if __name__ == "__main__":
    sys.exit(main())
