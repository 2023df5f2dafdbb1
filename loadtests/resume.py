"""Resume cost against history length (issue #22): resident states vs replay.

1. Two instances wait in a loop for targeted events (``bench.tick``); one has 10 history events
   before its first wait, the other 1,000. Each gets ``RESUMES`` events, one at a time, the two
   alternating; latency = the producer's COMMIT returned -> the activity after the wait runs.
   Done with the worker's resident states (the default) and with them off (every resume
   replays the whole history). Target: 1,000 events <= 2x 10 events, with resident states.
2. One instance suspends at each of ``STEPS`` steps (3,000 at scale 1), on PostgreSQL (the
   event sent by a second App: the wake-up travels over NOTIFY) and on SQLite (a temporary
   file; the event sent by the worker's own App: the in-process wake-up); the per-step time of
   the first and the last 10 % is printed (linear: the same).

Standalone: ``python -m loadtests.resume [--steps N] [--long-only] [--backends postgres,sqlite]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    Event,
    WorkflowContext,
    activity,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio._engine._resident import ResidentStates

from ._common import DEFAULT_DSN, Result, Run, check_local, drop_schema, new_schema, require

RESUMES = 40
STEPS = 3000
SIGNALS: dict[str, trio.Event] = {}
AT: dict[str, float] = {}


@activity(transactional=False)
async def bench_fill_step(ctx: ActivityContext, n: int) -> int:
    return n


@activity(transactional=False)
async def bench_ticked(ctx: ActivityContext) -> None:
    AT[ctx.instance_id] = time.perf_counter()
    SIGNALS[ctx.instance_id].set()


@workflow
async def bench_ticker(ctx: WorkflowContext, fill: int) -> None:
    for i in range(fill):
        await bench_fill_step(ctx, i)
    while True:
        await wait_event(ctx, "bench.tick")
        await bench_ticked(ctx)


WFS: list[Any] = [bench_ticker, bench_fill_step, bench_ticked]


async def _wait_status(app: Any, iid: str, status: str) -> None:
    with trio.fail_after(120):
        while (await app.status(iid)).status != status:
            await trio.sleep(0.001)


async def _tick(producer: Any, iid: str, n: int) -> float:
    """Once the instance is waiting (a real resume, not a wait answered in the same run)."""
    await _wait_status(producer, iid, "waiting")
    SIGNALS[iid] = trio.Event()
    await producer.send_event(Event(type="bench.tick", source="bench-resume", id=f"{iid}-{n}",
                                     target_instance_id=iid))
    committed = time.perf_counter()
    with trio.fail_after(60):
        await SIGNALS[iid].wait()
    return (AT[iid] - committed) * 1000


async def _resume_cost(run: Run, resident: bool) -> tuple[dict[int, list[float]], dict[str, int]]:
    schema = new_schema()
    config = AppConfig(schema=schema)
    got: dict[int, list[float]] = {10: [], 1000: []}
    try:
        async with open_app(run.dsn, workflows=WFS, config=config) as worker, \
                open_app(run.dsn, workflows=WFS, config=config, run_workers=False) as producer:
            if not resident:
                assert worker._scheduler is not None
                worker._scheduler.resident = ResidentStates(max_states=0)
            ids = {k: await worker.start(bench_ticker, k) for k in got}
            for iid in ids.values():
                await _wait_status(worker, iid, "waiting")
            for iid in ids.values():  # the first resume of each is not counted
                await _tick(producer, iid, -1)
            for n in range(RESUMES):
                for k in (list(got) if n % 2 == 0 else list(got)[::-1]):
                    got[k].append(await _tick(producer, ids[k], n))
            assert worker._scheduler is not None
            stats = worker._scheduler.resident.statistics()
    finally:
        drop_schema(run.dsn, schema)
    return got, {"hits": stats.hits, "invalidated": stats.invalidated, "misses": stats.misses}


async def _long_run(run: Run, steps: int, backend: str) -> tuple[list[float], float]:
    """Seconds per step (ms) of one instance suspending ``steps`` times, and the total."""
    schema = new_schema()
    config = AppConfig(schema=schema)
    per_step: list[float] = []
    with tempfile.TemporaryDirectory(prefix="romancy-resume-") as folder:
        url = run.dsn if backend == "postgres" else f"sqlite:///{Path(folder) / 'long.db'}"
        try:
            async with contextlib.AsyncExitStack() as stack:
                worker = await stack.enter_async_context(
                    open_app(url, workflows=WFS, config=config))
                # SQLite: another App would hear of a commit by polling the file (50 ms); the
                # worker's own App wakes it in process
                producer = worker if backend == "sqlite" else await stack.enter_async_context(
                    open_app(url, workflows=WFS, config=config, run_workers=False))
                iid = await worker.start(bench_ticker, 0)
                await _wait_status(worker, iid, "waiting")
                bar = run.progress(f"{steps}-step suspending workflow ({backend})", steps)
                t0 = time.perf_counter()
                for n in range(steps):
                    t = time.perf_counter()
                    await _tick(producer, iid, n)
                    per_step.append((time.perf_counter() - t) * 1000)
                    bar.advance()
                seconds = time.perf_counter() - t0
                bar.close()
                await _wait_status(worker, iid, "waiting")  # the last step's record written
                history = await worker.history(iid)
                require(len(history) == 2 * steps, f"{len(history)} history events, "
                        f"expected {2 * steps}")
        finally:
            if backend == "postgres":
                drop_schema(run.dsn, schema)
    return per_step, seconds


def _long_result(backend: str, steps: int, per_step: list[float], seconds: float) -> Result:
    tenth = max(1, steps // 10)
    first, last = statistics.mean(per_step[:tenth]), statistics.mean(per_step[-tenth:])
    return Result(f"{steps}-step suspending workflow, {backend}", steps, seconds, per_step,
                  {"first_10pct_ms": round(first, 3), "last_10pct_ms": round(last, 3),
                   "last_over_first": round(last / first, 2),
                   "first_10pct_p50_ms": round(statistics.median(per_step[:tenth]), 3),
                   "last_10pct_p50_ms": round(statistics.median(per_step[-tenth:]), 3)},
                  checked=f"{2 * steps} history events")


async def scenario(run: Run) -> list[Result]:
    results = []
    ratios = {}
    for resident in (True, False):
        got, stats = await _resume_cost(run, resident)
        p50 = {k: statistics.median(v) for k, v in got.items()}
        ratios[resident] = p50[1000] / p50[10]
        label = "resident" if resident else "replay (resident states off)"
        for k, lat in got.items():
            results.append(Result(f"resume, {k} events, {label}", len(lat), sum(lat) / 1000,
                                  lat, {"ratio_1000_over_10": round(ratios[resident], 2),
                                        **(stats if resident else {})},
                                  checked="every tick resumed the workflow"))
        if resident:
            require(stats["hits"] >= 2 * RESUMES and not stats["invalidated"],
                    f"resident states: {stats}")
    steps = max(100, int(STEPS * run.sizes.sequential / 1000))
    return results + await long_runs(run, steps, BACKENDS)


BACKENDS = ("postgres", "sqlite")


async def long_runs(run: Run, steps: int, backends: tuple[str, ...]) -> list[Result]:
    results = []
    for backend in backends:
        per_step, seconds = await _long_run(run, steps, backend)
        results.append(_long_result(backend, steps, per_step, seconds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.resume",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--long-only", action="store_true",
                        help="only the long suspending workflow(s)")
    args = parser.parse_args()
    check_local(args.dsn)
    backends = tuple(b for b in args.backends.split(",") if b)
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backends {sorted(unknown)}: {', '.join(BACKENDS)}")
    run = Run(args.dsn)

    async def go() -> list[Result]:
        return await long_runs(run, args.steps, backends) if args.long_only else (
            await scenario(run))

    for r in trio.run(go):
        print(r.scenario, r.row(None))


if __name__ == "__main__":
    main()
