"""A small bounded pool of `TrioConnection`, lent to one task at a time.

Decisions:

- Bound: at most ``max_size`` connections are lent at once (a `trio.Semaphore`); waiting for a
  slot is a checkpoint and can be cancelled. Connections open lazily, on demand.
- Return: a connection goes back to the idle list only if it is open, healthy and IDLE. If the
  block raised (trio.Cancelled included) and it is in a transaction (INTRANS/INERROR), it is
  rolled back, shielded and bounded by ``reset_timeout``; if that fails it is discarded. A closed,
  broken, still ACTIVE or pipeline-mode connection is discarded. Leaving the block *normally*
  inside a transaction is a caller bug (with ``autocommit=False`` even a SELECT opens one): the
  pool rolls back, keeps the (clean) connection and raises `psycopg.ProgrammingError`, rather
  than silently dropping or committing the work. Use ``async with conn.transaction()``.
- Reuse: idle connections are reused last-in first-out. One idle for more than ``max_idle`` s is
  closed instead. Before lending an idle connection, its socket is polled without blocking: a
  server that terminated it (pg_terminate_backend, restart) has sent an error and EOF, which
  marks it broken, and it is discarded. One idle for more than ``ping_after`` s is also pinged
  with an empty query (one round trip), for peers that vanished silently. A connection can still
  die between that check and its first use: callers see an `psycopg.OperationalError` then.
- Recovery: when a lent connection comes back broken (the server restarted or went away), every
  connection idle since before then is pinged before it is lent, so one failure per outage
  reaches a caller, not one per pooled connection; broken ones are replaced by new ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg
import trio
from psycopg import pq

from .pg import TrioConnection

__all__ = ["ConnectionPool", "PoolClosed", "PoolStatistics", "open_pool"]

logger = logging.getLogger(__name__)

_IDLE = pq.TransactionStatus.IDLE
_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


class PoolClosed(psycopg.OperationalError):
    """The pool was closed."""


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    max_size: int
    size: int  # open connections: idle + in use
    idle: int
    in_use: int
    waiting: int  # tasks waiting for a free slot
    opened: int  # connections opened since the pool was created
    discarded: int  # connections closed as broken, expired, dirty or failing a check


class ConnectionPool:
    """Lend `TrioConnection` objects to one task at a time; at most ``max_size`` at once.

    ``configure`` runs once on each new connection and must leave it IDLE (commit, or use
    ``autocommit=True``). ``connect_kwargs`` are psycopg connection parameters.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int = 10,
        autocommit: bool = False,
        connect_timeout: float | None = 10.0,
        configure: Callable[[TrioConnection[Any]], Awaitable[None]] | None = None,
        max_idle: float = 300.0,
        ping_after: float = 1.0,
        reset_timeout: float = 5.0,
        **connect_kwargs: Any,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.conninfo = conninfo
        self.max_size = max_size
        self._autocommit = autocommit
        self._connect_timeout = connect_timeout
        self._configure = configure
        self._max_idle = max_idle
        self._ping_after = ping_after
        self._reset_timeout = reset_timeout
        self._connect_kwargs = connect_kwargs
        self._slots = trio.Semaphore(max_size)
        self._idle: list[tuple[TrioConnection[Any], float]] = []  # (conn, idle since), LIFO
        self._in_use = 0
        self._opened = 0
        self._discarded = 0
        self._closed = False
        self._suspect_before = -math.inf  # idle since before this: ping before lending

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> PoolStatistics:
        idle = len(self._idle)
        waiting = self._slots.statistics().tasks_waiting
        return PoolStatistics(
            max_size=self.max_size,
            size=idle + self._in_use,
            idle=idle,
            in_use=self._in_use,
            waiting=waiting,
            opened=self._opened,
            discarded=self._discarded,
        )

    def connection(self) -> AbstractAsyncContextManager[TrioConnection[Any]]:
        """Lend a connection for the block; see the module docstring for what happens after."""
        return _Lent(self)

    async def aclose(self) -> None:
        """Close the idle connections; ones in use are closed when given back."""
        self._closed = True
        while self._idle:
            await self._idle.pop()[0].close()

    async def _get(self) -> TrioConnection[Any]:
        while self._idle:
            conn, since = self._idle.pop()
            idle_for = trio.current_time() - since
            try:
                ok = idle_for <= self._max_idle and conn.check_alive_nowait()
                if ok and (idle_for > self._ping_after or since <= self._suspect_before):
                    ok = await self._ping(conn)
            except BaseException:
                await self._discard(conn)
                raise
            if ok:
                return conn
            await self._discard(conn)
        return await self._open()

    async def _open(self) -> TrioConnection[Any]:
        conn = await TrioConnection[Any].connect(
            self.conninfo,
            autocommit=self._autocommit,
            connect_timeout=self._connect_timeout,
            **self._connect_kwargs,
        )
        self._opened += 1
        try:
            if self._configure is not None:
                await self._configure(conn)
            if conn.pgconn.transaction_status != _IDLE:
                status = pq.TransactionStatus(conn.pgconn.transaction_status).name
                raise psycopg.ProgrammingError(
                    f"configure left the connection {status}: commit, or use autocommit=True"
                )
        except BaseException:
            await self._discard(conn)
            raise
        return conn

    async def _ping(self, conn: TrioConnection[Any]) -> bool:
        """One round trip that starts no transaction; False if the connection is dead."""
        try:
            if conn.autocommit:
                await conn.execute("")
            else:
                await conn.set_autocommit(True)
                await conn.execute("")
                await conn.set_autocommit(False)
        except psycopg.OperationalError as ex:
            logger.info("idle connection failed its check: %s", ex)
            return False
        return True

    async def _put(self, conn: TrioConnection[Any], *, failed: bool) -> None:
        pgconn = conn.pgconn
        dirty = not conn.closed and pgconn.transaction_status in _IN_TRANSACTION
        if dirty and pgconn.pipeline_status == pq.PipelineStatus.OFF:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._reset_timeout
                try:
                    await conn.rollback()
                except psycopg.Error as ex:
                    logger.warning("rollback of a returned connection failed: %s", ex)
        usable = (
            not conn.closed
            and pgconn.status == pq.ConnStatus.OK
            and pgconn.transaction_status == _IDLE
            and pgconn.pipeline_status == pq.PipelineStatus.OFF
        )
        if usable and not self._closed:
            self._idle.append((conn, trio.current_time()))
            await self._expire_idle()
        else:
            if conn.closed or pgconn.status != pq.ConnStatus.OK:  # lost, not merely dirty
                self._suspect_before = trio.current_time()
            await self._discard(conn)
        if dirty and not failed:
            raise psycopg.ProgrammingError(
                "connection given back to the pool inside a transaction: it was rolled back."
                " Use `async with conn.transaction()`, commit(), or autocommit=True"
            )

    async def _expire_idle(self) -> None:
        limit = trio.current_time() - self._max_idle
        while self._idle and self._idle[0][1] < limit:  # the oldest are at the bottom
            await self._discard(self._idle.pop(0)[0])

    async def _discard(self, conn: TrioConnection[Any]) -> None:
        self._discarded += 1
        await conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosed("the connection pool is closed")


class _Lent(AbstractAsyncContextManager[TrioConnection[Any]]):
    """`ConnectionPool.connection`: a class, not a generator (once per statement: cheaper)."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def __aenter__(self) -> TrioConnection[Any]:
        pool = self._pool
        pool._check_open()
        await pool._slots.acquire()
        try:
            pool._check_open()
            conn = self._conn = await pool._get()
        except BaseException:
            pool._slots.release()
            raise
        pool._in_use += 1
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        pool = self._pool
        try:  # takes no unshielded checkpoint when the block failed
            await pool._put(self._conn, failed=exc_type is not None)
        finally:
            pool._in_use -= 1
            pool._slots.release()


@asynccontextmanager
async def open_pool(
    conninfo: str,
    *,
    max_size: int = 10,
    autocommit: bool = False,
    connect_timeout: float | None = 10.0,
    configure: Callable[[TrioConnection[Any]], Awaitable[None]] | None = None,
    max_idle: float = 300.0,
    ping_after: float = 1.0,
    reset_timeout: float = 5.0,
    **connect_kwargs: Any,
) -> AsyncIterator[ConnectionPool]:
    """Create a `ConnectionPool` for the block and close it afterwards."""
    pool = ConnectionPool(
        conninfo,
        max_size=max_size,
        autocommit=autocommit,
        connect_timeout=connect_timeout,
        configure=configure,
        max_idle=max_idle,
        ping_after=ping_after,
        reset_timeout=reset_timeout,
        **connect_kwargs,
    )
    try:
        yield pool
    finally:
        await pool.aclose()
