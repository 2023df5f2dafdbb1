"""The system database: every read and write of workflow state, on any dialect.

Dialect differences live in the SQL modules (``sql_postgres``, ``sql_sqlite``) and the drivers;
this class holds the logic once. Methods ending in ``_tx`` run inside the caller's transaction and
never commit. Every write made on behalf of a running instance is *fenced*: it checks, inside its
transaction, that this worker still holds the instance's lease at the same epoch, and raises
:class:`LeaseLostError` otherwise, so a worker whose lease was taken over can never record anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .._codec import dumps, loads
from .._errors import LeaseLostError
from .._replay import ErrorInfo, EventKind, HistoryEvent
from ._db import Database, Row, Tx
from ._queries import Queries
from ._types import Claimed, InstanceInfo, Lease, RunInfo, WorkflowStatus

TOPIC_WORK = "romancy_work"
TOPIC_DONE = "romancy_done"
TOPIC_CANCEL = "romancy_cancel"
TOPICS = (TOPIC_WORK, TOPIC_DONE, TOPIC_CANCEL)


class Store:
    def __init__(self, db: Database, queries: Queries) -> None:
        self.db = db
        self.q = queries

    # -- instances ------------------------------------------------------------------------
    async def create_instance(self, instance_id: str, workflow_name: str, input_json: str, *,
                              now: float, owner: str | None, lease_ttl: float) -> Lease | None:
        """Insert a new instance; None if the id exists. With ``owner``, it starts leased to it."""
        status = WorkflowStatus.RUNNING if owner else WorkflowStatus.PENDING
        epoch = 1 if owner else 0
        async with self.db.transaction() as tx:
            created = await tx.execute(self.q.insert_instance, (
                instance_id, workflow_name, status, input_json, now, owner, epoch,
                lease_ttl if owner else None, now, now))
            if not created:
                return None
            await tx.execute(self.q.insert_run, (instance_id, 1, None, input_json, now))
            if owner is None:
                await tx.notify(TOPIC_WORK, "")
        return Lease(instance_id, owner, epoch) if owner else Lease(instance_id, "", 0)

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone(self.q.select_instance, (instance_id,))
        return _instance(row) if row else None

    async def list_instances(self, *, status: WorkflowStatus | None, workflow_name: str | None,
                             limit: int) -> list[InstanceInfo]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(self.q.list_instances,
                                     (status, status, workflow_name, workflow_name, limit))
        return [_instance(r) for r in rows]

    async def cancel(self, instance_id: str, *, now: float) -> bool:
        """Mark a live instance cancelled (its worker is told); False if it had already ended."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(self.q.cancel, (now, instance_id))
            if changed:
                await tx.notify(TOPIC_CANCEL, instance_id)
                await tx.notify(TOPIC_DONE, instance_id)
        return bool(changed)

    # -- leases -----------------------------------------------------------------------------
    async def claim(self, owner: str, *, limit: int, lease_ttl: float) -> list[Claimed]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(self.q.claim, {"limit": limit, "owner": owner,
                                                     "ttl": lease_ttl})
        return [Claimed(Lease(r[0], owner, int(r[4])), r[1], r[2], int(r[3]), float(r[5]))
                for r in rows]

    async def renew(self, owner: str, *, lease_ttl: float) -> dict[str, int]:
        """Extend every lease this worker holds; returns {instance_id: epoch} still held."""
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(self.q.renew, (lease_ttl, owner))
        return {r[0]: int(r[1]) for r in rows}

    async def release(self, lease: Lease, *, now: float) -> None:
        """Give an instance back (graceful shutdown) so another worker takes it at once."""
        async with self.db.transaction() as tx:
            released = await tx.execute(self.q.release,
                                        (now, lease.instance_id, lease.worker_id, lease.epoch))
            if released:
                await tx.notify(TOPIC_WORK, "")

    async def next_expiry(self, owner: str) -> float | None:
        """Seconds until the earliest lease held by another worker expires (None: none)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(self.q.next_expiry, (owner,))
        return None if row is None or row[0] is None else float(row[0])

    # -- history ----------------------------------------------------------------------------
    async def load_history(self, instance_id: str, run_no: int) -> list[HistoryEvent]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(self.q.select_history, (instance_id, run_no))
        return [HistoryEvent(int(r[0]), EventKind(r[1]), r[2], loads(r[3]), float(r[4]))
                for r in rows]

    async def fence_tx(self, tx: Tx, lease: Lease) -> int:
        """Check (and lock until commit) that ``lease`` is still current; return the run number."""
        row = await tx.fetchone(self.q.fence, (lease.instance_id, lease.worker_id, lease.epoch))
        if row is None:
            raise LeaseLostError(f"worker {lease.worker_id!r} lost instance "
                                 f"{lease.instance_id!r} (epoch {lease.epoch})")
        return int(row[0])

    async def record_event_tx(self, tx: Tx, lease: Lease, run_no: int,
                              event: HistoryEvent) -> None:
        """Fenced insert of one history event in the caller's transaction."""
        current_run = await self.fence_tx(tx, lease)
        if current_run != run_no:
            raise LeaseLostError(f"instance {lease.instance_id!r} moved on to run {current_run}")
        await tx.execute(self.q.insert_event, (
            lease.instance_id, run_no, event.seq, event.kind, event.key, dumps(event.payload),
            lease.worker_id, lease.epoch, event.at))

    async def record_event(self, lease: Lease, run_no: int, event: HistoryEvent) -> None:
        async with self.db.transaction() as tx:
            await self.record_event_tx(tx, lease, run_no, event)

    async def finish(self, lease: Lease, status: WorkflowStatus, *, result: Any = None,
                     error: ErrorInfo | None = None, now: float) -> None:
        """Fenced: record the final status and wake result waiters."""
        result_json = dumps(result) if status is WorkflowStatus.COMPLETED else None
        error_json = dumps(error.to_json()) if error is not None else None
        async with self.db.transaction() as tx:
            changed = await tx.execute(self.q.finish, (
                status, result_json, error_json, now, lease.instance_id, lease.worker_id,
                lease.epoch))
            if not changed:
                raise LeaseLostError(f"instance {lease.instance_id!r} is no longer ours to finish")
            await tx.notify(TOPIC_DONE, lease.instance_id)

    async def continue_as_new(self, lease: Lease, run_no: int, input_json: str, *,
                              now: float) -> int:
        """Fenced ``recur``: archive the run's history, start the next run. Returns its number."""
        async with self.db.transaction() as tx:
            current = await self.fence_tx(tx, lease)
            if current != run_no:
                raise LeaseLostError(f"instance {lease.instance_id!r} moved on to run {current}")
            key = (lease.instance_id, run_no)
            await tx.execute(self.q.archive_history, key)
            await tx.execute(self.q.delete_history, key)
            await tx.execute(self.q.end_run, (now, *key))
            await tx.execute(self.q.insert_run,
                             (lease.instance_id, run_no + 1, run_no, input_json, now))
            await tx.execute(self.q.start_next_run, (
                input_json, now, now, lease.instance_id, lease.worker_id, lease.epoch))
        return run_no + 1

    async def list_runs(self, instance_id: str) -> list[RunInfo]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(self.q.select_runs, (instance_id,))
        return [RunInfo(int(r[0]), None if r[1] is None else int(r[1]), float(r[2]),
                        None if r[3] is None else float(r[3])) for r in rows]


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _instance(row: Row) -> InstanceInfo:
    (iid, name, status, input_json, result, error, run_no, owner, epoch, created, updated) = row
    return InstanceInfo(
        instance_id=iid, workflow_name=name, status=WorkflowStatus(status),
        input=loads(input_json), result=None if result is None else loads(result),
        error=None if error is None else ErrorInfo.from_json(loads(error)),
        run_no=int(run_no), lease_owner=owner, lease_epoch=int(epoch),
        created_at=_ts(created), updated_at=_ts(updated))


