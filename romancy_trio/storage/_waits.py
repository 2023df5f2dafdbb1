"""Waits that release the worker, and event intake.

A workflow that waits is *suspended*: its wait becomes a row, its status ``waiting`` (with
``wake_at`` for a deadline), its lease is dropped and no worker keeps anything of it. It resumes
when somebody appends the awaited event to its history and makes it ``pending`` again:

- an untargeted event is delivered to every instance whose wait for that type is registered when
  the event commits (an instance that starts waiting later does not get it);
- a targeted event (``target_instance_id``) goes to that instance's inbox and is consumed by its
  next wait for that type, even if it arrives before the wait;
- a due deadline makes the instance claimable; the claimer records the timeout (or timer fire).

Suspending and targeted delivery both lock the instance row first, so one always sees the other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from .._codec import dumps, loads
from .._errors import InstanceNotFoundError
from .._event_types import Event, EventReceipt
from .._replay import EventKind, HistoryEvent, WaitCommand, WaitKind
from ._db import Database, Tx
from ._queries import Queries, WaitQueries
from ._types import Lease, Topics, WorkflowStatus, lease_lost
from .hints import deadline_hint, instance_hint

DELIVERER = "romancy:delivery"
_NAMED_WAKEUPS = 8
"""Most woken instances a write names in its work notifications (one NOTIFY each)."""
# (tx, channel, subscriber) -> (kind, payload) or None; set by the channels integration
ChannelTake = Callable[[Tx, str, str], Awaitable[tuple[EventKind, object] | None]]


class WaitStore:
    def __init__(self, db: Database, queries: Queries, waits: WaitQueries, topics: Topics
                 ) -> None:
        self.db = db
        self.topics = topics
        self.q = queries
        self.w = waits
        self.channel_take: ChannelTake | None = None

    async def suspend(self, lease: Lease, run_no: int, seq: int, wait: WaitCommand, *,
                      now: float) -> HistoryEvent | None:
        """Resolve ``wait`` at once if it can be (event in the inbox, message available,
        deadline passed) and return the recorded event; otherwise suspend the instance."""
        fence = {"iid": lease.instance_id, "owner": lease.worker_id, "epoch": lease.epoch}
        iid = lease.instance_id
        async with self.db.transaction() as tx:
            # First look without the instance lock (the common case: something is there; the
            # fenced record below still guards the lease). Only to suspend does it lock the
            # instance and look again, so a concurrent deliverer sees the wait or we see it.
            found = await self._take_tx(tx, iid, wait)
            if found is None:
                # Serialise with whoever could deliver: the instance row is locked (targeted
                # events lock it too) and a channel's row share-locked (publishers row-lock
                # it), so what committed meanwhile is seen here, or sees our wait.
                if wait.kind is WaitKind.CHANNEL:
                    row = await tx.fetchone(self.w.lock_fenced_channel,
                                            {**fence, "channel": wait.key})
                else:
                    row = await tx.fetchone(self.w.lock_fenced, fence)
                if row is None or int(row[0]) != run_no:
                    raise lease_lost(lease)
                found = await self._take_tx(tx, iid, wait)
            if found is None and wait.deadline is not None and wait.deadline <= now:
                kind = (EventKind.TIMER_FIRED if wait.kind is WaitKind.TIMER
                        else EventKind.WAIT_TIMED_OUT)
                found = (kind, None)
            if found is not None:
                event = HistoryEvent(seq, found[0], wait.wait_id, found[1], now)
                params = {**fence, "run_no": run_no, "seq": seq, "kind": event.kind,
                          "key": event.key, "payload": dumps(event.payload), "at": now,
                          "compensation": None}
                first, *rest = self.w.resolve
                if not await tx.execute(first, params):
                    raise lease_lost(lease)  # rolls back whatever _take_tx consumed
                for query in rest:
                    await tx.execute(query, params)
                return event
            params = {**fence, "wait_id": wait.wait_id, "kind": wait.kind, "key": wait.key,
                      "deadline": wait.deadline, "wake_at": wait.deadline, "now": now,
                      "topic": self.topics.work}
            *before, last = self.w.suspend
            for query in before:
                await tx.execute(query, params)
            # COMMIT may travel with the last statement: nothing before it wrote what a lost
            # lease must undo (the takes found nothing; ``before`` is empty on PostgreSQL, and
            # on SQLite its wait rows roll back when lease_lost leaves the transaction).
            state = await tx.fetchone_then_commit(last, params)
            if state is None:
                raise lease_lost(lease)
        if state[0] == WorkflowStatus.PENDING:  # a cancel arrived: claim it
            self.db.publish_local([(self.topics.work, "")])
        elif wait.deadline is not None:  # re-arm timers
            self.db.publish_local([(self.topics.work, deadline_hint(wait.deadline))])
        return None

    async def _take_tx(self, tx: Tx, iid: str, wait: WaitCommand
                       ) -> tuple[EventKind, object] | None:
        """Consume what ``wait`` waits for if it is there (targeted event, message)."""
        if wait.kind is WaitKind.EVENT:
            row = await tx.fetchone(self.w.inbox_first, {"iid": iid, "type": wait.key})
            if row is None:
                return None
            ident = {"iid": iid, "source": row[0], "event_id": row[1]}
            await tx.execute(self.w.inbox_delete, ident)
            body = await tx.fetchone(self.w.event_body, ident)
            if body is None:
                return None  # retention removed the event itself: nothing to deliver
            return EventKind.EVENT_RECEIVED, loads(body[0])
        if wait.kind is WaitKind.CHANNEL:
            if self.channel_take is None:
                raise RuntimeError("channel waits need the channels integration")
            return await self.channel_take(tx, wait.key, iid)
        return None

    async def wake_waiters_tx(self, tx: Tx, kind: WaitKind, key: str, *,
                              target: str | None = None, limit: int | None = None) -> list[str]:
        """Make instances waiting on (kind, key) runnable again; announce new work."""
        rows = await tx.fetchall(self.w.wake_waiters, {
            "kind": kind, "key": key, "target": target, "limit": limit, "now": time.time()})
        woken = [r[0] for r in rows]
        await self.announce_woken_tx(tx, woken)
        return woken

    async def announce_woken_tx(self, tx: Tx, woken: list[str]) -> None:
        """Announce work on commit, naming the instances woken so that only the worker chosen
        for each claims it at once; past a few, an anonymous notification has every worker
        claim (a burst is worth spreading)."""
        if len(woken) > _NAMED_WAKEUPS:
            await tx.notify(self.topics.work, "")
            return
        for iid in woken:
            await tx.notify(self.topics.work, instance_hint(iid))

    async def send_event(self, event: Event) -> EventReceipt:
        """Record the event (once per source and id) and wake the instances waiting for it."""
        event.validate()
        body = event.body()
        body_json = dumps(body)
        now = time.time()
        if event.target_instance_id is None and self.w.event_broadcast is not None:
            row = await self.db.fetchone(self.w.event_broadcast, {
                "source": event.source, "event_id": event.id, "type": event.type,
                "body": body_json, "now": now, "kind": EventKind.EVENT_RECEIVED,
                "worker": DELIVERER, "topic": self.topics.work})
            assert row is not None
            woken = tuple(row[1])
            if woken:
                self.db.publish_local([(self.topics.work, "")])
            return EventReceipt(event.id, event.source, not row[0], woken)
        delivered: list[str] = []
        async with self.db.transaction() as tx:
            new = await tx.fetchone(self.w.event_insert, {
                "source": event.source, "event_id": event.id, "type": event.type,
                "body": body_json, "target": event.target_instance_id, "now": now})
            if new is None:
                return EventReceipt(event.id, event.source, True, ())
            if event.target_instance_id is not None:
                iid = event.target_instance_id
                status = await tx.fetchone(self.w.lock_instance, {"iid": iid})
                if status is None:
                    raise InstanceNotFoundError(iid)  # rolls back: nothing stored
                wait = await tx.fetchone(self.w.instance_wait,
                                         {"iid": iid, "kind": WaitKind.EVENT, "key": event.type})
                if status[0] == WorkflowStatus.WAITING and wait is not None:
                    await self._deliver_tx(tx, iid, str(wait[0]), body_json, now)
                    delivered.append(iid)
                elif not WorkflowStatus(status[0]).is_terminal:
                    await tx.execute(self.w.inbox_insert, {
                        "iid": iid, "source": event.source, "event_id": event.id,
                        "type": event.type, "now": now})
            else:
                for iid, wait_id in await tx.fetchall(self.w.event_waiters, {"type": event.type}):
                    await self._deliver_tx(tx, iid, wait_id, body_json, now)
                    delivered.append(iid)
            await self.announce_woken_tx(tx, delivered)
        return EventReceipt(event.id, event.source, False, tuple(delivered))

    async def _deliver_tx(self, tx: Tx, iid: str, wait_id: str, body_json: str,
                          now: float) -> None:
        await tx.execute(self.w.append_history, {
            "iid": iid, "kind": EventKind.EVENT_RECEIVED, "key": wait_id, "payload": body_json,
            "worker": DELIVERER, "at": now})
        await tx.execute(self.w.waits_delete, {"iid": iid})
        await tx.execute(self.w.wake, {"iid": iid, "now": now})

    async def cancel(self, instance_id: str, *, now: float) -> WorkflowStatus | None:
        """Request cancellation; returns the status it left (None: already ended)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(self.w.cancel, {"iid": instance_id, "now": now})
            if row is None:
                return None
            status = WorkflowStatus(row[0])
            if status is not WorkflowStatus.RUNNING:
                await tx.execute(self.w.waits_delete, {"iid": instance_id})
            await tx.notify(self.topics.cancel, instance_id)
            if status is WorkflowStatus.CANCELLED:
                await tx.notify(self.topics.done, instance_id)
            elif status is WorkflowStatus.PENDING:
                await tx.notify(self.topics.work, "")
        return status

    async def cleanup(self, *, retention: float, batch: int = 1000) -> int:
        """Delete events (and unconsumed inbox entries) older than ``retention`` seconds."""
        before = time.time() - retention
        async with self.db.transaction() as tx:
            await tx.execute(self.w.inbox_cleanup, {"before": before})
            return await tx.execute(self.w.events_cleanup, {"before": before, "limit": batch})

