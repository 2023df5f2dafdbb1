"""A worker process for the multi-process scenarios, and the code that starts them.

    python -m loadtests._worker DSN SCHEMA WORKER_ID MODULE [--pool N]

The process opens an App on ``SCHEMA`` with the workflows listed in ``MODULE.WORKFLOWS``
(e.g. ``loadtests.channels_bench``), prints ``ready`` once it is serving, and runs until SIGTERM
or SIGINT, when it leaves ``open_app`` cleanly (handing unfinished instances back), and writes
its scheduler's statistics to stderr (``stats {json}``: `Worker.stats` once it stopped). With
``LOADTEST_WORKER_PROFILE=DIR`` in its environment it runs under cProfile and writes
``DIR/<worker id>-<pid>.prof`` when it stops (call counts per workflow, to compare set-ups).
With ``LOADTEST_WORKER_SQLCOUNT=1`` it counts its statements (`loadtests._sqlcount`) and adds
them to its statistics as ``sql`` (statement text, shortened: count).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import trio

from romancy_trio import AppConfig, open_app

from ._common import ROOT, CheckFailed, check_local
from ._sqlcount import counting


async def serve(dsn: str, schema: str, worker_id: str, module: str, pool: int,
                placement: str = "spread") -> None:
    workflows: list[Any] = importlib.import_module(module).WORKFLOWS
    config = AppConfig(schema=schema, pool_size=pool,
                       placement="pack" if placement == "pack" else "spread")
    with contextlib.ExitStack() as stack:
        counts = (stack.enter_context(counting()) if os.environ.get("LOADTEST_WORKER_SQLCOUNT")
                  else None)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with open_app(dsn, worker_id=worker_id, workflows=workflows,
                                config=config) as app:
                print("ready", flush=True)
                async for _ in signals:
                    break
                stats = app.statistics()
                if stats is not None:
                    out = dataclasses.asdict(stats)
                    if counts is not None:
                        out["sql"] = dict(counts.kinds)
                    print("stats", json.dumps(out), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests._worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dsn")
    parser.add_argument("schema")
    parser.add_argument("worker_id")
    parser.add_argument("module", help="a module with a WORKFLOWS list")
    parser.add_argument("--pool", type=int, default=6, help="PostgreSQL connections")
    parser.add_argument("--placement", choices=("spread", "pack"), default="spread",
                        help="AppConfig.placement")
    args = parser.parse_args(argv)
    check_local(args.dsn)
    if profile_dir := os.environ.get("LOADTEST_WORKER_PROFILE"):  # cProfile, to that folder
        import cProfile

        with cProfile.Profile() as prof:
            trio.run(serve, args.dsn, args.schema, args.worker_id, args.module, args.pool,
                     args.placement)
        prof.dump_stats(os.path.join(profile_dir, f"{args.worker_id}-{os.getpid()}.prof"))
        return
    trio.run(serve, args.dsn, args.schema, args.worker_id, args.module, args.pool,
             args.placement)


@dataclass
class Worker:
    worker_id: str
    process: trio.Process
    log_path: Path
    stats: dict[str, Any] | None = None
    """The scheduler's statistics it wrote when it stopped on SIGTERM (None: it did not)."""

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def child_env() -> dict[str, str]:
    """This environment, with the repository first on ``PYTHONPATH`` (for ``-m loadtests.*``)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


async def said_ready(proc: trio.Process, timeout: float) -> bool:
    """Read ``proc``'s stdout until it prints ``ready`` (True), ends or ``timeout`` passes."""
    assert proc.stdout is not None
    seen = b""
    with trio.move_on_after(timeout):
        while b"ready\n" not in seen:
            chunk = await proc.stdout.receive_some()
            if not chunk:
                break
            seen += chunk
    return b"ready\n" in seen


@asynccontextmanager
async def open_workers(
    dsn: str, schema: str, module: str, count: int, *, pool: int = 6, start_timeout: float = 60,
    placement: str = "spread",
) -> AsyncIterator[list[Worker]]:
    """Start ``count`` worker processes (ids ``w0``..; `AppConfig.placement` ``placement``)
    and wait until each is serving; on exit
    stop them (SIGTERM, then SIGKILL after 10 s). stderr goes to a log file per worker, kept
    only when the scenario failed."""
    logdir = Path(tempfile.mkdtemp(prefix="romancy-loadtest-"))
    workers: list[Worker] = []
    logs: list[IO[bytes]] = []
    env = child_env()

    async def start(i: int) -> None:
        path = logdir / f"w{i}.log"
        log = path.open("wb")
        logs.append(log)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "loadtests._worker", dsn, schema, f"w{i}", module,
             "--pool", str(pool), "--placement", placement],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
        worker = Worker(f"w{i}", proc, path)
        workers.append(worker)
        if not await said_ready(proc, start_timeout):
            raise RuntimeError(f"worker w{i} did not start:\n{worker.log_tail()}")

    ok = False
    try:
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(start, i)
        yield workers
        ok = True
    finally:
        with trio.CancelScope(shield=True):
            await _stop(workers)
            for log in logs:
                log.close()
        if ok:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"worker logs kept in {logdir}", file=sys.stderr)


def check_alive(workers: list[Worker]) -> None:
    """A worker that died during the scenario fails the run (with its log)."""
    for w in workers:
        if w.process.returncode is not None:
            raise CheckFailed(
                f"worker {w.worker_id} exited with {w.process.returncode}:\n{w.log_tail()}")


async def _stop(workers: list[Worker]) -> None:
    for w in workers:
        if w.process.returncode is None:
            w.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(10):
        for w in workers:
            await w.process.wait()
    for w in workers:
        if w.process.returncode is None:
            w.process.kill()
            await w.process.wait()
        if w.process.stdout is not None:
            await w.process.stdout.aclose()
        for line in w.log_tail(1_000_000).splitlines():  # the whole (short) log
            if line.startswith("stats {"):
                w.stats = json.loads(line[len("stats "):])


if __name__ == "__main__":
    main()
