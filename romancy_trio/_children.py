"""Child workflows, the driver side: the start activity, and telling parents.

``ctx.start_child`` records a built-in transactional activity that inserts the child as a
pending instance (``parent_instance_id``, ``parent_close_policy``, ``parent_notified = false``)
in the activity's own transaction. When an instance with a parent or live children ends, the
worker that ended it runs `ChildService.sweep` (its finishing statement says so: `Store.finish`
publishes ``CHILD_HINT`` in process; an instance with neither costs no sweep, issue #22); a
cancellation wakes the sweep in every worker (the cancel notification: a pending or waiting
instance ends in the cancelling transaction). The sweep (in bounded batches, rows locked with
SKIP LOCKED)

* tells each ended child's parent: an event targeted at the parent, type
  ``romancy.child:<child id>``, carrying the child's status, result or error (recorded once per
  child: the event's id is the child's id), and marks the child told in the same transaction;
* cancels the live children (policy ``cancel``) of parents that have ended: their
  compensations run as for any cancelled instance.

The notification is a hint: the same sweep runs on the hub's fallback timer in every worker,
so an outcome is never lost to a missed notification or a worker that died between the
finishing statement and its sweep. A database outage interrupts the sweep, which waits for
the database and goes on (`Outages`); what it had committed stays told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from romancy_notify import Hub

from . import _clock
from ._activity_context import ActivityContext
from ._codec import dumps, loads
from ._definitions import Activity
from ._errors import InstanceIdConflictError
from ._event_types import Event
from ._replay._children import CHILD_EVENT, CHILD_SOURCE, CHILD_START
from ._wake import Wakeups
from .storage import InstanceInfo, Store, Tx, WorkflowStatus
from .storage._compose_queries import compose_queries
from .storage._store import _instance
from .storage.hints import CHILD_HINT, new_hint

if TYPE_CHECKING:
    from ._engine._outages import Outages

BATCH = 200


class ChildService:
    def __init__(self, store: Store, hub: Hub | None) -> None:
        self.store = store
        self.hub = hub
        self.q = compose_queries(store.db.dialect, store.db.schema)

    def activities(self) -> list[Activity[..., Any]]:
        async def start_child_(ctx: ActivityContext, workflow_name: str, input_json: str,
                               instance_id: str, policy: str) -> str:
            tx = await _tx(ctx)
            row = await tx.fetchone(self.q.child_insert, {
                "iid": instance_id, "name": workflow_name, "input": input_json,
                "now": _clock.now(), "parent": ctx.instance_id, "policy": policy})
            if row is not None:
                await tx.notify(self.store.topics.work, new_hint(instance_id))
                return instance_id
            found = await tx.fetchone(self.q.child_existing, {"iid": instance_id})
            if found is None or found[0] != workflow_name or found[1] != ctx.instance_id:
                raise InstanceIdConflictError(
                    f"instance id {instance_id!r} is already used by another instance than "
                    f"a child {workflow_name!r} of {ctx.instance_id!r}")
            return instance_id  # a retried start whose first attempt committed

        return [Activity(start_child_, name=CHILD_START, transactional=True)]

    async def serve(self, outages: Outages, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self.hub is not None, "a ChildService made without a hub cannot serve"
        topics = self.store.topics
        wakeups = Wakeups()
        with self.hub.watch(topics.done, CHILD_HINT) as ended, \
                self.hub.watch(topics.cancel) as cancelled:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wakeups.relay, ended)
                nursery.start_soon(wakeups.relay, cancelled)
                task_status.started()
                while True:
                    await outages.ride_out("child sweep", self._sweep_all)
                    # an orphan cancelled by the sweep wakes it again (its children next)
                    await wakeups.wait()

    async def _sweep_all(self) -> None:
        while await self.sweep() >= BATCH:
            pass

    async def sweep(self) -> int:
        """Tell the parents of ended children, cancel orphans; how many rows it handled."""
        told = await self._tell_parents()
        orphans = await self.store.db.fetchall(self.q.orphans, {"limit": BATCH})
        for (iid,) in orphans:
            await self.store.waits.cancel(iid, now=_clock.now())
        return max(told, len(orphans))

    async def _tell_parents(self) -> int:
        waits = self.store.waits
        async with self.store.db.transaction() as tx:
            rows = await tx.fetchall(self.q.children_to_tell, {"limit": BATCH})
            for iid, status, result, error, parent, parent_status in rows:
                await tx.execute(self.q.mark_told, {"iid": iid})
                if parent_status is None or WorkflowStatus(parent_status).is_terminal:
                    continue  # nobody is left to tell
                data: dict[str, Any] = {"status": status}
                if status == WorkflowStatus.COMPLETED:
                    data["result"] = None if result is None else loads(result)
                elif error is not None:
                    err = loads(error)
                    data["error"] = {"type": err.get("type"), "message": err.get("message")}
                event = Event(type=CHILD_EVENT + iid, source=CHILD_SOURCE, id=iid, data=data,
                              target_instance_id=parent)
                await waits._record_tx(tx, event, dumps(event.body()), _clock.now())
        return len(rows)

    async def children(self, parent: str, *, limit: int) -> list[InstanceInfo]:
        rows = await self.store.db.fetchall(self.q.children_of,
                                            {"parent": parent, "limit": limit})
        return [_instance(r) for r in rows]

    async def parent(self, instance_id: str) -> str | None:
        row = await self.store.db.fetchone(self.q.parent_of, {"iid": instance_id})
        return None if row is None else row[0]


async def _tx(ctx: ActivityContext) -> Tx:
    tx = getattr(ctx.db, "tx", None)
    if tx is None:
        raise RuntimeError("the child start activity needs a transactional session")
    result: Tx = await tx()
    return result
