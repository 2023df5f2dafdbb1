"""Child workflows and schedules on PostgreSQL (``{schema}`` filled in by ``qualify``)."""

from __future__ import annotations

from ._compose_queries import LIVE, SCHEDULE_COLUMNS, TERMINAL, ComposeQueries, QueueQueries
from ._queries import INSTANCE_COLUMNS

_I = "{schema}.workflow_instances"
_S = "{schema}.workflow_schedules"

QUERIES = ComposeQueries(
    child_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at, parent_instance_id, parent_close_policy,
            parent_notified)
        VALUES (%(iid)s, %(name)s, 'pending', %(input)s, %(now)s, 0, %(now)s, %(now)s,
            %(parent)s, %(policy)s, false)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
    child_existing=f"""
        SELECT workflow_name, parent_instance_id, input FROM {_I} WHERE instance_id = %(iid)s""",
    children_to_tell=f"""
        SELECT c.instance_id, c.status, c.result, c.error, c.parent_instance_id, p.status
        FROM {_I} c LEFT JOIN {_I} p ON p.instance_id = c.parent_instance_id
        WHERE NOT c.parent_notified AND c.status IN {TERMINAL}
        ORDER BY c.updated_at LIMIT %(limit)s
        FOR UPDATE OF c SKIP LOCKED""",
    mark_told=f"UPDATE {_I} SET parent_notified = true WHERE instance_id = %(iid)s",
    orphans=f"""
        SELECT c.instance_id FROM {_I} c JOIN {_I} p ON p.instance_id = c.parent_instance_id
        WHERE c.parent_instance_id IS NOT NULL AND c.status IN {LIVE}
          AND c.parent_close_policy = 'cancel' AND NOT c.cancel_requested
          AND p.status IN {TERMINAL}
        LIMIT %(limit)s""",
    children_of=f"""
        SELECT {INSTANCE_COLUMNS} FROM {_I} WHERE parent_instance_id = %(parent)s
        ORDER BY created_at, instance_id LIMIT %(limit)s""",
    parent_of=f"""
        SELECT parent_instance_id, parent_close_policy FROM {_I} WHERE instance_id = %(iid)s""",
    schedule_upsert=f"""
        INSERT INTO {_S} (schedule_id, workflow_name, input, cron, interval_seconds, timezone,
            catchup, paused, next_tick_at, created_at, updated_at)
        VALUES (%(id)s, %(name)s, %(input)s, %(cron)s, %(interval)s, %(tz)s, %(catchup)s,
            false, %(next)s, %(now)s, %(now)s)
        ON CONFLICT (schedule_id) DO UPDATE SET workflow_name = excluded.workflow_name,
            input = excluded.input, cron = excluded.cron,
            interval_seconds = excluded.interval_seconds, timezone = excluded.timezone,
            catchup = excluded.catchup, next_tick_at = excluded.next_tick_at,
            updated_at = excluded.updated_at""",
    schedule_get=f"SELECT {SCHEDULE_COLUMNS} FROM {_S} WHERE schedule_id = %(id)s",
    schedule_list=f"SELECT {SCHEDULE_COLUMNS} FROM {_S} ORDER BY schedule_id LIMIT %(limit)s",
    schedule_delete=f"DELETE FROM {_S} WHERE schedule_id = %(id)s RETURNING schedule_id",
    schedule_pause=f"""
        UPDATE {_S} SET paused = %(paused)s, next_tick_at = coalesce(%(next)s, next_tick_at),
            updated_at = %(now)s
        WHERE schedule_id = %(id)s RETURNING schedule_id""",
    schedules_due=f"""
        SELECT {SCHEDULE_COLUMNS} FROM {_S}
        WHERE NOT paused AND next_tick_at <= %(now)s
        ORDER BY next_tick_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED""",
    schedule_advance=f"""
        UPDATE {_S} SET next_tick_at = %(next)s, last_tick_at = coalesce(%(last)s, last_tick_at),
            updated_at = %(now)s
        WHERE schedule_id = %(id)s""",
    schedule_next_due=f"SELECT min(next_tick_at) FROM {_S} WHERE NOT paused",
    tick_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at, attributes)
        VALUES (%(iid)s, %(name)s, 'pending', %(input)s, %(now)s, 0, %(now)s, %(now)s,
            %(attributes)s)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
)

_Q = "{schema}.workflow_queues"
_E = "{schema}.workflow_queue_entries"
QUEUE_QUERIES = QueueQueries(
    queue_upsert=f"""
        INSERT INTO {_Q} (queue_name, concurrency, partition_concurrency, rate_limit,
            rate_period, updated_at)
        VALUES (%(q)s, %(conc)s, %(pconc)s, %(rate)s, %(period)s, %(now)s)
        ON CONFLICT (queue_name) DO UPDATE SET concurrency = excluded.concurrency,
            partition_concurrency = excluded.partition_concurrency,
            rate_limit = excluded.rate_limit, rate_period = excluded.rate_period,
            updated_at = excluded.updated_at""",
    queue_lock=f"""
        SELECT concurrency, partition_concurrency, rate_limit, rate_period FROM {_Q}
        WHERE queue_name = %(q)s FOR UPDATE""",
    queue_names=f"SELECT queue_name FROM {_Q} ORDER BY queue_name",
    dedup_live=f"""
        SELECT e.instance_id FROM {_E} e JOIN {_I} i ON i.instance_id = e.instance_id
        WHERE e.queue_name = %(q)s AND e.dedup_id = %(dedup)s AND e.released_at IS NULL
          AND i.status NOT IN ('completed', 'failed', 'cancelled')""",
    queued_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at)
        VALUES (%(iid)s, %(name)s, 'queued', %(input)s, %(now)s, 0, %(now)s, %(now)s)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
    entry_insert=f"""
        INSERT INTO {_E} (instance_id, queue_name, partition_key, priority, dedup_id,
            enqueued_at)
        VALUES (%(iid)s, %(q)s, %(part)s, %(prio)s, %(dedup)s, %(now)s)""",
    release_ended=f"""
        UPDATE {_E} e SET released_at = %(now)s
        FROM {_I} i
        WHERE e.queue_name = %(q)s AND e.admitted_at IS NOT NULL AND e.released_at IS NULL
          AND i.instance_id = e.instance_id AND i.status IN {TERMINAL}""",
    running_by_partition=f"""
        SELECT partition_key, count(*) FROM {_E}
        WHERE queue_name = %(q)s AND admitted_at IS NOT NULL AND released_at IS NULL
        GROUP BY partition_key""",
    admitted_since=f"""
        SELECT count(*), min(admitted_at) FROM {_E}
        WHERE queue_name = %(q)s AND admitted_at IS NOT NULL AND admitted_at > %(since)s""",
    candidates=f"""
        SELECT instance_id, partition_key FROM {_E}
        WHERE queue_name = %(q)s AND admitted_at IS NULL
        ORDER BY priority DESC, enqueued_at, instance_id LIMIT %(limit)s""",
    admit_entry=f"UPDATE {_E} SET admitted_at = %(now)s WHERE instance_id = %(iid)s",
    admit_instance=f"""
        UPDATE {_I} SET status = 'pending', updated_at = %(now)s
        WHERE instance_id = %(iid)s AND status = 'queued'""",
    depth=f"""
        SELECT queue_name, count(*) FILTER (WHERE admitted_at IS NULL),
            count(*) FILTER (WHERE admitted_at IS NOT NULL AND released_at IS NULL)
        FROM {_E} WHERE released_at IS NULL GROUP BY queue_name ORDER BY queue_name""",
)
