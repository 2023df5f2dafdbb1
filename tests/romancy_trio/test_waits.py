"""wait_event / sleep release the worker and resume by replay; event delivery semantics."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import trio

from romancy_trio import (
    Event,
    EventTimeoutError,
    InstanceNotFoundError,
    InvalidInputError,
    ReceivedEvent,
    WorkflowContext,
    WorkflowStatus,
    open_app,
    sleep,
    wait_event,
    workflow,
)

from ._waits import until_idle
from .conftest import Backend


@dataclass
class Payment:
    order_id: str
    cents: int


@workflow
async def awaits_payment(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    event: ReceivedEvent[Payment] = await wait_event(ctx, "payment.completed", data_type=Payment)
    assert isinstance(event.data, Payment)
    return {
        "order": order_id,
        "paid": event.data.cents,
        "event_id": event.id,
        "subject": event.subject,
    }


@workflow
async def awaits_with_timeout(ctx: WorkflowContext, seconds: float) -> str:
    try:
        await wait_event(ctx, "never.sent", timeout=seconds)
    except EventTimeoutError:
        return "timed out"
    return "got it"


@workflow
async def naps(ctx: WorkflowContext, seconds: float) -> float:
    before = ctx.now()
    await sleep(ctx, seconds)
    return (ctx.now() - before).total_seconds()


WFS = [awaits_payment, awaits_with_timeout, naps]


def payment(event_id: str, cents: int, target: str | None = None) -> Event:
    return Event(
        type="payment.completed",
        source="test/payments",
        id=event_id,
        data={"order_id": "o", "cents": cents},
        subject="order-1",
        target_instance_id=target,
    )


async def wait_status(app: Any, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(20):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.01)


async def test_waiting_workflow_holds_no_task_and_resumes_on_its_event(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(awaits_payment, "o-1")
        await wait_status(app, iid, WorkflowStatus.WAITING)
        await until_idle(app)  # no task, no lease
        info = await app.status(iid)
        assert info.lease_owner is None
        receipt = await app.send_event(payment("evt-1", 4200))
        assert receipt.delivered_to == (iid,) and not receipt.duplicate
        assert await app.result(iid, timeout=20) == {
            "order": "o-1",
            "paid": 4200,
            "event_id": "evt-1",
            "subject": "order-1",
        }


async def test_every_waiting_instance_of_the_type_gets_an_untargeted_event(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        ids = [await app.start(awaits_payment, f"o-{i}") for i in range(3)]
        for iid in ids:
            await wait_status(app, iid, WorkflowStatus.WAITING)
        receipt = await app.send_event(payment("evt-all", 1))
        assert sorted(receipt.delivered_to) == sorted(ids)
        for iid in ids:
            assert (await app.result(iid, timeout=20))["paid"] == 1


async def test_the_same_event_id_is_recorded_and_delivered_once(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        first = await app.start(awaits_payment, "o-1")
        await wait_status(app, first, WorkflowStatus.WAITING)
        assert (await app.send_event(payment("dup", 7))).delivered_to == (first,)
        second = await app.start(awaits_payment, "o-2")
        await wait_status(app, second, WorkflowStatus.WAITING)
        again = await app.send_event(payment("dup", 7))
        assert again.duplicate and again.delivered_to == ()
        assert (await app.status(second)).status is WorkflowStatus.WAITING


async def test_untargeted_event_with_no_waiter_is_not_delivered_later(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        assert (await app.send_event(payment("early", 1))).delivered_to == ()
        iid = await app.start(awaits_payment, "o-late")
        await wait_status(app, iid, WorkflowStatus.WAITING)
        await trio.sleep(0.2)
        assert (await app.status(iid)).status is WorkflowStatus.WAITING


async def test_targeted_event_goes_to_one_instance_even_before_it_waits(backend: Backend) -> None:
    async with open_app(
        backend.url, workflows=WFS, config=backend.config, run_workers=False
    ) as app:
        target = await app.start(awaits_payment, "o-t", instance_id="target-1")
        other = await app.start(awaits_payment, "o-x", instance_id="other-1")
        # neither has run yet: the targeted event waits in target-1's inbox
        receipt = await app.send_event(payment("t-1", 99, target="target-1"))
        assert receipt.delivered_to == ()
        with pytest.raises(InstanceNotFoundError):
            await app.send_event(payment("t-2", 1, target="nobody"))
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        assert (await app.result(target, timeout=20))["paid"] == 99
        await wait_status(app, other, WorkflowStatus.WAITING)
        # and a targeted event reaches an instance that is already waiting, directly
        receipt = await app.send_event(payment("t-3", 5, target=other))
        assert receipt.delivered_to == (other,)
        assert (await app.result(other, timeout=20))["paid"] == 5


async def test_event_timeout_raises_inside_the_workflow(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        assert await app.run(awaits_with_timeout, 0.3, timeout=20) == "timed out"


async def test_bad_events_are_rejected_and_nothing_is_stored(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        with pytest.raises(InvalidInputError, match="'source' must be a non-empty"):
            await app.send_event(Event(type="x", source="", id="1"))
        with pytest.raises(InvalidInputError, match=r"control or non-character U\+0000"):
            await app.send_event(Event(type="x", source="s", id="a\x00b"))
        with pytest.raises(InvalidInputError, match="extension attribute name"):
            await app.send_event(Event(type="x", source="s", id="1", extensions={"Bad": "v"}))
        assert not (await app.send_event(Event(type="x", source="s", id="1"))).duplicate


async def test_sleep_resumes_and_replay_keeps_deterministic_time(backend: Backend) -> None:
    config = replace(backend.config, fallback_interval=60.0)
    async with open_app(backend.url, workflows=WFS, config=config) as app:
        t0 = trio.current_time()
        elapsed = await app.run(naps, 0.5, timeout=20)
        wall = trio.current_time() - t0
        assert elapsed >= 0.5 and wall >= 0.5
        # the claim loop sleeps until the timer's deadline; resuming well before the fallback
        # re-check (60 s here, at least 48 s with its jitter) shows the timer was armed, not
        # found by polling (the 20 s timeout above)
        print(f"sleep(0.5) resumed after {wall:.3f}s of wall time")



async def test_a_timer_that_fell_due_while_no_worker_ran_fires_after_restart(
    backend: Backend,
) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(naps, 0.5)
        await wait_status(app, iid, WorkflowStatus.WAITING)
    await trio.sleep(0.8)  # the deadline passes with no worker at all
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        assert await app.result(iid, timeout=20) >= 0.5


async def test_a_thousand_waiting_workflows_leave_the_worker_flat(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        tasks_before = len(_all_tasks())
        ids = [await app.start(awaits_payment, f"o-{i}") for i in range(1000)]
        with trio.fail_after(60):
            while len(await app.list_instances(status="waiting", limit=2000)) < 1000:
                await trio.sleep(0.05)
        await until_idle(app)
        with trio.fail_after(20):  # flat: no task is left per waiting instance
            while len(_all_tasks()) > tasks_before:
                await trio.sleep(0.01)
        receipt = await app.send_event(payment("wake-all", 3))
        assert len(receipt.delivered_to) == 1000
        for iid in ids[:10]:
            assert (await app.result(iid, timeout=60))["paid"] == 3


def _all_tasks() -> list[trio.lowlevel.Task]:
    found: list[trio.lowlevel.Task] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        found.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found
