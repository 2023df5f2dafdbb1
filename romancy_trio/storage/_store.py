"""The system database: every read and write of workflow state, on any dialect.

Dialect differences live in the SQL modules (``sql_postgres``, ``sql_sqlite``) and the drivers;
this class holds the logic once. Methods ending in ``_tx`` run inside the caller's transaction and
never commit. Every write made on behalf of a running instance is *fenced*: it checks, inside its
transaction, that this worker still holds the instance's lease at the same epoch, and raises
:class:`LeaseLostError` otherwise, so a worker whose lease was taken over can never record anything.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .. import _clock
from .._codec import dumps, loads
from .._replay import ErrorInfo, EventKind, HistoryEvent
from ..hooks import frozen_map
from ._db import Database, Row, Tx, WorkerSession
from ._handover import Finished, Handover
from ._queries import Queries, WaitQueries
from ._retention import RetentionQueries, purge_finished, purge_runs
from ._types import (
    Claimed,
    Existing,
    InstanceInfo,
    Lease,
    RunInfo,
    Topics,
    WorkflowStatus,
    lease_lost,
)
from ._waits import WaitStore
from .hints import CHILD_HINT, QUEUE_HINT, new_hint

log = logging.getLogger("romancy_trio.storage")


class Store:
    def __init__(self, db: Database, queries: Queries, waits: WaitQueries, topics: Topics,
                 retention: RetentionQueries | None = None) -> None:
        self.db = db
        self.q = queries
        self._retention = retention
        self.topics = topics
        self.waits = WaitStore(db, queries, waits, topics)
        self.handover = Handover()
        """Outcomes of runs that end here, for `App.run` callers in this process."""
        self.code_version: dict[str, str] = {}
        """Workflow name -> the code version recorded on each instance this app starts of it
        (set by ``open_app``; a name not in it: NULL, any worker)."""
        self.code_versions: list[str] = []
        """``'<workflow name>|<version>'`` this app's worker resumes: each workflow's own
        version and the compatible ones."""
        self._timeline: str | None = None
        """The database server's timeline at the last `take_over_dead` (PostgreSQL)."""
        self._timeline_trusted_at = -math.inf
        """time.monotonic() from which `take_over_dead` may act on that timeline."""

    # -- instances ------------------------------------------------------------------------
    async def create_instance(
        self,
        instance_id: str,
        workflow_name: str,
        input_json: str,
        *,
        now: float,
        owner: str | None,
        lease_ttl: float,
        attributes: Mapping[str, str] | None = None,
        watcher: str | None = None,
    ) -> Lease | Existing:
        """Insert a new instance, or (the id exists) say what it holds. With ``owner``, it
        starts leased to it (eager start: no claim round trip); otherwise it is pending and
        new work is announced. ``attributes``: stored with it, handed to every run
        (`Claimed.attributes`). ``watcher``: the worker that waits for its end (`App.run`;
        see ``mark_watcher``). One round trip where the dialect's insert can tell what it
        found (PostgreSQL), else two."""
        status = WorkflowStatus.RUNNING if owner else WorkflowStatus.PENDING
        epoch = 1 if owner else 0
        row = await self.db.fetchone(
            self.q.create,
            {
                "iid": instance_id,
                "name": workflow_name,
                "status": status,
                "input": input_json,
                "now": now,
                "owner": owner,
                "epoch": epoch,
                "ttl": lease_ttl if owner else None,
                "topic": self.topics.work,
                "attributes": dumps(dict(attributes)) if attributes else None,
                "version": self.code_version.get(workflow_name),
                "watcher": watcher,
            },
        )
        if row is None:  # the id exists (SQLite; PostgreSQL: just inserted by another)
            row = await self.db.fetchone(self.q.existing, {"iid": instance_id})
            if row is None:
                raise RuntimeError(f"instance {instance_id!r} neither created nor found")
        if row[1] is not None:
            return Existing(str(row[1]), str(row[2]))
        if owner is None:
            self.db.publish_local([(self.topics.work, new_hint(instance_id))])
        return Lease(instance_id, owner or "", epoch)

    async def mark_watcher(self, instance_id: str, worker_id: str) -> bool:
        """Say that ``worker_id`` waits for the instance's end, so that a finish on another
        worker notifies it (committed before this returns). True: the mark is known to
        precede the end (the instance was still live under the row lock), so its status need
        not be read again; False: read it again before waiting."""
        if self.q.mark_watcher is None:
            return False
        row = await self.db.fetchone(self.q.mark_watcher, {"iid": instance_id, "me": worker_id})
        return row is not None and not WorkflowStatus(row[0]).is_terminal

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        row = await self.db.fetchone(self.q.select_instance, (instance_id,))
        return _instance(row) if row else None

    async def list_instances(
        self, *, status: WorkflowStatus | None, workflow_name: str | None, limit: int
    ) -> list[InstanceInfo]:
        rows = await self.db.fetchall(
            self.q.list_instances, (status, status, workflow_name, workflow_name, limit)
        )
        return [_instance(r) for r in rows]

    # -- leases -----------------------------------------------------------------------------
    async def claim(
        self, owner: str, *, limit: int, lease_ttl: float, workflows: Sequence[str]
    ) -> list[Claimed]:
        """Lease up to ``limit`` runnable instances of the named workflows (the ones this
        worker can run: a worker never takes a workflow it does not know)."""
        claimed, _ = await self._claim(self.q.claim, owner, limit, lease_ttl, workflows,
                                       with_expiry=False)
        return claimed

    async def any_unclaimed(self, instance_ids: Sequence[str]) -> bool:
        """True if one of ``instance_ids`` is claimable as pending work now (not leased, not
        ended): whether a wake-up left to the peer chosen for it still needs a claim."""
        row = await self.db.fetchone(self.q.any_unclaimed, {"ids": dumps(list(instance_ids))})
        return row is not None

    async def claim_and_expiry(
        self, owner: str, *, limit: int, lease_ttl: float, workflows: Sequence[str],
        expected: str | None = None,
    ) -> tuple[list[Claimed], float | None]:
        """`claim`, and then what `next_expiry` answers (as seen just before this claim) -
        in one round trip where the dialect can. ``expected``: an instance that a wake-up
        named; if it is among the claimed, its history comes along in the same round trip
        (read after the claim holds it, so nothing of it is missed)."""
        if self.q.claim_and_expiry is None:
            claimed = await self.claim(owner, limit=limit, lease_ttl=lease_ttl,
                                       workflows=workflows)
            return claimed, await self.next_expiry(owner, workflows=workflows)
        return await self._claim(self.q.claim_and_expiry, owner, limit, lease_ttl, workflows,
                                 with_expiry=True, expected=expected)

    async def _claim(self, query: str, owner: str, limit: int, lease_ttl: float,
                     workflows: Sequence[str], *, with_expiry: bool,
                     expected: str | None = None) -> tuple[list[Claimed], float | None]:
        args = {"limit": limit, "owner": owner, "ttl": lease_ttl, "names": dumps(list(workflows)),
                "now": _clock.sql_now(), "versions": dumps(self.code_versions)}
        history: list[Row] = []
        if expected is None:
            rows = await self.db.fetchall(query, args)
        else:
            rows, history = await self.db.fetch_batch(
                [(query, args), (self.q.select_current_history, (expected,))])
        expiry = None
        if with_expiry:  # claim_and_expiry: one more row, without an instance
            [extra] = [r for r in rows if r[0] is None]
            expiry = None if extra[9] is None else float(extra[9])
        # lease epoch 1: its first lease ever (instances are created at epoch 0, or leased
        # at 1 by a creator that runs them itself), so no run of it has written history yet
        # (what others write - a delivered event, a message - goes only to a waiting
        # instance, which has run): nothing to load (issue #22)
        claimed = [
            Claimed(Lease(r[0], owner, int(r[4])), r[1], r[2], int(r[3]), float(r[5]),
                    cancel_requested=bool(r[6]), fresh=int(r[4]) == 1,
                    history=_history(history, int(r[3])) if r[0] == expected else None,
                    previous_owner=r[7], attributes=_attributes(r[8]))
            for r in rows
            if r[0] is not None
        ]
        return claimed, expiry

    def worker_session(self, owner: str, *, connect_timeout: float,
                       statement_timeout: float | None = None) -> WorkerSession:
        """The worker's own session for `renew` and `take_over_dead` (PostgreSQL: a
        connection outside the pool that holds the worker's advisory lock); a statement
        unanswered for ``statement_timeout`` s fails as the database being unavailable."""
        lock = (None if self.q.worker_lock is None
                else (self.q.worker_lock, {"ns": self.db.schema, "owner": owner}))
        return self.db.worker_session(on_connect=lock, connect_timeout=connect_timeout,
                                      statement_timeout=statement_timeout)

    async def renew(self, owner: str, *, lease_ttl: float,
                    session: WorkerSession | None = None) -> dict[str, int]:
        """Extend every lease this worker holds; returns {instance_id: epoch} still held."""
        rows = await (session or self.db).fetchall(self.q.renew, (lease_ttl, owner))
        return {r[0]: int(r[1]) for r in rows}

    async def take_over_dead(self, owner: str, *, grace: float,
                             suspects: Sequence[str]) -> tuple[int, int, list[str]] | None:
        """Expire the leases of workers whose session ended, as seen by this check and the
        one before (``suspects``: what that one returned); their instances are then claimed
        at once (work is announced). Returns (running leases other workers held, how many
        were expired, the owners without a session now), or None where the dialect cannot
        tell."""
        if self.q.take_over_dead is None:
            return None
        trusted = self._timeline if time.monotonic() >= self._timeline_trusted_at else None
        [row] = await self.db.fetchall(self.q.take_over_dead, {
            "owner": owner, "ns": self.db.schema, "grace": grace, "topic": self.topics.work,
            "suspects": list(suspects), "suspects_json": dumps(list(suspects)),
            "timeline": trusted})
        timeline = row[4] if len(row) > 4 else None  # a dialect without timelines
        if timeline != self._timeline:
            if self._timeline is not None:  # a failover: the promoted standby's workers are
                # still reconnecting; none is taken for dead for `grace` s
                log.warning("the database server is now on timeline %s (was %s: a standby was "
                            "promoted); other workers' instances are not taken over for %g s "
                            "while they reconnect", timeline, self._timeline, grace)
                self._timeline_trusted_at = time.monotonic() + grace
            self._timeline = timeline
        if int(row[1]):  # this worker claims them too (a dialect's own signals skip it)
            self.db.publish_local([(self.topics.work, "")])
        orphans = row[3]
        return int(row[0]), int(row[1]), list(loads(orphans) if isinstance(orphans, str | bytes)
                                              else orphans)

    async def worker_alive(self, worker: str) -> bool | None:
        """Whether a session of ``worker`` holds its worker lock now (it runs); None where the
        dialect cannot tell."""
        if self.q.worker_alive is None:
            return None
        row = await self.db.fetchone(self.q.worker_alive, {"ns": self.db.schema,
                                                           "worker": worker})
        return bool(row is not None and row[0])

    async def release(self, lease: Lease, *, now: float, hint: str = "") -> bool:
        """Give an instance back (graceful shutdown) so another worker takes it at once;
        ``hint``: the work notification to send (``hints``; default: every worker claims).
        False if the lease was no longer held (fenced: nothing changed)."""
        row = await self.db.fetchone(
            self.q.release,
            {**_fence(lease), "now": now, "topic": self.topics.work, "hint": hint},
        )
        if row is not None:
            self.db.publish_local([(self.topics.work, hint)])
        return row is not None

    async def next_expiry(self, owner: str, *, workflows: Sequence[str]) -> float | None:
        """Seconds until the earliest lease held by another worker expires or a wait is due
        (None: none); 0 where an instance of ``workflows`` is claimable now but was not
        claimed (locked by another transaction when the claim looked: ``SKIP LOCKED``)."""
        row = await self.db.fetchone(self.q.next_expiry, {
            "owner": owner, "versions": dumps(self.code_versions), "now": _clock.sql_now(),
            "names": dumps(list(workflows))})
        return None if row is None or row[0] is None else float(row[0])

    # -- history ----------------------------------------------------------------------------
    async def load_history(self, instance_id: str, run_no: int) -> list[HistoryEvent]:
        rows = await self.db.fetchall(self.q.select_history, (instance_id, run_no))
        return [_event(r) for r in rows if int(r[0]) >= 0]  # < 0: retired (App.resume)

    async def load_history_since(self, instance_id: str, run_no: int, seq: int
                                 ) -> list[HistoryEvent]:
        """The run's history rows from ``seq`` on (a resident state's resume)."""
        rows = await self.db.fetchall(self.q.select_history_since, (instance_id, run_no, seq))
        return [_event(r) for r in rows]

    def _record_params(self, lease: Lease, run_no: int, event: HistoryEvent) -> dict[str, Any]:
        return {
            **_fence(lease),
            "run_no": run_no,
            "seq": event.seq,
            "kind": event.kind,
            "key": event.key,
            "payload": dumps(event.payload),
            "at": event.at,
            "compensation": event.compensation,
        }

    async def record_event_tx(self, tx: Tx, lease: Lease, run_no: int, event: HistoryEvent) -> None:
        """Fenced insert of one history event in the caller's transaction."""
        if not await tx.execute(self.q.record, self._record_params(lease, run_no, event)):
            raise lease_lost(lease)

    async def add_counters_tx(self, tx: Tx, instance_id: str,
                              counters: Mapping[str, float]) -> None:
        """Add to the instance's counters, in the caller's (the activity record's) transaction."""
        for name, value in counters.items():
            await tx.execute(self.q.add_counter, {"iid": instance_id, "name": name,
                                                  "value": value})

    async def counters(self, instance_id: str) -> dict[str, float]:
        rows = await self.db.fetchall(self.q.select_counters, (instance_id,))
        return {str(name): float(value) for name, value in rows}

    async def note_error(self, lease: Lease, error: ErrorInfo | None) -> None:
        """Show (None: clear) the error an activity keeps retrying in the instance's row."""
        text = None if error is None else dumps(error.to_json())
        if await self.db.fetchone(self.q.note_error, {**_fence(lease), "error": text}) is None:
            raise lease_lost(lease)

    async def record_event(self, lease: Lease, run_no: int, event: HistoryEvent) -> None:
        """Fenced insert of one history event, as its own one-statement transaction."""
        if not await self.db.execute(self.q.record, self._record_params(lease, run_no, event)):
            raise lease_lost(lease)

    async def finish(
        self,
        lease: Lease,
        status: WorkflowStatus,
        *,
        result: Any = None,
        error: ErrorInfo | None = None,
        compensation_errors: tuple[ErrorInfo, ...] = (),
        now: float,
        record: tuple[int, HistoryEvent] | None = None,
    ) -> None:
        """Fenced: record the final status (with any failed compensations) and wake waiters.
        ``record``: (run_no, event) written in the same transaction - one statement where the
        dialect has ``finish_recording`` (issue #22: the last activity's success and the
        finish as one durable commit)."""
        error_json: dict[str, Any] | None = dict(error.to_json()) if error is not None else None
        if compensation_errors:
            error_json = error_json or {"type": "cancelled", "message": "", "traceback": ""}
            error_json["compensation_errors"] = [e.to_json() for e in compensation_errors]
        params = {
            **_fence(lease),
            "status": status,
            "now": now,
            "topic": self.topics.done,
            "result": dumps(result) if status is WorkflowStatus.COMPLETED else None,
            "error": dumps(error_json) if error_json is not None else None,
        }
        if record is None:
            row = await self.db.fetchone(self.q.finish, params)
        elif self.q.finish_recording is not None:
            row = await self.db.fetchone(self.q.finish_recording,
                                         {**self._record_params(lease, *record), **params})
        else:
            async def record_and_finish(tx: Tx) -> Row | None:
                await self.record_event_tx(tx, lease, *record)
                return await tx.fetchone(self.q.finish, params)

            row = await self.db.run_transaction(record_and_finish)

        if row is None:
            raise lease_lost(lease)
        if self.handover.expected(lease.instance_id):
            self.handover.offer(lease.instance_id, Finished(
                status, None if params["result"] is None else loads(params["result"]),
                None if error_json is None else ErrorInfo.from_json(error_json)))
        done = self.topics.done
        notes = [(done, lease.instance_id)]
        # the work this end gives the child sweep / queue admission (``ended_flags``): told to
        # this process only - their fallback sweeps cover a crash before it acts on it
        if row[1]:
            notes.append((done, CHILD_HINT))
        if row[2]:
            notes.append((done, QUEUE_HINT))
        self.db.publish_local(notes)

    async def continue_as_new(
        self, lease: Lease, run_no: int, input_json: str, *, now: float
    ) -> int:
        """Fenced ``recur``: archive the run's history, start the next run. Returns its number."""
        iid = lease.instance_id

        async def next_run(tx: Tx) -> None:
            row = await tx.fetchone(self.q.fence, (iid, lease.worker_id, lease.epoch))
            if row is None or int(row[0]) != run_no:
                raise lease_lost(lease)
            old_input, started = row[1], float(row[2])
            await tx.execute(self.q.archive_history, (iid, run_no))
            await tx.execute(self.q.delete_history, (iid, run_no))
            await tx.execute(
                self.q.close_run,
                (iid, run_no, run_no - 1 if run_no > 1 else None, old_input, started, now),
            )
            await tx.execute(self.q.open_run, (iid, run_no + 1, run_no, input_json, now))
            await tx.execute(
                self.q.start_next_run, (input_json, now, now, iid, lease.worker_id, lease.epoch)
            )

        await self.db.run_transaction(next_run)
        return run_no + 1

    # -- data lifecycle ----------------------------------------------------------------------
    async def purge_finished(self, *, before: float, batch: int) -> int:
        """Delete up to ``batch`` instances finished before ``before`` (epoch seconds) with
        every row keyed by them, in one transaction; how many went."""
        assert self._retention is not None, "this store has no retention queries"
        return await purge_finished(self.db, self._retention, before=before, batch=batch)

    async def purge_runs(self, *, before: float, batch: int) -> int:
        """Delete up to ``batch`` archived ``recur`` runs that ended before ``before``, with
        their archived history, in one transaction; how many went."""
        assert self._retention is not None, "this store has no retention queries"
        return await purge_runs(self.db, self._retention, before=before, batch=batch)

    async def list_runs(self, instance_id: str) -> list[RunInfo]:
        """Every run of an instance, oldest first (the current run included)."""
        rows = await self.db.fetchall(self.q.select_runs, (instance_id,))
        runs = [
            RunInfo(
                int(r[0]),
                None if r[1] is None else int(r[1]),
                float(r[2]),
                None if r[3] is None else float(r[3]),
            )
            for r in rows
        ]
        if not runs:
            current = await self.db.fetchone(self.q.run_one, (instance_id,))
            if current is not None:
                runs.append(RunInfo(int(current[0]), None, float(current[2]), None))
        return runs


def _fence(lease: Lease) -> dict[str, Any]:
    return {"iid": lease.instance_id, "owner": lease.worker_id, "epoch": lease.epoch}


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _attributes(text: str | None) -> Mapping[str, str]:
    return frozen_map(None if text is None else loads(text))


def _instance(row: Row) -> InstanceInfo:
    (iid, name, status, input_json, result, error, run_no, owner, epoch, created, updated,
     parent, version) = row
    return InstanceInfo(
        instance_id=iid,
        workflow_name=name,
        status=WorkflowStatus(status),
        input=loads(input_json),
        result=None if result is None else loads(result),
        error=None if error is None else ErrorInfo.from_json(loads(error)),
        run_no=int(run_no),
        lease_owner=owner,
        lease_epoch=int(epoch),
        created_at=_ts(created),
        updated_at=_ts(updated),
        parent_instance_id=parent,
        code_version=version,
    )


def _event(row: Row) -> HistoryEvent:
    """A history event from (seq, kind, key, payload, created_at, compensation)."""
    return HistoryEvent(int(row[0]), EventKind(row[1]), row[2], loads(row[3]), float(row[4]),
                        row[5])


def _history(rows: list[Row], run_no: int) -> tuple[HistoryEvent, ...]:
    """The events of run ``run_no`` among ``select_current_history`` rows."""
    return tuple(_event(r[1:]) for r in rows if int(r[0]) == run_no and int(r[1]) >= 0)
