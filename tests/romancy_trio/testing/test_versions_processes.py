"""A rolling deploy on one PostgreSQL: worker processes of code versions v1 and v2 each
resume only their own version's instances; a SIGKILLed v1 worker's instances wait, visible
with their version, until a v1 worker returns. Real processes, real time."""

from __future__ import annotations

import uuid

import pytest
import trio

from romancy_trio import App, Event, WorkflowStatus, open_app
from tests.romancy_trio._procs import start_proc, stop
from tests.romancy_trio.testing.version_proc import config, tvp_finish, tvp_order

MODULE = "tests.romancy_trio.testing.version_proc"


@pytest.fixture
def anyio_backend() -> str:
    return "trio"  # real time here: real processes


async def until(app: App, iid: str, status: WorkflowStatus) -> None:
    with trio.fail_after(60):
        while (await app.status(iid)).status != status:
            await trio.sleep(0.05)


async def go(app: App, order: str) -> None:
    await app.send_event(Event(id=uuid.uuid4().hex, type=f"tvp.go.{order}", source="test"))


async def test_each_version_resumes_only_its_own_instances(pg_dsn: str, pg_schema: str) -> None:
    old = start_proc(MODULE, pg_dsn, pg_schema, "w-v1", "v1", quiet=True)
    new = None
    try:
        # (the old worker migrated the schema; now the new one joins)
        new = start_proc(MODULE, pg_dsn, pg_schema, "w-v2", "v2", quiet=True)
        wfs = [tvp_order, tvp_finish]
        async with open_app(pg_dsn, workflows=wfs, config=config(pg_schema, "v1"),
                            run_workers=False) as v1, \
                open_app(pg_dsn, workflows=wfs, config=config(pg_schema, "v2"),
                         run_workers=False) as v2:
            olds = [await v1.start(tvp_order, f"a{n}") for n in range(3)]
            news = [await v2.start(tvp_order, f"b{n}") for n in range(3)]
            for iid in olds + news:
                await until(v1, iid, WorkflowStatus.WAITING)
            for n in range(3):
                await go(v1, f"a{n}")
                await go(v1, f"b{n}")
            for n, iid in enumerate(olds):
                assert await v1.result(iid, timeout=60) == f"a{n} finished by v1 (w-v1)"
            for n, iid in enumerate(news):
                assert await v1.result(iid, timeout=60) == f"b{n} finished by v2 (w-v2)"

            parked = await v1.start(tvp_order, "a8")  # claimed by w-v1, waiting
            await until(v1, parked, WorkflowStatus.WAITING)
            old.kill()  # SIGKILL
            old.wait(timeout=10)
            stop(old)  # (closes its pipes)
            await go(v1, "a8")
            orphan = await v1.start(tvp_order, "a9")
            later = await v2.start(tvp_order, "b9")
            await until(v1, later, WorkflowStatus.WAITING)
            await go(v1, "b9")
            assert await v1.result(later, timeout=60) == "b9 finished by v2 (w-v2)"
            # the v2 worker ran a later instance to its end, but did not touch the v1 one
            info = await v1.status(orphan)
            assert info.status == WorkflowStatus.PENDING and info.code_version == "v1"
            listed = {i.instance_id: i for i in await v1.list_instances(status="pending")}
            assert listed[orphan].code_version == "v1"

            waiting = await v1.status(parked)
            assert not waiting.status.is_terminal and waiting.code_version == "v1"

            old = start_proc(MODULE, pg_dsn, pg_schema, "w-v1b", "v1", quiet=True)  # v1 back
            await until(v1, orphan, WorkflowStatus.WAITING)
            await go(v1, "a9")
            assert await v1.result(orphan, timeout=60) == "a9 finished by v1 (w-v1b)"
            assert await v1.result(parked, timeout=60) == "a8 finished by v1 (w-v1b)"
    finally:
        stop(old)
        if new is not None:
            stop(new)
