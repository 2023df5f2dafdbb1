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
A channel receive takes no lock: a publish wakes receivers after its COMMIT, and a receiver
looks again after the COMMIT of its suspension, so one of the two sees the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .. import _clock
from .._codec import dumps, loads
from .._errors import InstanceNotFoundError
from .._event_types import Event, EventReceipt
from .._replay import EventKind, HistoryEvent, WaitCommand, WaitKind
from ._db import Database, Row, Statement, Tx
from ._queries import Queries, WaitQueries
from ._types import Lease, Topics, WorkflowStatus, lease_lost
from .hints import deadline_hint, woken_hints

DELIVERER = "romancy:delivery"
CHAIN_COMMIT = 10
"""A run of receives commits at least every this many messages (`WaitStore.suspend`)."""
Then = Callable[[HistoryEvent], WaitCommand | None]
"""Hands an event to the workflow before it commits; returns the workflow's next wait, if
that is what comes next (`WaitStore.suspend`)."""
Found = tuple[EventKind, object]
"""What a wait got: the kind of history event to record and its payload."""


class ChannelTaker(Protocol):
    """How a channel wait takes its message (set by the channels integration)."""

    async def take_tx(self, tx: Tx, channel: str, subscriber: str) -> Found | None: ...

    def take_statement(self, channel: str, subscriber: str) -> Statement | None:
        """The take as one statement to send with others (then `taken`), or None."""
        ...

    def taken(self, channel: str, subscriber: str, rows: list[Row]) -> Found | None: ...

    def ready_query(self, channel: str, subscriber: str, *, woken: str
                    ) -> tuple[str, dict[str, Any]]:
        """A SELECT of one row and one column: whether a take for ``subscriber`` would find
        a message now that none of the ``woken`` (an SQL count of other receivers on their
        way to take) is about to take."""
        ...


class WaitStore:
    def __init__(self, db: Database, queries: Queries, waits: WaitQueries, topics: Topics
                 ) -> None:
        self.db = db
        self.topics = topics
        self.q = queries
        self.w = waits
        self.channels: ChannelTaker | None = None
        self.deadline_hint_horizon = math.inf
        """A suspension announces its deadline to every worker (a ``t:`` work notification)
        only if the deadline is nearer than this many seconds. Past that, every waiting
        worker claims again before it is due, and that claim returns the earliest deadline
        (see ``ClaimWaiter.until_claim_is_due``): the notification would only cost every
        worker a wake-up. Set by ``open_app`` from the notify hub's fallback re-check."""

    async def suspend(self, lease: Lease, run_no: int, seq: int, wait: WaitCommand, *,
                      now: float, then: Then | None = None,
                      next_seq: Callable[[], int] | None = None) -> HistoryEvent | None:
        """Resolve ``wait`` at once if it can be (event in the inbox, message available,
        deadline passed) and return the recorded event; otherwise suspend the instance and
        return None.

        On PostgreSQL, found: the take, then the history row with COMMIT (two round trips).
        Not found: a channel wait suspends with COMMIT and looks again right after it (two
        round trips, no lock: a publish wakes receivers after its own COMMIT, so one of the
        two looks sees the other's write); other waits lock the instance, as targeted
        deliveries do, look again, then suspend with COMMIT (three).

        ``then`` (with ``next_seq``): called with each event found before it commits; it
        hands the event to the workflow and returns the workflow's next wait, if that is
        what comes next. A channel wait whose take is one statement is then taken in the
        same round trip as the record (one round trip per message while messages are
        there), and so on; the records commit every `CHAIN_COMMIT` messages and when the
        run of takes ends, before the workflow does anything else. Returns the last event
        found."""
        fence = {"iid": lease.instance_id, "owner": lease.worker_id, "epoch": lease.epoch}
        iid = lease.instance_id
        handed = False  # `then` has seen an event: the run cannot be repeated after that
        wait_now, seq_now, now_now = wait, seq, now

        async def body(tx: Tx) -> HistoryEvent | tuple[list[Row], WaitCommand]:
            nonlocal handed
            wait, seq, now = wait_now, seq_now, now_now
            # First look without locks (the common case: something is there; the fenced
            # record below still guards the lease).
            _, found = await self._take_tx(tx, iid, wait)
            chained = 0
            while True:
                locked = False
                if found is None and wait.kind is not WaitKind.CHANNEL:
                    # Serialise with whoever could deliver (targeted events lock the instance
                    # row too), so that a concurrent deliverer sees the wait or we see what it
                    # delivered. The lock also holds the fence until COMMIT.
                    (rows, *_), found = await self._take_tx(tx, iid, wait,
                                                            lock=(self.w.lock_fenced, fence))
                    if not rows or int(rows[0][0]) != run_no:
                        raise lease_lost(lease)
                    locked = True
                if found is None and wait.deadline is not None and wait.deadline <= now:
                    kind = (EventKind.TIMER_FIRED if wait.kind is WaitKind.TIMER
                            else EventKind.WAIT_TIMED_OUT)
                    found = (kind, None)
                if found is None:
                    break
                event = HistoryEvent(seq, found[0], wait.wait_id, found[1], now)
                params = {**fence, "run_no": run_no, "seq": seq, "kind": event.kind,
                          "key": event.key, "payload": dumps(event.payload), "at": now,
                          "compensation": None}
                record = [(q, params) for q in self.w.resolve]
                handed = then is not None
                following = None if then is None else then(event)
                take = None
                if (following is not None and following.kind is WaitKind.CHANNEL
                        and next_seq is not None and self.w.resolve_raises_when_fenced):
                    take = self._channels().take_statement(following.key, iid)
                if following is None or take is None or next_seq is None:
                    # COMMIT may travel with the fenced insert if that cannot fail (locked)
                    # or fails loudly, skipping COMMIT (the dialect's resolve raises when
                    # fenced out).
                    recorded, *_ = await tx.fetch_batch(
                        record, then_commit=locked or self.w.resolve_raises_when_fenced)
                    if not recorded:  # unlocked: rolls back whatever the take consumed
                        raise lease_lost(lease)
                    return event
                # the record and the next receive's take: one round trip. Nothing outside
                # the run has seen these receipts yet, so they may share a COMMIT: every
                # CHAIN_COMMIT-th travels with one (and the chain's last, whatever ends it);
                # a crash before it gives the messages back, and the replay takes them again.
                chained += 1
                if chained % CHAIN_COMMIT == 0:
                    _, (taken,) = await tx.commit_and_begin(record, [take])
                else:
                    *_, taken = await tx.fetch_batch([*record, take])
                seq, wait, now = next_seq(), following, _clock.now()
                found = self._channels().taken(wait.key, iid, taken)
            params = {**fence, "run_no": run_no, "wait_id": wait.wait_id, "kind": wait.kind,
                      "key": wait.key, "deadline": wait.deadline, "wake_at": wait.deadline,
                      "now": now, "topic": self.topics.work,
                      "hint_before": now + self.deadline_hint_horizon}
            if wait.kind is WaitKind.CHANNEL:
                # A message committed since the take above found no receiver waiting yet:
                # look again once this suspension is visible (in the same round trip), and
                # if one is there that no receiver already woken will take, make the
                # instance runnable again at once.
                ready, ready_params = self._channels().ready_query(
                    wait.key, iid, woken=self.w.woken_receivers)
                tx.after_commit((self.w.wake_if_ready.replace("{ready}", ready), {
                    **ready_params, "iid": iid, "wait_id": wait.wait_id, "now": now,
                    "topic": self.topics.work}), self.woken_notes)
            *_, last = await tx.fetch_batch([(q, params) for q in self.w.suspend],
                                            then_commit=True)
            if not last:  # fenced: the lease, or the run, is no longer ours
                raise lease_lost(lease)
            return last, wait

        done = await self.db.run_transaction(body, again=lambda: not handed)
        if isinstance(done, HistoryEvent):
            return done
        last, wait = done
        if last[0][0] == WorkflowStatus.PENDING:  # a cancel arrived: claim it
            self.db.publish_local([(self.topics.work, "")])
        elif wait.deadline is not None:  # re-arm timers
            self.db.publish_local([(self.topics.work, deadline_hint(wait.deadline))])
        return None

    async def _take_tx(self, tx: Tx, iid: str, wait: WaitCommand, *,
                       lock: Statement | None = None) -> tuple[list[list[Row]], Found | None]:
        """Run ``lock`` if given, then consume what ``wait`` waits for if it is there
        (targeted event, message): the lock's rows, and what was taken. A channel take that
        is one statement travels with the lock (one round trip)."""
        batch = [] if lock is None else [lock]
        if wait.kind is WaitKind.CHANNEL:
            channels = self._channels()
            take = channels.take_statement(wait.key, iid)
            if take is not None:
                *rows, taken = await tx.fetch_batch([*batch, take])
                return rows, channels.taken(wait.key, iid, taken)
        rows = await tx.fetch_batch(batch) if batch else []
        if wait.kind is WaitKind.CHANNEL:
            return rows, await self._channels().take_tx(tx, wait.key, iid)
        if wait.kind is WaitKind.EVENT:
            row = await tx.fetchone(self.w.inbox_first, {"iid": iid, "type": wait.key})
            if row is None:
                return rows, None
            ident = {"iid": iid, "source": row[0], "event_id": row[1]}
            await tx.execute(self.w.inbox_delete, ident)
            body = await tx.fetchone(self.w.event_body, ident)
            if body is None:
                return rows, None  # retention removed the event itself: nothing to deliver
            return rows, (EventKind.EVENT_RECEIVED, loads(body[0]))
        return rows, None

    def _channels(self) -> ChannelTaker:
        if self.channels is None:
            raise RuntimeError("channel waits need the channels integration")
        return self.channels

    async def wake_waiters_tx(self, tx: Tx, kind: WaitKind, key: str, *,
                              target: str | None = None, limit: int | None = None) -> list[str]:
        """Make instances waiting on (kind, key) runnable again; announce new work."""
        query, params = self.wake_statement(kind, key, target=target, limit=limit)
        rows = await tx.fetchall(query, params)
        for topic, payload in self.woken_notes(rows):
            if self.w.wake_notifies:
                tx.notify_local(topic, payload)
            else:
                await tx.notify(topic, payload)
        return [str(r[0]) for r in rows]

    def wake_statement(self, kind: WaitKind, key: str, *, target: str | None = None,
                       limit: int | None = None) -> Statement:
        """What `wake_waiters_tx` runs, for a caller that sends it on its own terms (e.g.
        after COMMIT); `woken_notes` reads its rows."""
        return self.w.wake_waiters, {"kind": kind, "key": key, "target": target,
                                     "limit": limit, "now": _clock.now(),
                                     "topic": self.topics.work}

    def woken_notes(self, rows: list[Row]) -> list[tuple[str, str]]:
        """The work notifications for the instances a `wake_statement` woke (its rows), named
        so that only the worker chosen for each claims it at once (`hints.woken_hints`).
        Where the statement sent them itself (``wake_notifies``), only this process's
        waiters still need them."""
        if self.w.wake_notifies:
            return [(self.topics.work, str(r[1])) for r in rows]
        return [(self.topics.work, hint) for hint in woken_hints([str(r[0]) for r in rows])]

    async def announce_woken_tx(self, tx: Tx, woken: list[str]) -> None:
        """Announce work on commit, naming the instances woken so that only the worker chosen
        for each claims it at once; past a few, an anonymous notification has every worker
        claim (see `hints.woken_hints`)."""
        for hint in woken_hints(woken):
            await tx.notify(self.topics.work, hint)

    async def send_event(self, event: Event) -> EventReceipt:
        """Record the event (once per source and id) and wake the instances waiting for it."""
        event.validate()
        body = event.body()
        body_json = dumps(body)
        now = _clock.now()
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
        return await self.db.run_transaction(
            lambda tx: self._record_tx(tx, event, body_json, now))

    async def send_events(self, events: Sequence[Event]) -> list[EventReceipt]:
        """Record several events in one transaction: all of them or none (an invalid event
        or a target instance that does not exist raises, and nothing is stored)."""
        bodies = []
        for event in events:
            event.validate()
            bodies.append(dumps(event.body()))
        now = _clock.now()

        async def record_all(tx: Tx) -> list[EventReceipt]:
            return [await self._record_tx(tx, event, body_json, now)
                    for event, body_json in zip(events, bodies, strict=True)]

        return await self.db.run_transaction(record_all)

    async def _record_tx(self, tx: Tx, event: Event, body_json: str, now: float
                         ) -> EventReceipt:
        delivered: list[str] = []
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
        """Request cancellation; returns the status it left (None: already ended). A
        ``queued`` instance leaves its queue in the same transaction: it never runs and never
        holds a slot."""
        async def request(tx: Tx) -> WorkflowStatus | None:
            await tx.execute(self.w.unqueue, {"iid": instance_id})
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

        return await self.db.run_transaction(request)

    async def cleanup(self, *, retention: float, batch: int = 1000) -> int:
        """Delete events (and unconsumed inbox entries) older than ``retention`` seconds."""
        before = _clock.now() - retention

        async def clean(tx: Tx) -> int:
            await tx.execute(self.w.inbox_cleanup, {"before": before})
            return await tx.execute(self.w.events_cleanup, {"before": before, "limit": batch})

        return await self.db.run_transaction(clean)

