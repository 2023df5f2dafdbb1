"""PostgreSQL driver: psycopg on Trio through the pool in ``notify``.

Connections are autocommit at the protocol level; :meth:`PostgresDatabase.transaction` opens an
explicit transaction. ``notify`` calls ``pg_notify`` inside the transaction so it fires on COMMIT,
and the same keys are also published in-process after COMMIT (a fast path for local waiters;
duplicates are harmless because notifications are hints).

A transaction's BEGIN travels with its first statement if that has parameters (both sent in one
pipeline sync: one round trip instead of two; a statement without parameters may be several,
which only the simple protocol runs). Its NOTIFYs are queued and travel with COMMIT (one round
trip; they still fire if and only if it commits). Statements given together (``fetch_batch``)
share one pipeline: one round trip, COMMIT included when they end the transaction. Statements
given to ``after_commit`` follow COMMIT in the same pipeline, together with the NOTIFYs (one
implicit transaction that sees what COMMIT made visible); ``commit_and_begin`` commits and
opens the next transaction on the same connection in one round trip. A transaction that ran no
statement sends neither BEGIN nor COMMIT. Whatever leaves the block by an exception is rolled
back by the pool (shielded), or the connection is discarded.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from romancy_notify import Hub, LinkTimeouts, check_notification, notify_tx
from romancy_notify.pg import TrioConnection
from romancy_notify.pool import ConnectionPool

from .._errors import LeaseLostError, StorageUnavailableError
from ._db import AfterCommit, LocalNotes, Params, Row, Statement
from ._gate import LIBRARY_CONNECTIONS, TransactionGate
from ._hubs import HubPlan, postgres_hub
from ._pg_session import PostgresWorkerSession
from ._pg_url import connect_timeout as url_connect_timeout
from ._pg_url import server_address

T = TypeVar("T")

log = logging.getLogger("romancy_trio.storage")

FENCED_OUT = "RT001"
"""SQLSTATE of ``romancy_fenced_out()`` (migration 0003): a fenced write found its lease gone."""

LOST = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.ReadOnlySqlTransaction)
"""What makes a connection unusable for the library: lost (server gone, restarting, admin
shutdown) or on a server that refuses writes (a standby before its promotion, a primary set
read-only). Raised as `StorageUnavailableError` (retryable); the connection is not kept."""


class ReadOnlyServer(psycopg.OperationalError):
    """A new connection reached a server in hot standby (read-only) mode."""


def require_primary(conn: TrioConnection[Any], address: str) -> None:
    """Raise `ReadOnlyServer` if ``conn`` is on a standby. Free: PostgreSQL 14+ reports
    ``in_hot_standby`` when the connection starts (older servers: checked at the first
    write, which fails with ``ReadOnlySqlTransaction``)."""
    if conn.info.parameter_status("in_hot_standby") == "on":
        raise ReadOnlyServer(
            f"connected to a standby (in hot standby mode, read-only) at {address}: "
            "romancy_trio needs the primary. With several hosts, add "
            "target_session_attrs=read-write to the URL; a standby being promoted is "
            "found once it accepts writes")


async def _discard_if_read_only(conn: TrioConnection[Any], exc: BaseException) -> None:
    """A connection whose server refused a write is not kept (the pool discards it)."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        await conn.close()


class PostgresTx:
    dialect = "postgres"

    def __init__(self, conn: TrioConnection[Any], schema: str, address: str = "") -> None:
        self.conn = conn
        self.schema = schema
        self.address = address
        self.notifications: list[tuple[str, str]] = []
        self.local: list[tuple[str, str]] = []
        """Notifications statements sent themselves: only published in-process."""
        self.begun = False
        self.committed = False
        self.after: list[tuple[Statement, LocalNotes]] = []
        self._after_cursors: list[psycopg.AsyncCursor[Row]] = []
        self._commit_cursor: psycopg.AsyncCursor[Row] | None = None

    async def _run(self, query: str, params: Params, fetch: bool | None) -> Any:
        """BEGIN first if not yet sent. ``fetch`` None: on a fresh cursor, returned; else on the
        connection's kept one (`TrioConnection.run`): (rowcount, first row if ``fetch``)."""
        if self.committed:
            raise RuntimeError("this transaction already committed with its last statement")
        try:
            if not self.begun:
                if params:  # BEGIN and the first statement: one round trip
                    async with self.conn.pipeline():
                        await self.conn.execute("BEGIN")
                        cur = await self.conn.execute(query, params)
                    self.begun = True
                    if fetch is None:
                        return cur
                    return cur.rowcount, await cur.fetchone() if fetch else None
                # no params: maybe several statements: simple protocol, which pipelines can't do
                await self.conn.run("BEGIN")
                self.begun = True
            if fetch is None:  # no params: None, so that a literal % stays as it is
                return await self.conn.execute(query, params or None)
            return await self.conn.run(query, params or None, fetch=fetch)
        except LOST as exc:
            # raised here, not only when the transaction ends: a transactional activity's
            # statement that fails this way is the database's failure, not the activity's
            await _discard_if_read_only(self.conn, exc)
            raise unavailable(self.address, exc) from exc

    async def execute(self, query: str, params: Params = ()) -> int:
        rowcount: int = (await self._run(query, params, False))[0]
        return rowcount

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        row: Row | None = (await self._run(query, params, True))[1]
        return row

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        cur: psycopg.AsyncCursor[Row] = await self._run(query, params, None)
        return await cur.fetchall()

    async def notify(self, topic: str, payload: str) -> None:
        """Queue ``pg_notify(topic, payload)``: it is sent with COMMIT (one round trip), so it
        still fires if and only if the transaction commits."""
        if self.committed:
            raise RuntimeError("this transaction already committed: the NOTIFY would be lost")
        if (topic, payload) in self.notifications:
            return  # PostgreSQL folds duplicates per transaction anyway
        check_notification(topic, payload)
        self.notifications.append((topic, payload))

    async def fetch_batch(self, statements: Sequence[Statement], *, then_commit: bool = False
                          ) -> list[list[Row]]:
        """BEGIN if none was sent, the statements (and with ``then_commit`` the NOTIFYs and
        COMMIT) in one pipeline: one round trip. An error skips the rest of the pipeline:
        nothing more runs, nothing commits."""
        if self.committed:
            raise RuntimeError("this transaction already committed with its last statement")
        if len(statements) == 1 and not then_commit:  # a pipeline of one only costs more
            return [await _rows(await self._run(*statements[0], None))]
        async with self._pipeline():
            cursors = await self._send(statements)
            if then_commit:
                await self._send_commit()
        if then_commit:
            self.committed = True
            await self._collect_after()
        return [await _rows(cur) for cur in cursors]

    def notify_local(self, topic: str, payload: str) -> None:
        if (topic, payload) not in self.local:
            self.local.append((topic, payload))

    async def commit_and_begin(self, statements: Sequence[Statement],
                               following: Sequence[Statement]
                               ) -> tuple[list[list[Row]], list[list[Row]]]:
        if self.committed or self.after:
            raise RuntimeError("commit_and_begin: the transaction already committed, or has "
                               "statements to run after its COMMIT")
        async with self.conn.pipeline():  # any error raises: the new transaction is unusable
            cursors = await self._send(statements)
            await self._send_commit()
            await self.conn.execute("BEGIN")
            next_cursors = [await self.conn.execute(q, p) for q, p in following]
        self.begun, self._commit_cursor = True, None  # the new transaction
        self.local.extend(self.notifications)  # what committed: for this process's waiters
        self.notifications = []
        return ([await _rows(cur) for cur in cursors],
                [await _rows(cur) for cur in next_cursors])

    def after_commit(self, statement: Statement, local_notes: LocalNotes) -> None:
        if self.committed:
            raise RuntimeError("this transaction already committed with its last statement")
        self.after.append((statement, local_notes))

    async def commit(self) -> None:
        if self.committed:
            return
        if not self.notifications and not self.after:
            if self.begun:
                await self.conn.run("COMMIT")
            return
        async with self._pipeline():  # the NOTIFYs, COMMIT and what follows: one round trip
            await self._send_commit()
        self.committed = True
        await self._collect_after()

    async def _send(self, statements: Sequence[Statement]) -> list[psycopg.AsyncCursor[Row]]:
        """In an open pipeline: BEGIN if none was sent, then the statements."""
        if not self.begun:
            await self.conn.execute("BEGIN")
            self.begun = True
        return [await self.conn.execute(query, params) for query, params in statements]

    async def _send_commit(self) -> None:
        """In an open pipeline: the queued NOTIFYs and COMMIT; or, with after-commit
        statements, COMMIT, then the NOTIFYs and those statements, which PostgreSQL runs as
        one implicit transaction up to the pipeline's Sync: it sees what COMMIT made
        visible, and listeners are woken once for all the notifications, not twice."""
        if not self.after:
            for topic, payload in self.notifications:
                await notify_tx(self.conn, topic, payload)
        if self.begun:
            self._commit_cursor = await self.conn.execute("COMMIT")
        if self.after:
            for topic, payload in self.notifications:
                await notify_tx(self.conn, topic, payload)
        self._after_cursors = [await self.conn.execute(q, p) for (q, p), _ in self.after]

    @asynccontextmanager
    async def _pipeline(self) -> AsyncIterator[None]:
        """A pipeline. If it fails after its COMMIT went through, the failure came from an
        after-commit statement: the transaction stands, the failure is logged."""
        try:
            async with self.conn.pipeline():
                yield
        except psycopg.Error as exc:
            commit = self._commit_cursor
            if commit is None or commit.pgresult is None or commit.statusmessage != "COMMIT":
                raise
            log.warning("a statement sent after COMMIT failed; the fallback sweep redoes its "
                        "work: %s", exc)
            self._after_cursors = []

    async def _collect_after(self) -> None:
        for cur, (_, local_notes) in zip(self._after_cursors, self.after, strict=False):
            self.local.extend(local_notes(await _rows(cur)))


def unavailable(address: str, exc: BaseException, note: str = "") -> StorageUnavailableError:
    """The error for a database that cannot be reached or dropped the connection: it names
    the server and the cause (psycopg's message, on one line)."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    return StorageUnavailableError(f"PostgreSQL at {address} is unavailable{note}: {cause}")


async def _rows(cur: psycopg.AsyncCursor[Row]) -> list[Row]:
    """Every row a statement returned; none for one that returns no rows (an UPDATE)."""
    return await cur.fetchall() if cur.description is not None else []


class PostgresDatabase:
    dialect = "postgres"
    retries = 0  # nothing to retry: see Database.retries
    rolled_back = 0

    def __init__(self, conninfo: str, *, schema: str, max_size: int = 10,
                 link: LinkTimeouts | None = None, session_conninfo: str | None = None,
                 prepared_statements: bool = True) -> None:
        self.conninfo = conninfo
        self.link = link
        """Keepalives and ``tcp_user_timeout`` of every connection it opens (both ends)."""
        self.session_conninfo = session_conninfo or conninfo
        """Where the worker session goes (`worker_session`): a session-level advisory lock
        needs a connection of its own on the server, not one a pooler shares."""
        self.schema = schema
        self.address = server_address(conninfo)
        self._after_commit: AfterCommit | None = None
        self.transactions = 0
        """Transactions run (single statements count as one): the load this process puts on
        the database, e.g. to check that an idle worker stays quiet."""
        self.gate = TransactionGate(max_size)
        """Activities' transactions: ``max_size`` at once; the pool has room for those and
        `LIBRARY_CONNECTIONS` more, which only the library's own statements can take."""
        self.pool = ConnectionPool(conninfo, max_size=max_size + LIBRARY_CONNECTIONS,
                                   autocommit=True, link=link, configure=self._configure,
                                   connect_timeout=url_connect_timeout(conninfo, 10.0),
                                   prepare_threshold=5 if prepared_statements else None)
        """No session state on its connections (no ``SET search_path``, no prepared statements
        unless asked for): library statements name their schema (``storage.qualify``), user
        statements resolve in the user's own search_path, and a transaction-pooling proxy may
        hand each transaction to another server connection."""

    async def _configure(self, conn: TrioConnection[Any]) -> None:
        require_primary(conn, self.address)

    def worker_session(self, *, on_connect: Statement | None, connect_timeout: float,
                       statement_timeout: float | None = None) -> PostgresWorkerSession:
        """``connect_timeout``: unless the URL sets its own."""
        return PostgresWorkerSession(
            self.session_conninfo, on_connect=on_connect,
            connect_timeout=url_connect_timeout(self.session_conninfo, connect_timeout),
            link=self.link, statement_timeout=statement_timeout)

    def open_hub(self, plan: HubPlan) -> AbstractAsyncContextManager[Hub]:
        """A hub fed by LISTEN on a dedicated connection."""
        return postgres_hub(plan)

    def set_after_commit(self, callback: AfterCommit) -> None:
        self._after_commit = callback

    async def run_transaction(self, body: Callable[[PostgresTx], Awaitable[T]], *,
                              again: Callable[[], bool] | None = None) -> T:
        """`Database.run_transaction`: runs ``body`` once (nothing here is run again)."""
        async with self.transaction() as tx:
            return await body(tx)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        self.transactions += 1
        try:
            async with self.pool.connection() as conn:
                tx = PostgresTx(conn, self.schema, self.address)
                try:
                    yield tx
                    await tx.commit()
                except LOST as exc:
                    await _discard_if_read_only(conn, exc)
                    raise
        except LOST as exc:
            # connection lost / server restarting / admin shutdown / a standby: retryable
            raise unavailable(self.address, exc) from exc
        except psycopg.Error as exc:
            if exc.sqlstate == FENCED_OUT:
                raise LeaseLostError(exc.diag.message_primary or str(exc)) from None
            raise
        self.publish_local(tx.notifications + tx.local)

    async def execute(self, query: str, params: Params = ()) -> int:
        return (await self._statement(query, params, False))[0]

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        return (await self._statement(query, params, True))[1]

    async def _statement(self, query: str, params: Params, fetch: bool
                         ) -> tuple[int, Row | None]:
        """One autocommit statement (as `_autocommit`, inlined: the hot path): its rowcount
        and, with ``fetch``, its first row."""
        self.transactions += 1
        try:
            async with self.pool.connection() as conn:
                try:
                    return await conn.run(query, params, fetch=fetch)
                except LOST as exc:
                    await _discard_if_read_only(conn, exc)
                    raise
        except LOST as exc:
            raise unavailable(self.address, exc) from exc

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        async with self._autocommit() as conn:
            cur = await conn.execute(query, params)  # (a fresh cursor: keeps no rows)
            return await cur.fetchall()

    async def fetch_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """One pipeline without BEGIN: PostgreSQL runs the statements up to its Sync as one
        implicit transaction (all or nothing), in one round trip."""
        async with self._autocommit() as conn:
            async with conn.pipeline():
                cursors = [await conn.execute(query, params) for query, params in statements]
            return [await _rows(cur) for cur in cursors]

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        if notes and self._after_commit is not None:
            self._after_commit(notes)

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[TrioConnection[Any]]:
        self.transactions += 1
        try:
            async with self.pool.connection() as conn:
                try:
                    yield conn
                except LOST as exc:
                    await _discard_if_read_only(conn, exc)
                    raise
        except LOST as exc:
            raise unavailable(self.address, exc) from exc

    async def aclose(self) -> None:
        await self.pool.aclose()


async def ensure_schema(conninfo: str, schema: str, *, wait_for_database: float = 0.0,
                        link: LinkTimeouts | None = None) -> None:
    """Create the schema if missing (idempotent, safe when several workers start at once).

    The first connection of a process: if the server cannot be reached it raises
    `StorageUnavailableError` naming host, port and cause - after retrying for up to
    ``wait_for_database`` seconds (attempts close together at first, then backing off)."""
    from romancy_notify import NotifyConfig
    from romancy_notify.pg import connect

    address = server_address(conninfo)
    deadline = trio.current_time() + wait_for_database
    delays = NotifyConfig().reconnect_delays(random.Random())
    # libpq's default connect timeout is 130 s: bound each attempt unless the URL says
    own_timeout = "connect_timeout" in conninfo_to_dict(conninfo)
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - trio.current_time()
        try:
            conn = await connect(conninfo, autocommit=True, link=link,
                                 connect_timeout=None if own_timeout else max(remaining, 10.0))
            try:
                require_primary(conn, address)  # a standby being promoted: wait for it
            except ReadOnlyServer:
                await conn.close()
                raise
            break
        except psycopg.OperationalError as exc:
            delay = next(delays)
            if trio.current_time() + delay > deadline:
                waited = (f" (still, after waiting {wait_for_database:g} s: {attempts} "
                          "attempts)" if wait_for_database > 0 else "")
                raise unavailable(address, exc, waited) from exc
            if attempts == 1:
                log.warning("PostgreSQL at %s is unavailable (%s); waiting up to %g s for it",
                            address, " ".join(str(exc).split()), wait_for_database)
            await trio.sleep(delay)
    try:
        try:
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
        except psycopg.errors.UniqueViolation:
            pass  # a concurrent CREATE SCHEMA IF NOT EXISTS won the race; the schema exists
        except LOST as exc:
            raise unavailable(address, exc) from exc
    finally:
        await conn.close()
