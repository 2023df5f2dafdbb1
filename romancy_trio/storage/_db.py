"""The contract between the store and a database driver: transactions that run SQL and notify.

A driver runs each transaction on one connection owned by one task. ``notify`` announces a key to
other waiters; it fires only if and when the transaction commits (PostgreSQL: ``pg_notify`` in the
same transaction; SQLite: published in-process after COMMIT). Notifications are hints: whoever
wakes re-reads the rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._gate import TransactionGate

if TYPE_CHECKING:
    from romancy_notify import Hub

    from ._hubs import HubPlan

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]
Statement = tuple[str, Params]
AfterCommit = Callable[[Sequence[tuple[str, str]]], None]
LocalNotes = Callable[[list[Row]], list[tuple[str, str]]]
"""From the rows of a statement that sent its own notifications: what to hand to this
process's waiters too (see `Tx.notify_local`)."""


class NativeSession(Protocol):
    """SQL in one transaction, in the driver's own placeholder style (PostgreSQL ``%s`` /
    ``%(name)s`` with every literal ``%`` doubled; SQLite ``?`` / ``:name``). The library's
    own statements run through this."""

    dialect: str

    async def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...


class Session(Protocol):
    """What a transactional activity gets as ``ctx.db``: SQL in the activity's own transaction.

    Placeholders are the same on every dialect: ``?`` with a sequence, or ``:name`` with a
    mapping (see `romancy_trio.storage._placeholders`). ``native`` is the same transaction in
    the driver's own style. On PostgreSQL, names resolve in the connection's own
    ``search_path`` (the library qualifies its tables itself).
    """

    dialect: str
    native: NativeSession

    async def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...


class Tx(NativeSession, Protocol):
    schema: str
    """The schema holding the library's tables (PostgreSQL; ``main`` on SQLite)."""

    async def notify(self, topic: str, payload: str) -> None:
        """Announce ``payload`` on ``topic`` when (and only if) this transaction commits."""
        ...

    async def fetch_batch(self, statements: Sequence[Statement], *, then_commit: bool = False
                          ) -> list[list[Row]]:
        """Run ``statements`` in order; the rows of each. PostgreSQL sends them together (one
        round trip, BEGIN included); an error in one skips the rest and the transaction can
        only roll back. Each statement still sees what the ones before it did.

        ``then_commit``: they are the transaction's last statements. The driver may send
        COMMIT and the queued NOTIFYs with them, so nothing may follow (but `notify_local`)
        and their outcome can't undo the transaction: only for statements whose results are
        no reason to roll back."""
        ...

    def notify_local(self, topic: str, payload: str) -> None:
        """Hand ``payload`` to this process's waiters on ``topic`` once this transaction has
        committed, for a notification that a statement sent itself (``pg_notify`` in SQL):
        in-process waiters need not wait for it to come back from the database."""
        ...

    async def commit_and_begin(self, statements: Sequence[Statement],
                               following: Sequence[Statement]
                               ) -> tuple[list[list[Row]], list[list[Row]]]:
        """``statements``, COMMIT (with the queued NOTIFYs), then a new transaction on the
        same connection and ``following`` in it: the rows of both. PostgreSQL sends it all
        in one round trip; an error in ``statements`` skips the rest (nothing commits). This
        object is then the new transaction. Not with `after_commit` statements pending."""
        ...

    def after_commit(self, statement: Statement, local_notes: LocalNotes) -> None:
        """Run ``statement`` once this transaction has committed, in a transaction of its
        own that sees everything this one wrote; ``local_notes(rows)`` is handed to this
        process's waiters. PostgreSQL sends it with COMMIT (one round trip). Only for work
        that a fallback redoes if it is lost (a wake-up): its failure does not undo the
        commit and is logged, not raised. SQLite runs it just before COMMIT: with its one
        writer, nothing can come between."""
        ...


class WorkerSession(Protocol):
    """Where a worker renews its leases and checks on other workers: a connection of its own
    outside the pool on PostgreSQL (see ``_pg_session``), the one connection on SQLite."""

    async def ensure(self) -> None:
        """Be connected (reconnect after a failure); no round trip if already connected."""
        ...

    async def watch(self, deadline: float) -> None:
        """Wait until ``deadline`` (Trio clock), reconnecting at once if the connection
        drops meanwhile (`StorageUnavailableError` if it cannot)."""
        ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...

    async def aclose(self) -> None: ...


class Database(Protocol):
    """A driver. Besides transactions it runs single statements on their own (autocommit: one
    round trip); the store uses those wherever one statement does the whole job."""

    dialect: str
    schema: str
    """The schema holding the library's tables (PostgreSQL; ``main`` on SQLite). Connections
    carry no session state: every library statement names it (see `storage.qualify`)."""

    async def execute(self, query: str, params: Params = ()) -> int:
        """One statement in its own transaction; the affected row count."""
        ...

    async def fetchone(self, query: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]: ...

    async def fetch_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Several statements in order, in one transaction of their own; the rows of each.
        PostgreSQL sends them together (one round trip); each statement sees what committed
        before it started, and what the ones before it did."""
        ...

    def publish_local(self, notes: Sequence[tuple[str, str]]) -> None:
        """Hand notifications to this process's waiters (after the writing statement committed)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A transaction: commits on normal exit, rolls back on any exception or cancellation."""
        ...

    async def run_transaction(self, body: Callable[[Tx], Awaitable[T]], *,
                              again: Callable[[], bool] | None = None) -> T:
        """``body`` in a transaction, committed; what it returned. Where the database rolls a
        transaction back for a reason that running it again cures (MySQL: a deadlock or a
        lock-wait timeout), the driver runs ``body`` again from the start in a new
        transaction (a bounded number of times, each counted in `retries`). So ``body`` must
        do nothing outside the transaction that may not happen twice - or ``again()``, asked
        before each new run, says whether it may still run again. When it gives up, the
        transaction's failure is raised (`StorageUnavailableError`) and counted in
        `rolled_back`."""
        ...

    gate: TransactionGate
    """Bounds the transactions activities hold open at once (see ``_gate``)."""

    retries: int
    """Statements and transactions run again after the database rolled them back (MySQL:
    deadlocks and lock-wait timeouts); 0 where the driver never needs to."""

    rolled_back: int
    """Transactions the database rolled back that were not run again: their callers got
    `StorageUnavailableError` (MySQL; the scheduler then replays the instance); 0 where the
    driver never needs to."""

    def worker_session(self, *, on_connect: Statement | None, connect_timeout: float,
                       statement_timeout: float | None = None) -> WorkerSession:
        """A session for one worker's own periodic statements; ``on_connect`` runs first on
        each new connection (PostgreSQL). Connects on first use. ``statement_timeout``: a
        statement without an answer that long fails with `StorageUnavailableError` (and the
        connection is dropped), so lease renewal never hangs past the lease."""
        ...

    def set_after_commit(self, callback: AfterCommit) -> None:
        """Called with the notifications of each committed transaction (in-process fan-out)."""
        ...

    def open_hub(self, plan: HubPlan) -> AbstractAsyncContextManager[Hub]:
        """The notify hub through which this driver's wake-ups travel between processes
        (PostgreSQL: LISTEN; MySQL: its signal table polled; SQLite: the file's changes)."""
        ...

    async def aclose(self) -> None: ...
