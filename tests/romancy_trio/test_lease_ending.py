"""A run that lets its instance go itself (it finished, or it suspended) has lost nothing.

The heartbeat's renewal only returns running instances. When a run's last write (its finish,
its suspension) commits just before a renewal, the renewal no longer returns the instance
while the run has not yet seen its write's answer: the worker must not count that as a lease
lost to another worker (nor cancel the run, nor tell the hooks). These hold the run's last
write's answer back until a renewal has passed it, so the race happens every time.
"""

from __future__ import annotations

from typing import Any

import trio

from romancy_trio import (
    ActivityContext,
    Event,
    Hooks,
    WorkflowContext,
    WorkflowStatus,
    activity,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio._app import App
from romancy_trio.hooks import LeaseLost

from .conftest import Backend


@activity
async def ending_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def ending_flow(ctx: WorkflowContext, n: int) -> int:
    return await ending_step(ctx, n)


@workflow
async def suspending_flow(ctx: WorkflowContext, n: int) -> int:
    n = await ending_step(ctx, n)
    event = await wait_event(ctx, "ending-go")
    return n + int(event.data)


class _Lost(Hooks):
    def __init__(self) -> None:
        self.lost: list[str] = []

    async def on_lease_lost(self, event: LeaseLost) -> None:
        self.lost.append(event.instance_id)


def _renewal_passes_after(app: App, obj: Any, name: str) -> trio.Event:
    """Hold the answer of ``obj.name`` (a run's last write) back until a renewal that started
    after the write committed has answered (and the heartbeat has looked at it)."""
    store = app.store
    real_write, real_renew = getattr(obj, name), store.renew
    written, renewed = [False], trio.Event()

    async def renew(*args: Any, **kwargs: Any) -> dict[str, int]:
        after = written[0]
        held = await real_renew(*args, **kwargs)
        if after:
            renewed.set()  # the heartbeat goes on with `held` before the write's task runs
        return held

    async def write(*args: Any, **kwargs: Any) -> Any:
        result = await real_write(*args, **kwargs)
        if not written[0]:
            written[0] = True
            await renewed.wait()
        return result

    store.renew = renew  # type: ignore[method-assign]
    setattr(obj, name, write)
    return renewed


async def test_a_finish_committed_before_a_renewal_is_not_a_lost_lease(
        backend: Backend) -> None:
    hooks = _Lost()
    async with open_app(backend.url, workflows=[ending_flow], config=backend.config,
                        hooks=[hooks]) as app:
        renewed = _renewal_passes_after(app, app.store, "finish")
        with trio.fail_after(30):
            assert await app.run(ending_flow, 1) == 2  # (told by the finish itself)
            await renewed.wait()
            while app.statistics().running:
                await trio.sleep(0.02)
        assert app.statistics().leases_lost == 0
    assert hooks.lost == []


async def test_a_suspension_committed_before_a_renewal_is_not_a_lost_lease(
        backend: Backend) -> None:
    hooks = _Lost()
    async with open_app(backend.url, workflows=[suspending_flow], config=backend.config,
                        hooks=[hooks]) as app:
        renewed = _renewal_passes_after(app, app.store.waits, "suspend")
        iid = await app.start(suspending_flow, 1)
        with trio.fail_after(30):
            await renewed.wait()
            while (await app.status(iid)).status is not WorkflowStatus.WAITING:
                await trio.sleep(0.02)
            await app.send_event(Event(type="ending-go", source="test", id="go", data=40,
                                       target_instance_id=iid))
            assert await app.result(iid) == 42
        assert app.statistics().leases_lost == 0
    assert hooks.lost == []

