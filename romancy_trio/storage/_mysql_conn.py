"""MySQL 8 / MariaDB connections: PyMySQL (a blocking driver) run in Trio worker threads.

Every call on a connection runs in a worker thread (``trio.to_thread``), one call at a time per
connection; the pool is bounded, and so are the threads (a `trio.CapacityLimiter` with one
token per connection). A call that is cancelled while its thread still runs *poisons* the
connection: its socket is shut down (the thread's read ends at once with an error nobody
waits for) and the connection is never handed out again - the server rolls back whatever
transaction it had open. A connection whose statement failed with a lost-connection error is
discarded too. So no connection ever returns to the pool in an unknown state. The pool
remembers the threads a cancellation abandoned, and closing it waits for them (at most
``connect_timeout`` and a second): a thread still inside the driver when the process exits can
crash it - PyMySQL >= 1.2 builds an OpenSSL context for every new connection (TLS
"preferred"), and OpenSSL's exit handler frees what such a thread is using (a SIGSEGV after
the program's last line, seen in CI). A connection an abandoned connect made anyway is closed.

Sessions run with autocommit off: every use of a connection ends with COMMIT or ROLLBACK
(a single statement too: it and its COMMIT are one call in the thread), so a stored procedure's
statements always share the caller's transaction. Sessions are set up once per connection:
UTC time zone, READ COMMITTED (PostgreSQL's default;
REPEATABLE READ's gap locks would make the claim's ``FOR UPDATE SKIP LOCKED`` scans block
inserts of new instances), utf8mb4, and ``CLIENT.FOUND_ROWS`` so that an UPDATE's row count is
the rows it matched (as on PostgreSQL and SQLite), not only those it changed. Multi-statements
are on: the SQL module sends short scripts (write, then SELECT what changed) in one round trip.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import pymysql
import trio
from pymysql.constants import CLIENT as _CLIENT

from .._errors import ConfigurationError, StorageUnavailableError
from ._db import Params, Row
from ._mysql_url import MysqlParams as MysqlParams
from ._mysql_url import parse_url as parse_url

T = TypeVar("T")

MIN_MYSQL = (8, 0)
MIN_MARIADB = (10, 6)

LOST = frozenset({2002, 2003, 2005, 2006, 2013, 2014, 2055, 1053, 1927, 4031})
"""Client/server error numbers meaning the connection is gone (or never came)."""
DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205
"""InnoDB gave up on this transaction: retryable where nothing was committed meanwhile."""
SIGNAL = 1644
"""``SIGNAL SQLSTATE '45000'`` without MYSQL_ERRNO (the fencing procedure's error)."""
_CONFIG = {1044: "access denied to the database", 1045: "access denied (user or password)",
           1049: "unknown database", 1698: "access denied (user or password)"}

_SESSION = ("SET SESSION time_zone = '+00:00'",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


def errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_lost(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.InterfaceError) or errno(exc) in LOST


def unavailable(address: str, exc: BaseException, note: str = "") -> StorageUnavailableError:
    cause = " ".join(str(exc).split()) or type(exc).__name__
    return StorageUnavailableError(f"MySQL at {address} is unavailable{note}: {cause}")


def connect_blocking(p: MysqlParams, database: str | None) -> pymysql.Connection[Any]:
    """A new session (in a worker thread). Raises `ConfigurationError` for a refused login or
    a missing database, `StorageUnavailableError` for a server that cannot be reached."""
    try:
        conn = pymysql.connect(
            host=p.host, port=p.port, user=p.user, password=p.password, database=database,
            charset="utf8mb4", autocommit=False, connect_timeout=p.connect_timeout,
            client_flag=_CLIENT.FOUND_ROWS | _CLIENT.MULTI_RESULTS | _CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as cur:
                for statement in _SESSION:
                    cur.execute(statement)
                cur.execute("SET @romancy_origin = %s", (p.origin,))
            conn.commit()
        except BaseException:
            conn.close()
            raise
    except pymysql.MySQLError as exc:
        code = errno(exc)
        if code in _CONFIG:
            raise ConfigurationError(
                f"MySQL at {p.address}, user {p.user!r}, database {database!r}: "
                f"{_CONFIG[code]}: {exc.args[-1]}") from None
        raise unavailable(p.address, exc) from exc
    return conn


def server_version(raw: pymysql.Connection[Any]) -> str:
    return str(raw.get_server_info())  # type: ignore[no-untyped-call]


def check_version(version: str, address: str) -> None:
    """Refuse a server older than MySQL 8.0 / MariaDB 10.6 (both needed for SKIP LOCKED)."""
    found = re.match(r"(\d+)\.(\d+)", version.removeprefix("5.5.5-"))
    if found is None:
        raise ConfigurationError(f"MySQL at {address}: cannot read server version {version!r}")
    major_minor = (int(found.group(1)), int(found.group(2)))
    maria = "mariadb" in version.lower()
    need = MIN_MARIADB if maria else MIN_MYSQL
    if major_minor < need:
        name = "MariaDB" if maria else "MySQL"
        raise ConfigurationError(
            f"{name} at {address} is version {version}; romancy_trio needs {name} >= "
            f"{need[0]}.{need[1]} (MySQL >= 8.0 or MariaDB >= 10.6: FOR UPDATE SKIP LOCKED)")


def run_statement(raw: pymysql.Connection[Any], query: str, params: Params
                  ) -> tuple[int, list[Row]]:
    """(row count, rows) of a statement, or of a script's (several statements') last result
    set; a ``CALL``'s extra results are drained."""
    with raw.cursor() as cur:
        count = cur.execute(query, params if params else None)
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        while cur.nextset():
            if cur.description:
                rows = [tuple(r) for r in cur.fetchall()]
                count = len(rows)
    return count, rows


class _NotRun(Exception):
    """A call abandoned before its thread began it: it is never run."""


class _Call(Generic[T]):
    """One blocking call in a worker thread. A cancelled caller abandons it: a call not begun
    yet is never run; one under way runs on in its thread. `abandon` says whether it does,
    and hands back a result that was made but that nobody will take; a result made after the
    call was abandoned goes to ``orphan`` in the thread. ``finished`` is set when the thread
    is done with it."""

    __slots__ = ("_abandoned", "_begun", "_fn", "_lock", "_orphan", "_result", "finished")

    def __init__(self, fn: Callable[[], T], orphan: Callable[[T], None] | None) -> None:
        self._fn, self._orphan = fn, orphan
        self._lock = threading.Lock()
        self._abandoned = self._begun = False
        self._result: tuple[T] | None = None
        self.finished = threading.Event()

    def __call__(self) -> T:
        try:
            with self._lock:
                if self._abandoned:
                    raise _NotRun  # nobody waits for this outcome (Trio abandoned the call)
                self._begun = True
            result = self._fn()
            with self._lock:
                self._result = (result,)
                orphaned = self._abandoned
            if orphaned and self._orphan is not None:
                self._orphan(result)
            return result
        finally:
            self.finished.set()

    def abandon(self) -> tuple[bool, tuple[T] | None]:
        """(whether the call runs on in its thread, the result it made if it was first)."""
        with self._lock:
            self._abandoned = True
            running = self._begun and self._result is None and not self.finished.is_set()
            return running, self._result


class _Threads:
    """The pool's worker threads: bounded (a limiter), and those a cancellation abandoned are
    remembered so that closing the pool can wait for them."""

    def __init__(self, limit: int) -> None:
        self.limiter = trio.CapacityLimiter(limit)
        self._abandoned: list[_Call[Any]] = []

    async def run(self, fn: Callable[[], T], *, orphan: Callable[[T], None] | None = None,
                  on_abandon: Callable[[], None] | None = None) -> T:
        """``fn()`` in a thread. Cancelled meanwhile: ``on_abandon()`` if the thread still
        runs, and its result (made anyway) goes to ``orphan``, in the thread or here."""
        call = _Call(fn, orphan)
        try:
            return await trio.to_thread.run_sync(call, limiter=self.limiter,
                                                 abandon_on_cancel=True)
        except trio.Cancelled:
            running, made = call.abandon()
            if running:
                self._abandoned = [c for c in self._abandoned if not c.finished.is_set()]
                self._abandoned.append(call)
                if on_abandon is not None:
                    on_abandon()
            elif made is not None and orphan is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(orphan, made[0])
            raise

    async def wait_abandoned(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until every abandoned thread is done."""
        calls, self._abandoned = self._abandoned, []
        with trio.move_on_after(timeout):
            for call in calls:
                if not call.finished.is_set():
                    await trio.to_thread.run_sync(call.finished.wait, timeout,
                                                  abandon_on_cancel=True)


class MysqlConnection:
    """One session, used by one task at a time (the pool's lease)."""

    def __init__(self, raw: pymysql.Connection[Any], threads: _Threads) -> None:
        self.raw = raw
        self.poisoned = False
        self.in_transaction = False
        self._threads = threads

    async def run(self, fn: Callable[[pymysql.Connection[Any]], T]) -> T:
        if self.poisoned:
            raise StorageUnavailableError("MySQL: this connection was discarded")
        raw = self.raw
        try:
            return await self._threads.run(lambda: fn(raw), on_abandon=self.poison)
        except pymysql.MySQLError as exc:
            if is_lost(exc):
                self.poisoned = True
            raise

    def poison(self) -> None:
        """Never use this session again; unblock its thread (its read fails at once)."""
        self.poisoned = True
        sock = getattr(self.raw, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    async def fetch(self, query: str, params: Params = ()) -> tuple[int, list[Row]]:
        return await self.run(lambda raw: run_statement(raw, query, params))

    async def rollback(self) -> None:
        """Shielded: end the transaction; a session that cannot is discarded."""
        with trio.CancelScope(shield=True):
            try:
                await self.run(lambda raw: raw.rollback())
            except (pymysql.MySQLError, StorageUnavailableError):
                self.poisoned = True
                return
        self.in_transaction = False

    async def close(self) -> None:
        self.poisoned = True
        raw = self.raw
        if raw.open:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_close_quietly, raw, abandon_on_cancel=True)


def _close_quietly(raw: pymysql.Connection[Any]) -> None:
    try:
        raw.close()
    except pymysql.MySQLError:
        pass  # the socket is gone already: nothing to say goodbye on


class MysqlPool:
    """At most ``max_size`` sessions; idle ones are kept. A session comes back only clean:
    not poisoned and not inside a transaction."""

    def __init__(self, params: MysqlParams, max_size: int) -> None:
        self.params = params
        self.max_size = max_size
        self._slots = trio.Semaphore(max_size)
        self._threads = _Threads(max_size + 1)  # +1: the worker session
        self._idle: list[MysqlConnection] = []
        self.connects = 0
        self.closed = False

    async def open_connection(self) -> MysqlConnection:
        p = self.params
        raw = await self._threads.run(lambda: connect_blocking(p, p.database),
                                      orphan=_close_quietly)
        self.connects += 1
        return MysqlConnection(raw, self._threads)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[MysqlConnection]:
        if self.closed:
            raise StorageUnavailableError("MySQL: the connection pool is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self.open_connection()
            try:
                yield conn
            finally:
                if conn.poisoned or conn.in_transaction or self.closed:
                    await conn.close()
                else:
                    self._idle.append(conn)

    async def aclose(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
        await self._threads.wait_abandoned(self.params.connect_timeout + 1)
