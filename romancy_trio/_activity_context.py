"""What an activity receives: who calls it, and (transactional) a session in its transaction."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from .storage import Session
from .storage._db import Params, Row

DEFAULT_EVENT_SOURCE = "romancy_trio://{workflow_name}"
"""The CloudEvents ``source`` of events sent without one (``{workflow_name}`` is filled in)."""


class BlockingSession:
    """``ctx.blocking_db`` of a transactional plain ``def`` activity: the same transaction as
    ``ctx.db``, with blocking methods, for code running in the activity's worker thread.

    Each statement runs on Trio (``trio.from_thread.run``); the worker thread waits for it.
    Once the attempt has ended (returned, failed, timed out or been cancelled) the session
    refuses statements, so an abandoned thread cannot touch a finished transaction.
    """

    def __init__(self, session: Session) -> None:
        self.dialect = session.dialect
        self._session = session
        self._calls: set[trio.CancelScope] = set()
        self._idle = trio.Event()
        self._closed = False

    def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        result: int = trio.from_thread.run(self._guarded, self._session.execute, query, params)
        return result

    def fetchone(self, query: str, params: Params = ()) -> Row | None:
        result: Row | None = trio.from_thread.run(self._guarded, self._session.fetchone,
                                                  query, params)
        return result

    def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        result: list[Row] = trio.from_thread.run(self._guarded, self._session.fetchall,
                                                 query, params)
        return result

    async def _guarded(self, fn: Any, query: str, params: Params) -> Any:
        if self._closed:
            raise RuntimeError("this activity attempt has ended; its transaction is closed")
        scope = trio.CancelScope()
        self._calls.add(scope)
        try:
            with scope:
                return await fn(query, params)
            raise RuntimeError("this activity attempt ended while the statement ran")
        finally:
            self._calls.discard(scope)
            if self._closed and not self._calls:
                self._idle.set()

    async def close(self) -> None:
        """End the attempt's use of the session: stop statements in flight, refuse new ones."""
        self._closed = True
        for scope in self._calls:
            scope.cancel()
        if self._calls:
            with trio.CancelScope(shield=True):
                await self._idle.wait()


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """First argument of every ``@activity`` function.

    ``db`` runs SQL in the same transaction that records the activity's result, so the
    activity's database effects happen exactly once (``blocking_db`` in a plain ``def``
    activity). Neither exists for ``transactional=False``.
    """

    instance_id: str
    workflow_name: str
    activity_id: str
    worker_id: str
    session: Session | None
    run_no: int | None = None
    """The workflow run this activity belongs to (None: looked up when needed)."""
    event_source: str = DEFAULT_EVENT_SOURCE
    """Default CloudEvents ``source`` for :meth:`send_event`."""
    outbox_topic: str | None = None
    """The NOTIFY topic announcing new outbox rows (None: ``romancy_outbox``)."""
    blocking_session: BlockingSession | None = None
    """The blocking twin of ``session`` for a transactional plain ``def`` activity."""
    _sends: Iterator[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False, compare=False
    )

    @property
    def db(self) -> Session:
        """The transaction's session; a clear error for non-transactional activities."""
        if self.session is None:
            raise RuntimeError(
                f"activity {self.activity_id!r} is a plain def activity: use ctx.blocking_db"
                if self.blocking_session is not None else
                f"activity {self.activity_id!r} is transactional=False and has no session"
            )
        return self.session

    @property
    def blocking_db(self) -> BlockingSession:
        """The transaction's session with blocking methods, in a plain ``def`` activity."""
        if self.blocking_session is None:
            raise RuntimeError(
                f"activity {self.activity_id!r} has no blocking session: it is "
                + ("an 'async def' activity (use await ctx.db...)" if self.session is not None
                   else "transactional=False")
            )
        return self.blocking_session

    async def send_event(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str | int | bool] | None = None,
    ) -> str:
        """Publish a CloudEvent through the transactional outbox; return its id.

        The event is written in this activity's transaction, so it is published if and only if
        the activity's effects and result commit; a relayer then delivers it at least once.
        Its id defaults to one derived from (instance, run, activity, n-th send here), the same
        on every retry, so receivers can deduplicate. ``data``: any JSON value (None: no data).
        """
        from .outbox._store import send_event_tx  # the outbox is loaded on first use

        n = next(self._sends)
        if self.session is None:
            raise RuntimeError(
                f"send_event needs a transactional 'async def' activity: {self.activity_id!r} "
                + ("is a plain def" if self.blocking_session is not None else
                   "is transactional=False, so the event could not commit with its effects")
            )
        return await send_event_tx(
            self.session,
            instance_id=self.instance_id,
            activity_id=self.activity_id,
            run_no=self.run_no,
            n=n,
            type=type,
            data=data,
            source=source
            if source is not None
            else self.event_source.replace("{workflow_name}", self.workflow_name),
            subject=subject,
            event_id=event_id,
            extensions=extensions,
            now=time.time(),
            topic=self.outbox_topic,
        )
