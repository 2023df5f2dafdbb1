"""Activities that do not run on Trio: plain ``def`` in worker threads (bounded, with a blocking
session in their transaction), and ``loop="asyncio"`` on the app's asyncio loop."""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from typing import Any

import psycopg
import pytest
import trio

from romancy_trio import (
    ActivityContext,
    ActivityFailedError,
    AppConfig,
    ConfigurationError,
    RetryPolicy,
    WorkflowCancelledError,
    WorkflowContext,
    activity,
    open_app,
    workflow,
)

from .conftest import Backend

ONCE = RetryPolicy.no_retries()
GO = threading.Event()
RUNNING: list[int] = []
CANCELLED: list[str] = []
CONNS: dict[str, psycopg.AsyncConnection[Any]] = {}


@activity(transactional=False)
def blocking_call(ctx: ActivityContext, n: int) -> dict[str, Any]:
    RUNNING.append(n)
    GO.wait(timeout=60)
    return {"n": n, "worker_thread": threading.current_thread() is not threading.main_thread()}


@activity(retry=ONCE)
def thread_ledger_write(ctx: ActivityContext, key: str, fail: bool) -> int:
    db = ctx.blocking_db
    db.execute("INSERT INTO ledger (k) VALUES (?)", (key,))
    row = db.fetchone("SELECT count(*) FROM ledger WHERE k = ?", (key,))
    if fail:
        raise ValueError("refused after writing")
    assert row is not None
    return int(row[0])


@workflow
async def threads(ctx: WorkflowContext, count: int) -> list[dict[str, Any]]:
    return await ctx.gather(*(blocking_call(ctx, n) for n in range(count)))


@workflow
async def thread_ledger(ctx: WorkflowContext, key: str, fail: bool = False) -> str:
    try:
        return f"{await thread_ledger_write(ctx, key, fail)} row"
    except ActivityFailedError as exc:
        return exc.error_type


async def test_def_activities_run_in_threads_bounded_by_activity_threads(
    backend: Backend,
) -> None:
    GO.clear()
    RUNNING.clear()
    config = AppConfig(**{**_fields(backend.config), "activity_threads": 2})
    async with open_app(backend.url, workflows=[threads], config=config) as app:
        iid = await app.start(threads, 4)
        limiter = app._scheduler._hosts.threads  # type: ignore[union-attr]
        with trio.fail_after(20):
            while limiter.statistics().tasks_waiting < 2:
                await trio.sleep(0.01)
        assert limiter.borrowed_tokens == 2 and len(RUNNING) == 2
        GO.set()
        result = await app.result(iid, timeout=20)
        assert result == [{"n": n, "worker_thread": True} for n in range(4)]


def _fields(config: AppConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


async def test_a_def_activity_uses_its_transaction_through_blocking_db(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[thread_ledger], config=backend.config) as app:
        async with app.store.db.transaction() as tx:
            await tx.execute("CREATE TABLE ledger (k TEXT)")
        assert await app.run(thread_ledger, "a", timeout=20) == "1 row"
        assert await app.run(thread_ledger, "b", fail=True, timeout=20) == "ValueError"
        async with app.store.db.transaction() as tx:
            rows = await tx.fetchall("SELECT k FROM ledger")
        assert [tuple(r) for r in rows] == [("a",)]  # b's insert rolled back with its failure


def test_activity_threads_is_validated() -> None:
    with pytest.raises(ValueError, match="activity_threads must be an int of at least 1"):
        AppConfig(activity_threads=0)


# -- asyncio ------------------------------------------------------------------------------


@activity(retry=ONCE, transactional=False)
async def asyncio_client_on_trio(ctx: ActivityContext, port: int) -> str:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    return "connected"


@activity(loop="asyncio")
async def asyncio_client(ctx: ActivityContext, port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line.decode().strip()


@workflow
async def talks_asyncio(ctx: WorkflowContext, port: int, on_trio: bool = False) -> str:
    try:
        if on_trio:
            return await asyncio_client_on_trio(ctx, port)
        return await asyncio_client(ctx, port)
    except ActivityFailedError as exc:
        return f"{exc.error_type}: {exc.message}"


async def _pong(stream: trio.SocketStream) -> None:
    async with stream:
        data = b""
        while not data.endswith(b"\n"):
            chunk = await stream.receive_some()
            if not chunk:
                return
            data += chunk
        await stream.send_all(b"pong\n")


async def test_asyncio_only_clients_work_on_the_apps_asyncio_loop(backend: Backend) -> None:
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, _pong, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        async with open_app(backend.url, workflows=[talks_asyncio],
                            config=backend.config) as app:
            failed = await app.run(talks_asyncio, port, on_trio=True, timeout=20)
            assert failed == "RuntimeError: no running event loop"  # what a Trio activity gets
            assert await app.run(talks_asyncio, port, timeout=20) == "pong"
            assert any(t.name == "romancy-asyncio" for t in threading.enumerate())
        nursery.cancel_scope.cancel()
    assert not any(t.name == "romancy-asyncio" for t in threading.enumerate())  # joined


@activity(loop="asyncio", timeout=0.2, retry=RetryPolicy(max_attempts=2, initial_interval=0.01))
async def slow_asyncio(ctx: ActivityContext, key: str) -> str:
    if key not in CANCELLED:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            CANCELLED.append(key)  # the asyncio task saw the Trio timeout
            raise
    return f"{key}: second attempt"


@workflow
async def slow(ctx: WorkflowContext, key: str) -> str:
    return await slow_asyncio(ctx, key)


async def test_a_timeout_cancels_the_asyncio_task(backend: Backend) -> None:
    key = f"slow-{backend.name}"
    async with open_app(backend.url, workflows=[slow], config=backend.config) as app:
        assert await app.run(slow, key, timeout=20) == f"{key}: second attempt"
        assert CANCELLED.count(key) == 1


STARTED: list[str] = []


@activity(loop="asyncio")
async def waits_on_asyncio(ctx: ActivityContext) -> None:
    STARTED.append(ctx.instance_id)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        CANCELLED.append(ctx.instance_id)
        raise


@workflow
async def cancelled_while_on_asyncio(ctx: WorkflowContext) -> None:
    await waits_on_asyncio(ctx)


async def test_cancelling_the_workflow_cancels_its_asyncio_task(backend: Backend) -> None:
    async with open_app(backend.url, workflows=[cancelled_while_on_asyncio],
                        config=backend.config) as app:
        iid = await app.start(cancelled_while_on_asyncio)
        with trio.fail_after(20):
            while iid not in STARTED:
                await trio.sleep(0.01)
        await app.cancel(iid)
        with pytest.raises(WorkflowCancelledError):
            await app.result(iid, timeout=20)
        assert CANCELLED.count(iid) == 1


@activity(loop="asyncio")
async def pg_open(ctx: ActivityContext, dsn: str) -> int:
    CONNS[ctx.instance_id] = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return id(asyncio.get_running_loop())


@activity(loop="asyncio")
async def pg_query(ctx: ActivityContext, n: int) -> list[int]:
    conn = CONNS[ctx.instance_id]  # made by the previous call: the loop is still the same
    cur = await conn.execute("SELECT %s::int + 1, pg_backend_pid()", (n,))
    row = await cur.fetchone()
    assert row is not None
    return [row[0], id(asyncio.get_running_loop())]


@activity(loop="asyncio")
async def pg_close(ctx: ActivityContext) -> None:
    await CONNS.pop(ctx.instance_id).close()


@workflow
async def uses_psycopg_async(ctx: WorkflowContext, dsn: str) -> bool:
    loop = await pg_open(ctx, dsn)
    first = await pg_query(ctx, 41)
    second = await pg_query(ctx, 1)
    await pg_close(ctx)
    return first == [42, loop] and second == [2, loop]


async def test_psycopg_async_connection_on_asyncio_persists_across_calls(
    pg_backend: Backend, pg_dsn: str
) -> None:
    async with open_app(pg_backend.url, workflows=[uses_psycopg_async],
                        config=pg_backend.config) as app:
        assert await app.run(uses_psycopg_async, pg_dsn, timeout=20) is True


def test_asyncio_activities_are_checked_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match="cannot be transactional"):

        @activity(loop="asyncio", transactional=True)
        async def tx_on_asyncio(ctx: ActivityContext) -> None: ...

    with pytest.raises(ConfigurationError, match="runs an 'async def' function"):

        @activity(loop="asyncio")
        def plain_on_asyncio(ctx: ActivityContext) -> None: ...

    with pytest.raises(ConfigurationError, match="loop must be 'trio' or 'asyncio'"):

        @activity(loop="curio")  # type: ignore[call-overload]
        async def on_curio(ctx: ActivityContext) -> None: ...
