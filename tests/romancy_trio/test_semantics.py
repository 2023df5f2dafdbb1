"""Semantics that tell the truth: a failure names the original error and the activity it came
from; a repeated start with another input is a conflict; send_to a missing or finished
instance is refused; a direct message needs no subscription."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    InstanceFinishedError,
    InstanceIdConflictError,
    InstanceNotFoundError,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    activity,
    open_app,
    receive,
    recur,
    send_to,
    workflow,
)
from romancy_trio.storage._placeholders import translate

from .conftest import Backend
from .test_http import served


@activity(retry=RetryPolicy(max_attempts=1))
async def sem_out_of_stock(ctx: ActivityContext, sku: str) -> None:
    raise ValueError(f"{sku} is out of stock")


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0.01))
async def sem_flaky(ctx: ActivityContext) -> None:
    raise ConnectionError("still down")


@workflow
async def sem_orders(ctx: WorkflowContext, sku: str) -> None:
    await sem_out_of_stock(ctx, sku)


@workflow
async def sem_retries(ctx: WorkflowContext) -> None:
    await sem_flaky(ctx)


@workflow
async def sem_counts(ctx: WorkflowContext, args: dict[str, Any]) -> int:
    if args["n"] < args["to"]:
        await recur(ctx, {**args, "n": args["n"] + 1})
    return int(args["n"])


@workflow
async def sem_whispers(ctx: WorkflowContext, to: str) -> int:
    return await send_to(ctx, to, "dm", "psst")


@workflow
async def sem_inbox(ctx: WorkflowContext, count: int) -> list[Any]:
    """Never subscribes: receives only what is sent to it."""
    return [(await receive(ctx, "dm", timeout=30)).data for _ in range(count)]


@workflow
async def sem_inbox_once(ctx: WorkflowContext) -> str:
    try:
        return str((await receive(ctx, "dm", timeout=0.5)).data)
    except Exception as exc:  # noqa: BLE001 - the test asserts which error it was
        return type(exc).__name__


SEM: list[Any] = [sem_out_of_stock, sem_flaky, sem_orders, sem_retries, sem_counts,
                  sem_whispers, sem_inbox, sem_inbox_once]


async def _until(app: Any, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(30):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.02)


async def _messages(app: Any) -> int:
    async with app.store.db.transaction() as tx:
        (row,) = await tx.fetchall("SELECT count(*) FROM channel_messages")
    return int(row[0])


# -- 1. the failure names the original error and the activity -----------------------------

async def test_an_uncaught_activity_failure_reports_the_original_error(backend: Backend) -> None:
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        iid = await app.start(sem_orders, "sku-7")
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
        e = err.value
        assert (e.error_type, e.message) == ("ValueError", "sku-7 is out of stock")
        assert (e.activity_id, e.activity_name, e.attempts) == (
            "sem_out_of_stock:1", "sem_out_of_stock", None)
        assert "in activity 'sem_out_of_stock:1'" in str(e)
        info = (await app.status(iid)).error
        assert info is not None
        assert (info.type, info.message, info.activity_id, info.activity_name) == (
            "ValueError", "sku-7 is out of stock", "sem_out_of_stock:1", "sem_out_of_stock")

        iid = await app.start(sem_retries)
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
        e = err.value
        assert (e.error_type, e.message, e.attempts) == ("ConnectionError", "still down", 3)
        assert e.activity_name == "sem_flaky"


async def test_a_row_written_before_the_new_fields_still_reads(backend: Backend) -> None:
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        iid = await app.start(sem_orders, "sku-1")
        with pytest.raises(WorkflowFailedError):
            await app.result(iid, timeout=20)
        old = ('{"type": "romancy_trio._errors.ActivityFailedError", '
               '"message": "activity \'x:1\' failed: ValueError: no", "traceback": ""}')
        async with app.store.db.transaction() as tx:
            await tx.execute(*translate("UPDATE workflow_instances SET error = ? "
                                        "WHERE instance_id = ?", (old, iid), tx.dialect))
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
        assert err.value.error_type == "romancy_trio._errors.ActivityFailedError"
        assert err.value.activity_id is None and err.value.attempts is None


async def test_the_http_api_shows_the_same_fields(backend: Backend) -> None:
    async with served(backend, workflows=SEM) as (_, client):
        iid = (await client.post("/workflows/sem_orders", json={"input": "sku-2"})).json()[
            "instance_id"]
        r = await client.get(f"/instances/{iid}/result", params={"timeout": 20})
        expected = {"type": "ValueError", "message": "sku-2 is out of stock",
                    "activity_id": "sem_out_of_stock:1", "activity_name": "sem_out_of_stock",
                    "attempts": None}
        assert r.status_code == 409 and r.json()["workflow_error"] == expected
        assert (await client.get(f"/instances/{iid}")).json()["error"] == expected


# -- 2. a repeated start must be the same start -------------------------------------------

async def test_starting_an_id_again_with_another_input_is_a_conflict(backend: Backend) -> None:
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        args = {"n": 0, "to": 2, "note": {"a": 1, "b": 2}}
        assert await app.start(sem_counts, args, instance_id="c-1") == "c-1"
        # the same input, keys in another order: idempotent, also after it recurred
        assert await app.result("c-1", timeout=20) == 2
        same = {"note": {"b": 2, "a": 1}, "to": 2, "n": 0}
        assert await app.start(sem_counts, same, instance_id="c-1") == "c-1"
        with pytest.raises(InstanceIdConflictError, match=r"'c-1'.*different input"):
            await app.start(sem_counts, {**args, "to": 3}, instance_id="c-1")
        with pytest.raises(InstanceIdConflictError, match="sem_counts"):
            await app.start(sem_orders, "sku", instance_id="c-1")
        assert [i.instance_id for i in await app.list_instances()] == ["c-1"]
        assert (await app.runs("c-1"))[-1].run_no == 3  # nothing restarted it


async def test_concurrent_starts_of_one_id_agree(backend: Backend) -> None:
    """Starts racing for one id: one creates it, the others find it (PostgreSQL: also when
    the insert met a row committed after its snapshot) and compare inputs."""
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        outcomes: list[str] = []

        async def start(to: int) -> None:
            try:
                outcomes.append(await app.start(sem_counts, {"n": 0, "to": to},
                                                instance_id="race"))
            except InstanceIdConflictError:
                outcomes.append("conflict")

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(start, 0)
        assert outcomes == ["race"] * 8
        stored = (await app.status("race")).input
        async with trio.open_nursery() as nursery:
            for to in (0, 1, 0, 1):
                nursery.start_soon(start, to)
        assert sorted(outcomes[8:]) == ["conflict", "conflict", "race", "race"]
        assert (await app.status("race")).input == stored


# -- 3. send_to needs a live target ---------------------------------------------------------

async def test_send_to_a_missing_or_finished_instance_is_refused(backend: Backend) -> None:
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        with pytest.raises(InstanceNotFoundError, match="'nobody'"):
            await app.send_to("nobody", "dm", "hello?")
        done = await app.start(sem_counts, {"n": 0, "to": 0})
        await app.result(done, timeout=20)
        with pytest.raises(InstanceFinishedError, match="completed"):
            await app.send_to(done, "dm", "too late")
        assert await _messages(app) == 0  # nothing was written

        iid = await app.start(sem_whispers, "nobody")
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
        e = err.value
        assert e.error_type == "romancy_trio._errors.InstanceNotFoundError"
        assert e.activity_id == "romancy.channel.publish:1" and e.attempts is None
        history = await app.store.load_history(iid, 1)
        assert [ev.kind for ev in history] == ["activity_failed"]  # not retried
        assert await _messages(app) == 0


# -- 4. a direct message needs no subscription ----------------------------------------------

async def test_a_direct_message_reaches_an_instance_that_never_subscribed(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=SEM, config=backend.config) as app:
        inbox = await app.start(sem_inbox, 3)
        await _until(app, inbox, WorkflowStatus.WAITING)  # the send wakes it
        await app.publish("dm", "for everyone")  # untargeted: not for it
        await app.send_to(inbox, "dm", "one")
        await app.start(sem_whispers, inbox)
        await app.send_to(inbox, "dm", "three")
        got = await app.result(inbox, timeout=30)
        assert got[0] == "one" and sorted(got[1:]) == ["psst", "three"]

        lonely = await app.start(sem_inbox_once)
        await app.publish("dm", "still for everyone")
        assert await app.result(lonely, timeout=20) == "ReceiveTimeoutError"
