"""``python -m loadtests.pack_failover``: with ``AppConfig(placement="pack")``, how long new work
waits when the worker taking it (the taker) is SIGKILLed.

Three packing worker processes (`loadtests._worker`) serve one-activity workflows started by
this process. Per round: a few workflows run (the worker that ran the last one is the taker),
the taker is killed with SIGKILL, and a workflow is started at once; the time from the kill to
its result is the figure (the standby notices the taker's session is gone, becomes the taker,
LISTENs and rescans). A replacement worker is started before the next round. Printed: median,
range and each round. Checked: every workflow completed with the right result.

Standalone only: ``python -m loadtests.pack_failover [--rounds N] [--dsn DSN]``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time

import psycopg
import trio
from psycopg import sql

from romancy_trio import AppConfig, open_app

from ._common import DEFAULT_DSN, ROOT, check_local, drop_schema, new_schema, require
from ._worker import child_env, said_ready
from .workflows import bench_one

MODULE = "loadtests.workflows"


def _worker_of(dsn: str, schema: str, instance_id: str) -> str:
    """The worker that recorded ``instance_id``'s history."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.SQL("SELECT worker_id FROM {}.workflow_history "
                                   "WHERE instance_id = %s LIMIT 1").format(
            sql.Identifier(schema)), (instance_id,)).fetchone()
    require(row is not None, f"no history for {instance_id}")
    assert row is not None
    return str(row[0])


async def rounds(dsn: str, count: int) -> list[float]:
    schema = new_schema("packfail")
    procs: dict[str, trio.Process] = {}
    env = child_env()

    async def spawn(worker_id: str) -> None:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "loadtests._worker", dsn, schema, worker_id, MODULE,
             "--placement", "pack"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        procs[worker_id] = proc
        require(await said_ready(proc, 60), f"worker {worker_id} did not start")

    waits: list[float] = []
    try:
        async with open_app(dsn, workflows=[bench_one], config=AppConfig(schema=schema),
                            run_workers=False) as app:
            for n in range(3):
                await spawn(f"w{n}")
            for n in range(count):
                for _ in range(5):
                    iid = await app.start(bench_one, 1)
                    require(await app.result(iid, timeout=60) == 2, "wrong result")
                taker = await trio.to_thread.run_sync(_worker_of, dsn, schema, iid)
                procs[taker].send_signal(signal.SIGKILL)
                await procs.pop(taker).wait()
                killed = time.perf_counter()
                iid = await app.start(bench_one, 1)
                require(await app.result(iid, timeout=60) == 2, "wrong result after the kill")
                waits.append(time.perf_counter() - killed)
                await spawn(f"w{3 + n}")
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(10):
            for proc in procs.values():
                await proc.wait()
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
        drop_schema(dsn, schema)
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.pack_failover",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    check_local(args.dsn)
    waits = trio.run(rounds, args.dsn, args.rounds)
    ms = [1000 * w for w in waits]
    print(f"kill of the taker -> result of a workflow started then, {len(ms)} rounds: "
          f"median {statistics.median(ms):.0f} ms ({min(ms):.0f}-{max(ms):.0f}); "
          + ", ".join(f"{m:.0f}" for m in ms))


if __name__ == "__main__":
    main()
