"""What an activity receives: who calls it, and (transactional) a session in its transaction."""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import outcome
import trio

from . import _clock
from .storage import Session
from .storage._db import Params, Row

DEFAULT_EVENT_SOURCE = "romancy_trio://{workflow_name}"
"""The CloudEvents ``source`` of events sent without one (``{workflow_name}`` is filled in)."""


_Request = tuple[Callable[[str, Params], Awaitable[Any]], str, Params,
                 list[outcome.Outcome[Any]], trio.Event]


class BlockingSession:
    """``ctx.blocking_db`` of a transactional plain ``def`` activity: the same transaction as
    ``ctx.db``, with blocking methods, for code running in the activity's worker thread.

    Each statement is handed to the Trio task running the attempt (which owns the transaction)
    and the worker thread waits for its result. Once the attempt has ended (returned, failed,
    timed out or been cancelled) statements are refused with RuntimeError, so an abandoned
    thread cannot touch a finished transaction.
    """

    def __init__(self, session: Session) -> None:
        self.dialect = session.dialect
        self._session = session
        self._send, self._receive = trio.open_memory_channel[_Request](0)
        self._waiting: set[trio.CancelScope] = set()
        self._closed = False

    def execute(self, query: str, params: Params = ()) -> int:
        """Run a statement; return the affected row count."""
        result: int = trio.from_thread.run(self._request, self._session.execute, query, params)
        return result

    def fetchone(self, query: str, params: Params = ()) -> Row | None:
        result: Row | None = trio.from_thread.run(self._request, self._session.fetchone,
                                                  query, params)
        return result

    def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        result: list[Row] = trio.from_thread.run(self._request, self._session.fetchall,
                                                 query, params)
        return result

    async def _request(self, fn: Callable[[str, Params], Awaitable[Any]], query: str,
                       params: Params) -> Any:
        """On Trio, for the worker thread: queue the statement and wait for its outcome."""
        box: list[outcome.Outcome[Any]] = []
        done = trio.Event()
        scope = trio.CancelScope()
        self._waiting.add(scope)
        try:
            with scope:
                if not self._closed:
                    await self._send.send((fn, query, params, box, done))
                    await done.wait()
                    return box[0].unwrap()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        finally:
            self._waiting.discard(scope)
        raise RuntimeError("this activity attempt has ended; its transaction is closed")

    async def run_thread(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``call`` (the activity in its thread) while carrying out its statements in
        this task, the one that owns the transaction."""
        results: list[outcome.Outcome[Any]] = []

        async def thread_side() -> None:
            try:
                results.append(outcome.Value(await call()))
            except Exception as exc:  # noqa: BLE001 - the activity's own failure, re-raised below
                results.append(outcome.Error(exc))
            finally:
                self._send.close()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(thread_side)
                async for fn, query, params, box, done in self._receive:
                    try:
                        box.append(outcome.Value(await fn(query, params)))
                    except Exception as exc:  # noqa: BLE001 - the statement's error: to the thread
                        box.append(outcome.Error(exc))
                    done.set()
        finally:
            self._closed = True
            self._send.close()
            for scope in self._waiting:
                scope.cancel()
        return results[0].unwrap()


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """First argument of every ``@activity`` function.

    ``db`` runs SQL in the same transaction that records the activity's result, so the
    activity's database effects happen exactly once (``blocking_db`` in a plain ``def``
    activity). Neither exists for ``transactional=False``. Placeholders are ``?`` / ``:name``
    on every dialect; ``db.native`` takes the driver's.
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
    hook_extensions: Callable[[str], Mapping[str, str]] | None = field(
        default=None, repr=False, compare=False)
    """CloudEvents extensions the app's hooks add to each event sent (by type)."""
    counted: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    """What this attempt counted (`count`); recorded with its result."""
    _sends: Iterator[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False, compare=False
    )

    def count(self, name: str, n: float = 1) -> None:
        """Add ``n`` to the instance's counter ``name`` (e.g. ``"llm.input_tokens"``). The
        counts of the attempt that succeeds are recorded with its result, exactly once, and
        `App.status` shows them summed over every run of the instance (``counters``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a counter's name is a non-empty str, not {name!r}")
        if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n):
            raise ValueError(f"counter {name!r}: add a finite number, not {n!r}")
        self.counted[name] = self.counted.get(name, 0) + n

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
        if self.hook_extensions is not None:
            extensions = {**self.hook_extensions(type), **(extensions or {})}
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
            now=_clock.now(),
            topic=self.outbox_topic,
        )
