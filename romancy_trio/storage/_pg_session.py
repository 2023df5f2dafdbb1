"""A PostgreSQL connection of a worker's own, outside the pool: lease renewal and liveness.

Renewing leases on a pooled connection lets user work starve it: transactional activities that
hold every pooled connection for longer than a lease lasts make a healthy worker lose its
leases. This connection serves only the scheduler's own periodic statements (`Store` keeps
them short), so renewal never waits for an activity.

It also carries the worker's identity: right after it connects it runs ``on_connect`` (the
store's session-level advisory lock for this worker, see ``sql_postgres.worker_lock_key``), so
other workers can tell at once that this worker's session ended. It reconnects on the next use
after a failure (the caller decides how soon); a failure raises `StorageUnavailableError`.

A cut link cannot make it hang: its connections carry the database's `LinkTimeouts` (a
statement sent into the cut fails after ``tcp_user_timeout``; one whose answer is lost, after
the keepalive probes go unanswered), and every statement is bounded by ``statement_timeout``
besides (a renewal answered later than the lease it extends is worth nothing): past it, the
connection is closed and `StorageUnavailableError` raised.

A connection that reaches a standby (or a server refusing writes) counts as a failure and is
closed: after a failover the session reconnects to the promoted standby, lock included.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
import trio

from romancy_notify import LinkTimeouts
from romancy_notify.pg import TrioConnection, connect

from .._errors import StorageUnavailableError
from ._db import Params, Row, Statement
from ._pg_url import server_address

_LOST = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.ReadOnlySqlTransaction)

_IDLE = psycopg.pq.TransactionStatus.IDLE


class PostgresWorkerSession:
    def __init__(self, conninfo: str, *, on_connect: Statement | None,
                 connect_timeout: float | None, link: LinkTimeouts | None = None,
                 statement_timeout: float | None = None) -> None:
        self.conninfo = conninfo
        self._on_connect = on_connect
        self._connect_timeout = connect_timeout
        self._link = link
        self._statement_timeout = math.inf if statement_timeout is None else statement_timeout
        self._conn: TrioConnection[Any] | None = None
        self._lock = trio.Lock()
        self.connects = 0
        """Connections opened (the first one included): more than one means it reconnected."""

    async def ensure(self) -> None:
        """Connect (and take the worker's lock) unless a live connection is open already.
        Costs no round trip when it is: a closed socket is noticed without one."""
        async with self._lock:
            await self._use()

    async def watch(self, deadline: float) -> None:
        """Until ``deadline`` (Trio clock), watch the idle connection: a backend that ends
        (terminated, server shutting down) sends an error and closes the socket, and the
        connection is opened again (with the lock) at once - not at the next statement."""
        async with self._lock:
            while trio.current_time() < deadline:
                conn = await self._use()
                with trio.move_on_at(deadline):
                    await trio.lowlevel.wait_readable(conn.pgconn.socket)
                if not conn.check_alive_nowait():  # else a notice: the connection is fine
                    await self._drop()

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            conn = await self._use()
            try:
                with trio.move_on_after(self._statement_timeout):
                    cur = await conn.execute(query, params)
                    return await cur.fetchall()
                await self._drop()
                raise StorageUnavailableError(
                    f"PostgreSQL (worker session): no answer within "
                    f"{self._statement_timeout:g} s")
            except _LOST as exc:
                await self._drop()
                raise StorageUnavailableError(f"PostgreSQL (worker session): {exc}") from exc
            except BaseException:
                if conn.closed or conn.pgconn.transaction_status != _IDLE:
                    await self._drop()  # cancelled mid-statement: start afresh next time
                raise

    async def _use(self) -> TrioConnection[Any]:
        if self._conn is not None and self._conn.check_alive_nowait():
            return self._conn
        await self._drop()
        try:
            conn = await connect(self.conninfo, autocommit=True, link=self._link,
                                 connect_timeout=self._connect_timeout)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StorageUnavailableError(f"PostgreSQL (worker session): {exc}") from exc
        try:
            if conn.info.parameter_status("in_hot_standby") == "on":
                raise psycopg.OperationalError(
                    f"connected to a standby (read-only) at {server_address(self.conninfo)}")
            if self._on_connect is not None:
                with trio.fail_after(self._statement_timeout):
                    await conn.execute(*self._on_connect)
        except trio.TooSlowError:
            await conn.close()
            raise StorageUnavailableError(
                f"PostgreSQL (worker session): no answer within {self._statement_timeout:g} s"
            ) from None
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, _LOST):
                raise StorageUnavailableError(
                    f"PostgreSQL (worker session): {exc}") from exc
            raise
        self.connects += 1
        self._conn = conn
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()
