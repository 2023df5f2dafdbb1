"""SQLite driver: the standard library's sqlite3, off the event loop, one writer at a time.

One connection in WAL mode. Every call runs in a worker thread (``trio.to_thread``); a Trio lock
serialises transactions, so there is exactly one writer per process. Notifications are delivered
in-process after COMMIT; other processes sharing the file learn of this one's commits from
`changed_elsewhere` (``PRAGMA data_version``), which their hubs poll.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import trio

from romancy_notify import Hub, open_local_hub

from .. import _clock
from .._errors import StorageUnavailableError
from ._db import AfterCommit, LocalNotes, Params, Row, Statement
from ._gate import TransactionGate
from ._hubs import HubPlan

T = TypeVar("T")


def _args(params: Params) -> Any:
    return params if isinstance(params, Mapping) else tuple(params)


class SqliteTx:
    dialect = "sqlite"
    schema = "main"

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.notifications: list[tuple[str, str]] = []
        self.after: list[tuple[Statement, LocalNotes]] = []

    async def execute(self, query: str, params: Params = ()) -> int:
        return await self._db.run(lambda c: c.execute(query, _args(params)).rowcount)

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        row = await self._db.run(lambda c: c.execute(query, _args(params)).fetchone())
        return tuple(row) if row is not None else None

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        rows = await self._db.run(lambda c: c.execute(query, _args(params)).fetchall())
        return [tuple(r) for r in rows]

    async def notify(self, topic: str, payload: str) -> None:
        self._queue(topic, payload)

    def _queue(self, topic: str, payload: str) -> None:
        if (topic, payload) not in self.notifications:
            self.notifications.append((topic, payload))

    async def fetch_batch(self, statements: Sequence[Statement], *, then_commit: bool = False
                          ) -> list[list[Row]]:
        """One after another (SQLite has no round trips to save); with ``then_commit`` too,
        since the transaction commits on leaving it."""
        return [await self.fetchall(query, params) for query, params in statements]

    def notify_local(self, topic: str, payload: str) -> None:
        self._queue(topic, payload)  # every SQLite notification is in-process

    async def commit_and_begin(self, statements: Sequence[Statement],
                               following: Sequence[Statement]
                               ) -> tuple[list[list[Row]], list[list[Row]]]:
        if self.after:
            raise RuntimeError("commit_and_begin: statements to run after COMMIT are pending")
        rows = await self.fetch_batch(statements)
        await self._db.run(lambda c: c.execute("COMMIT"))
        self._db.publish_local(self.notifications)
        self.notifications = []
        await self._db.run(lambda c: c.execute("BEGIN IMMEDIATE"))  # still the one writer
        return rows, await self.fetch_batch(following)

    def after_commit(self, statement: Statement, local_notes: LocalNotes) -> None:
        self.after.append((statement, local_notes))  # run last, before COMMIT (one writer)

    async def run_after(self) -> None:
        for (query, params), local_notes in self.after:
            for topic, payload in local_notes(await self.fetchall(query, params)):
                self._queue(topic, payload)


class SqliteDatabase:
    dialect = "sqlite"
    retries = 0  # nothing to retry: see Database.retries
    rolled_back = 0
    schema = "main"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._writer = trio.Lock()
        self._after_commit: AfterCommit | None = None
        self._data_version = 0
        self.gate = TransactionGate(None)
        """Not bounded here: the one writer lock already serialises transactions."""

    async def open(self) -> None:
        def _open() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.create_function("romancy_now", 0, _clock.now)  # the app's durable clock
            return conn

        try:
            self._conn = await trio.to_thread.run_sync(_open, limiter=self._limiter)
        except sqlite3.OperationalError as exc:  # e.g. its directory does not exist
            raise StorageUnavailableError(f"SQLite {self.path!r}: cannot open: {exc}") from exc
        self._data_version = await self.run(_data_version)

    async def changed_elsewhere(self) -> bool:
        """Has another connection (another process) committed since the last call?

        ``PRAGMA data_version`` on this process's one connection: it changes with every
        commit made through another connection, never with this one's own (which this
        process already announces in-process). A database error answers True (re-check)."""
        try:
            version = await self._guarded(_data_version)
        except StorageUnavailableError:
            return True
        changed, self._data_version = version != self._data_version, version
        return changed

    def worker_session(self, *, on_connect: Statement | None, connect_timeout: float,
                       statement_timeout: float | None = None) -> _SqliteWorkerSession:
        """The one connection serves the worker's own statements too (``on_connect``: none
        on SQLite; its one writer makes every transaction short or serial anyway)."""
        return _SqliteWorkerSession(self)

    def open_hub(self, plan: HubPlan) -> AbstractAsyncContextManager[Hub]:
        """An in-process hub; a file database's is told when another process wrote."""
        polled = plan.file_poll_interval is not None and self.path not in ("", ":memory:")
        return open_local_hub(plan.topics, config=plan.config,
                              changed_elsewhere=self.changed_elsewhere if polled else None,
                              poll_interval=plan.file_poll_interval or 1.0)

    def set_after_commit(self, callback: AfterCommit) -> None:
        self._after_commit = callback

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the SQLite database is not open")
        return await trio.to_thread.run_sync(lambda: fn(conn), limiter=self._limiter)

    async def run_transaction(self, body: Callable[[SqliteTx], Awaitable[T]], *,
                              again: Callable[[], bool] | None = None) -> T:
        """`Database.run_transaction`: runs ``body`` once (nothing here is run again)."""
        async with self.transaction() as tx:
            return await body(tx)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        try:
            async with self._transaction() as tx:
                yield tx
        except sqlite3.OperationalError as exc:
            raise StorageUnavailableError(f"SQLite {self.path!r}: {exc}") from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SqliteTx]:
        async with self._writer:
            await self.run(lambda c: c.execute("BEGIN IMMEDIATE"))
            tx = SqliteTx(self)
            try:
                yield tx
                await tx.run_after()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.run(lambda c: c.execute("ROLLBACK"))
                raise
            with trio.CancelScope(shield=True):
                # Once COMMIT is sent it completes: a cancellation here must not leave doubt
                # about whether the transaction happened.
                await self.run(lambda c: c.execute("COMMIT"))
        self.publish_local(tx.notifications)

    async def execute(self, query: str, params: Params = ()) -> int:
        async with self._writer:
            return await self._guarded(lambda c: c.execute(query, _args(params)).rowcount)

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        async with self._writer:
            row = await self._guarded(lambda c: c.execute(query, _args(params)).fetchone())
        return tuple(row) if row is not None else None

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        async with self._writer:
            rows = await self._guarded(lambda c: c.execute(query, _args(params)).fetchall())
        return [tuple(r) for r in rows]

    async def fetch_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        async with self.transaction() as tx:
            return await tx.fetch_batch(statements, then_commit=True)

    async def _guarded(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self.run(fn)
        except sqlite3.OperationalError as exc:
            raise StorageUnavailableError(f"SQLite {self.path!r}: {exc}") from exc

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        if notes and self._after_commit is not None:
            self._after_commit(notes)

    async def executescript(self, script: str) -> None:
        await self.run(lambda c: c.executescript(script))

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close, limiter=self._limiter)


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


async def open_sqlite(path: str) -> SqliteDatabase:
    db = SqliteDatabase(path)
    await db.open()
    return db


class _SqliteWorkerSession:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def ensure(self) -> None:
        return None

    async def watch(self, deadline: float) -> None:
        await trio.sleep_until(deadline)

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return await self._db.fetchall(query, params)

    async def aclose(self) -> None:
        return None
