"""Run one activity (or compensation) with its retry policy and record what happened.

Transactional activities (the default) run their session's statements, and their history row,
in one transaction that begins at the session's first statement. Every failed attempt that will
be retried is recorded (``<id>#attempt-<n>`` with the time of the next attempt), so a crash in
the middle of backing off resumes the same schedule instead of starting over.

An attempt runs within its timeout (the call's, else the definition's): past it, the attempt is
cancelled (a transaction rolls back) and fails with ``ActivityTimeoutError``, which is retried
like any other error. Plain ``def`` activities and asyncio ones run through :mod:`._hosts`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import trio

from .. import _clock
from .._activity_context import ActivityContext, BlockingSession
from .._channels import PUBLISH
from .._codec import dumps, loads
from .._definitions import Activity
from .._errors import ActivityTimeoutError, ConfigurationError, StorageUnavailableError
from .._replay import ATTEMPT, ActivityCommand, ErrorInfo, EventKind, HistoryEvent, RetryPolicy
from ..storage import Database, Lease, PortableSession, Store, Tx
from ..storage._db import Params, Row
from ._hosts import ActivityHosts
from ._notes import RunNotes, no_notes

_jitter = random.Random()
log = logging.getLogger("romancy_trio.activities")


class _UserFailure(Exception):
    """Carries the activity's own exception out of its transaction so the transaction rolls back."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _LazySession:
    """The activity's session: the transaction begins at the first statement, not before.

    An activity that never touches the database holds no connection (and, on SQLite, not the
    single writer lock) while it runs; its record is then written in a short transaction.
    """

    def __init__(self, db: Database, stack: AsyncExitStack) -> None:
        self.dialect = db.dialect
        self._db = db
        self._stack = stack
        self._tx: Tx | None = None

    @property
    def began(self) -> bool:
        """Did the activity run a statement (so its record joins that transaction)?"""
        return self._tx is not None

    async def tx(self) -> Tx:
        if self._tx is None:  # a slot first: activities never take the library's connections
            await self._stack.enter_async_context(self._db.gate.slot())
            self._tx = await self._stack.enter_async_context(self._db.transaction())
        return self._tx

    async def execute(self, query: str, params: Params = ()) -> int:
        return await (await self.tx()).execute(query, params)

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        return await (await self.tx()).fetchone(query, params)

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return await (await self.tx()).fetchall(query, params)


async def _call(act: Activity[..., Any], actx: ActivityContext, cmd: ActivityCommand,
                hosts: ActivityHosts) -> Any:
    """The user's function, where it runs (Trio, a worker thread, the asyncio loop), within its
    timeout; its exceptions, a timeout and unencodable results become _UserFailure."""
    timeout = cmd.timeout if cmd.timeout is not None else act.timeout
    if timeout is None:  # no cancel scope to enter and leave
        try:
            return await _invoke(act, actx, cmd, hosts)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise _UserFailure(exc) from exc
    with trio.move_on_after(timeout) as scope:
        try:
            return await _invoke(act, actx, cmd, hosts)
        except StorageUnavailableError:
            raise  # the database's failure, not the activity's: the run stops, and is retried
        except Exception as exc:  # the activity's own failure: recorded, raised in the workflow
            if scope.cancel_called:  # it turned our cancellation into an error of its own
                raise _UserFailure(ActivityTimeoutError(cmd.activity_id, float(timeout))
                                   ) from exc
            raise _UserFailure(exc) from exc
    assert scope.cancelled_caught
    raise _UserFailure(ActivityTimeoutError(cmd.activity_id, timeout))


async def _invoke(act: Activity[..., Any], actx: ActivityContext, cmd: ActivityCommand,
                  hosts: ActivityHosts) -> Any:
    if act.runs_on == "trio":
        result = await act.fn(actx, *cmd.args, **cmd.kwargs)
    elif act.runs_on == "asyncio":
        result = await hosts.asyncio.run(act.fn, actx, *cmd.args, **cmd.kwargs)
    else:
        result = await _in_thread(act, actx, cmd, hosts)
    return loads(dumps(result))


async def _in_thread(act: Activity[..., Any], actx: ActivityContext, cmd: ActivityCommand,
                     hosts: ActivityHosts) -> Any:
    if actx.session is None:
        return await hosts.in_thread(act.fn, actx, *cmd.args, **cmd.kwargs)
    blocking = BlockingSession(actx.session)
    in_thread = replace(actx, session=None, blocking_session=blocking)
    return await blocking.run_thread(
        lambda: hosts.in_thread(act.fn, in_thread, *cmd.args, **cmd.kwargs))


class ActivityRunner:
    """Executes activity commands for one instance run; knows the lease and the next seq."""

    def __init__(self, store: Store, activities: dict[str, Activity[..., Any]],
                 default_retry: RetryPolicy, *, lease: Lease, run_no: int, next_seq: int,
                 workflow_name: str, hosts: ActivityHosts,
                 on_attempt: Callable[[], None] | None = None,
                 notes: RunNotes | None = None) -> None:
        self.store = store
        self.activities = activities
        self.hosts = hosts
        self.default_retry = default_retry
        self.lease = lease
        self.run_no = run_no
        self.workflow_name = workflow_name
        self._seq = next_seq
        self._on_attempt = on_attempt
        self.notes = notes or no_notes(lease, workflow_name, run_no)
        self.defer = False
        """Keep the next no-SQL success unrecorded (`_record_or_defer`); the driver sets it
        around a lone activity and writes the event before anything else."""
        self.deferred: HistoryEvent | None = None

    @property
    def next_seq(self) -> int:
        return self._seq

    def take_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    async def run(self, cmd: ActivityCommand) -> HistoryEvent:
        """Run with retries until an outcome is recorded; return that outcome's event."""
        # the definition the call carried (so an app need not list activities); else by name
        act = (cmd.definition if isinstance(cmd.definition, Activity)
               else self.activities.get(cmd.name))
        policy = cmd.retry or (act.retry if act is not None else None) or self.default_retry
        attempts = list(cmd.attempts)
        first_at = float(attempts[0]["first_at"]) if attempts else _clock.now()
        # attempts failing again as the last recorded one did (retry_forever) are not recorded
        attempt = max((int(a.get("attempt", 0)) for a in attempts), default=0)
        noted = False  # the instance's row shows an error to clear on success
        told = False  # this worker has logged that the activity waits (once, per error)
        if attempts:
            await trio.sleep(max(0.0, float(attempts[-1]["next_at"]) - _clock.now()))
        while True:
            attempt += 1
            started_at = self.notes.attempt(cmd, attempt)
            outcome = await self._attempt(act, cmd)
            if isinstance(outcome, HistoryEvent):
                self.notes.outcome(cmd, attempt, started_at, None)
                if cmd.name == PUBLISH and isinstance(outcome.payload, int):
                    self.notes.published(str(cmd.args[0]), outcome.payload)
                if noted or (attempts and policy.retries_forever(attempts[-1]["type"])):
                    await self.store.note_error(self.lease, None)
                return outcome
            error = outcome
            now = _clock.now()
            delay = policy.delay_after(attempt) * (1 + 0.1 * _jitter.random())
            retryable = policy.is_retryable(error.type) and act is not None
            if retryable and policy.retries_forever(error.type):
                delay = min(delay, policy.max_interval)
                last = attempts[-1] if attempts else {}
                same = (last.get("type"), last.get("message")) == (error.type, error.message)
                if not (same and told):
                    log.warning("activity %s of instance %s waits for its configuration, "
                                "retried every %gs at most until it succeeds: %s: %s",
                                cmd.activity_id, self.lease.instance_id, policy.max_interval,
                                error.type, error.message)
                    told = True
                if same:
                    await trio.sleep(delay)  # the same mistake: recorded and shown already
                    continue
                await self.store.note_error(self.lease, error)
                noted = True
            elif not retryable or attempt >= policy.max_attempts or (
                    policy.max_duration is not None
                    and now + delay - first_at > policy.max_duration):
                payload = {**error.to_json(), "attempts": attempt,
                           "exhausted": retryable and attempt > 1}
                kind = (EventKind.COMPENSATION_FAILED if cmd.compensates
                        else EventKind.ACTIVITY_FAILED)
                recorded = await self._record(HistoryEvent(self.take_seq(), kind,
                                                           cmd.activity_id, payload, now))
                self.notes.outcome(cmd, attempt, started_at, error)
                return recorded
            record = {**error.to_json(), "attempt": attempt, "first_at": first_at,
                      "next_at": now + delay}
            attempts.append(record)
            await self._record(HistoryEvent(self.take_seq(), EventKind.ATTEMPT_FAILED,
                                            f"{cmd.activity_id}{ATTEMPT}{attempt}", record, now))
            self.notes.outcome(cmd, attempt, started_at, error, next_at=now + delay)
            await trio.sleep(delay)

    async def _record(self, event: HistoryEvent) -> HistoryEvent:
        await self.store.record_event(self.lease, self.run_no, event)
        return event

    async def _attempt(self, act: Activity[..., Any] | None,
                       cmd: ActivityCommand) -> HistoryEvent | ErrorInfo:
        """One attempt: the recorded success, or (not yet recorded) the failure."""

        def ctx(session: Any) -> ActivityContext:
            return ActivityContext(self.lease.instance_id, self.workflow_name, cmd.activity_id,
                                   self.lease.worker_id, session, run_no=self.run_no,
                                   outbox_topic=self.store.topics.outbox,
                                   hook_extensions=extensions if self.notes.on else None)

        def extensions(type_: str) -> Mapping[str, str]:
            return self.notes.event_extensions(cmd.activity_id, type_)

        if self._on_attempt is not None:
            self._on_attempt()
        kind = (EventKind.COMPENSATION_COMPLETED if cmd.compensates
                else EventKind.ACTIVITY_COMPLETED)
        try:
            if act is None:
                raise _UserFailure(ConfigurationError(
                    f"activity {cmd.name!r} is not registered with this app"))
            async with AsyncExitStack() as stack:
                session = _LazySession(self.store.db, stack)
                actx = ctx(PortableSession(session) if act.transactional else None)
                payload = await _call(act, actx, cmd, self.hosts)
                event = HistoryEvent(self.take_seq(), kind, cmd.activity_id, payload,
                                     _clock.now(), cmd.compensation)
                if session.began or actx.counted:
                    # its own SQL, or what it counted: recorded with its result, together
                    tx = await session.tx()
                    await self.store.record_event_tx(tx, self.lease, self.run_no, event)
                    if actx.counted:
                        await self.store.add_counters_tx(tx, self.lease.instance_id,
                                                         actx.counted)
                    return event
            return await self._record_or_defer(event)  # nothing of its own: no BEGIN
        except _UserFailure as failure:
            return ErrorInfo.from_exception(failure.cause)

    async def _record_or_defer(self, event: HistoryEvent) -> HistoryEvent:
        """The success of an activity that wrote nothing of its own: recorded now (one
        statement), or with ``defer`` kept for the run's next write (`flush`, or the finish
        that records it in the same statement: issue #22). Until then a crash only runs the
        activity again, as a crash before its record always did."""
        if self.defer:
            self.deferred = event
            return event
        return await self._record(event)

    async def flush(self) -> None:
        """Record the deferred success, if any (before any other write of the run)."""
        if (event := self.deferred) is not None:
            self.deferred = None
            await self._record(event)
