"""SQLite shared by several processes: ``python -m loadtests.sqlite_processes [--poll S|off]``.

Two worker processes and this one (which only starts workflows and waits for their results,
``run_workers=False``) share one SQLite file. This process starts N tiny one-activity workflows
(default 100) and waits for every result. Nothing tells a worker about another process's
commits but ``AppConfig.sqlite_poll_interval`` (``PRAGMA data_version``); with ``--poll off``
they are noticed only by the fallback re-check (``fallback_interval``, 30 s by default).
Prints the wall time and how the instances were spread over the workers. Informational.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from romancy_trio import ActivityContext, AppConfig, WorkflowContext, activity, open_app, workflow


@activity
async def tiny_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def tiny(ctx: WorkflowContext, n: int) -> int:
    return await tiny_step(ctx, n)


def _config(poll: float | None) -> AppConfig:
    return AppConfig(sqlite_poll_interval=poll)


async def _worker(url: str, poll: float | None, worker_id: str) -> None:
    async with open_app(url, workflows=[tiny, tiny_step], config=_config(poll),
                        worker_id=worker_id):
        print("ready", flush=True)
        await trio.sleep_forever()


async def _client(url: str, poll: float | None, n: int) -> tuple[float, dict[str, int]]:
    async with open_app(url, workflows=[tiny, tiny_step], config=_config(poll),
                        run_workers=False) as app:
        started = time.perf_counter()
        ids = [await app.start(tiny, i) for i in range(n)]

        async def wait_one(iid: str, i: int) -> None:
            assert await app.result(iid, timeout=600) == i + 1

        async with trio.open_nursery() as nursery:
            for i, iid in enumerate(ids):
                nursery.start_soon(wait_one, iid, i)
        elapsed = time.perf_counter() - started
        spread: dict[str, int] = {}
        for info in await app.list_instances(limit=n):
            assert info.status == "completed"
        rows = await app.store.db.fetchall(
            "SELECT worker_id, count(*) FROM workflow_history GROUP BY worker_id")
        spread = {str(r[0]): int(r[1]) for r in rows}
        return elapsed, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", default="0.05", help="seconds, or 'off'")
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    poll = None if args.poll == "off" else float(args.poll)
    if args.worker:
        trio.run(_worker, args.worker[0], poll, args.worker[1])
        return
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='sqlite-procs-')) / 'shared.db'}"
    trio.run(_migrate, url)
    procs = []
    try:
        for w in ("w1", "w2"):
            proc = subprocess.Popen(
                [sys.executable, "-m", "loadtests.sqlite_processes", "--poll", args.poll,
                 "--worker", url, w],
                stdout=subprocess.PIPE, text=True, env=os.environ.copy())
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        elapsed, spread = trio.run(_client, url, poll, args.n)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
    print(f"{args.n} workflows over 2 worker processes, sqlite_poll_interval={poll}: "
          f"{elapsed:.2f} s; history rows per worker: {spread}")


async def _migrate(url: str) -> None:
    async with open_app(url, workflows=[tiny, tiny_step], run_workers=False):
        pass


if __name__ == "__main__":
    main()
