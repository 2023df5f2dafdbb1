"""An app that lists only its workflows still runs their activities and compensations: each
call carries its activity's definition, so registration cannot fail an instance."""

from __future__ import annotations

import pytest

from romancy_trio import (
    ActivityContext,
    WorkflowContext,
    WorkflowFailedError,
    activity,
    open_app,
    workflow,
)
from romancy_trio._definitions import Registry
from romancy_trio._replay import EventKind

from .conftest import Backend

UNDONE: list[str] = []


@activity
async def add_one(ctx: ActivityContext, x: int) -> int:
    return x + 1


@activity(transactional=False)
def reserve(ctx: ActivityContext, order: str) -> str:
    return f"r-{order}"


@reserve.compensation
def release(ctx: ActivityContext, order: str, reservation: str) -> None:
    UNDONE.append(reservation)


@workflow
async def only_workflow_listed(ctx: WorkflowContext, x: int) -> int:
    return await add_one(ctx, x)


@workflow
async def saga_listed_alone(ctx: WorkflowContext, order: str) -> None:
    await reserve(ctx, order)
    raise ValueError(f"payment for {order} declined")


async def test_activities_need_not_be_listed_with_the_app(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[only_workflow_listed],
                        config=backend.config) as app:
        assert "add_one" not in app.registry.activities
        assert await app.run(only_workflow_listed, 41, timeout=20) == 42


async def test_a_compensation_need_not_be_listed_either(backend: Backend) -> None:
    order = f"o-{backend.name}"
    async with open_app(backend.url, workflows=[saga_listed_alone],
                        config=backend.config) as app:
        assert Registry.of([saga_listed_alone]).activities == {}
        with pytest.raises(WorkflowFailedError, match="declined"):
            await app.run(saga_listed_alone, order, timeout=20)
        assert UNDONE.count(f"r-{order}") == 1
        (info,) = await app.list_instances()
        history = await app.store.load_history(info.instance_id, 1)
        assert [(e.kind, e.key) for e in history] == [
            (EventKind.ACTIVITY_COMPLETED, "reserve:1"),
            (EventKind.COMPENSATION_COMPLETED, "compensate:reserve:1"),
        ]
