"""CPU per workflow with 1 vs 4 worker processes (issue #22: 4 processes at most 1.2 x 1).

This process starts one-activity workflows (`App` with ``run_workers=False``) from
``concurrency`` clients, each waiting for its result; worker processes (`loadtests._worker`)
run them. Per set-up and repetition, after a warm-up: the CPU seconds (user + system, from
``/proc/<pid>/stat``) of the worker processes, of the PostgreSQL backends serving them (found
by their ``application_name``), of this process and of its own backends, divided by the
workflows. The set-ups alternate within each repetition (in order, then reversed, ...), each on
a fresh schema with freshly started workers; the ratios are taken within a repetition and
printed as median and range.

A set-up is ``W[p][+L][@R]``: W worker processes (``p``: with ``placement="pack"``); L bare
listeners beside them
(`loadtests._listener`: processes that only LISTEN on the work channel and read what
arrives, no romancy_trio code - the floor of "every process hears every work notification");
starts paced at R a second (default: as fast as the clients go). So ``1,4`` is the issue's
figure under full load, ``1@400,4@400`` the same at a fixed load, ``1@100`` one worker serving
what each of four serves at 400 a second, ``1+3@400`` the listening floor, and ``4p``,
``4p@400`` four packing workers.

CPU time, not wall time: the figure hardly depends on what else the machine runs, but a
loaded machine still inflates it somewhat (caches, frequency) - read the ratios.

Standalone: ``python -m loadtests.processes_cpu [--repetitions N] [--workflows N]
[--processes 1,4,4p] [--concurrency N] [--interval S]``; with ``LOADTEST_WORKER_SQLCOUNT=1`` in
the environment it also prints the workers' statements per workflow.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import trio

from romancy_trio import AppConfig, open_app
from romancy_trio.storage import Topics

from ._common import DEFAULT_DSN, Result, Run, check_local, drop_schema, new_schema, require
from ._listener import open_listeners
from ._worker import check_alive, open_workers
from .workflows import bench_one

MODULE = "loadtests.workflows"
WARMUP = 200
REPETITIONS = 3
WORKFLOWS = 1500
SETUPS = ("1", "4", "4p")
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int, *, system: bool = False) -> float:
    """CPU seconds (user + system; or system alone) of process ``pid`` so far; 0 if it is
    gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    stime = int(fields[12])  # utime, stime: fields 14, 15
    return (stime if system else int(fields[11]) + stime) / _TICK


def _cpu_map(pids: Iterable[int], *, system: bool = False) -> dict[int, float]:
    """`_cpu_of` of each of ``pids``, by pid: a snapshot for `_cpu_since`."""
    return {p: _cpu_of(p, system=system) for p in pids}


def _cpu_since(before: Mapping[int, float], pids: Iterable[int], *,
               system: bool = False) -> float:
    """CPU seconds ``pids`` used since the snapshot ``before`` (a pid not in it - a backend
    opened meanwhile - counts whole; one that ended meanwhile, not at all)."""
    return sum(_cpu_of(p, system=system) - before.get(p, 0.0) for p in pids)


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


def _parse(setup: str) -> tuple[int, int, float | None]:
    """``"4"`` -> 4 workers, no listeners, as fast as the clients go; ``"1+3"`` -> 1 worker
    and 3 bare listeners; ``"1@150"`` -> 1 worker, the starts paced at 150 a second; a ``p``
    after the workers (``"4p@400"``) makes them pack (`_placement`)."""
    head, _, rate = setup.partition("@")
    workers, _, listeners = head.partition("+")
    return int(workers.removesuffix("p")), int(listeners or 0), float(rate) if rate else None


def _placement(setup: str) -> str:
    """`AppConfig.placement` of the set-up's workers: ``"pack"`` for ``4p``, ``4p@400``..."""
    return "pack" if setup.partition("@")[0].partition("+")[0].endswith("p") else "spread"


@dataclass(frozen=True, slots=True)
class Sample:
    setup: str
    workflows: int
    seconds: float
    workers_ms: float
    """CPU ms per workflow of the worker processes"""
    workers_sys_ms: float
    """Of ``workers_ms``, the time in the kernel (system time)"""
    postgres_ms: float
    """CPU ms per workflow of the PostgreSQL backends of the workers (and bare listeners)"""
    producer_ms: float
    """CPU ms per workflow of this process (starts and waits for results)"""
    producer_pg_ms: float
    """CPU ms per workflow of this process's PostgreSQL backends"""
    listeners_ms: float
    """CPU ms per workflow of the bare listener processes (their backends: ``postgres_ms``)"""
    claims: float
    """Claim statements of the workers per workflow they ran (warm-up included)"""
    deferred: float
    """Wake-ups the workers heard and left to the peer chosen for the instance, per workflow
    (each worker hears every work notification)"""
    sql: dict[str, float] = dataclasses.field(default_factory=dict)
    """With ``LOADTEST_WORKER_SQLCOUNT=1``: the workers' statements per workflow they ran
    (warm-up included), by shortened text"""

    @property
    def total_ms(self) -> float:
        return self.serving_ms + self.producer_ms + self.producer_pg_ms

    @property
    def serving_ms(self) -> float:
        """What the number of workers changes: the workers, bare listeners and their
        backends (the starting side excluded)."""
        return self.workers_ms + self.postgres_ms + self.listeners_ms


async def measure(dsn: str, setup: str, total: int, concurrency: int, pool: int,
                  interval: float = 0.0) -> Sample:
    """``interval``: each client pauses this long between its workflows (a sparse load)."""
    processes, listeners, rate = _parse(setup)
    pace = trio.current_time()  # with a rate: when the next start may go
    schema = new_schema("benchcpu")
    tag = schema  # the application_name of every connection of this set-up
    url = _with_app_name(dsn, tag)
    starter_url = _with_app_name(dsn, f"{tag}_s")  # its backends counted apart
    config = AppConfig(schema=schema, pool_size=max(10, concurrency // 2))
    try:
        async with open_app(starter_url, workflows=[bench_one], config=config,
                            run_workers=False) as app, \
                open_workers(url, schema, MODULE, processes, pool=pool,
                             placement=_placement(setup)) as workers, \
                open_listeners(url, Topics.for_schema(schema).work, listeners) as bare:
            done = 0

            async def clients(n: int) -> None:
                nonlocal done
                left = n

                async def client() -> None:
                    nonlocal left, done, pace
                    while left > 0:
                        left -= 1
                        if rate is not None:
                            slot = pace = max(pace + 1 / rate, trio.current_time())
                            await trio.sleep_until(slot)
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
            bare_pids = [p.pid for p in bare]
            workers_before, bare_before = _cpu_map(pids), _cpu_map(bare_pids)
            workers_sys_before = _cpu_map(pids, system=True)
            backends_before = _cpu_map(await trio.to_thread.run_sync(_backends, dsn, tag))
            mine_before = _cpu_map(await trio.to_thread.run_sync(_backends, dsn, f"{tag}_s"))
            producer_before = time.process_time()
            t0 = time.perf_counter()
            await clients(total)
            seconds = time.perf_counter() - t0
            producer_cpu = time.process_time() - producer_before
            workers_cpu = _cpu_since(workers_before, pids)
            workers_sys = _cpu_since(workers_sys_before, pids, system=True)
            bare_cpu = _cpu_since(bare_before, bare_pids)
            pg_cpu = _cpu_since(backends_before,
                                await trio.to_thread.run_sync(_backends, dsn, tag))
            producer_pg_cpu = _cpu_since(
                mine_before, await trio.to_thread.run_sync(_backends, dsn, f"{tag}_s"))
            check_alive(workers)
            require(done == WARMUP + total, f"{done} results, expected {WARMUP + total}")
        require(all(w.stats is not None for w in workers),
                "a worker did not report its statistics")
        stats = [w.stats or {} for w in workers]
        started = sum(s["started"] for s in stats)
    finally:
        drop_schema(dsn, schema)
    per = 1000 / total
    sql = sum((collections.Counter(s.get("sql", {})) for s in stats), collections.Counter())
    return Sample(setup, total, seconds, workers_cpu * per, workers_sys * per, pg_cpu * per,
                  producer_cpu * per,
                  producer_pg_cpu * per, bare_cpu * per,
                  sum(s["claims"] for s in stats) / started,
                  sum(s["deferred"] for s in stats) / started,
                  {k: v / started for k, v in sql.items()})


async def compare(run: Run, *, repetitions: int, total: int, setups: tuple[str, ...] = SETUPS,
                  interval: float = 0.0) -> list[Sample]:
    samples: list[Sample] = []
    for rep in range(repetitions):
        order = setups if rep % 2 == 0 else setups[::-1]
        for setup in order:
            bar = run.progress(f"cpu: set-up {setup}, rep {rep + 1}", 1)
            samples.append(await measure(run.dsn, setup, total, run.sizes.concurrency,
                                         run.sizes.worker_pool, interval))
            bar.advance()
            bar.close()
    return samples


def _reference(setup: str, setups: tuple[str, ...]) -> str:
    """What ``setup`` is compared with: the one-worker set-up at the same pace (``4@400``
    over ``1@400``), else the first set-up (``1@100`` over ``1@400``)."""
    _, _, rate = _parse(setup)
    same_pace = [s for s in setups if s != setup and _parse(s) == (1, 0, rate)]
    return same_pace[0] if same_pace else setups[0]


def _key(setup: str) -> str:
    """A set-up's name in the summary: ``4p`` for 4 processes, ``4pack`` for 4 packing ones."""
    return setup.replace("p", "pack", 1) if _placement(setup) == "pack" else f"{setup}p"


def summary(samples: list[Sample], setups: tuple[str, ...] = SETUPS) -> dict[str, Any]:
    """Medians and ranges per set-up; the ratios of each later set-up over its reference
    (`_reference`), taken within each repetition."""
    out: dict[str, Any] = {}

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    for n in setups:
        mine = [s for s in samples if s.setup == n]
        fields = ["workers_ms", "workers_sys_ms", "postgres_ms", "serving_ms", "producer_ms",
                  "producer_pg_ms", "total_ms", "claims", "deferred"]
        if _parse(n)[1]:
            fields.insert(3, "listeners_ms")
        for field in fields:
            out[f"{_key(n)}_{field}"] = spread([getattr(s, field) for s in mine])
        out[f"{_key(n)}_per_s"] = round(statistics.median(s.workflows / s.seconds for s in mine), 1)
    for later in setups[1:]:
        base = _reference(later, setups)
        by_rep = list(zip([s for s in samples if s.setup == base],
                          [s for s in samples if s.setup == later], strict=True))
        for field in ("workers_ms", "serving_ms", "total_ms"):
            ratios = [getattr(b, field) / getattr(a, field) for a, b in by_rep]
            out[f"ratio_{field}_{_key(later)}_over_{_key(base)}"] = (
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
    return out


async def scenario(run: Run) -> list[Result]:
    total = max(100, int(WORKFLOWS * run.sizes.concurrent / 2000))
    samples = await compare(run, repetitions=REPETITIONS, total=total)
    extra = summary(samples)
    return [Result("CPU per workflow, 4 worker processes (spreading, packing) vs 1",
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
                        help="the set-ups, e.g. 1,4 or 1,4,4p,1@400,4@400,4p@400,1@100,1+3@400: "
                             "W workers (Wp: packing), +L bare listeners, @R starts per second "
                             "(ratios: over "
                             "the one-worker set-up at the same pace, else over the first)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="clients starting workflows at once (default: the sizes' 50)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds each client pauses between workflows (a sparse load)")
    args = parser.parse_args()
    check_local(args.dsn)
    setups = tuple(args.processes.split(","))
    for setup in setups:
        try:
            workers, listeners, rate = _parse(setup)
        except ValueError:
            parser.error(f"--processes: {setup!r} is not W, Wp, W+L or W@R (workers, "
                         f"packing workers, bare listeners, starts per second)")
        if workers < 1 or listeners < 0 or (rate is not None and rate <= 0):
            parser.error(f"--processes: {setup!r} needs at least one worker and a rate > 0")
    run = Run(args.dsn)
    if args.concurrency is not None:
        run = dataclasses.replace(run, sizes=dataclasses.replace(
            run.sizes, concurrency=args.concurrency))
    samples = trio.run(lambda: compare(run, repetitions=args.repetitions, total=args.workflows,
                                       setups=setups, interval=args.interval))
    for s in samples:
        bare = f", bare listeners {s.listeners_ms:.2f}" if _parse(s.setup)[1] else ""
        print(f"set-up {s.setup}: {s.workflows / s.seconds:7.1f} wf/s, CPU ms per "
              f"workflow: workers {s.workers_ms:.2f} ({s.workers_sys_ms:.2f} system), "
              f"their postgres {s.postgres_ms:.2f}{bare}, "
              f"this process {s.producer_ms:.2f} + its postgres {s.producer_pg_ms:.2f}, "
              f"total {s.total_ms:.2f}; per workflow: claims "
              f"{s.claims:.2f}, wake-ups left to peers {s.deferred:.2f}")
        for text, n in sorted(s.sql.items(), key=lambda kv: -kv[1]):
            print(f"    {n:6.3f} {text}")
    for k, v in summary(samples, setups).items():
        print(f"  {k}: {v}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
