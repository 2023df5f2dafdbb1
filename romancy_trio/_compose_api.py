"""The `App` methods of child workflows and schedules (mixed into `App`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from romancy_notify import Hub

from ._children import ChildService
from ._errors import InvalidInputError
from ._queues import QueueService, QueueStats
from ._schedules import Catchup, Rule, ScheduleInfo, ScheduleService
from .storage import InstanceInfo, Store

if TYPE_CHECKING:
    from ._definitions import Activity, Workflow


def compose_activities(store: Store) -> list[Activity[..., Any]]:
    """The built-in activities of child workflows (the recorded start)."""
    return ChildService(store, None).activities()


class ComposeApi:
    _children: ChildService
    _schedules: ScheduleService
    _queues: QueueService

    def _init_compose(self, store: Store, hub: Hub, fallback: float) -> None:
        self._children = ChildService(store, hub)
        self._schedules = ScheduleService(store, hub, fallback=fallback)
        self._queues = QueueService(store, hub, fallback=fallback)

    def _compose_services(self) -> tuple[ChildService, ScheduleService, QueueService]:
        """The loops every worker runs: children told, schedules ticked, queues admitted."""
        return self._children, self._schedules, self._queues

    def _workflow(self, workflow: Workflow[Any, Any] | str) -> Workflow[Any, Any]:
        raise NotImplementedError

    async def children(self, instance_id: str, *, limit: int = 1000) -> list[InstanceInfo]:
        """The child workflows ``instance_id`` started, oldest first."""
        return await self._children.children(instance_id, limit=limit)

    async def parent(self, instance_id: str) -> str | None:
        """The instance that started ``instance_id`` as its child (None: none)."""
        return await self._children.parent(instance_id)

    async def schedule(self, workflow: Workflow[Any, Any] | str, /, *args: Any, id: str,
                       cron: str | None = None, interval: float | None = None,
                       timezone: str = "UTC", catchup: Catchup = "one",
                       start_at: datetime | None = None, **kwargs: Any) -> str:
        """Create (or update: same ``id``) a durable schedule that starts ``workflow`` with
        these arguments at every tick of ``cron`` (5 fields, in ``timezone``) or every
        ``interval`` seconds (from ``start_at``, default: the next multiple of the interval).
        Each tick starts exactly one instance, ``<id>@<tick time UTC>``, however many workers
        run. ``catchup``: what to do with ticks found due together after no worker handled
        them ('all', 'one' - the latest - or 'skip'). Returns ``id``."""
        wf = self._workflow(workflow)
        input_json = wf.input.encode(wf.input.bind(args, kwargs))
        if start_at is not None and start_at.tzinfo is None:
            raise InvalidInputError("start_at must be a timezone-aware datetime")
        await self._schedules.upsert(
            id, wf.name, input_json, rule=Rule(cron, interval, timezone), catchup=catchup,
            start_at=None if start_at is None else start_at.timestamp())
        return id

    async def pause_schedule(self, schedule_id: str) -> None:
        await self._schedules.pause(schedule_id, paused=True)

    async def resume_schedule(self, schedule_id: str) -> None:
        """Resume a paused schedule; the ticks that passed while it was paused are skipped."""
        await self._schedules.pause(schedule_id, paused=False)

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._schedules.delete(schedule_id)

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        return await self._schedules.get(schedule_id)

    async def list_schedules(self, *, limit: int = 1000) -> list[ScheduleInfo]:
        return await self._schedules.list(limit=limit)

    async def declare_queue(self, name: str, *, concurrency: int | None = None,
                            partition_concurrency: int | None = None,
                            rate: tuple[int, float] | None = None) -> None:
        """Create (or change) queue ``name``: at most ``concurrency`` of its instances
        admitted and not ended at once across every worker, at most
        ``partition_concurrency`` per partition key, at most ``rate[0]`` admitted per
        ``rate[1]`` seconds. None: no such limit."""
        await self._queues.declare(name, concurrency=concurrency,
                                   partition_concurrency=partition_concurrency, rate=rate)

    async def enqueue(self, queue: str, workflow: Workflow[Any, Any] | str, /, *args: Any,
                      instance_id: str | None = None, priority: int = 0,
                      partition_key: str | None = None, dedup_id: str | None = None,
                      **kwargs: Any) -> str:
        """Start ``workflow`` on ``queue``: it is ``queued`` until the queue admits it
        (highest ``priority`` first, then oldest), then runs like any instance; returns its
        id (``app.result`` waits for it as usual). ``dedup_id``: refused with
        ``DuplicateQueueEntryError`` while another instance holding it on this queue is
        queued or running."""
        wf = self._workflow(workflow)
        input_json = wf.input.encode(wf.input.bind(args, kwargs))
        return await self._queues.enqueue(queue, wf.name, input_json, instance_id=instance_id,
                                          priority=priority, partition_key=partition_key,
                                          dedup_id=dedup_id)

    async def queue_statistics(self) -> list[QueueStats]:
        """Per queue with entries: how many wait (its depth) and how many hold a slot."""
        return await self._queues.stats()
