"""Queues with limits: a workflow started on a named queue waits (status ``queued``) until the
queue admits it.

Admission is one transaction per queue that first locks the queue's row (PostgreSQL: ``FOR
UPDATE``; SQLite: its one writer), so admissions of one queue are serialized across every
worker process and the limits hold globally: it frees the slots of admitted instances that
have ended, counts the slots held (per partition key too) and the admissions within the rate
period, and admits the best waiting entries (highest ``priority`` first, then oldest) that
fit - their instances become ``pending`` and are claimed like any other. An admitted instance
holds its slot until it ends (waiting included). Every worker runs `QueueService.serve`, woken
by ``QUEUE_HINT`` on the ``done`` topic - published in process by the worker that ended an
instance holding a slot (its finishing statement says so; other ends cost no admission round,
issue #22), and to every worker by an enqueue or a queue change - by any cancellation (a
waiting instance ends in the cancelling transaction), when the rate window lets the next one
in, and by the fallback timer (which also covers a worker that died before its round).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from romancy_notify import Hub

from . import _clock
from ._errors import InstanceIdConflictError, InvalidInputError, RomancyError
from ._wake import Wakeups
from .storage import Store, Tx
from .storage._compose_queries import queue_queries
from .storage.hints import QUEUE_HINT

if TYPE_CHECKING:
    from ._engine._outages import Outages

CANDIDATES = 500


class QueueNotFoundError(RomancyError):
    """No queue of this name (``queue``) has been declared: `App.enqueue` needs
    `App.declare_queue` first (declaring is idempotent, so do it at start)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"no queue named {queue!r}: declare it with app.declare_queue first")


class DuplicateQueueEntryError(RomancyError):
    """A start with a dedup id that an instance still queued or running on that queue holds."""

    def __init__(self, queue: str, dedup_id: str, instance_id: str) -> None:
        self.queue, self.dedup_id, self.instance_id = queue, dedup_id, instance_id
        super().__init__(f"dedup id {dedup_id!r} is held on queue {queue!r} by instance "
                         f"{instance_id!r} (queued or running)")


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    """Entries not admitted yet (the queue's depth)."""
    running: int
    """Admitted instances that have not ended (slots held)."""


def _positive(name: str, value: float | None, *, integer: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or not (
            0 < value < math.inf):
        kind = "an integer" if integer else "a number"
        raise InvalidInputError(f"{name} must be {kind} > 0 (or None), not {value!r}")


class QueueService:
    def __init__(self, store: Store, hub: Hub, *, fallback: float) -> None:
        self.store = store
        self.hub = hub
        self.fallback = fallback
        self.q = queue_queries(store.db.dialect, store.db.schema)

    async def declare(self, name: str, *, concurrency: int | None,
                      partition_concurrency: int | None, rate: tuple[int, float] | None) -> None:
        if not isinstance(name, str) or not name or len(name) > 200 or "\x00" in name:
            raise InvalidInputError("a queue name must be 1-200 characters without NUL")
        _positive("concurrency", concurrency, integer=True)
        _positive("partition_concurrency", partition_concurrency, integer=True)
        if rate is not None:
            if not isinstance(rate, tuple) or len(rate) != 2:
                raise InvalidInputError("rate must be (starts, seconds)")
            _positive("rate starts", rate[0], integer=True)
            _positive("rate seconds", rate[1], integer=False)
        async with self.store.db.transaction() as tx:
            await tx.execute(self.q.queue_upsert, {
                "q": name, "conc": concurrency, "pconc": partition_concurrency,
                "rate": None if rate is None else rate[0],
                "period": None if rate is None else float(rate[1]), "now": _clock.now()})
            await self._announce(tx)

    async def enqueue(self, queue: str, workflow_name: str, input_json: str, *,
                      instance_id: str | None, priority: int, partition_key: str | None,
                      dedup_id: str | None) -> str:
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 2**31:
            raise InvalidInputError(f"priority must be a 32-bit integer, not {priority!r}")
        iid = instance_id or uuid.uuid4().hex
        now = _clock.now()
        async with self.store.db.transaction() as tx:
            if await tx.fetchone(self.q.queue_lock, {"q": queue}) is None:
                raise QueueNotFoundError(queue)
            if dedup_id is not None:
                held = await tx.fetchone(self.q.dedup_live, {"q": queue, "dedup": dedup_id})
                if held is not None:
                    raise DuplicateQueueEntryError(queue, dedup_id, str(held[0]))
            if await tx.fetchone(self.q.queued_insert, {
                    "iid": iid, "name": workflow_name, "input": input_json, "now": now}) is None:
                raise InstanceIdConflictError(f"instance id {iid!r} already exists")
            await tx.execute(self.q.entry_insert, {
                "iid": iid, "q": queue, "part": partition_key or "", "prio": priority,
                "dedup": dedup_id, "now": now})
            await self._announce(tx)
        return iid

    async def stats(self) -> list[QueueStats]:
        rows = await self.store.db.fetchall(self.q.depth)
        return [QueueStats(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def _announce(self, tx: Tx) -> None:
        # on the done topic, which admission loops watch anyway (an ended instance frees a slot)
        await tx.notify(self.store.topics.done, QUEUE_HINT)

    async def serve(self, outages: Outages, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        topics = self.store.topics
        wakeups = Wakeups()
        with self.hub.watch(topics.done, QUEUE_HINT) as hinted, \
                self.hub.watch(topics.cancel) as cancelled:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wakeups.relay, hinted)
                nursery.start_soon(wakeups.relay, cancelled)
                task_status.started()
                while True:
                    wake_at = await outages.ride_out("queue admission", self._admit_all)
                    await wakeups.wait(min(self.fallback,
                                           max(0.0, wake_at - _clock.now())))

    async def _admit_all(self) -> float:
        """Admit what fits in every queue; when a rate window next lets one in."""
        wake_at = math.inf
        for (name,) in await self.store.db.fetchall(self.q.queue_names):
            wake_at = min(wake_at, await self.admit(str(name)))
        return wake_at

    async def admit(self, queue: str) -> float:
        """Admit what fits now; when the rate window next lets one in (inf: not limited)."""
        q, wake_at = self.q, math.inf
        async with self.store.db.transaction() as tx:
            limits = await tx.fetchone(q.queue_lock, {"q": queue})
            if limits is None:
                return wake_at
            conc, pconc, rate, period = limits
            now = _clock.now()
            await tx.execute(q.release_ended, {"q": queue, "now": now})
            held = {str(p): int(n) for p, n in await tx.fetchall(q.running_by_partition,
                                                                  {"q": queue})}
            free = math.inf if conc is None else int(conc) - sum(held.values())
            if rate is not None:
                window = {"q": queue, "since": now - float(period)}
                count, first = await tx.fetchone(q.admitted_since, window) or (0, None)
                left = int(rate) - int(count)
                if left <= 0 and first is not None:
                    wake_at = float(first) + float(period)
                free = min(free, left)
            if free <= 0:
                return wake_at
            limit = CANDIDATES if math.isinf(free) else min(CANDIDATES, int(free) * 20)
            admitted = 0
            for iid, part in await tx.fetchall(q.candidates, {"q": queue, "limit": limit}):
                if admitted >= free:
                    break
                if pconc is not None and held.get(part, 0) >= int(pconc):
                    continue
                held[part] = held.get(part, 0) + 1
                admitted += 1
                await tx.execute(q.admit_entry, {"iid": iid, "now": now})
                await tx.execute(q.admit_instance, {"iid": iid, "now": now})
                await tx.notify(self.store.topics.work, "i:" + iid)
            if rate is not None and admitted >= free:
                row = await tx.fetchone(q.admitted_since,
                                        {"q": queue, "since": now - float(period)})
                if row is not None and row[1] is not None:
                    wake_at = min(wake_at, float(row[1]) + float(period))
        return wake_at
