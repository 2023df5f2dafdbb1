"""A partitioned worker (issue #30): a worker process in a network namespace of its own, its
link to a private PostgreSQL cut silently (every packet dropped, no RST) while it holds
leases in the middle of activities' transactions.

- Cut for longer than the lease: a worker in this namespace takes its instances over once the
  leases lapse (the server ends the cut-off backends - its keepalives - so their uncommitted
  effects roll back and release their locks); when the link comes back, nothing the old
  worker wrote is in the database, the effect ledger holds each effect once, and the old
  worker says so in one log line.
- Cut for less than the lease: it costs nothing - no takeover, no error, every step done by
  the worker that started it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import trio

from romancy_trio import AppConfig, open_app
from tests._paths import PYTHONPATH
from tests.netns import Partition, partition

from .conftest import fetch
from .partition_proc import LEDGER_DDL, cut_step, cut_steps

__all__ = ["partition"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.slow

PROC = "tests.romancy_trio.partition_proc"
SCHEMA = "romancy"
ROOT = Path(__file__).resolve().parents[2]


def _start(argv: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """A worker process (``argv``), its stderr to ``log``; returns once it printed ``ready``."""
    with log.open("w") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONPATH": PYTHONPATH, **env})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        proc.communicate(timeout=30)
        raise RuntimeError(f"worker {argv} did not start: {line!r}\n{log.read_text()}")
    return proc


def _worker(partition: Partition, worker_id: str, tmp_path: Path, *, inside: bool,
            lease: float | None = None) -> subprocess.Popen[str]:
    url = partition.dsn_from_namespace if inside else partition.cluster.dsn
    argv = [sys.executable, "-m", PROC, url, SCHEMA, worker_id]
    env = {"MARKER_DIR": str(tmp_path)}
    if lease is not None:
        env["LEASE_TTL"] = str(lease)
    return _start(partition.exec_argv(argv) if inside else argv, tmp_path / f"{worker_id}.log",
                  env)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, int] | None:
    """SIGTERM; (leases lost, instances started) from its statistics, None if it had none."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=30)
        return None
    found = re.search(r"stats leases_lost=(\d+) started=(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"not within {timeout:g} s: {what}")


def _lines(log: Path, pattern: str) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if re.search(pattern, line)]


async def test_a_worker_cut_off_longer_than_its_lease_is_taken_over_and_fenced(
        partition: Partition, tmp_path: Path) -> None:
    """The default configuration (a 5 s lease): 4 instances of 3 steps; the namespaced worker
    wA holds each one's first step open (its ledger row inserted, not committed) when its link
    is cut. wB, in this namespace, runs all 4 to the end while the cut lasts; then the link
    comes back."""
    n, config = 4, AppConfig(schema=SCHEMA)
    (tmp_path / "hold.wA").touch()
    procs: dict[str, subprocess.Popen[str]] = {}
    stats: dict[str, tuple[int, int] | None] = {}
    async with open_app(partition.cluster.dsn, workflows=[cut_steps, cut_step], config=config,
                        run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        try:
            procs["wA"] = _worker(partition, "wA", tmp_path, inside=True)
            ids = [await app.start(cut_steps, 3, 0.0, instance_id=f"cut-{k}") for k in range(n)]
            await _until(lambda: all((tmp_path / f"{i}.0.wA").exists() for i in ids), 120,
                         "wA inside the first step of every instance")
            partition.cut()
            cut_at = trio.current_time()
            procs["wB"] = _worker(partition, "wB", tmp_path, inside=False)
            results = [await app.result(i, timeout=180) for i in ids]
            done_after = trio.current_time() - cut_at
            assert results == [["wB"] * 3] * n
            partition.restore()
            (tmp_path / "hold.wA").unlink()  # what wA still runs would write now: refused
            log_a = tmp_path / "wA.log"
            await _until(lambda: bool(_lines(log_a, "reached the database again")), 120,
                         "wA's report")
        finally:
            if partition.netns.is_cut:
                partition.restore()
            for name, proc in procs.items():
                stats[name] = _stop(proc)
        ledger = await fetch(app, "SELECT instance_id, step, worker_id FROM ledger "
                                  "ORDER BY instance_id, step")
        by_a = await fetch(app, f"SELECT count(*) FROM {SCHEMA}.workflow_history "
                                "WHERE worker_id = 'wA'")
        epochs = await fetch(app, f"SELECT instance_id, lease_epoch, status "
                                  f"FROM {SCHEMA}.workflow_instances ORDER BY instance_id")
    print(f"\nall {n} instances completed by wB {done_after:.1f} s after the cut "
          f"(lease {config.lease_ttl:g} s)")
    # each effect once, all by the worker that took over; nothing of wA's recorded
    assert ledger == [(i, s, "wB") for i in ids for s in range(3)]
    assert by_a == [(0,)]
    assert epochs == [(i, 2, "completed") for i in ids]  # claimed by wA, then taken over once
    assert stats["wA"] is not None and stats["wA"][0] == n, stats
    # wA says it once, naming every instance; nothing per instance besides
    report = _lines(log_a, "reached the database again")
    print(report[0])
    assert len(report) == 1 and f": {n} instance(s)" in report[0], report
    assert all(i in report[0] for i in ids)
    per_instance = [line for line in _lines(log_a, r" (INFO|WARNING|ERROR) ")
                    if line not in report and any(i in line for i in ids)]
    assert per_instance == []
    assert len(_lines(log_a, "lease renewal failed")) <= 1  # one line per outage
    log_b = tmp_path / "wB.log"
    assert len(_lines(log_b, r"taking over instance .* from worker 'wA'")) == n


async def test_a_cut_shorter_than_the_lease_costs_nothing(
        partition: Partition, tmp_path: Path) -> None:
    """A 10 s lease; the link of wA, running 4 instances of 6 steps (0.3 s on the server
    each), is cut for 2.5 s while wB waits beside it: no takeover, no error, every step by wA."""
    n, lease, cut_for = 4, 10.0, 2.5
    procs: dict[str, subprocess.Popen[str]] = {}
    stats: dict[str, tuple[int, int] | None] = {}
    async with open_app(partition.cluster.dsn, workflows=[cut_steps, cut_step],
                        config=AppConfig(schema=SCHEMA), run_workers=False) as app:
        await app.store.db.execute(LEDGER_DDL)
        try:
            procs["wA"] = _worker(partition, "wA", tmp_path, inside=True, lease=lease)
            ids = [await app.start(cut_steps, 6, 0.3, instance_id=f"blip-{k}") for k in range(n)]
            await _until(lambda: all((tmp_path / f"{i}.1.wA").exists() for i in ids), 120,
                         "wA in the second step of every instance")
            procs["wB"] = _worker(partition, "wB", tmp_path, inside=False, lease=lease)
            partition.cut()
            await trio.sleep(cut_for)  # the outage itself, not a wait for a state
            partition.restore()
            results = [await app.result(i, timeout=180) for i in ids]
        finally:
            if partition.netns.is_cut:
                partition.restore()
            for name, proc in procs.items():
                stats[name] = _stop(proc)
        ledger = await fetch(app, "SELECT worker_id, count(*), count(DISTINCT "
                                  "(instance_id, step)) FROM ledger GROUP BY worker_id")
        epochs = await fetch(app, f"SELECT lease_epoch FROM {SCHEMA}.workflow_instances")
    assert results == [["wA"] * 6] * n
    assert ledger == [("wA", 6 * n, 6 * n)]
    assert sorted(e for (e,) in epochs) == [1] * n  # claimed once: never taken over
    assert stats["wA"] == (0, n) and stats["wB"] == (0, 0), stats
    log_a = tmp_path / "wA.log"
    noise = _lines(log_a, "lease renewal failed|interrupted by the database|reached the "
                          "database again|no longer holds| ERROR ")
    assert noise == [], noise
