"""PostgreSQL driver: psycopg on Trio through the pool in ``notify``.

Connections are autocommit at the protocol level; :meth:`PostgresDatabase.transaction` opens an
explicit transaction. ``notify`` calls ``pg_notify`` inside the transaction so it fires on COMMIT,
and the same keys are also published in-process after COMMIT (a fast path for local waiters;
duplicates are harmless because notifications are hints).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql

from notify import notify_tx
from notify.pg import TrioConnection
from notify.pool import ConnectionPool

from .._errors import StorageUnavailableError
from ._db import AfterCommit, Params, Row


class PostgresTx:
    dialect = "postgres"

    def __init__(self, conn: TrioConnection[Any]) -> None:
        self.conn = conn
        self.notifications: list[tuple[str, str]] = []

    async def execute(self, query: str, params: Params = ()) -> int:
        cur = await self.conn.execute(query, params)
        return cur.rowcount

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        cur = await self.conn.execute(query, params)
        return await cur.fetchone()

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        cur = await self.conn.execute(query, params)
        return await cur.fetchall()

    async def notify(self, topic: str, payload: str) -> None:
        if (topic, payload) in self.notifications:
            return  # PostgreSQL folds duplicates per transaction anyway; skip the round trip
        await notify_tx(self.conn, topic, payload)
        self.notifications.append((topic, payload))


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, conninfo: str, *, schema: str, max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self._after_commit: AfterCommit | None = None
        self.transactions = 0
        """Transactions run (single statements count as one): the load this process puts on
        the database, e.g. to check that an idle worker stays quiet."""
        self.pool = ConnectionPool(
            conninfo, max_size=max_size, autocommit=True, configure=self._configure
        )

    async def _configure(self, conn: TrioConnection[Any]) -> None:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def set_after_commit(self, callback: AfterCommit) -> None:
        self._after_commit = callback

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        self.transactions += 1
        try:
            async with self.pool.connection() as conn:
                tx = PostgresTx(conn)
                async with conn.transaction():
                    yield tx
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # connection lost / server restarting / admin shutdown: retryable by the caller
            raise StorageUnavailableError(f"PostgreSQL: {exc}") from exc
        self.publish_local(tx.notifications)

    async def execute(self, query: str, params: Params = ()) -> int:
        async with self._autocommit() as conn:
            cur = await conn.execute(query, params)
            return cur.rowcount

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        async with self._autocommit() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        async with self._autocommit() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        if notes and self._after_commit is not None:
            self._after_commit(notes)

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[TrioConnection[Any]]:
        self.transactions += 1
        try:

            async with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StorageUnavailableError(f"PostgreSQL: {exc}") from exc

    async def aclose(self) -> None:
        await self.pool.aclose()


async def ensure_schema(conninfo: str, schema: str) -> None:
    """Create the schema if missing (idempotent, safe when several workers start at once)."""
    from notify.pg import connect

    conn = await connect(conninfo, autocommit=True)
    try:
        try:
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
        except psycopg.errors.UniqueViolation:
            pass  # a concurrent CREATE SCHEMA IF NOT EXISTS won the race; the schema exists
    finally:
        await conn.close()
