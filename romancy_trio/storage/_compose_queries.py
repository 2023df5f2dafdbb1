"""The statements of child workflows and schedules, named once; one module per dialect fills
them in (``sql_compose_postgres``, ``sql_compose_sqlite``, ``sql_compose_mysql``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TERMINAL = "('completed', 'failed', 'cancelled')"
LIVE = "('pending', 'running', 'waiting')"


@dataclass(frozen=True, slots=True)
class ComposeQueries:
    child_insert: str
    """named: iid, name, input, now, parent, policy. Inserts a pending child (nothing if the
    id exists); returns its id when inserted."""
    child_existing: str
    """named: iid. (workflow_name, parent_instance_id, input) of an existing instance."""
    children_to_tell: str
    """named: limit. Ended children whose parent was not told yet (locked, skip locked):
    (child id, status, result, error, parent id, parent status or NULL)."""
    mark_told: str
    """named: iid."""
    orphans: str
    """named: limit. Live children with policy 'cancel' whose parent has ended."""
    children_of: str
    """named: parent, limit. The children of an instance, as INSTANCE_COLUMNS."""
    parent_of: str
    """named: iid. (parent_instance_id, parent_close_policy)."""
    schedule_upsert: str
    """named: id, name, input, cron, interval, tz, catchup, next, now. Insert or replace."""
    schedule_get: str
    """named: id. SCHEDULE_COLUMNS of one."""
    schedule_list: str
    """named: limit. SCHEDULE_COLUMNS of every schedule, by id."""
    schedule_delete: str
    """named: id. Returns the id when deleted."""
    schedule_pause: str
    """named: id, paused, next, now. ``next`` NULL keeps the next tick."""
    schedules_due: str
    """named: limit. SCHEDULE_COLUMNS of unpaused schedules due now (locked, skip locked)."""
    schedule_advance: str
    """named: id, next, last, now."""
    schedule_next_due: str
    """The earliest next_tick_at of unpaused schedules (NULL: none)."""
    tick_insert: str
    """named: iid, name, input, now, attributes. A pending instance for a tick (nothing if
    it exists); returns the id when inserted."""


SCHEDULE_COLUMNS = ("schedule_id, workflow_name, input, cron, interval_seconds, timezone, "
                    "catchup, paused, next_tick_at, last_tick_at, created_at, updated_at")


@dataclass(frozen=True, slots=True)
class QueueQueries:
    queue_upsert: str
    """named: q, conc, pconc, rate, period, now."""
    queue_lock: str
    """named: q. (concurrency, partition_concurrency, rate_limit, rate_period), locked."""
    queue_names: str
    """Every queue's name."""
    dedup_live: str
    """named: q, dedup. The instance holding that dedup id while queued or running."""
    queued_insert: str
    """named: iid, name, input, now. A 'queued' instance (nothing if the id exists)."""
    entry_insert: str
    """named: iid, q, part, prio, dedup, now."""
    release_ended: str
    """named: q, now. Frees the slots of admitted entries whose instance has ended."""
    running_by_partition: str
    """named: q. (partition_key, count) of entries holding a slot."""
    admitted_since: str
    """named: q, since. (count, earliest admitted_at) admitted after ``since``."""
    candidates: str
    """named: q, limit. (instance_id, partition_key) waiting, best first."""
    admit_entry: str
    """named: iid, now."""
    admit_instance: str
    """named: iid, now. 'queued' -> 'pending'."""
    depth: str
    """(queue_name, waiting, running) per queue."""


def compose_queries(dialect: str, schema: str) -> ComposeQueries:
    """The dialect's child and schedule statements; PostgreSQL's and MySQL's name ``schema``."""
    return _statements(dialect, schema)[0]


def queue_queries(dialect: str, schema: str) -> QueueQueries:
    """The dialect's queue statements; PostgreSQL's and MySQL's name ``schema``."""
    return _statements(dialect, schema)[1]


Statements = tuple[ComposeQueries, QueueQueries]


def _postgres(schema: str) -> Statements:
    from ._schema import qualify
    from .sql_compose_postgres import QUERIES, QUEUE_QUERIES

    return qualify(QUERIES, schema), qualify(QUEUE_QUERIES, schema)


def _sqlite(schema: str) -> Statements:
    from .sql_compose_sqlite import QUERIES, QUEUE_QUERIES

    return QUERIES, QUEUE_QUERIES  # one namespace per file


def _mysql(schema: str) -> Statements:
    from .sql_compose_mysql import QUERIES, QUEUE_QUERIES
    from .sql_mysql import qualify_mysql

    return qualify_mysql(QUERIES, schema), qualify_mysql(QUEUE_QUERIES, schema)


_DIALECTS: dict[str, Callable[[str], Statements]] = {
    "postgres": _postgres, "sqlite": _sqlite, "mysql": _mysql}


def _statements(dialect: str, schema: str) -> Statements:
    try:
        load = _DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"no child/schedule/queue statements for the dialect {dialect!r} "
                         f"(known: {', '.join(sorted(_DIALECTS))})") from None
    return load(schema)
