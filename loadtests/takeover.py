"""``python -m loadtests takeover``: time from SIGKILL of a worker in the middle of an activity
to that instance's activity running again on another worker, over repeated kills.

Worker processes (``tests.romancy_trio.liveness_proc``, default config) run a one-activity
workflow whose activity hangs inside its open transaction on the first worker to run it; the
driver kills that worker with SIGKILL, waits for the activity to start again elsewhere (a
marker file the activity writes once its transaction is open), and starts a replacement worker
in the background. Checked: every instance completes, and the effect ledger (a table with a
unique key, written in the activity's transaction) holds exactly one row per instance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from ._common import Result, Run, drop_schema, new_schema, percentile, with_search_path

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(str(ROOT / d) for d in ("", "notify", "channels"))


class Workers:
    """Worker processes owned by one nursery; `ready` lists those that printed ``ready``."""

    def __init__(self, nursery: trio.Nursery, url: str, schema: str, marker_dir: Path) -> None:
        self._nursery = nursery
        self._args = [sys.executable, "-m", "tests.romancy_trio.liveness_proc", url, schema]
        self._env = {**os.environ, "PYTHONPATH": PYTHONPATH, "MARKER_DIR": str(marker_dir)}
        self._logs = marker_dir
        self.procs: dict[str, trio.Process] = {}
        self.ready: set[str] = set()
        self._changed = trio.Event()
        self._n = 0
        self.closing = False

    def spawn(self) -> None:
        self._n += 1
        self._nursery.start_soon(self._run, f"w{self._n}")

    async def _run(self, wid: str) -> None:
        with open(self._logs / f"{wid}.log", "wb") as log:  # noqa: ASYNC230 - a local file
            proc = await trio.lowlevel.open_process(
                [*self._args, wid], cwd=ROOT, env=self._env, stdout=subprocess.PIPE, stderr=log)
            self.procs[wid] = proc
            if self.closing:
                proc.terminate()
            try:
                assert proc.stdout is not None
                seen = b""
                while b"ready\n" not in seen:
                    chunk = await proc.stdout.receive_some()
                    if not chunk:
                        if self.closing:
                            return
                        raise RuntimeError(f"worker {wid} exited before it was ready")
                    seen += chunk
                self.ready.add(wid)
                self._signal()
                await proc.wait()
            finally:
                self.ready.discard(wid)
                self.procs.pop(wid, None)
                if proc.returncode is None:
                    proc.kill()
                    with trio.CancelScope(shield=True):
                        await proc.wait()
                self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_ready(self, count: int) -> None:
        while len(self.ready) < count:
            await self._changed.wait()

    def kill(self, wid: str) -> None:
        self.ready.discard(wid)
        self.procs[wid].send_signal(signal.SIGKILL)

    def terminate_all(self) -> None:
        self.closing = True
        for proc in self.procs.values():
            proc.terminate()


async def wait_marker(marker_dir: Path, iid: str, *, not_by: str | None = None) -> str:
    """The worker that opened the instance's activity transaction (polls the marker files)."""
    while True:
        for path in marker_dir.glob(f"{iid}.0.*"):  # noqa: ASYNC240 - a local directory
            wid = path.name.rsplit(".", 1)[1]
            if wid != not_by:
                return wid
        await trio.sleep(0.002)


@asynccontextmanager
async def open_workers(url: str, schema: str, count: int, logs: list[str]
                       ) -> AsyncIterator[tuple[Workers, Path]]:
    """``count`` ready workers; on leaving, they are stopped and their logs added to ``logs``."""
    with tempfile.TemporaryDirectory(prefix="takeover-") as tmp:
        async with trio.open_nursery() as nursery:
            workers = Workers(nursery, url, schema, Path(tmp))
            for _ in range(count):
                workers.spawn()
            await workers.wait_ready(count)
            try:
                yield workers, Path(tmp)
            finally:
                workers.terminate_all()
        paths = sorted(Path(tmp).glob("*.log"))  # noqa: ASYNC240 - a small local directory
        logs.extend(p.read_text() for p in paths)


@dataclass
class KillLoop:
    samples: list[float]
    """Seconds from each SIGKILL to the activity running again on another worker."""
    logs: list[str]
    """Every worker's log."""


async def kill_loop(url: str, schema: str, kills: int, *, workers: int = 3) -> KillLoop:
    """SIGKILL the worker running an instance's activity, ``kills`` times (a new instance
    each time); raises AssertionError unless every effect happened exactly once."""
    from romancy_trio import AppConfig, open_app
    from tests.romancy_trio.liveness_proc import LEDGER_DDL, held, hold

    samples: list[float] = []
    logs: list[str] = []
    async with open_app(url, workflows=[held, hold], config=AppConfig(schema=schema),
                        run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        async with open_workers(url, schema, workers, logs) as (pool, markers):
            for k in range(kills):
                await pool.wait_ready(2)  # the one that will be killed, and one to take over
                iid = f"{schema}-{k}"
                (markers / f"hang.{iid}").touch()
                await app.start(held, {"seconds": 0.0}, instance_id=iid)
                victim = await wait_marker(markers, iid)
                killed_at = time.monotonic()
                pool.kill(victim)
                await wait_marker(markers, iid, not_by=victim)
                samples.append(time.monotonic() - killed_at)
                pool.spawn()  # a replacement, starting while the loop goes on
                await app.result(iid, timeout=60)
        rows = await app.store.db.fetchall(
            "SELECT count(*), count(DISTINCT instance_id) FROM ledger WHERE instance_id LIKE %s",
            (f"{schema}-%",))
        if tuple(rows[0]) != (kills, kills):
            raise AssertionError(f"effects not exactly once: {rows[0]} for {kills} instances")
    return KillLoop(samples, logs)


async def scenario(run: Run) -> list[Result]:
    """``python -m loadtests takeover``: ``takeover_kills`` kills, p50/p99 printed."""
    kills = run.sizes.takeover_kills
    schema = new_schema("takeover")
    try:
        result = await kill_loop(with_search_path(run.dsn, schema), schema, kills)
    finally:
        drop_schema(run.dsn, schema)
    samples = result.samples
    seconds = sum(samples)
    return [Result("takeover: SIGKILL -> activity running on another worker", len(samples),
                   seconds, [s * 1000 for s in samples],
                   {"p50_s": round(percentile(samples, 50), 3),
                    "p99_s": round(percentile(samples, 99), 3)},
                   checked=f"{kills} kills, every effect exactly once", rate=False)]
