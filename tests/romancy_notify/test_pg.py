"""romancy_notify.pg: psycopg's async API driven by Trio, against a real PostgreSQL."""

from __future__ import annotations

import inspect
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from psycopg import pq, sql
from psycopg.rows import dict_row

from romancy_notify.pg import BATCH_LIMIT, TrioConnection, connect


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


async def _active_queries(dsn: str, token: str) -> int:
    """Queries containing ``token`` that the server is still running (seen from elsewhere)."""
    async with await connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
            (f"%{token}%",),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening TCP port on 127.0.0.1 that accepts connections but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_query_with_params(pg_dsn: str) -> None:
    async with await connect(pg_dsn, autocommit=True) as conn:
        assert isinstance(conn, TrioConnection)
        cur = await conn.execute("SELECT %s::int + 1, %s::text", (41, "x"))
        assert await cur.fetchone() == (42, "x")
        async with conn.cursor() as cur2:
            await cur2.execute("SELECT generate_series(1, %s)", (5,))
            assert [r[0] for r in await cur2.fetchall()] == [1, 2, 3, 4, 5]
    assert conn.closed


async def test_run_reuses_a_cursor_per_query_and_behaves_like_execute(
        pg_dsn: str, pg_schema: str) -> None:
    table = _table(pg_schema, "run_t")
    async with await connect(pg_dsn, autocommit=True, prepare_threshold=1) as conn:
        await conn.execute(sql.SQL("CREATE TABLE {} (k int)").format(table))
        q, other = "SELECT %(a)s::int + 1, %(b)s::text", "SELECT %s::int * 2"
        assert await conn.run(q, {"a": 1, "b": "x"}, fetch=True) == (1, (2, "x"))
        assert await conn.run(other, (21,), fetch=True) == (1, (42,))
        kept = conn._cursors[q]  # prepared by now, the same cursor: no result held
        assert await conn.run(q, {"a": 41, "b": None}, fetch=True) == (1, (42, None))
        assert conn._cursors[q] is kept and kept.pgresult is None
        insert = sql.SQL("INSERT INTO {} VALUES (%s), (%s)").format(table).as_string(conn)
        assert await conn.run(insert, (1, 2)) == (2, None)
        with pytest.raises(psycopg.ProgrammingError):  # as fetchone(): no result to fetch
            await conn.run(insert, (3, 4), fetch=True)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await conn.run("SELECT 1 / %s::int", (0,), fetch=True)
        assert await conn.run("SELECT 1 / %s::int", (1,), fetch=True) == (1, (1,))
        async with conn.pipeline():  # results arrive at the block's end: execute() it is
            with pytest.raises(psycopg.ProgrammingError, match="pipeline"):
                await conn.run(other, (1,))
    with pytest.raises(psycopg.OperationalError, match="closed"):
        await conn.run(q, {"a": 1, "b": "x"})


async def test_connection_parameters_and_row_factory(pg_dsn: str) -> None:
    conn = await TrioConnection[dict[str, Any]].connect(
        pg_dsn, application_name="trio-adapter-test", row_factory=dict_row, connect_timeout=0
    )  # connect_timeout=0: no timeout (libpq's default of 130 s), not an instant one
    try:
        assert not conn.autocommit
        cur = await conn.execute("SELECT current_setting('application_name') AS app")
        assert await cur.fetchone() == {"app": "trio-adapter-test"}
        assert conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS
        await conn.rollback()
        assert conn.prepare_threshold == 5
    finally:
        await conn.close()


async def test_transaction_commit_and_rollback(pg_dsn: str, pg_schema: str) -> None:
    table = _table(pg_schema, "t")
    async with await connect(pg_dsn) as conn:
        await conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(table))
        await conn.commit()
        async with conn.transaction():
            await conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table))
                raise ZeroDivisionError
        await conn.rollback()
    async with await connect(pg_dsn, autocommit=True) as other:
        cur = await other.execute(sql.SQL("SELECT array_agg(x) FROM {}").format(table))
        assert await cur.fetchone() == ([1],)


async def test_pipeline_mode(pg_dsn: str, pg_schema: str) -> None:
    table = _table(pg_schema, "p")
    async with await connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(table))
        async with conn.pipeline():
            cursors = [await conn.execute("SELECT %s::int * 2", (i,)) for i in range(500)]
            async with conn.transaction():
                for i in range(100):
                    await conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(table), (i,))
        assert [(await c.fetchone()) for c in cursors] == [(i * 2,) for i in range(500)]
        cur = await conn.execute(sql.SQL("SELECT count(*), sum(x) FROM {}").format(table))
        assert await cur.fetchone() == (100, sum(range(100)))


async def test_a_pipeline_block_holds_its_statements_but_never_a_result_wanted_now(
        pg_dsn: str, pg_schema: str) -> None:
    """Statements of a block are written together at its end; a fetch inside the block, a
    sync, or more than BATCH_LIMIT waiting statements send them at once, and an error still
    stops the rest of the block."""
    table = _table(pg_schema, "b")
    async with await connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(table))
        async with conn.pipeline() as pipeline:
            first = await conn.execute("SELECT 1")
            assert await first.fetchone() == (1,)  # fetched inside the block
            many = [await conn.execute("SELECT %s::int", (i,)) for i in range(BATCH_LIMIT * 3)]
            await pipeline.sync()
            assert [await c.fetchone() for c in many] == [(i,) for i in range(BATCH_LIMIT * 3)]
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with conn.pipeline():
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
                await conn.execute("SELECT 1 / 0")
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table))
        cur = await conn.execute(sql.SQL("SELECT array_agg(x ORDER BY x) FROM {}").format(table))
        assert await cur.fetchone() == (None,)  # up to Sync, one implicit transaction


async def test_notifies_receive_and_timeout(pg_dsn: str) -> None:
    channel = f"ch_{uuid.uuid4().hex[:8]}"
    async with (
        await connect(pg_dsn, autocommit=True) as listener,
        await connect(pg_dsn, autocommit=True) as sender,
    ):
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        with trio.fail_after(30):
            quiet = [n async for n in listener.notifies(timeout=0.2)]
        assert quiet == []

        received = []

        async def listen() -> None:
            async for n in listener.notifies(timeout=10, stop_after=1):
                received.append(n)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await trio.sleep(0.05)
            await sender.execute("SELECT pg_notify(%s, 'hello')", (channel,))
        assert [(n.channel, n.payload) for n in received] == [(channel, "hello")]
        assert received[0].pid == sender.pgconn.backend_pid
        cur = await listener.execute("SELECT 1")  # still usable
        assert await cur.fetchone() == (1,)


async def test_cancelling_notifies_keeps_connection_usable(pg_dsn: str) -> None:
    async with await connect(pg_dsn, autocommit=True) as conn:
        await conn.execute("LISTEN nothing_here")
        with trio.move_on_after(0.1) as scope:
            async for _ in conn.notifies():
                pass
        assert scope.cancelled_caught
        cur = await conn.execute("SELECT 3")
        assert await cur.fetchone() == (3,)


QUERY_SECONDS = 60
"""A query the tests cancel after 0.2 s: cancelled ends it far sooner than running it out."""
ENDED_BY_THE_CANCELLATION = QUERY_SECONDS / 2
"""A generous bound (any machine) that still tells a cancellation from waiting the query out."""


async def _check_cancellation_mid_query(pg_dsn: str, autocommit: bool) -> None:
    token = f"sleep_{uuid.uuid4().hex}"
    conn = await connect(pg_dsn, autocommit=autocommit)
    try:
        start = trio.current_time()
        with trio.move_on_after(0.2) as scope:
            if autocommit:
                await conn.execute(f"SELECT pg_sleep({QUERY_SECONDS}) /* {token} */")
            else:
                async with conn.transaction():
                    await conn.execute(f"SELECT pg_sleep({QUERY_SECONDS}) /* {token} */")
        assert scope.cancelled_caught
        assert trio.current_time() - start < ENDED_BY_THE_CANCELLATION
        if not conn.closed:
            if conn.pgconn.transaction_status == pq.TransactionStatus.INERROR:
                await conn.rollback()
            cur = await conn.execute("SELECT 2")
            assert await cur.fetchone() == (2,)
        assert await _active_queries(pg_dsn, token) == 0
    finally:
        await conn.close()


async def test_trio_cancellation_mid_query_autocommit(pg_dsn: str) -> None:
    await _check_cancellation_mid_query(pg_dsn, autocommit=True)


async def test_trio_cancellation_mid_query_in_transaction(pg_dsn: str) -> None:
    await _check_cancellation_mid_query(pg_dsn, autocommit=False)


async def test_trio_cancellation_while_sending_a_large_query(pg_dsn: str) -> None:
    big = "x" * 30_000_000  # more than the socket buffers: the send has to wait for the server
    conn = await connect(pg_dsn, autocommit=True)
    try:
        for delay in (0.001, 0.01, 0.03, 0.1):
            with trio.fail_after(5), trio.move_on_after(delay):
                await conn.execute("SELECT length(%s), pg_sleep(0.3)", (big,))
            if conn.closed:
                conn = await connect(pg_dsn, autocommit=True)
            else:
                cur = await conn.execute("SELECT 2")
                assert await cur.fetchone() == (2,)
    finally:
        await conn.close()


async def test_trio_cancellation_in_pipeline(pg_dsn: str) -> None:
    conn = await connect(pg_dsn, autocommit=True)
    try:
        with trio.move_on_after(0.2) as scope:
            async with conn.pipeline():
                await conn.execute("SELECT 1")
                await conn.execute("SELECT pg_sleep(5)")
                await conn.execute("SELECT 2")
        assert scope.cancelled_caught
        if not conn.closed:
            cur = await conn.execute("SELECT 2")
            assert await cur.fetchone() == (2,)
    finally:
        await conn.close()


async def test_cancel_safe_from_another_task(pg_dsn: str) -> None:
    async with await connect(pg_dsn, autocommit=True) as conn:

        async def cancel_soon() -> None:
            await trio.sleep(0.2)
            await conn.cancel_safe()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_soon)
            with trio.fail_after(30), pytest.raises(psycopg.errors.QueryCanceled):
                await conn.execute("SELECT pg_sleep(60)")
        cur = await conn.execute("SELECT 4")
        assert await cur.fetchone() == (4,)


async def test_two_tasks_on_one_connection_is_a_clear_error(pg_dsn: str) -> None:
    async with await connect(pg_dsn, autocommit=True) as conn:

        async def sleeper() -> None:
            await conn.execute("SELECT pg_sleep(1)")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()  # the sleeper awaits its query's result
            with pytest.raises(psycopg.InterfaceError, match="connection busy"):
                await conn.execute("SELECT 1")
        cur = await conn.execute("SELECT 5")
        assert await cur.fetchone() == (5,)


async def test_connect_refused_is_a_clear_error(pg_dsn: str) -> None:
    port = _closed_port()
    with trio.fail_after(30), pytest.raises(psycopg.OperationalError, match=r"refused|failed"):
        await connect(f"host=127.0.0.1 port={port} user=root dbname=test")


async def test_connect_timeout_kwarg(silent_port: int) -> None:
    # The kwarg is exact seconds (libpq's own rule would make 1 into 2): the error names the
    # timeout applied, and it waited at least that long. Without a timeout the connect would
    # wait forever on the silent port, which the outer fail_after turns into a failure.
    start = trio.current_time()
    with (trio.fail_after(ENDED_BY_THE_CANCELLATION),
          pytest.raises(psycopg.errors.ConnectionTimeout, match=r"expired after 1 s\b")):
        await connect(f"host=127.0.0.1 port={silent_port} sslmode=disable", connect_timeout=1)
    assert trio.current_time() - start >= 0.9


async def test_connect_is_cancellable(silent_port: int) -> None:
    # No timeout: the connect itself would never end, so ending at all is the cancellation.
    start = trio.current_time()
    with trio.move_on_after(0.2) as scope:
        await connect(f"host=127.0.0.1 port={silent_port} sslmode=disable")
    assert scope.cancelled_caught
    assert trio.current_time() - start < ENDED_BY_THE_CANCELLATION


async def test_connect_timeout_from_conninfo(silent_port: int) -> None:
    start = trio.current_time()
    with (trio.fail_after(ENDED_BY_THE_CANCELLATION),
          pytest.raises(psycopg.errors.ConnectionTimeout, match=r"expired after 2 s\b")):
        # libpq rules: at least 2 seconds (the error names the timeout applied)
        await connect(f"host=127.0.0.1 port={silent_port} sslmode=disable connect_timeout=1")
    assert trio.current_time() - start >= 1.9


async def test_multi_host_attempts(pg_dsn: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    port = info.get("port") or 5432
    conninfo = psycopg.conninfo.make_conninfo(
        pg_dsn, host="127.0.0.1,127.0.0.1", port=f"{_closed_port()},{port}"
    )
    async with await connect(conninfo, autocommit=True, connect_timeout=3) as conn:
        cur = await conn.execute("SELECT 6")
        assert await cur.fetchone() == (6,)

    bad = psycopg.conninfo.make_conninfo(
        pg_dsn, host="127.0.0.1,127.0.0.1", port=f"{_closed_port()},{_closed_port()}"
    )
    with pytest.raises(psycopg.OperationalError, match="Multiple connection attempts"):
        await connect(bad)


async def test_check_alive_nowait_detects_terminated_backend(pg_dsn: str) -> None:
    conn = await connect(pg_dsn, autocommit=True)
    try:
        assert conn.check_alive_nowait()
        async with await connect(pg_dsn, autocommit=True) as killer:
            await killer.execute(
                "SELECT pg_terminate_backend(%s, 5000)", (conn.pgconn.backend_pid,)
            )
        for _ in range(300):  # pg_terminate_backend(pid, 5000) returns once it has exited
            if not conn.check_alive_nowait():
                break
            await trio.sleep(0.01)
        assert conn.closed
    finally:
        await conn.close()


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.005, 0.02, 0.06, 0.12])
async def test_cancelling_a_query_mid_pipeline_ends_it_cleanly(
    pg_dsn: str, delay: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled while a pipeline waits for results (some already in, one still running):
    the connection is closed quietly (a pipeline cut mid-flight cannot go on; nothing is
    logged a user would see, as on Ctrl+C during a shutdown), and psycopg's protocol
    generators are finished by then - not left suspended for the garbage collector to close
    later, when the pipeline's ``finally`` would talk to the server ("RuntimeError: generator
    ignored GeneratorExit")."""
    conn = await connect(pg_dsn, autocommit=True)
    seen: list[Any] = []
    wait = conn.wait

    async def recording_wait(gen: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(gen)
        return await wait(gen, *args, **kwargs)

    conn.wait = recording_wait  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="romancy_notify")
    try:
        with trio.move_on_after(delay) as scope:
            async with conn.pipeline() as pipeline:
                await conn.execute("BEGIN")
                await conn.execute("SELECT %s::int", (1,))
                await conn.execute("SELECT pg_sleep(%s)", (0.05,))
                await pipeline.sync()
                await conn.execute("SELECT pg_sleep(%s)", (5,))
                await conn.execute("SELECT %s::int", (2,))
        assert scope.cancelled_caught
        assert conn.closed
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
        suspended = [g for g in seen if inspect.getgeneratorstate(g) == inspect.GEN_SUSPENDED]
        assert suspended == []  # (one never started holds no `finally` to run: harmless)
    finally:
        await conn.close()
