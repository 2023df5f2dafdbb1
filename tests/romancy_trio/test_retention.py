"""Data lifecycle: with ``instance_retention``, maintenance deletes finished instances (with
every row keyed by them) and archived recur runs once they are older; live and recent ones stay."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    AppConfig,
    InstanceNotFoundError,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    subscribe,
    wait_event,
    workflow,
)
from romancy_trio._app import App
from romancy_trio.storage._placeholders import translate

from .conftest import Backend, fetch

HOUR = 3600.0


@activity
async def note(ctx: ActivityContext, n: int) -> int:
    return n


@workflow
async def short_lived(ctx: WorkflowContext) -> str:
    await subscribe(ctx, "news")
    await note(ctx, 1)
    return "done"


@workflow
async def long_lived(ctx: WorkflowContext) -> Any:
    await note(ctx, 1)
    return (await wait_event(ctx, "never")).data


@workflow
async def looper(ctx: WorkflowContext, n: int) -> Any:
    await note(ctx, n)
    if n < 4:
        await ctx.recur(n + 1)
    return (await wait_event(ctx, "never")).data


ITEMS = [short_lived, long_lived, looper, note]
KEYED = ("workflow_instances", "workflow_history", "workflow_history_archive", "workflow_runs",
         "workflow_waits", "workflow_inbox")


async def _rows(app: App, iid: str) -> dict[str, int]:
    counts = {}
    async with app.store.db.transaction() as tx:
        for table in KEYED:
            row = await tx.fetchone(*translate(
                f"SELECT count(*) FROM {table} WHERE instance_id = ?", (iid,), tx.dialect))
            assert row is not None
            counts[table] = int(row[0])
        for table, column in (("channel_subscriptions", "subscriber"),
                              ("channel_messages", "target")):
            row = await tx.fetchone(*translate(
                f"SELECT count(*) FROM {table} WHERE {column} = ?", (iid,), tx.dialect))
            assert row is not None
            counts[table] = int(row[0])
    return counts


async def _until(app: App, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(30):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.02)


async def _age(app: App, sql: str, *params: Any) -> None:
    async with app.store.db.transaction() as tx:
        await tx.execute(*translate(sql, params, tx.dialect))


async def test_old_finished_instances_and_runs_go_live_and_recent_ones_stay(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=ITEMS, config=backend.config) as app:
        for iid in ("old", "recent"):
            assert await app.run(short_lived, instance_id=iid, timeout=30) == "done"
        await app.start(long_lived, instance_id="live")
        await app.start(looper, 1, instance_id="loop")
        await _until(app, "live", WorkflowStatus.WAITING)
        await _until(app, "loop", WorkflowStatus.WAITING)
        # rows keyed by "old" that a finished instance can still have: a targeted event it
        # never read and a direct message it never took (both came while it ran; send_to
        # refuses a finished target, so they are written as they were left)
        await _age(app, "INSERT INTO workflow_inbox (instance_id, source, event_id, type, "
                            "received_at) VALUES ('old', 't', '1', 'late', ?)", time.time())
        await _age(app, "INSERT INTO channel_messages (channel, data, target, "
                            "published_at) VALUES ('news', '{}', 'old', ?)", time.time())
        before = await _rows(app, "old")
        assert before["workflow_history"] and before["workflow_inbox"]
        assert before["channel_subscriptions"] and before["channel_messages"]
        # two hours ago: "old" finished, "live" last changed, loop's runs 1 and 2 ended
        await _age(app, "UPDATE workflow_instances SET updated_at = updated_at - 7200 "
                            "WHERE instance_id IN ('old', 'live')")
        await _age(app, "UPDATE workflow_runs SET ended_at = ended_at - 7200 "
                            "WHERE instance_id = 'loop' AND run_no <= 2")
        recent, live = await _rows(app, "recent"), await _rows(app, "live")

    config = dataclasses.replace(backend.config, instance_retention=HOUR, retention_batch=1)
    async with open_app(backend.url, workflows=ITEMS, config=config) as app:
        with trio.fail_after(30):  # maintenance runs when the worker starts
            while await app.list_instances(status="completed", limit=5) != [
                    await app.status("recent")] or len(await app.runs("loop")) > 2:
                await trio.sleep(0.02)
        with pytest.raises(InstanceNotFoundError):
            await app.status("old")
        assert set((await _rows(app, "old")).values()) == {0}
        assert await _rows(app, "recent") == recent
        assert await _rows(app, "live") == live
        assert (await app.status("live")).status is WorkflowStatus.WAITING
        assert [r.run_no for r in await app.runs("loop")] == [3, 4]
        archived = await fetch(
            app, "SELECT DISTINCT run_no FROM workflow_history_archive WHERE instance_id = ?",
            ("loop",))
        assert archived == [(3,)]
        assert (await app.status("loop")).status is WorkflowStatus.WAITING


def test_retention_is_off_by_default_and_validated() -> None:
    assert AppConfig().instance_retention is None
    with pytest.raises(ValueError, match="instance_retention"):
        AppConfig(instance_retention=0)
    with pytest.raises(ValueError, match="retention_batch"):
        AppConfig(retention_batch=0)
