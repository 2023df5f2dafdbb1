"""The contract between the store and a database driver: transactions that run SQL and notify.

A driver runs each transaction on one connection owned by one task. ``notify`` announces a key to
other waiters; it fires only if and when the transaction commits (PostgreSQL: ``pg_notify`` in the
same transaction; SQLite: published in-process after COMMIT). Notifications are hints: whoever
wakes re-reads the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]
AfterCommit = Callable[[Sequence[tuple[str, str]]], None]


class Session(Protocol):
    """The handle a transactional activity gets: SQL in the activity's own transaction.

    Queries use the driver's placeholder style (``%s`` for PostgreSQL, ``?`` for SQLite).
    """

    dialect: str

    async def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...


class Tx(Session, Protocol):
    async def notify(self, topic: str, payload: str) -> None:
        """Announce ``payload`` on ``topic`` when (and only if) this transaction commits."""
        ...

    async def fetchone_then_commit(self, query: str, params: Params = ()) -> Row | None:
        """The transaction's last statement: the driver may send COMMIT with it (PostgreSQL:
        one round trip), so nothing may follow, and its outcome can't undo the transaction.
        Only for a statement that does nothing at all where it returns no row."""
        ...


class Database(Protocol):
    """A driver. Besides transactions it runs single statements on their own (autocommit: one
    round trip); the store uses those wherever one statement does the whole job."""

    dialect: str

    async def execute(self, query: str, params: Params = ()) -> int:
        """One statement in its own transaction; the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        """Hand notifications to this process's waiters (after the writing statement committed)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A transaction: commits on normal exit, rolls back on any exception or cancellation."""
        ...

    def set_after_commit(self, callback: AfterCommit) -> None:
        """Called with the notifications of each committed transaction (in-process fan-out)."""
        ...

    async def aclose(self) -> None: ...
