"""A hook is told only what it overrides a method for: a hook with one notification gets
that one, its queue holds only those (so its drops count only those), and a supplier it does
not override is never asked while one it does is."""

from __future__ import annotations

from collections.abc import Mapping

import trio

from romancy_trio import ActivityContext, Hooks, WorkflowContext, activity, open_app, workflow
from romancy_trio import hooks as h

from ..conftest import Backend
from ..test_outbox import until
from .test_hooks import _config


@activity
async def ov_step(ctx: ActivityContext, n: int) -> int:
    return n + 1


@workflow
async def ov_one(ctx: WorkflowContext, n: int) -> int:
    return await ov_step(ctx, n)


class OnlyCompleted(Hooks):
    """Told of completions only; its first call waits until released."""

    def __init__(self) -> None:
        self.seen: list[h.HookEvent] = []
        self.entered = trio.Event()
        self.release = trio.Event()

    async def on_workflow_completed(self, event: h.WorkflowCompleted) -> None:
        self.seen.append(event)
        self.entered.set()
        await self.release.wait()


class OnlyAttributes(Hooks):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def instance_attributes(self, start: h.StartInfo) -> Mapping[str, str]:
        self.asked.append(start.instance_id)
        return {"tenant": "t"}


async def test_a_hook_is_told_only_what_it_overrides_and_drops_count_only_that(
        backend: Backend) -> None:
    only, attrs = OnlyCompleted(), OnlyAttributes()
    async with open_app(backend.url, config=_config(backend, hook_queue=1),
                        workflows=[ov_one, ov_step], hooks=[only, attrs]) as app:
        first = await app.start(ov_one, 1)
        assert await app.result(first, timeout=30) == 2
        with trio.fail_after(30):
            await only.entered.wait()  # its call of the first completion is in progress
        # four more: one completion waits in its queue (size 1), three are dropped; the
        # starts, resumes and activities of all five are none of its business: no room taken
        iids = [await app.start(ov_one, n) for n in range(2, 6)]
        for n, iid in enumerate(iids, start=2):
            assert await app.result(iid, timeout=30) == n + 1
        await until(lambda: app.hook_statistics()[0].dropped == 3, timeout=30)
        assert app.hook_statistics()[0].delivered == 0
        only.release.set()
        await until(lambda: app.hook_statistics()[0].delivered == 2, timeout=30)
    assert [type(e) for e in only.seen] == [h.WorkflowCompleted, h.WorkflowCompleted]
    # the second is whichever of the four later ones completed first (they run concurrently)
    assert only.seen[0].instance_id == first and only.seen[1].instance_id in iids
    assert app.hook_statistics() == [h.HookStatistics("0:OnlyCompleted", 2, 0, 0, 3),
                                     h.HookStatistics("1:OnlyAttributes", 0, 0, 0, 0)]
    # the supplier it overrides is asked at every start
    assert attrs.asked == [first, *iids]


class NoRunEnds(Hooks):
    """Told of nothing that ends a run: its notifications are handed over on the watchdog's
    tick, not at a run's end."""

    def __init__(self) -> None:
        self.seen: list[h.HookEvent] = []

    async def on_workflow_started(self, event: h.WorkflowStarted) -> None:
        self.seen.append(event)

    async def on_activity_completed(self, event: h.ActivityCompleted) -> None:
        self.seen.append(event)


async def test_a_hook_told_nothing_that_ends_a_run_is_told_while_the_app_runs(
        backend: Backend) -> None:
    hook = NoRunEnds()
    async with open_app(backend.url, config=_config(backend), workflows=[ov_one, ov_step],
                        hooks=[hook]) as app:
        iid = await app.start(ov_one, 1)
        assert await app.result(iid, timeout=30) == 2
        # not at close: while the app runs (within 0.25 s)
        await until(lambda: len(hook.seen) == 2, timeout=30)
        assert [type(e) for e in hook.seen] == [h.WorkflowStarted, h.ActivityCompleted]
        assert all(e.instance_id == iid for e in hook.seen)
        assert app.hook_statistics() == [h.HookStatistics("0:NoRunEnds", 2, 0, 0, 0)]
