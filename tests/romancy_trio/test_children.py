"""Child workflows: results, the child's error in the parent, recorded starts (a worker
SIGKILLed while children run), parent close policies, cancellation with compensations."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import pytest
import trio

from romancy_trio import (
    ActivityContext,
    ChildWorkflowFailedError,
    RetryPolicy,
    WorkflowCancelledError,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowStatus,
    activity,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio.storage._placeholders import translate

from ._procs import start_worker, stop
from .compose_proc import ALL, COMPOSE_DDL, comp_parent
from .conftest import Backend, fetch

undone: list[str] = []


@activity
async def kid_double(ctx: ActivityContext, n: int) -> int:
    return n * 2


@activity(retry=RetryPolicy.no_retries())
async def kid_reserve(ctx: ActivityContext, name: str) -> str:
    return f"held-{name}"


@kid_reserve.compensation
async def kid_release(ctx: ActivityContext, name: str, held: str) -> None:
    undone.append(held)


@workflow
async def kid_work(ctx: WorkflowContext, n: int) -> int:
    if n < 0:
        raise ValueError(f"no negative numbers: {n}")
    return await kid_double(ctx, n)


@workflow
async def kid_holds(ctx: WorkflowContext, name: str) -> str:
    await kid_reserve(ctx, name)
    await wait_event(ctx, "kid.never")
    return "released?"


@workflow
async def kid_parent(ctx: WorkflowContext, ns: list[int]) -> list[Any]:
    out: list[Any] = []
    for n in ns:
        try:
            out.append(await ctx.run_child(kid_work, n))
        except ChildWorkflowFailedError as exc:
            out.append([exc.error_type, exc.message, exc.child_instance_id])
    return out


@workflow
async def kid_uncaught(ctx: WorkflowContext, n: int) -> int:
    child = await ctx.start_child(kid_work, n, instance_id=f"{ctx.instance_id}-kid")
    result: int = await child.result()
    return result


@workflow
async def kid_holder_parent(ctx: WorkflowContext, policy: str) -> str:
    for name in ("a", "b"):
        await ctx.start_child(kid_holds, name, parent_close_policy=policy)
    await wait_event(ctx, "kid.parent.never")
    return "done"


WFS: list[Any] = [kid_double, kid_reserve, kid_release, kid_work, kid_holds, kid_parent,
                  kid_uncaught, kid_holder_parent]


async def _until(check: Any, what: str, timeout: float = 60) -> Any:
    with trio.fail_after(timeout):
        while not (value := await check()):
            await trio.sleep(0.05)
    return value


async def test_children_results_and_errors(backend: Backend) -> None:
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(kid_parent, [1, -2, 3])
        result = await app.result(iid, timeout=60)
        assert result[0] == 2 and result[2] == 6
        assert result[1][:2] == ["ValueError", "no negative numbers: -2"]
        kids = await app.children(iid)
        assert [k.instance_id for k in kids] == [f"{iid}/child-{n}" for n in (1, 2, 3)]
        assert {k.parent_instance_id for k in kids} == {iid}
        assert (await app.status(kids[0].instance_id)).parent_instance_id == iid
        assert await app.parent(kids[1].instance_id) == iid
        assert [k.status for k in kids] == ["completed", "failed", "completed"]
        # replay never starts a child twice: one start record per child in the history
        starts = [e.key for e in await app.history(iid) if e.key.startswith("romancy.child.start")]
        assert len(starts) == 3

        failing = await app.start(kid_uncaught, -5)
        with pytest.raises(WorkflowFailedError) as info:
            await app.result(failing, timeout=60)
        assert info.value.error_type.endswith("ChildWorkflowFailedError")
        assert "ValueError: no negative numbers: -5" in info.value.message


@pytest.mark.parametrize("policy", ["cancel", "abandon"])
async def test_cancelled_parent_and_its_children(backend: Backend, policy: str) -> None:
    undone.clear()
    async with open_app(backend.url, workflows=WFS, config=backend.config) as app:
        iid = await app.start(kid_holder_parent, policy)

        async def all_waiting() -> bool:
            kids = await app.children(iid)
            return len(kids) == 2 and all(k.status == "waiting" for k in kids) and (
                (await app.status(iid)).status == "waiting")

        await _until(all_waiting, "parent and children waiting")
        await app.cancel(iid)
        with pytest.raises(WorkflowCancelledError):
            await app.result(iid, timeout=60)
        kids = await app.children(iid)
        if policy == "cancel":
            for kid in kids:
                with pytest.raises(WorkflowCancelledError):
                    await app.result(kid.instance_id, timeout=60)
            assert sorted(undone) == ["held-a", "held-b"]  # their compensations ran
        else:
            await trio.sleep(0.5)  # (nothing to wait for: asserting that nothing happens)
            assert [(await app.status(k.instance_id)).status for k in kids] == [
                WorkflowStatus.WAITING] * 2
            assert undone == []


async def test_parent_worker_killed_while_children_run(backend: Backend) -> None:
    """A parent with 3 children; its worker is SIGKILLed while the children run: every
    child runs once, the parent completes with their results."""
    b = backend
    async with open_app(b.url, workflows=ALL, config=b.config, run_workers=False) as app:
        for ddl in COMPOSE_DDL:
            await app.store.db.execute(*translate(ddl, (), app.store.db.dialect))
        module = "tests.romancy_trio.compose_proc"
        first = start_worker(b.url, b.config.schema, "kw1", module=module)
        second = None
        try:
            iid = await app.start(comp_parent, [1, 2, 3])

            async def three_effects() -> bool:
                rows = await fetch(app, "SELECT count(*) FROM comp_effects")
                return int(rows[0][0]) == 3

            await _until(three_effects, "3 children running")  # each now in its 3 s activity
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            second = start_worker(b.url, b.config.schema, "kw2", module=module)
            assert await app.result(iid, timeout=90) == [10, 20, 30]
            rows = await fetch(app, "SELECT instance_id, worker_id FROM comp_effects")
            assert Counter(r[0] for r in rows) == {f"{iid}/child-{n}": 1 for n in (1, 2, 3)}
            kids = await app.children(iid)
            assert [k.status for k in kids] == ["completed"] * 3
            assert len(await app.list_instances(workflow="comp_child", limit=100)) == 3
        finally:
            stop(first)
            if second is not None:
                stop(second)
