"""Real processes, real SIGKILL: work resumes on another worker, every effect exactly once."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from romancy_trio import open_app

from ._procs import start_worker, stop
from .conftest import Backend
from .worker_proc import EFFECTS_DDL, effect, steps

pytestmark = pytest.mark.slow


async def _effects(app: Any) -> list[tuple[Any, ...]]:
    async with app.store.db.transaction() as tx:
        return await tx.fetchall("SELECT instance_id, step, worker_id FROM effects")


async def _wait_for(path: Path, seconds: float) -> None:
    with trio.fail_after(seconds):
        while not path.exists():
            await trio.sleep(0.05)


async def test_sigkill_mid_workflow_then_another_worker_finishes_it(
    backend: Backend, tmp_path: Path
) -> None:
    schema = backend.config.schema
    async with open_app(
        backend.url, workflows=[steps, effect], config=backend.config, run_workers=False
    ) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(EFFECTS_DDL)
        victim = start_worker(backend.url, schema, "victim", HANG_AT="3", MARKER_DIR=str(tmp_path))
        try:
            iid = await app.start(steps, 4, instance_id="crash-me")
            await _wait_for(tmp_path / "crash-me.3", 30)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        finally:
            stop(victim)
        assert [e.key for e in await app.store.load_history(iid, 1)] == ["effect:1", "effect:2"]
        rescuer = start_worker(backend.url, schema, "rescuer")
        try:
            assert await app.result(iid, timeout=60) == [10, 20, 30, 40]
        finally:
            stop(rescuer)
        rows = await _effects(app)
        assert Counter(step for _, step, _ in rows) == {1: 1, 2: 1, 3: 1, 4: 1}
        by_step = {step: worker for _, step, worker in rows}
        assert by_step[1] == by_step[2] == "victim"
        assert by_step[3] == by_step[4] == "rescuer"
        history = await app.store.load_history(iid, 1)
        assert [e.key for e in history] == [f"effect:{n}" for n in (1, 2, 3, 4)]
