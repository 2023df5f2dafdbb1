"""The public API end to end on SQLite and PostgreSQL: start, result, status, cancel, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    ActivityFailedError,
    ConfigurationError,
    InstanceFinishedError,
    InstanceIdConflictError,
    InstanceNotFoundError,
    InvalidInputError,
    RetryPolicy,
    TimeoutWaitingError,
    UnknownWorkflowError,
    WorkflowCancelledError,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    activity,
    open_app,
    workflow,
)

from .conftest import Backend


@dataclass
class Order:
    order_id: str
    cents: int


class Totals(TypedDict):
    order_id: str
    total: int


@activity
async def ledger_write(ctx: ActivityContext, step: str) -> str:
    await ctx.db.execute(
        "INSERT INTO ledger (instance_id, step) VALUES (?, ?)", (ctx.instance_id, step)
    )
    return f"{step}-done"


@activity
async def writes_a_percent(ctx: ActivityContext) -> int:
    """SQL without parameters is sent as it is: a literal % is no placeholder."""
    await ctx.db.execute(
        "INSERT INTO ledger (instance_id, step) VALUES (?, ?)", (ctx.instance_id, "100%"))
    row = await ctx.db.fetchone("SELECT count(*) FROM ledger WHERE step LIKE '100%'")
    assert row is not None
    return int(row[0])


@activity
async def add_tax(ctx: ActivityContext, order: Order) -> Totals:
    return {"order_id": order.order_id, "total": order.cents * 2}


@activity(transactional=False, retry=RetryPolicy.no_retries())
async def refuse(ctx: ActivityContext, why: str) -> None:
    raise ValueError(why)


@workflow
async def four_steps(ctx: WorkflowContext, order: Order) -> Totals:
    for step in ("a", "b", "c"):
        await ledger_write(ctx, step)
    return await add_tax(ctx, order)


@workflow
async def catches_failure(ctx: WorkflowContext, why: str) -> str:
    try:
        await refuse(ctx, why)
    except ActivityFailedError as exc:
        return f"handled {exc.error_type}: {exc.message}"
    return "unreachable"


@workflow
async def fails(ctx: WorkflowContext) -> None:
    await refuse(ctx, "out of stock")


@workflow
async def percent(ctx: WorkflowContext) -> int:
    return await writes_a_percent(ctx)


ALL = [four_steps, catches_failure, fails, percent, ledger_write, writes_a_percent, add_tax,
       refuse]


async def make_ledger(app: Any) -> None:
    async with app.store.db.transaction() as tx:
        await tx.execute("CREATE TABLE ledger (instance_id TEXT, step TEXT)")


async def ledger(app: Any) -> list[tuple[Any, ...]]:
    async with app.store.db.transaction() as tx:
        return await tx.fetchall("SELECT instance_id, step FROM ledger ORDER BY step")


async def test_multi_activity_workflow_completes_with_one_record_per_activity(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        await make_ledger(app)
        iid = await app.start(four_steps, Order("o-1", 21))
        assert await app.result(iid, timeout=20) == {"order_id": "o-1", "total": 42}
        history = await app.store.load_history(iid, 1)
        assert [e.key for e in history] == [
            "ledger_write:1",
            "ledger_write:2",
            "ledger_write:3",
            "add_tax:1",
        ]
        assert [e.payload for e in history[:3]] == ["a-done", "b-done", "c-done"]
        assert await ledger(app) == [(iid, "a"), (iid, "b"), (iid, "c")]
        info = await app.status(iid)
        assert info.status is WorkflowStatus.COMPLETED
        assert info.input == {"order_id": "o-1", "cents": 21}


async def test_activity_failure_is_catchable_and_an_uncaught_one_fails_the_workflow(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        assert await app.run(catches_failure, "no", timeout=20) == "handled ValueError: no"
        iid = await app.start(fails)
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
        # the activity's own error, not the ActivityFailedError that carried it
        assert (err.value.error_type, err.value.message) == ("ValueError", "out of stock")
        assert err.value.activity_id == "refuse:1"
        info = await app.status(iid)
        assert info.status is WorkflowStatus.FAILED and info.error is not None
        assert (info.error.type, info.error.activity_id) == ("ValueError", "refuse:1")


async def test_an_activity_statement_without_parameters_keeps_a_literal_percent(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        await make_ledger(app)
        assert await app.run(percent, timeout=20) == 1


async def test_same_instance_id_twice_creates_one_instance(backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        await make_ledger(app)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(
                    lambda: app.start(four_steps, Order("o-7", 1), instance_id="fixed-id")
                )
        await app.result("fixed-id", timeout=20)
        assert len(await app.list_instances()) == 1
        assert len(await ledger(app)) == 3  # the effects happened once
        with pytest.raises(InstanceIdConflictError, match="already used by workflow"):
            await app.start(catches_failure, "x", instance_id="fixed-id")


async def test_bad_input_is_a_clear_error_and_writes_nothing(backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config) as app:
        with pytest.raises(UnknownWorkflowError, match=r"unknown workflow 'nope'.*four_steps"):
            await app.start("nope", {})
        with pytest.raises(InvalidInputError, match=r"input.cents: expected int, got str"):
            await app.start(four_steps, {"order_id": "x", "cents": "ten"})
        with pytest.raises(InvalidInputError, match="missing field 'cents'"):
            await app.start("four_steps", {"order_id": "x"})
        with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
            await app.start(catches_failure, object())
        with pytest.raises(InvalidInputError, match="takes no input"):
            await app.start(fails, 3)
        with pytest.raises(InvalidInputError, match="instance_id"):
            await app.start(fails, instance_id="a\x00b")
        assert await app.list_instances() == []
        with pytest.raises(InstanceNotFoundError):
            await app.status("missing")


async def test_unknown_url_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown scheme 'redis'"):
        async with open_app("redis://localhost/0"):
            pass
    with pytest.raises(ConfigurationError, match="bad SQLite URL"):
        async with open_app("sqlite://relative.db"):
            pass


async def test_cancel_a_pending_instance_then_cancel_again(backend: Backend) -> None:
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        iid = await app.start(fails)
        assert (await app.status(iid)).status is WorkflowStatus.PENDING
        await app.cancel(iid)
        assert (await app.status(iid)).status is WorkflowStatus.CANCELLED
        with pytest.raises(WorkflowCancelledError):
            await app.result(iid, timeout=5)
        with pytest.raises(InstanceFinishedError, match="already ended"):
            await app.cancel(iid)
        with pytest.raises(TimeoutWaitingError):
            await app.result(await app.start(fails), timeout=0.2)


async def test_list_instances_filters_by_status_and_workflow(backend: Backend) -> None:
    async with open_app(
        backend.url, workflows=ALL, config=backend.config, run_workers=False
    ) as app:
        a = await app.start(fails)
        b = await app.start(catches_failure, "x")
        await app.cancel(a)
        assert [i.instance_id for i in await app.list_instances(status="cancelled")] == [a]
        assert [i.instance_id for i in await app.list_instances(workflow="catches_failure")] == [b]
        assert len(await app.list_instances(limit=1)) == 1


async def test_a_worker_never_claims_a_workflow_it_does_not_know(backend: Backend) -> None:
    async with open_app(backend.url, workflows=ALL, config=backend.config,
                        run_workers=False) as client:
        iid = await client.start(catches_failure, "x")
        async with open_app(backend.url, workflows=[fails, refuse], config=backend.config):
            await trio.sleep(0.5)  # a worker that only knows `fails` is running meanwhile
            assert (await client.status(iid)).status is WorkflowStatus.PENDING
        async with open_app(backend.url, workflows=ALL, config=backend.config):
            assert await client.result(iid, timeout=20) == "handled ValueError: x"
