"""Run one activity and record its outcome, transactionally unless the activity opted out."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

from .._activity_context import ActivityContext
from .._codec import dumps, loads
from .._definitions import Activity
from .._errors import ConfigurationError
from .._replay import ActivityCommand, ErrorInfo, EventKind, HistoryEvent
from ..storage import Database, Lease, Store, Tx
from ..storage._db import Params, Row


class _UserFailure(Exception):
    """Carries the activity's own exception out of its transaction so the transaction rolls back."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def _call(act: Activity[..., Any], actx: ActivityContext, cmd: ActivityCommand) -> Any:
    """The user's function; its exceptions (and unencodable results) become _UserFailure."""
    try:
        result = await act.fn(actx, *cmd.args, **cmd.kwargs)
        return loads(dumps(result))
    except (
        Exception
    ) as exc:  # the activity's own failure: recorded in history, raised in the workflow
        raise _UserFailure(exc) from exc


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

    async def tx(self) -> Tx:
        if self._tx is None:
            self._tx = await self._stack.enter_async_context(self._db.transaction())
        return self._tx

    async def execute(self, query: str, params: Params = ()) -> int:
        return await (await self.tx()).execute(query, params)

    async def fetchone(self, query: str, params: Params = ()) -> Row | None:
        return await (await self.tx()).fetchone(query, params)

    async def fetchall(self, query: str, params: Params = ()) -> list[Row]:
        return await (await self.tx()).fetchall(query, params)


async def run_activity(
    store: Store,
    act: Activity[..., Any] | None,
    cmd: ActivityCommand,
    *,
    lease: Lease,
    run_no: int,
    seq: int,
    workflow_name: str,
) -> HistoryEvent:
    """Execute ``cmd`` and durably record what happened; return the recorded event.

    Transactional: the activity's session and its history row (fenced by the lease) commit
    together; if the activity raises, its transaction rolls back and the failure is recorded on
    its own.
    """

    def ctx(session: Any) -> ActivityContext:
        return ActivityContext(
            lease.instance_id, workflow_name, cmd.activity_id, lease.worker_id, session
        )

    def completed(payload: Any) -> HistoryEvent:
        return HistoryEvent(
            seq, EventKind.ACTIVITY_COMPLETED, cmd.activity_id, payload, time.time()
        )

    try:
        if act is None:
            raise _UserFailure(
                ConfigurationError(f"activity {cmd.name!r} is not registered with this app")
            )
        if act.transactional:
            async with AsyncExitStack() as stack:
                session = _LazySession(store.db, stack)
                event = completed(await _call(act, ctx(session), cmd))
                await store.record_event_tx(await session.tx(), lease, run_no, event)
            return event
        event = completed(await _call(act, ctx(None), cmd))
    except _UserFailure as failure:
        event = HistoryEvent(
            seq,
            EventKind.ACTIVITY_FAILED,
            cmd.activity_id,
            ErrorInfo.from_exception(failure.cause).to_json(),
            time.time(),
        )
    await store.record_event(lease, run_no, event)
    return event
