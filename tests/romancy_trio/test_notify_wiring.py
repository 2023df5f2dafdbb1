"""The runtime on the notify hub (PostgreSQL): wake-ups come from NOTIFY, not polling; a lost
listener or a dropped notification delays work but never loses it; closing leaks nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import trio

from romancy_trio import (
    ActivityContext,
    Event,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    workflow,
)

from ._procs import start_worker, stop
from .conftest import Backend
from .test_waits import _all_tasks
from .worker_proc import ALL, EFFECTS_DDL, awaits_go, steps

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SLOW_FALLBACK = 120.0  # any wake-up seen within seconds came from a notification


def _slow(b: Backend, fallback: float = SLOW_FALLBACK) -> Backend:
    """``b`` with a fallback re-check far above the test's waits."""
    return replace(b, config=replace(b.config, fallback_interval=fallback))


async def _ddl(app: Any) -> None:
    async with app.store.db.transaction() as tx:
        await tx.execute(EFFECTS_DDL)


async def test_another_process_claims_a_new_workflow_without_polling(pg_backend: Backend) -> None:
    b = _slow(pg_backend)
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        await _ddl(app)
        worker = start_worker(b.url, b.config.schema, "w", FALLBACK=str(SLOW_FALLBACK))
        try:
            await trio.sleep(0.5)  # the worker's claim loop is now asleep on its 120 s fallback
            t0 = time.perf_counter()
            iid = await app.start(steps, 1)
            with trio.fail_after(30):
                assert await app.result(iid) == [10]
            print(f"start in one process -> result in another: {time.perf_counter() - t0:.4f}s")
        finally:
            stop(worker)


async def test_committed_wake_up_resumes_and_a_rolled_back_one_does_not(
        pg_backend: Backend) -> None:
    b = _slow(pg_backend)
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        worker = start_worker(b.url, b.config.schema, "w", FALLBACK=str(SLOW_FALLBACK))
        try:
            iid = await app.start(awaits_go)
            with trio.fail_after(30):
                while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                    await trio.sleep(0.02)
            # a transaction that would wake it, rolled back: nothing happens
            with pytest.raises(ZeroDivisionError):
                async with app.store.db.transaction() as tx:
                    await tx.execute("UPDATE workflow_instances SET status = 'pending' "
                                     "WHERE instance_id = %s", (iid,))
                    await tx.notify(app.store.topics.work, "")
                    raise ZeroDivisionError
            await trio.sleep(1.0)
            assert (await app.status(iid)).status is WorkflowStatus.WAITING
            # the committed event wakes it through NOTIFY
            await app.send_event(Event(type="go", source="t", id="1", data="went"))
            with trio.fail_after(30):
                assert await app.result(iid) == "went"
        finally:
            stop(worker)


@pytest.fixture
def listener_role(pg_dsn: str) -> Iterator[str]:
    """A login of its own (the test can lock it out) with the app's privileges: the listener
    URL also carries the worker's session, whose lease renewals write the app's tables."""
    role = f"rt_listener_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN IN ROLE CURRENT_USER").format(
            psycopg.sql.Identifier(role)))
    yield role
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                     (role,))
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


async def test_listener_killed_work_committed_during_the_outage_is_found(
        pg_backend: Backend, pg_dsn: str, listener_role: str) -> None:
    b = _slow(pg_backend)
    listener_url = psycopg.conninfo.make_conninfo(pg_dsn, user=listener_role)
    async with open_app(b.url, workflows=ALL, config=b.config,
                        listener_url=listener_url) as app, \
            open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as sender:
        ids = [await app.start(awaits_go) for _ in range(5)]
        with trio.fail_after(30):
            while len(await app.list_instances(status="waiting")) < 5:
                await trio.sleep(0.02)
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("ALTER ROLE {} NOLOGIN").format(
                psycopg.sql.Identifier(listener_role)))
            admin.execute("SELECT pg_terminate_backend(%s)", (app.hub.listener_pid,))
            # while the listener is down, the events are committed: their NOTIFYs are lost
            receipt = await sender.send_event(Event(type="go", source="t", id="x", data=1))
            assert sorted(receipt.delivered_to) == sorted(ids)
            with trio.fail_after(20):  # the hub saw its listener go and cannot log in again
                while app.hub.statistics().listening:
                    await trio.sleep(0.01)
            admin.execute(psycopg.sql.SQL("ALTER ROLE {} LOGIN").format(
                psycopg.sql.Identifier(listener_role)))
        with trio.fail_after(60):  # a reconnect's rescan, not the 120 s fallback
            for iid in ids:
                assert await app.result(iid) == 1
        stats = app.hub.statistics()
        assert stats.reconnects >= 1 and stats.gaps >= 1


async def test_a_dropped_notification_is_found_by_the_fallback_recheck(
        pg_backend: Backend) -> None:
    b = replace(pg_backend, config=replace(pg_backend.config, fallback_interval=0.5))
    async with open_app(b.url, workflows=ALL, config=b.config) as app:
        await _ddl(app)
        with trio.fail_after(20):  # the claim loop has made its start-up claim and now waits
            while (stats := app.statistics()) is not None and stats.claims < 1:
                await trio.sleep(0.01)
        now = time.time()

        # an instance written without any NOTIFY (as if the notification were lost)
        await app.store.db.execute(
            "INSERT INTO workflow_instances (instance_id, workflow_name, status, input, "
            "run_started_at, created_at, updated_at) VALUES (%s, 'steps', 'pending', '1', "
            "%s, %s, %s)", ("silent", now, now, now))
        with trio.fail_after(30):
            assert await app.result("silent") == [10]
        assert app.hub.statistics().fallbacks >= 1


STARTED: dict[str, trio.Event] = {}


@activity(transactional=False)
async def endless(ctx: ActivityContext) -> None:
    STARTED["endless"].set()
    await trio.sleep_forever()


@workflow
async def runs_endless(ctx: WorkflowContext) -> None:
    await endless(ctx)


async def test_closing_the_app_leaves_no_task_and_hands_running_work_back(
        pg_backend: Backend) -> None:
    b = pg_backend
    wfs = [*ALL, runs_endless, endless]
    before = len(_all_tasks())
    STARTED["endless"] = trio.Event()
    async with open_app(b.url, workflows=wfs, config=b.config) as app:
        waiting = await app.start(awaits_go)
        running = await app.start(runs_endless)
        with trio.fail_after(30):
            await STARTED["endless"].wait()
            while (await app.status(waiting)).status is not WorkflowStatus.WAITING:
                await trio.sleep(0.02)
        assert len(_all_tasks()) > before
    assert len(_all_tasks()) == before
    async with open_app(b.url, workflows=wfs, config=b.config, run_workers=False) as app:
        assert (await app.status(waiting)).status is WorkflowStatus.WAITING
        handed_back = await app.status(running)
        assert handed_back.status is WorkflowStatus.PENDING and handed_back.lease_owner is None
