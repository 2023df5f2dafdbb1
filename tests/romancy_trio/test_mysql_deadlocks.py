"""InnoDB deadlocks on MySQL/MariaDB: the library's statements avoid them, and a transaction
InnoDB rolls back anyway is run again whole, so no running instance is interrupted (#18)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    Event,
    EventTimeoutError,
    WorkflowContext,
    activity,
    open_app,
    sleep,
    wait_event,
    workflow,
)
from romancy_trio.storage._mysql import MysqlDatabase, RolledBack
from romancy_trio.storage._mysql_conn import parse_url

from .conftest import Backend

N = 120
WORKERS = 3


@activity
async def dl_write(ctx: ActivityContext, n: int) -> int:
    await ctx.db.execute("INSERT INTO dl_effects (instance_id, n) VALUES (?, ?)",
                         (ctx.instance_id, n))
    return n


@workflow
async def dl_flow(ctx: WorkflowContext, n: int) -> int:
    """A timer, then an event wait that either gets a broadcast or times out, then another
    timer: suspensions, wake-ups by deadline and by event, all at once across workers."""
    got = await dl_write(ctx, n)
    await sleep(ctx, 0.05 + (n % 5) * 0.02)
    try:
        got += int((await wait_event(ctx, "dl.go", timeout=0.1 + (n % 7) * 0.05)).data)
    except EventTimeoutError:
        pass
    await sleep(ctx, 0.01)
    return got


async def test_concurrent_timer_and_event_workflows_are_never_interrupted(
        mysql_backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    """Three workers run 120 workflows that suspend on timers and events while broadcasts
    arrive: each completes once with its result, and no transaction was rolled back without
    being run again - so no instance was handed back and replayed."""
    b = mysql_backend
    caplog.set_level(logging.WARNING, logger="romancy_trio")
    flows: list[Any] = [dl_flow, dl_write]
    async with open_app(b.url, config=b.config, workflows=flows, run_workers=False,
                        worker_id="client") as client:
        await client.store.db.execute("CREATE TABLE dl_effects (instance_id VARCHAR(64), n INT)")
        apps: list[Any] = []
        async with trio.open_nursery() as nursery:
            async def worker(i: int, *, task_status: trio.TaskStatus[None]) -> None:
                async with open_app(b.url, config=b.config, workflows=flows,
                                    worker_id=f"dl-w{i}") as app:
                    apps.append(app)
                    task_status.started()
                    await trio.sleep_forever()

            for i in range(WORKERS):
                await nursery.start(worker, i)
            ids = [await client.start(dl_flow, n) for n in range(N)]

            async def broadcasts() -> None:
                for k in range(10_000):
                    await client.send_event(Event("dl.go", "test://dl", f"go-{k}", data=1000))
                    await trio.sleep(0.02)

            nursery.start_soon(broadcasts)
            results = [await client.result(iid, timeout=120) for iid in ids]
            stats = [app.statistics() for app in apps]
            nursery.cancel_scope.cancel()
        effects = await client.store.db.fetchall(
            "SELECT instance_id, count(*) FROM dl_effects GROUP BY instance_id")
    assert all(r % 1000 == n for n, r in enumerate(results))
    assert sorted(effects) == sorted((iid, 1) for iid in ids)  # each activity once
    assert [s.storage_rolled_back for s in stats] == [0] * WORKERS
    assert client.store.db.rolled_back == 0
    interrupted = [r.getMessage() for r in caplog.records
                   if "interrupted by the database" in r.getMessage()]
    assert interrupted == []


async def _open(dsn: str, database: str) -> MysqlDatabase:
    url = dsn.split("?", 1)[0].rsplit("/", 1)[0] + "/" + database
    return MysqlDatabase(parse_url(url), schema=database, max_size=4)


async def test_a_deadlocked_transaction_runs_again_whole(mysql_dsn: str, mysql_db: str) -> None:
    """Two transactions update two rows in opposite orders until InnoDB has rolled one back:
    the driver ran that whole function again, so every increment landed exactly once."""
    db = await _open(mysql_dsn, mysql_db)
    try:
        await db.execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL)")
        await db.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
        runs = [0, 0]

        async def bump(side: int, first: int, second: int) -> None:
            async def body(tx: Any) -> None:
                await tx.execute("UPDATE t SET n = n + 1 WHERE id = %s", (first,))
                await tx.fetchall("SELECT SLEEP(0.005)")
                await tx.execute("UPDATE t SET n = n + 1 WHERE id = %s", (second,))

            while db.retries == 0:
                await db.run_transaction(body)
                runs[side] += 1

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bump, 0, 1, 2)
                nursery.start_soon(bump, 1, 2, 1)
        assert db.retries > 0 and db.rolled_back == 0
        total = runs[0] + runs[1]
        assert await db.fetchall("SELECT id, n FROM t ORDER BY id") == [(1, total), (2, total)]
    finally:
        await db.aclose()


async def test_a_transaction_that_may_not_run_again_raises_and_is_counted(
        mysql_dsn: str, mysql_db: str) -> None:
    db = await _open(mysql_dsn, mysql_db)
    try:
        await db.execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL)")
        await db.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
        failures: list[BaseException] = []

        async def bump(first: int, second: int) -> None:
            async def body(tx: Any) -> None:
                await tx.execute("UPDATE t SET n = n + 1 WHERE id = %s", (first,))
                await tx.fetchall("SELECT SLEEP(0.005)")
                await tx.execute("UPDATE t SET n = n + 1 WHERE id = %s", (second,))

            while not failures:
                try:
                    await db.run_transaction(body, again=lambda: False)
                except RolledBack as exc:
                    failures.append(exc)

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bump, 1, 2)
                nursery.start_soon(bump, 2, 1)
        assert db.retries == 0 and db.rolled_back == len(failures) >= 1
        assert "rolled back" in str(failures[0])
    finally:
        await db.aclose()


@workflow
async def dl_naps_an_hour(ctx: WorkflowContext) -> str:
    await sleep(ctx, 3600)
    return "rested"


async def test_due_wake_ups_follow_the_apps_clock(backend: Backend) -> None:
    """A sleep of an hour on the app's clock (AppConfig.clock, as a time-skipping test sets
    it) ends when that clock has moved an hour on, whatever the server's clock says - on
    every backend (the MySQL claim took the server's time)."""
    import dataclasses
    import time

    offset = [0.0]
    config = dataclasses.replace(backend.config, clock=lambda: time.time() + offset[0])
    async with open_app(backend.url, config=config, workflows=[dl_naps_an_hour]) as app:
        iid = await app.start(dl_naps_an_hour)
        with trio.fail_after(30):
            while (info := await app.status(iid)) is None or info.status != "waiting":
                await trio.sleep(0.01)
        offset[0] = 3601.0
        assert await app.result(iid, timeout=60) == "rested"
