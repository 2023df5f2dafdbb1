"""Fast takeover on MySQL/MariaDB: each worker holds a ``GET_LOCK`` named lock on its own
session; a SIGKILLed worker's session ends, its lock is released, and another worker expires
its leases at once (``IS_USED_LOCK``) instead of waiting for them to run out."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest
import trio

from romancy_trio import AppConfig, open_app

from ._procs import start_worker, stop
from .conftest import Backend, fetch
from .mysql_takeover_proc import mtk_held, mtk_hold

PROC = "tests.romancy_trio.mysql_takeover_proc"
LEASE_TTL = 120.0


async def test_a_sigkilled_workers_instance_is_taken_over_before_its_lease_expires(
        mysql_backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker mtk1 (a process) runs the instance and is SIGKILLed; worker mtk2 (this
    process), claiming, finds mtk1's lease held by no session and takes the instance over
    while the lease (120 s) still had most of its time to run."""
    url, schema = mysql_backend.url, mysql_backend.config.schema
    env = {"MARKER_DIR": str(tmp_path), "LEASE_TTL": str(LEASE_TTL)}
    caplog.set_level(logging.INFO, logger="romancy_trio")
    proc = start_worker(url, schema, "mtk1", module=PROC, **env)
    try:
        async with open_app(url, workflows=[mtk_held, mtk_hold], run_workers=False,
                            config=AppConfig(schema=schema)) as app:
            await app.start(mtk_held, 3600.0, instance_id="mtk")
            with trio.fail_after(60):
                while not (tmp_path / "mtk.mtk1").exists():
                    await trio.sleep(0.02)
            [(expires,)] = await fetch(
                app, "SELECT lease_expires_at FROM workflow_instances WHERE instance_id = 'mtk'")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        config = AppConfig(schema=schema, lease_ttl=LEASE_TTL)
        monkeypatch.setenv("MARKER_DIR", str(tmp_path))  # this process's activity too
        async with open_app(url, workflows=[mtk_held, mtk_hold], worker_id="mtk2",
                            config=config) as app:
            with trio.fail_after(60):
                while not (tmp_path / "mtk.mtk2").exists():
                    await trio.sleep(0.02)
            # the server's clock: the lease mtk1 last held (at least until `expires`: renewals
            # only extend it) had not run out when mtk2 took the instance over
            [(owner, epoch, before_expiry)] = await fetch(
                app, "SELECT lease_owner, lease_epoch, NOW(6) < ? FROM workflow_instances "
                     "WHERE instance_id = 'mtk'", (expires,))
            assert (owner, epoch, bool(before_expiry)) == ("mtk2", 2, True)
    finally:
        stop(proc)
    assert any("taking over instance 'mtk' from worker 'mtk1'" in r.getMessage()
               for r in caplog.records)
