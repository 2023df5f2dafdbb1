"""``App.backlog().stranded``: instances of the app's workflows that recorded a code version
none of its workers may resume - counted per version until a compatible worker comes."""

from __future__ import annotations

import dataclasses

import trio

from romancy_trio import (
    AppConfig,
    Event,
    WorkflowContext,
    WorkflowStatus,
    open_app,
    wait_event,
    workflow,
)
from romancy_trio._app import App

from .conftest import Backend


@workflow
async def st_wait(ctx: WorkflowContext, n: int) -> int:
    await wait_event(ctx, "st.go")
    return n


@workflow
async def st_other(ctx: WorkflowContext) -> None:
    await wait_event(ctx, "st.never")


def _config(backend: Backend, version: str, *compatible: str) -> AppConfig:
    return dataclasses.replace(backend.config, code_version=version,
                               compatible_versions=compatible)


async def _until(app: App, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(60):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.05)


async def test_instances_no_worker_may_resume_are_counted_per_version(
        backend: Backend) -> None:
    async with open_app(backend.url, workflows=[st_wait, st_other],
                        config=_config(backend, "v1")) as app:
        old = [await app.start(st_wait, n) for n in (1, 2)]
        other = await app.start(st_other)
        for iid in (*old, other):
            await _until(app, iid, WorkflowStatus.WAITING)
        backlog = await app.backlog()
        assert (backlog.stranded, dict(backlog.stranded_versions)) == (0, {})

    async with open_app(backend.url, workflows=[st_wait],  # st_other: not this app's business
                        config=_config(backend, "v2")) as app:
        backlog = await app.backlog()
        assert (backlog.stranded, dict(backlog.stranded_versions)) == (2, {"st_wait|v1": 2})
        new = await app.start(st_wait, 3)
        await _until(app, new, WorkflowStatus.WAITING)
        await app.send_event(Event(type="st.go", source="test", id="go-1"))
        assert await app.result(new, timeout=60) == 3  # v2's own instance runs
        for iid in old:  # woken, but nobody here may run them: still stranded
            assert (await app.status(iid)).status is WorkflowStatus.PENDING
        backlog = await app.backlog()
        assert (backlog.stranded, dict(backlog.stranded_versions)) == (2, {"st_wait|v1": 2})

    async with open_app(backend.url, workflows=[st_wait],
                        config=_config(backend, "v2", "v1")) as app:
        assert [await app.result(iid, timeout=60) for iid in old] == [1, 2]
        assert (await app.backlog()).stranded == 0
