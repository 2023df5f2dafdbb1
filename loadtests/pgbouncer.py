"""Through PgBouncer in transaction mode against direct: ``python -m loadtests.pgbouncer``, or
the ``pgbouncer`` scenario of ``python -m loadtests``.

One-activity workflows run by 50 concurrent clients (``--concurrency``) in one App that both
starts and runs them, in three set-ups, alternating within each repetition (the order rotates
from one repetition to the next, so drift of the machine spreads over all three):

- ``direct``: straight to PostgreSQL, the default (server-side prepared statements);
- ``direct, unprepared``: the same with ``AppConfig(prepared_statements=False)``;
- ``pgbouncer tx``: the pool through a private PgBouncer in transaction mode
  (``tests/pgbouncer.py``, a spare port, in front of the same server), ``listener_url`` direct
  (so, by default, no prepared statements).

Printed: each set-up's median throughput over the repetitions and its range, and the ratios of
the medians - what turning prepared statements off costs, and what the pooler costs (target:
within 15 % of direct). Checked: every workflow completed with the right result.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass, field

import trio

from romancy_trio import AppConfig, open_app
from tests.pgbouncer import private_pgbouncer

from ._common import DEFAULT_DSN, Result, Run, check_local, drop_schema, require
from .workflows import WARMUP, WORKFLOWS, bench_one

SETUPS = ("direct", "direct, unprepared", "pgbouncer tx")


@dataclass
class Samples:
    rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    count: int = 0


async def _one_run(url: str, listener: str | None, config: AppConfig, total: int,
                   concurrency: int, into: Samples) -> None:
    async with open_app(url, listener_url=listener, workflows=WORKFLOWS, config=config) as app:
        for i in range(WARMUP):
            await app.run(bench_one, i, timeout=30)
        remaining, wrong, latencies = total, 0, []

        async def client() -> None:
            nonlocal remaining, wrong
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                wrong += await app.run(bench_one, 1, timeout=60) != 2
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client)
        seconds = time.perf_counter() - t0
        done = await app.list_instances(status="completed", limit=100_000)
    require(wrong == 0, f"pgbouncer: {wrong} wrong results")
    require(len(done) >= total + WARMUP, f"pgbouncer: {len(done)} completed, expected more")
    into.rates.append(total / seconds)
    into.latencies_ms.extend(latencies)
    into.seconds += seconds
    into.count += total


async def compare(dsn: str, *, repetitions: int, total: int, concurrency: int,
                  show: bool = True) -> dict[str, Samples]:
    samples = {name: Samples() for name in SETUPS}
    schemas = {name: f"bench_{uuid.uuid4().hex[:8]}" for name in SETUPS}
    pool = max(10, concurrency // 2)
    try:
        with private_pgbouncer(dsn, "transaction") as bouncer:
            urls = {"direct": (dsn, None), "direct, unprepared": (dsn, None),
                    "pgbouncer tx": (bouncer.url(), dsn)}
            for rep in range(repetitions):
                order = SETUPS[rep % 3:] + SETUPS[:rep % 3]
                for name in order:
                    config = AppConfig(schema=schemas[name], pool_size=pool,
                                       prepared_statements=False if "unprepared" in name
                                       else None)
                    url, listener = urls[name]
                    await _one_run(url, listener, config, total, concurrency, samples[name])
                    if show:
                        print(f"  repetition {rep + 1}: {name:<19} "
                              f"{samples[name].rates[-1]:7.1f} workflows/s", flush=True)
    finally:
        for schema in schemas.values():
            drop_schema(dsn, schema)
    return samples


def summary(samples: dict[str, Samples]) -> dict[str, float]:
    out: dict[str, float] = {}
    medians = {name: statistics.median(s.rates) for name, s in samples.items()}
    for name, s in samples.items():
        key = name.replace(", ", "_").replace(" ", "_")
        out[f"{key}_median_per_s"] = round(medians[name], 1)
        out[f"{key}_min_per_s"] = round(min(s.rates), 1)
        out[f"{key}_max_per_s"] = round(max(s.rates), 1)
    out["unprepared_vs_direct"] = round(medians["direct, unprepared"] / medians["direct"], 3)
    out["pgbouncer_vs_direct"] = round(medians["pgbouncer tx"] / medians["direct"], 3)
    out["pgbouncer_vs_unprepared"] = round(
        medians["pgbouncer tx"] / medians["direct, unprepared"], 3)
    return out


async def scenario(run: Run) -> list[Result]:
    c = run.sizes.concurrency
    samples = await compare(run.dsn, repetitions=run.sizes.pgbouncer_repetitions,
                            total=run.sizes.pgbouncer_workflows, concurrency=c,
                            show=run.show_progress)
    extra = summary(samples)
    return [Result(f"1-activity wf, {c} concurrent, {name}", s.count, s.seconds,
                   s.latencies_ms, extra=extra if name == "pgbouncer tx" else {},
                   checked=f"all {s.count} completed")
            for name, s in samples.items()]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.pgbouncer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--workflows", type=int, default=600, help="per set-up and repetition")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    check_local(args.dsn)
    if not (1 <= args.repetitions <= 50 and 1 <= args.workflows <= 20_000
            and 1 <= args.concurrency <= 500):
        parser.error("--repetitions 1-50, --workflows 1-20000, --concurrency 1-500")
    samples = trio.run(lambda: compare(args.dsn, repetitions=args.repetitions,
                                       total=args.workflows, concurrency=args.concurrency))
    for name, s in samples.items():
        print(f"{name:<19} median {statistics.median(s.rates):7.1f} workflows/s "
              f"(range {min(s.rates):.1f}-{max(s.rates):.1f}, {len(s.rates)} repetitions)")
    for key, value in summary(samples).items():
        if "_vs_" in key:
            print(f"{key:>24} {value:.3f}")


if __name__ == "__main__":
    main()
