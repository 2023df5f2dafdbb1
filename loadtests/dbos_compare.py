"""The one-activity scenario with DBOS Transact, for ``python -m loadtests --compare-dbos``.

    /path/to/venv-with-dbos/bin/python loadtests/dbos_compare.py --dsn DSN --sequential N ...

Runs standalone in any interpreter where ``dbos`` is importable (it imports neither trio nor
romancy_trio, so it can live in a throwaway venv: DBOS is never a dependency of the library).
DBOS keeps its system tables in a fresh schema of the same database (``dbos_system_schema``),
dropped afterwards. One workflow = one ``@DBOS.step``; started with ``start_workflow_async`` and
awaited with ``get_result`` - the same shape as ``App.run`` on a workflow with one activity.
Prints one JSON object on stdout: ``{"version": ..., "results": [{scenario, count, seconds,
latencies_ms, extra}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import uuid
from typing import Any

import psycopg
from dbos import DBOS, DBOSConfig  # type: ignore[import-not-found,unused-ignore]


def _check_local(dsn: str) -> None:
    host = str(psycopg.conninfo.conninfo_to_dict(dsn).get("host", "localhost"))
    if host not in ("127.0.0.1", "localhost", "::1", "") and not host.startswith("/"):
        raise SystemExit(f"refusing to benchmark against non-local host {host!r}")


@DBOS.step()  # type: ignore[untyped-decorator,unused-ignore]
async def dbos_bench_step(n: int) -> int:
    return n + 1


@DBOS.workflow()  # type: ignore[untyped-decorator,unused-ignore]
async def dbos_bench_one(n: int) -> int:
    return int(await dbos_bench_step(n))


async def _run(name: str, total: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            handle = await DBOS.start_workflow_async(dbos_bench_one, 1)
            if await asyncio.wait_for(handle.get_result(), 60) != 2:
                raise SystemExit(f"{name}: wrong result")
            latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    return {"scenario": name, "count": total, "seconds": seconds, "latencies_ms": latencies,
            "extra": {"concurrency": concurrency}}


def _count_successes(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}.workflow_status WHERE status = 'SUCCESS'")
            .format(psycopg.sql.Identifier(schema))).fetchone()
    return int(row[0]) if row else 0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"bench_dbos_{uuid.uuid4().hex[:8]}"
    config: DBOSConfig = {
        "name": "romancy-loadtest",
        "system_database_url": args.dsn,
        "dbos_system_schema": schema,
        "sys_db_pool_size": max(10, args.concurrency // 2),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    results: list[dict[str, Any]] = []
    try:
        DBOS.launch()
        for i in range(20):  # warm up, as the romancy_trio scenario does
            await (await DBOS.start_workflow_async(dbos_bench_one, i)).get_result()
        results.append(await _run("DBOS 1-activity wf, sequential", args.sequential, 1))
        warm = 4 * args.concurrency  # untimed, as the romancy_trio scenario does: the pool
        await _run("DBOS warm-up", warm, args.concurrency)  # at its working size
        results.append(await _run(f"DBOS 1-activity wf, {args.concurrency} concurrent",
                                  args.concurrent, args.concurrency))
        expected = 20 + args.sequential + warm + args.concurrent
        done = _count_successes(args.dsn, schema)
        if done != expected:
            raise SystemExit(f"DBOS: {done} workflows succeeded, expected {expected}")
    finally:
        DBOS.destroy()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)))
    from importlib.metadata import version

    return {"version": version("dbos"), "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python loadtests/dbos_compare.py")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    ns = parser.parse_args()
    _check_local(ns.dsn)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = asyncio.run(main(ns))
    print(json.dumps(out))
