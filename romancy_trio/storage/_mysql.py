"""MySQL 8 / MariaDB driver: PyMySQL in worker threads (see ``_mysql_conn``).

A transaction is the connection's own (autocommit is off): its statements run one thread call
each, COMMIT ends it. There is no LISTEN/NOTIFY: ``notify`` queues the key, and after COMMIT
it is handed to this process's waiters; other processes learn of commits from the signal table
(``_mysql_signals``), written in the same transaction when the store opened with one.

InnoDB gives up on a transaction with a deadlock (1213) or a lock-wait timeout (1205). A
statement run on its own (`MysqlDatabase.execute`/``fetchall``/``fetch_batch``, the worker
session's) is retried transparently - nothing of it committed, so running it again is safe -
up to `DEADLOCK_RETRIES` times with a short random pause; each retry counts in `retries`. So
is a transaction given as a function (`MysqlDatabase.run_transaction`): the driver runs the
whole function again in a new transaction. Inside a plain ``async with transaction()`` the
block's own code would have to run again, which only its owner can do: the transaction is
rolled back and `RolledBack` (a `StorageUnavailableError`) raised, counted in
`rolled_back` (the scheduler then replays the instance from its history; a client call may
simply be repeated). The SQL avoids the deadlocks in the first place (see ``sql_mysql``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import pymysql
import trio

from romancy_notify import Hub, open_local_hub

from .._errors import LeaseLostError, StorageUnavailableError
from ._db import AfterCommit, LocalNotes, Params, Row, Statement
from ._gate import LIBRARY_CONNECTIONS, TransactionGate
from ._hubs import HubPlan
from ._mysql_conn import (
    DEADLOCK,
    LOCK_WAIT_TIMEOUT,
    MysqlConnection,
    MysqlParams,
    MysqlPool,
    check_version,
    connect_blocking,
    errno,
    is_lost,
    run_statement,
    server_version,
    unavailable,
)

log = logging.getLogger("romancy_trio.storage")
T = TypeVar("T")

DEADLOCK_RETRIES = 5
FENCED_OUT = 31001
"""MYSQL_ERRNO of ``romancy_fenced_out`` (SIGNAL in the storage migrations): a fenced write
found its lease gone."""


class Retry(Exception):
    """InnoDB rolled the transaction back (deadlock / lock-wait timeout)."""


class RolledBack(StorageUnavailableError):
    """InnoDB rolled this transaction back (deadlock / lock-wait timeout): nothing of it
    committed, and running it again may well succeed."""


def _translate(address: str, exc: pymysql.MySQLError) -> BaseException:
    code = errno(exc)
    if is_lost(exc):
        return unavailable(address, exc)
    if code == FENCED_OUT:
        return LeaseLostError(str(exc.args[-1]))
    if code in (DEADLOCK, LOCK_WAIT_TIMEOUT):
        return RolledBack(
            f"MySQL at {address}: the transaction was rolled back ({exc.args[-1]}); "
            "it can be retried")
    return exc


class MysqlTx:
    dialect = "mysql"

    def __init__(self, conn: MysqlConnection, db: MysqlDatabase) -> None:
        self.conn = conn
        self.db = db
        self.schema = db.schema
        self.notifications: list[tuple[str, str]] = []
        self.local: list[tuple[str, str]] = []
        self.after: list[tuple[Statement, LocalNotes]] = []

    async def _fetch(self, query: str, params: Params) -> tuple[int, list[Row]]:
        self.conn.in_transaction = True
        try:
            return await self.conn.fetch(query, params)
        except pymysql.MySQLError as exc:
            raise _translate(self.db.address, exc) from exc

    async def execute(self, query: str, params: Params = ()) -> int:
        return (await self._fetch(query, params))[0]

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        rows = (await self._fetch(query, params))[1]
        return rows[0] if rows else None

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return (await self._fetch(query, params))[1]

    async def notify(self, topic: str, payload: str) -> None:
        if (topic, payload) not in self.notifications:
            self.notifications.append((topic, payload))

    def notify_local(self, topic: str, payload: str) -> None:
        if (topic, payload) not in self.local:
            self.local.append((topic, payload))

    async def fetch_batch(self, statements: Sequence[Statement], *, then_commit: bool = False
                          ) -> list[list[Row]]:
        """In one thread call (the round trips stay: MySQL has no pipeline). ``then_commit``
        needs nothing here: the transaction commits when its block ends."""
        self.conn.in_transaction = True

        def run(raw: pymysql.Connection[Any]) -> list[list[Row]]:
            return [run_statement(raw, q, p)[1] for q, p in statements]

        try:
            return await self.conn.run(run)
        except pymysql.MySQLError as exc:
            raise _translate(self.db.address, exc) from exc

    async def commit_and_begin(self, statements: Sequence[Statement],
                               following: Sequence[Statement]
                               ) -> tuple[list[list[Row]], list[list[Row]]]:
        if self.after:
            raise RuntimeError("commit_and_begin: statements to run after COMMIT are pending")
        rows = await self.fetch_batch(statements)
        await self.commit()
        self.local.extend(self.notifications)
        self.notifications = []
        return rows, await self.fetch_batch(following)

    def after_commit(self, statement: Statement, local_notes: LocalNotes) -> None:
        self.after.append((statement, local_notes))

    async def commit(self) -> None:
        """COMMIT (with the cross-process signals first, in the same transaction)."""
        signals = self.db.signal_statements(self.notifications)
        if signals:
            await self.fetch_batch(signals)
        if not self.conn.in_transaction:
            return
        with trio.CancelScope(shield=True):  # once sent, COMMIT completes: no doubt left
            try:
                await self.conn.run(lambda raw: raw.commit())
            except pymysql.MySQLError as exc:
                raise _translate(self.db.address, exc) from exc
        self.conn.in_transaction = False

    async def run_after(self) -> None:
        for statement, local_notes in self.after:
            try:
                rows = await self.fetchall(*statement)
                await self.commit()
            except (pymysql.MySQLError, StorageUnavailableError) as exc:
                log.warning("a statement run after COMMIT failed; the fallback sweep redoes "
                            "its work: %s", exc)
                await self.conn.rollback()
                continue
            self.local.extend(local_notes(rows))


class MysqlDatabase:
    dialect = "mysql"

    def __init__(self, params: MysqlParams, *, schema: str, max_size: int = 10) -> None:
        self.origin = uuid.uuid4().hex
        params = dataclasses.replace(params, origin=self.origin)
        self.params = params
        self.schema = schema
        self.address = params.address
        self._after_commit: AfterCommit | None = None
        self.transactions = 0
        self.retries = 0
        """Statements run again after InnoDB rolled them back (deadlock, lock-wait timeout)."""
        self.rolled_back = 0
        """Transactions InnoDB rolled back that were not run again (raised as `RolledBack`)."""
        self.gate = TransactionGate(max_size)
        self.pool = MysqlPool(params, max_size + LIBRARY_CONNECTIONS)

    def signal_statements(self, notes: Sequence[tuple[str, str]]) -> list[Statement]:
        """The INSERT that announces a transaction's notifications to other processes
        (``_mysql_signals``), sent just before its COMMIT."""
        if not notes:
            return []
        values = ", ".join(["(%s, %s, @romancy_origin)"] * len(notes))
        params = [value for note in notes for value in note]
        return [(f"INSERT INTO {quote_name(self.schema)}.romancy_signals (topic, payload, "
                 f"origin) VALUES {values}", params)]

    def worker_session(self, *, on_connect: Statement | None, connect_timeout: float,
                       statement_timeout: float | None = None) -> MysqlWorkerSession:
        return MysqlWorkerSession(self, on_connect, statement_timeout)

    def open_hub(self, plan: HubPlan) -> AbstractAsyncContextManager[Hub]:
        """An in-process hub fed by this database's signal table, polled per worker."""
        return self._signal_hub(plan)

    @asynccontextmanager
    async def _signal_hub(self, plan: HubPlan) -> AsyncIterator[Hub]:
        from ._mysql_signals import SignalReader

        reader = SignalReader(self, dedicated=True, idle_interval=plan.signal_interval)
        try:
            async with open_local_hub(plan.topics, config=plan.config, fetch_elsewhere=reader,
                                      poll_interval=reader.tick(plan.signal_interval)) as hub:
                yield hub
        finally:
            with trio.CancelScope(shield=True):
                await reader.aclose()

    def set_after_commit(self, callback: AfterCommit) -> None:
        self._after_commit = callback

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        if notes and self._after_commit is not None:
            self._after_commit(notes)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MysqlTx]:
        try:
            async with self._transaction() as tx:
                yield tx
        except RolledBack:
            self.rolled_back += 1
            raise

    async def run_transaction(self, body: Callable[[MysqlTx], Awaitable[T]], *,
                              again: Callable[[], bool] | None = None) -> T:
        """`Database.run_transaction`: after InnoDB rolled it back (deadlock, lock-wait
        timeout), ``body`` runs again in a new transaction, up to `DEADLOCK_RETRIES` times
        (each counted in `retries`) while ``again()`` allows."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                async with self._transaction() as tx:
                    return await body(tx)
            except RolledBack:
                if attempt == DEADLOCK_RETRIES or (again is not None and not again()):
                    self.rolled_back += 1
                    raise
                self.retries += 1
                await trio.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[MysqlTx]:
        self.transactions += 1
        try:
            async with self.pool.connection() as conn:
                tx = MysqlTx(conn, self)
                try:
                    yield tx
                    await tx.commit()
                except BaseException:
                    await conn.rollback()
                    raise
                await tx.run_after()
        except pymysql.MySQLError as exc:
            raise _translate(self.address, exc) from exc
        except StorageUnavailableError:
            raise
        self.publish_local(tx.notifications + tx.local)

    async def _autocommit(self, statements: Sequence[Statement]) -> list[tuple[int, list[Row]]]:
        """Statements in one transaction of their own, retried after a deadlock."""
        self.transactions += 1

        def run(raw: pymysql.Connection[Any]) -> list[tuple[int, list[Row]]]:
            try:
                out = [run_statement(raw, q, p) for q, p in statements]
                raw.commit()
            except pymysql.MySQLError as exc:
                if not is_lost(exc):
                    raw.rollback()
                if errno(exc) in (DEADLOCK, LOCK_WAIT_TIMEOUT):
                    raise Retry(str(exc)) from exc
                raise
            return out

        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    return await conn.run(run)
            except Retry:
                if attempt == DEADLOCK_RETRIES:
                    self.rolled_back += 1
                    raise StorageUnavailableError(
                        f"MySQL at {self.address}: rolled back by InnoDB "
                        f"{DEADLOCK_RETRIES + 1} times in a row (deadlock / lock wait)") from None
                self.retries += 1
                await trio.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
            except pymysql.MySQLError as exc:
                raise _translate(self.address, exc) from exc
        raise AssertionError("unreachable")

    async def execute(self, query: str, params: Params = ()) -> int:
        return (await self._autocommit([(query, params)]))[0][0]

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        rows = (await self._autocommit([(query, params)]))[0][1]
        return rows[0] if rows else None

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return (await self._autocommit([(query, params)]))[0][1]

    async def fetch_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        return [rows for _, rows in await self._autocommit(statements)]

    async def aclose(self) -> None:
        await self.pool.aclose()


class MysqlWorkerSession:
    """A worker's lease renewals on a connection of its own, outside the pool (as on
    PostgreSQL: activities holding every pooled connection must not starve renewal)."""

    def __init__(self, db: MysqlDatabase, on_connect: Statement | None,
                 statement_timeout: float | None = None) -> None:
        self._db = db
        self._on_connect = on_connect
        self._statement_timeout = math.inf if statement_timeout is None else statement_timeout
        """A renewal answered later than the lease it extends is worth nothing: past this, the
        connection is dropped (a cancelled statement closes its socket) and
        `StorageUnavailableError` raised."""
        self._conn: MysqlConnection | None = None
        self._lock = trio.Lock()

    async def ensure(self) -> None:
        async with self._lock:
            await self._use()

    async def watch(self, deadline: float) -> None:
        await trio.sleep_until(deadline)

    async def _use(self) -> MysqlConnection:
        if self._conn is not None and not self._conn.poisoned:
            return self._conn
        conn = await self._db.pool.open_connection()
        if self._on_connect is not None:
            try:
                await conn.fetch(*self._on_connect)
            except BaseException:
                await conn.close()
                raise
        self._conn = conn
        return conn

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            conn = await self._use()

            def run(raw: pymysql.Connection[Any]) -> list[Row]:
                try:
                    rows = run_statement(raw, query, params)[1]
                    raw.commit()
                except pymysql.MySQLError as exc:
                    if not is_lost(exc):
                        raw.rollback()
                    raise
                return rows

            with trio.move_on_after(self._statement_timeout):
                for attempt in range(DEADLOCK_RETRIES + 1):
                    try:
                        return await conn.run(run)
                    except pymysql.MySQLError as exc:
                        if is_lost(exc):
                            await self._drop()
                        elif (errno(exc) in (DEADLOCK, LOCK_WAIT_TIMEOUT)
                              and attempt < DEADLOCK_RETRIES):
                            self._db.retries += 1  # rolled back whole: safe to run again
                            await trio.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
                            continue
                        raise _translate(self._db.address, exc) from exc
            await self._drop()
            raise StorageUnavailableError(
                f"MySQL (worker session): no answer within {self._statement_timeout:g} s")

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


async def check_server(params: MysqlParams) -> str:
    """Connect once and check the server: reachable, login accepted, the database exists, a
    version with SKIP LOCKED (MySQL >= 8.0, MariaDB >= 10.6). Creates nothing. Returns the
    server's version string."""

    def check() -> str:
        raw = connect_blocking(params, params.database)
        try:
            version = server_version(raw)
            check_version(version, params.address)
            return version
        finally:
            raw.close()

    try:
        return await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    except pymysql.MySQLError as exc:
        raise _translate(params.address, exc) from exc


def quote_name(name: str) -> str:
    """A MySQL identifier in backticks (a database / table name)."""
    if not name or len(name) > 64 or "`" in name or "\x00" in name:
        raise ValueError(f"bad MySQL database name {name!r}")
    return f"`{name}`"
