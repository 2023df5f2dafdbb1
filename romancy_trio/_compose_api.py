"""The `App` methods of child workflows and schedules (mixed into `App`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._errors import InvalidInputError
from ._schedules import Catchup, Rule, ScheduleInfo
from .storage import InstanceInfo

if TYPE_CHECKING:
    from ._children import ChildService
    from ._definitions import Workflow
    from ._schedules import ScheduleService


class ComposeApi:
    _children: ChildService
    _schedules: ScheduleService

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
