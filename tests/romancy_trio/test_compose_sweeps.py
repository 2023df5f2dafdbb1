"""The child sweep and queue admission run only when an end gives them work (issue #22), and
still never lose one: an end whose worker died before acting on it (the database left as such
a crash leaves it: the instance ended, no sweep ran, nothing notified) is found by the sweeps
of the fallback timer; a cancellation wakes them in every worker."""

from __future__ import annotations

import trio

from romancy_trio import (
    App,
    ChildWorkflowFailedError,
    WorkflowContext,
    WorkflowStatus,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio.storage._placeholders import translate

from .conftest import Backend, fetch


@workflow
async def sw_child(ctx: WorkflowContext) -> str:
    await wait_event(ctx, "sw.never")
    return "from the child"


@workflow
async def sw_parent(ctx: WorkflowContext) -> str:
    try:
        return await ctx.run_child(sw_child, instance_id=f"{ctx.instance_id}-kid")
    except ChildWorkflowFailedError as exc:
        return "cancelled" if exc.cancelled else f"failed: {exc.error_type}"


WFS = [sw_child, sw_parent]


async def _until_status(app: App, iid: str, status: str) -> None:
    with trio.fail_after(60):
        while not [r for r in await fetch(app, "SELECT status FROM workflow_instances "
                                               "WHERE instance_id = ?", (iid,))
                   if r[0] == status]:
            await trio.sleep(0.05)


async def _end_behind_the_sweeps(app: App, iid: str, result_json: str) -> None:
    """What a worker that finished ``iid`` and died at once leaves: the row ended, no sweep
    or admission round run, no notification sent."""
    db = app.store.db
    await db.execute(*translate("UPDATE workflow_instances SET status = 'completed', "
                                "result = ? WHERE instance_id = ?", (result_json, iid),
                                db.dialect))


async def test_a_parent_learns_of_an_end_no_sweep_followed(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        parent = await app.start(sw_parent)
        await _until_status(app, f"{parent}-kid", "waiting")
        await _end_behind_the_sweeps(app, f"{parent}-kid", '"ended behind the sweeps"')
        # the fallback sweep (backend.config.fallback_interval) tells the parent
        assert await app.result(parent, timeout=60) == "ended behind the sweeps"


async def test_a_cancelled_child_is_told_to_its_parent(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        parent = await app.start(sw_parent)
        await _until_status(app, f"{parent}-kid", "waiting")
        await app.cancel(f"{parent}-kid")  # ends in the cancelling transaction
        assert await app.result(parent, timeout=60) == "cancelled"


@workflow
async def sw_queued(ctx: WorkflowContext, n: int) -> int:
    await wait_event(ctx, f"sw.gate.{n}")
    return n


async def test_a_slot_freed_without_an_admission_round_is_filled(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[sw_queued], config=backend.config) as app:
        await app.declare_queue("sw-one", concurrency=1)
        first = await app.enqueue("sw-one", sw_queued, 1)
        second = await app.enqueue("sw-one", sw_queued, 2)
        await _until_status(app, first, "waiting")
        assert (await app.status(second)).status == WorkflowStatus.QUEUED
        await _end_behind_the_sweeps(app, first, "1")
        # the fallback round frees the slot and admits the next entry
        await _until_status(app, second, "waiting")
        third = await app.enqueue("sw-one", sw_queued, 3)
        assert (await app.status(third)).status == WorkflowStatus.QUEUED
        await app.cancel(second)  # ends in the cancelling transaction: the slot frees at once
        await _until_status(app, third, "waiting")


async def test_an_ended_instance_frees_its_dedup_id_before_any_admission_round(
        backend: Backend) -> None:
    """A dedup id is held while its instance is queued or running - not until an admission
    round notices the end: an instance that ended behind the rounds (its worker died at once;
    or a short program exited right after its result) no longer refuses the id."""
    async with open_app(backend.url, workflows=[sw_queued], config=backend.config) as app:
        await app.declare_queue("sw-dedup", concurrency=1)
        first = await app.enqueue("sw-dedup", sw_queued, 1, dedup_id="nightly")
        await _until_status(app, first, "waiting")
        await _end_behind_the_sweeps(app, first, "1")
        again = await app.enqueue("sw-dedup", sw_queued, 2, dedup_id="nightly")
        assert again != first
        await _until_status(app, again, "waiting")  # and it runs once the slot is freed
