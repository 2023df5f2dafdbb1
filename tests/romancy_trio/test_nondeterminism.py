"""Changing a workflow's call order under recorded history fails it with a clear error."""

from __future__ import annotations

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    Workflow,
    WorkflowContext,
    WorkflowFailedError,
    activity,
    open_app,
    workflow,
)

from .conftest import Backend

gate = trio.Event()


@activity
async def first(ctx: ActivityContext) -> str:
    return "first"


@activity
async def second(ctx: ActivityContext) -> str:
    await gate.wait()  # version 1 stops here until the app shuts down
    return "second"


@workflow(name="reorderable")
async def reorderable_v1(ctx: WorkflowContext) -> str:
    return await first(ctx) + await second(ctx)


async def reorderable_v2(ctx: WorkflowContext) -> str:
    return await second(ctx) + await first(ctx)


async def test_replay_with_changed_call_order_raises_non_determinism(backend: Backend) -> None:
    async with open_app(
        backend.url, workflows=[reorderable_v1, first, second], config=backend.config
    ) as app:
        iid = await app.start(reorderable_v1)
        with trio.fail_after(20):
            while not await app.store.load_history(iid, 1):
                await trio.sleep(0.02)
    # the app shut down mid-workflow and handed the instance back; a new deployment changed
    # the order of the calls
    v2 = Workflow(reorderable_v2, name="reorderable")  # not registered globally
    async with open_app(backend.url, workflows=[v2, first, second], config=backend.config) as app:
        with pytest.raises(WorkflowFailedError) as err:
            await app.result(iid, timeout=20)
    assert err.value.error_type == "romancy_trio._errors.NonDeterminismError"
    assert "'first:1'" in err.value.message and "'second:1'" in err.value.message
