"""Durable schedules: a workflow started on a cron expression or a fixed interval.

A schedule is a row (``workflow_schedules``) whose ``next_tick_at`` is the first tick not yet
handled. Every worker runs `ScheduleService.serve`, which sleeps until the earliest
``next_tick_at`` (or a change announced on the work topic, or the fallback timer), then in one
transaction locks the due rows (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: its one
writer), inserts one pending instance per tick to start and moves ``next_tick_at`` past now.
A tick's instance id is ``<schedule id>@<tick time, UTC ISO 8601>``: inserted with
``ON CONFLICT DO NOTHING``, so a tick starts exactly one instance however many workers run.

Ticks found due together (no worker handled the earlier ones in time: all workers were down,
or the schedule was paused) follow the schedule's catch-up policy: ``"all"`` starts every one
(at most `MAX_STARTS` per round; the next round goes on), ``"one"`` starts only the latest,
``"skip"`` starts none of them and goes on with the next future tick. A single due tick is
always started. Cron expressions are evaluated by ``cronsim`` in the schedule's time zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio
from cronsim import CronSim, CronSimError

from romancy_notify import Hub

from . import _clock
from ._codec import dumps
from ._errors import InvalidInputError, RomancyError
from .storage import Store, Tx
from .storage._compose_queries import compose_queries

if TYPE_CHECKING:
    from ._engine._outages import Outages

Catchup = Literal["skip", "one", "all"]
SCHEDULE_HINT = "schedule"
"""The work-topic payload that tells schedule loops a schedule changed."""
MAX_STARTS = 1000
MAX_SCAN = 100_000
BATCH = 50
_MAX_ID = 150


class ScheduleNotFoundError(RomancyError):
    """No schedule with this id (``schedule_id``): never created, or deleted. Raised by
    `App.pause_schedule`, `App.resume_schedule`, `App.delete_schedule` and
    `App.get_schedule`."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no schedule with id {schedule_id!r}")


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One schedule as stored. ``next_tick_at``: the first tick not yet handled."""

    schedule_id: str
    workflow_name: str
    input: Any
    cron: str | None
    interval: float | None
    timezone: str
    catchup: Catchup
    paused: bool
    next_tick_at: datetime
    last_tick_at: datetime | None


@dataclass(frozen=True, slots=True)
class Rule:
    cron: str | None
    interval: float | None
    timezone: str

    def check(self) -> Rule:
        if (self.cron is None) == (self.interval is None):
            raise InvalidInputError("a schedule needs exactly one of cron=... or interval=...")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInputError(f"unknown time zone {self.timezone!r}") from exc
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.fromtimestamp(_clock.now(), zone))
            except CronSimError as exc:
                raise InvalidInputError(f"bad cron expression {self.cron!r}: {exc}") from None
        elif isinstance(self.interval, bool) or not isinstance(self.interval, int | float) or not (
                0 < self.interval < math.inf):
            raise InvalidInputError(
                f"interval must be a number of seconds > 0, not {self.interval!r}")
        return self

    def after(self, t: float) -> float:
        """The first tick strictly after ``t`` (interval ticks: on the grid through ``t``)."""
        if self.interval is not None:
            return t + self.interval
        assert self.cron is not None
        start = datetime.fromtimestamp(t, ZoneInfo(self.timezone))
        return next(CronSim(self.cron, start)).timestamp()

    def first(self, now: float, start_at: float | None) -> float:
        if start_at is not None:
            return start_at
        if self.interval is not None:
            return math.ceil(now / self.interval) * self.interval
        return self.after(now)


def tick_instance_id(schedule_id: str, tick: float) -> str:
    return f"{schedule_id}@{datetime.fromtimestamp(tick, UTC).isoformat()}"


def plan(rule: Rule, catchup: str, next_tick: float, now: float) -> tuple[list[float], float]:
    """(ticks to start, the next tick to handle) for a schedule due at ``next_tick``."""
    due: list[float] = []
    t = next_tick
    while t <= now and len(due) < MAX_SCAN:
        due.append(t)
        t = rule.after(t)
    if len(due) <= 1:
        return due, t
    if catchup == "all":
        if len(due) > MAX_STARTS:
            return due[:MAX_STARTS], due[MAX_STARTS]
        return due, t
    if len(due) >= MAX_SCAN:  # still scanning: go on from there next round
        return [], t
    return ([due[-1]] if catchup == "one" else []), t


class ScheduleService:
    def __init__(self, store: Store, hub: Hub, *, fallback: float) -> None:
        self.store = store
        self.hub = hub
        self.fallback = fallback
        self.q = compose_queries(store.db.dialect, store.db.schema)

    # -- the public operations --------------------------------------------------------------
    async def upsert(self, schedule_id: str, workflow_name: str, input_json: str, *,
                     rule: Rule, catchup: str, start_at: float | None) -> None:
        _check_id(schedule_id)
        if catchup not in ("skip", "one", "all"):
            raise InvalidInputError(f"catchup must be 'skip', 'one' or 'all', not {catchup!r}")
        rule.check()
        now = _clock.now()
        async with self.store.db.transaction() as tx:
            await tx.execute(self.q.schedule_upsert, {
                "id": schedule_id, "name": workflow_name, "input": input_json,
                "cron": rule.cron, "interval": rule.interval, "tz": rule.timezone,
                "catchup": catchup, "next": rule.first(now, start_at), "now": now})
            await self._announce(tx)

    async def pause(self, schedule_id: str, *, paused: bool) -> None:
        async with self.store.db.transaction() as tx:
            nxt = None
            if not paused:  # resuming: ticks missed while paused are skipped
                info = await self._get_tx(tx, schedule_id)
                rule = Rule(info.cron, info.interval, info.timezone)
                now, nxt = _clock.now(), info.next_tick_at.timestamp()
                while nxt <= now:
                    nxt = rule.after(nxt) if rule.interval is None else (
                        nxt + math.ceil((now - nxt) / rule.interval + 1e-9) * rule.interval)
            row = await tx.fetchone(self.q.schedule_pause, {
                "id": schedule_id, "paused": paused, "next": nxt, "now": _clock.now()})
            if row is None:
                raise ScheduleNotFoundError(schedule_id)
            await self._announce(tx)

    async def delete(self, schedule_id: str) -> None:
        async with self.store.db.transaction() as tx:
            if await tx.fetchone(self.q.schedule_delete, {"id": schedule_id}) is None:
                raise ScheduleNotFoundError(schedule_id)

    async def get(self, schedule_id: str) -> ScheduleInfo:
        async with self.store.db.transaction() as tx:
            return await self._get_tx(tx, schedule_id)

    async def list(self, *, limit: int) -> list[ScheduleInfo]:
        return [_info(r) for r in await self.store.db.fetchall(self.q.schedule_list,
                                                                {"limit": limit})]

    async def _get_tx(self, tx: Tx, schedule_id: str) -> ScheduleInfo:
        row = await tx.fetchone(self.q.schedule_get, {"id": schedule_id})
        if row is None:
            raise ScheduleNotFoundError(schedule_id)
        return _info(row)

    async def _announce(self, tx: Tx) -> None:
        await tx.notify(self.store.topics.work, SCHEDULE_HINT)  # this process's loop too

    # -- the loop every worker runs ---------------------------------------------------------
    async def serve(self, outages: Outages, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.hub.watch(self.store.topics.work, SCHEDULE_HINT) as watch:
            task_status.started()
            while True:
                due = await outages.ride_out("schedules", self._tick_all)
                wait = self.fallback if due is None else max(0.0, due - _clock.now())
                await watch.wait(timeout=min(wait, self.fallback))

    async def _tick_all(self) -> float | None:
        """Handle every due schedule; when the next one is due (None: none is)."""
        while await self.tick() >= BATCH:
            pass
        row = await self.store.db.fetchone(self.q.schedule_next_due)
        return None if row is None or row[0] is None else float(row[0])

    async def tick(self) -> int:
        """Handle the due schedules (one transaction); how many rows it locked."""
        work = self.store.topics.work
        async with self.store.db.transaction() as tx:
            now = _clock.now()
            rows = await tx.fetchall(self.q.schedules_due, {"now": now, "limit": BATCH})
            for row in rows:
                info = _info(row)
                rule = Rule(info.cron, info.interval, info.timezone)
                starts, nxt = plan(rule, info.catchup, info.next_tick_at.timestamp(), now)
                missed = 0
                for tick in starts:
                    iid = tick_instance_id(info.schedule_id, tick)
                    attrs = {"romancy.schedule": info.schedule_id,
                             "romancy.tick": datetime.fromtimestamp(tick, UTC).isoformat()}
                    if info.catchup == "one" and len(starts) == 1:
                        missed = _count_between(rule, info.next_tick_at.timestamp(), tick)
                        attrs["romancy.missed_ticks"] = str(missed)
                    inserted = await tx.fetchone(self.q.tick_insert, {
                        "iid": iid, "name": info.workflow_name, "input": dumps(info.input),
                        "now": now, "attributes": dumps(attrs)})
                    if inserted is not None:
                        await tx.notify(work, "i:" + iid)
                await tx.execute(self.q.schedule_advance, {
                    "id": info.schedule_id, "next": nxt, "now": now,
                    "last": starts[-1] if starts else None})
        return len(rows)


def _count_between(rule: Rule, first: float, tick: float) -> int:
    n, t = 0, first
    while t < tick and n < MAX_SCAN:
        n, t = n + 1, rule.after(t)
    return n


def _check_id(schedule_id: str) -> None:
    if not isinstance(schedule_id, str) or not schedule_id or len(schedule_id) > _MAX_ID or any(
            c in schedule_id for c in "\x00@"):
        raise InvalidInputError(
            f"a schedule id must be 1-{_MAX_ID} characters without NUL or '@'")


def _info(row: Any) -> ScheduleInfo:
    from ._codec import loads

    (sid, name, input_json, cron, interval, tz, catchup, paused, nxt, last, _, _) = row
    return ScheduleInfo(sid, name, loads(input_json), cron,
                        None if interval is None else float(interval), tz, catchup,
                        bool(paused), datetime.fromtimestamp(float(nxt), UTC),
                        None if last is None else datetime.fromtimestamp(float(last), UTC))
