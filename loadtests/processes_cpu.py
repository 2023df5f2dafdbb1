"""CPU per workflow with 1 vs 4 worker processes (issue #22: 4 processes at most 1.2 x 1).

This process starts one-activity workflows (`App` with ``run_workers=False``) from
``concurrency`` clients, each waiting for its result; worker processes (`loadtests._worker`)
run them. Per set-up and repetition, after a warm-up: the CPU seconds (user + system, from
``/proc/<pid>/stat``) of the worker processes, of the PostgreSQL backends serving them (found
by their ``application_name``) and of this process, divided by the workflows. The set-ups
alternate within each repetition (1, 4; then 4, 1; ...), each on a fresh schema with freshly
started workers; the ratios are taken within a repetition and printed as median and range.

CPU time, not wall time: the figure hardly depends on what else the machine runs, but a
loaded machine still inflates it somewhat (caches, frequency) - read the ratios.

Standalone: ``python -m loadtests.processes_cpu [--repetitions N] [--workflows N]
[--processes 1,4] [--concurrency N] [--interval S]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import trio

from romancy_trio import AppConfig, open_app

from ._common import DEFAULT_DSN, Result, Run, check_local, drop_schema, new_schema, require
from ._worker import check_alive, open_workers
from .workflows import bench_one

MODULE = "loadtests.workflows"
WARMUP = 200
REPETITIONS = 3
WORKFLOWS = 1500
SETUPS = (1, 4)
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _backends(dsn: str, app_name: str) -> list[int]:
    for attempt in range(40):  # a shared server may be at max_connections for a moment
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            if attempt == 39:
                raise
            time.sleep(0.25)
            continue
        with conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                (app_name,)).fetchall()
        return [int(r[0]) for r in rows]
    raise AssertionError("unreachable")


def _with_app_name(dsn: str, name: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


@dataclass(frozen=True, slots=True)
class Sample:
    processes: int
    workflows: int
    seconds: float
    workers_ms: float
    """CPU ms per workflow of the worker processes"""
    postgres_ms: float
    """CPU ms per workflow of the PostgreSQL backends of the workers and this process"""
    producer_ms: float
    """CPU ms per workflow of this process (starts and waits for results)"""
    claims: float
    """Claim statements of the workers per workflow they ran (warm-up included)"""
    deferred: float
    """Wake-ups the workers heard and left to the peer chosen for the instance, per workflow
    (each worker hears every work notification)"""

    @property
    def total_ms(self) -> float:
        return self.workers_ms + self.postgres_ms + self.producer_ms


async def measure(dsn: str, processes: int, total: int, concurrency: int, pool: int,
                  interval: float = 0.0) -> Sample:
    """``interval``: each client pauses this long between its workflows (a sparse load)."""
    schema = new_schema("benchcpu")
    tag = schema  # the application_name of every connection of this set-up
    url = _with_app_name(dsn, tag)
    config = AppConfig(schema=schema, pool_size=max(10, concurrency // 2))
    try:
        async with open_app(url, workflows=[bench_one], config=config,
                            run_workers=False) as app, \
                open_workers(url, schema, MODULE, processes, pool=pool) as workers:
            done = 0

            async def clients(n: int) -> None:
                nonlocal done
                left = n

                async def client() -> None:
                    nonlocal left, done
                    while left > 0:
                        left -= 1
                        result = await app.run(bench_one, 1, timeout=120)
                        require(result == 2, f"wrong result {result!r}")
                        done += 1
                        if interval:
                            await trio.sleep(interval)

                async with trio.open_nursery() as nursery:
                    for _ in range(concurrency):
                        nursery.start_soon(client)

            await clients(WARMUP)  # connections, prepared statements, code paths
            pids = [w.process.pid for w in workers]
            backends = await trio.to_thread.run_sync(_backends, dsn, tag)
            before = ([_cpu_of(p) for p in pids], [_cpu_of(p) for p in backends],
                      time.process_time())
            t0 = time.perf_counter()
            await clients(total)
            seconds = time.perf_counter() - t0
            after_backends = await trio.to_thread.run_sync(_backends, dsn, tag)
            workers_cpu = sum(_cpu_of(p) for p in pids) - sum(before[0])
            pg_cpu = (sum(_cpu_of(p) for p in after_backends)
                      - sum(c for p, c in zip(backends, before[1], strict=True)
                            if p in after_backends))
            producer_cpu = time.process_time() - before[2]
            check_alive(workers)
            require(done == WARMUP + total, f"{done} results, expected {WARMUP + total}")
        require(all(w.stats is not None for w in workers),
                "a worker did not report its statistics")
        stats = [w.stats or {} for w in workers]
        started = sum(s["started"] for s in stats)
    finally:
        drop_schema(dsn, schema)
    per = 1000 / total
    return Sample(processes, total, seconds, workers_cpu * per, pg_cpu * per,
                  producer_cpu * per, sum(s["claims"] for s in stats) / started,
                  sum(s["deferred"] for s in stats) / started)


async def compare(run: Run, *, repetitions: int, total: int, setups: tuple[int, ...] = SETUPS,
                  interval: float = 0.0) -> list[Sample]:
    samples: list[Sample] = []
    for rep in range(repetitions):
        order = setups if rep % 2 == 0 else setups[::-1]
        for processes in order:
            bar = run.progress(f"cpu: {processes} worker process(es), rep {rep + 1}", 1)
            samples.append(await measure(run.dsn, processes, total, run.sizes.concurrency,
                                         run.sizes.worker_pool, interval))
            bar.advance()
            bar.close()
    return samples


def summary(samples: list[Sample], setups: tuple[int, ...] = SETUPS) -> dict[str, Any]:
    """Medians and ranges per set-up; the ratios of the last set-up over the first, taken
    within each repetition."""
    out: dict[str, Any] = {}

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    for n in setups:
        mine = [s for s in samples if s.processes == n]
        for field in ("workers_ms", "postgres_ms", "producer_ms", "total_ms", "claims",
                      "deferred"):
            out[f"{n}p_{field}"] = spread([getattr(s, field) for s in mine])
        out[f"{n}p_per_s"] = round(statistics.median(s.workflows / s.seconds for s in mine), 1)
    first, last = setups[0], setups[-1]
    by_rep = list(zip([s for s in samples if s.processes == first],
                      [s for s in samples if s.processes == last], strict=True))
    for field in ("workers_ms", "total_ms"):
        ratios = [getattr(b, field) / getattr(a, field) for a, b in by_rep]
        out[f"ratio_{field}_{last}p_over_{first}p"] = (
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
    return out


async def scenario(run: Run) -> list[Result]:
    total = max(100, int(WORKFLOWS * run.sizes.concurrent / 2000))
    samples = await compare(run, repetitions=REPETITIONS, total=total)
    extra = summary(samples)
    return [Result(f"CPU per workflow, {SETUPS[-1]} vs {SETUPS[0]} worker processes",
                   sum(s.workflows for s in samples), sum(s.seconds for s in samples),
                   [s.total_ms for s in samples], extra, rate=False,
                   checked="every workflow completed with the right result")]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.processes_cpu",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--workflows", type=int, default=WORKFLOWS)
    parser.add_argument("--processes", default=",".join(map(str, SETUPS)),
                        help="the set-ups, e.g. 1,4 (ratios: last over first)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="clients starting workflows at once (default: the sizes' 50)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds each client pauses between workflows (a sparse load)")
    args = parser.parse_args()
    check_local(args.dsn)
    setups = tuple(int(x) for x in args.processes.split(","))
    run = Run(args.dsn)
    if args.concurrency is not None:
        run = dataclasses.replace(run, sizes=dataclasses.replace(
            run.sizes, concurrency=args.concurrency))
    samples = trio.run(lambda: compare(run, repetitions=args.repetitions, total=args.workflows,
                                       setups=setups, interval=args.interval))
    for s in samples:
        print(f"{s.processes} process(es): {s.workflows / s.seconds:7.1f} wf/s, CPU ms per "
              f"workflow: workers {s.workers_ms:.2f}, postgres {s.postgres_ms:.2f}, this "
              f"process {s.producer_ms:.2f}, total {s.total_ms:.2f}; per workflow: claims "
              f"{s.claims:.2f}, wake-ups left to peers {s.deferred:.2f}")
    for k, v in summary(samples, setups).items():
        print(f"  {k}: {v}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
