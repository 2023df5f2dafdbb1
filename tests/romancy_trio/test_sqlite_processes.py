"""SQLite shared by several processes: each notices the others' commits within a fraction of
a second (``PRAGMA data_version``), not only on the fallback re-check.

The fallback interval is an hour in every process here, so only the data_version poll can make
these tests pass in time."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from romancy_trio import AppConfig, Event, WorkflowStatus, open_app

from ._procs import start_worker, stop
from .worker_proc import EFFECTS_DDL, awaits_go, effect, steps

pytestmark = pytest.mark.slow

HOUR = "3600"
CONFIG = AppConfig(lease_ttl=2.0, heartbeat_interval=0.5, fallback_interval=float(HOUR))


async def test_started_here_run_there_and_an_event_sent_here_wakes_a_wait_there(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with open_app(url, workflows=[steps, effect, awaits_go], config=CONFIG,
                        run_workers=False) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute(EFFECTS_DDL)
        worker = start_worker(url, "main", "other", FALLBACK=HOUR)
        try:
            with trio.fail_after(20):
                # started in this process, run by the other; its result wakes this one
                iid = await app.start(steps, 3)
                assert await app.result(iid) == [10, 20, 30]
                # a wait in the other process, woken by an event sent from this one
                waiting = await app.start(awaits_go)
                while (await app.status(waiting)).status is not WorkflowStatus.WAITING:
                    await trio.sleep(0.02)
                await app.send_event(Event(type="go", source="test", id="go-1",
                                           data={"from": "this process"}))
                assert await app.result(waiting) == {"from": "this process"}
        finally:
            stop(worker)
        async with app.store.db.transaction() as tx:
            rows = await tx.fetchall("SELECT DISTINCT worker_id FROM effects")
        assert rows == [("other",)]
        assert app.hub.statistics().fallbacks == 0

