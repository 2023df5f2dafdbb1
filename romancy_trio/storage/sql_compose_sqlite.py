"""Child workflows and schedules on SQLite (one namespace per file: no ``{schema}``)."""

from __future__ import annotations

from ._compose_queries import LIVE, SCHEDULE_COLUMNS, TERMINAL, ComposeQueries, QueueQueries
from ._queries import INSTANCE_COLUMNS

_I = "workflow_instances"
_S = "workflow_schedules"

QUERIES = ComposeQueries(
    child_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at, parent_instance_id, parent_close_policy,
            parent_notified)
        VALUES (:iid, :name, 'pending', :input, :now, 0, :now, :now,
            :parent, :policy, 0)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
    child_existing=f"""
        SELECT workflow_name, parent_instance_id, input FROM {_I} WHERE instance_id = :iid""",
    children_to_tell=f"""
        SELECT c.instance_id, c.status, c.result, c.error, c.parent_instance_id, p.status
        FROM {_I} c LEFT JOIN {_I} p ON p.instance_id = c.parent_instance_id
        WHERE c.parent_notified = 0 AND c.status IN {TERMINAL}
        ORDER BY c.updated_at LIMIT :limit
        """,
    mark_told=f"UPDATE {_I} SET parent_notified = 1 WHERE instance_id = :iid",
    orphans=f"""
        SELECT c.instance_id FROM {_I} c JOIN {_I} p ON p.instance_id = c.parent_instance_id
        WHERE c.parent_instance_id IS NOT NULL AND c.status IN {LIVE}
          AND c.parent_close_policy = 'cancel' AND NOT c.cancel_requested
          AND p.status IN {TERMINAL}
        LIMIT :limit""",
    children_of=f"""
        SELECT {INSTANCE_COLUMNS} FROM {_I} WHERE parent_instance_id = :parent
        ORDER BY created_at, instance_id LIMIT :limit""",
    parent_of=f"""
        SELECT parent_instance_id, parent_close_policy FROM {_I} WHERE instance_id = :iid""",
    schedule_upsert=f"""
        INSERT INTO {_S} (schedule_id, workflow_name, input, cron, interval_seconds, timezone,
            catchup, paused, next_tick_at, created_at, updated_at)
        VALUES (:id, :name, :input, :cron, :interval, :tz, :catchup,
            0, :next, :now, :now)
        ON CONFLICT (schedule_id) DO UPDATE SET workflow_name = excluded.workflow_name,
            input = excluded.input, cron = excluded.cron,
            interval_seconds = excluded.interval_seconds, timezone = excluded.timezone,
            catchup = excluded.catchup, next_tick_at = excluded.next_tick_at,
            updated_at = excluded.updated_at""",
    schedule_get=f"SELECT {SCHEDULE_COLUMNS} FROM {_S} WHERE schedule_id = :id",
    schedule_list=f"SELECT {SCHEDULE_COLUMNS} FROM {_S} ORDER BY schedule_id LIMIT :limit",
    schedule_delete=f"DELETE FROM {_S} WHERE schedule_id = :id RETURNING schedule_id",
    schedule_pause=f"""
        UPDATE {_S} SET paused = :paused, next_tick_at = coalesce(:next, next_tick_at),
            updated_at = :now
        WHERE schedule_id = :id RETURNING schedule_id""",
    schedules_due=f"""
        SELECT {SCHEDULE_COLUMNS} FROM {_S}
        WHERE paused = 0 AND next_tick_at <= :now
        ORDER BY next_tick_at LIMIT :limit""",
    schedule_advance=f"""
        UPDATE {_S} SET next_tick_at = :next, last_tick_at = coalesce(:last, last_tick_at),
            updated_at = :now
        WHERE schedule_id = :id""",
    schedule_next_due=f"SELECT min(next_tick_at) FROM {_S} WHERE paused = 0",
    tick_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at, attributes)
        VALUES (:iid, :name, 'pending', :input, :now, 0, :now, :now, :attributes)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
)

_Q = "workflow_queues"
_E = "workflow_queue_entries"
QUEUE_QUERIES = QueueQueries(
    queue_upsert=f"""
        INSERT INTO {_Q} (queue_name, concurrency, partition_concurrency, rate_limit,
            rate_period, updated_at)
        VALUES (:q, :conc, :pconc, :rate, :period, :now)
        ON CONFLICT (queue_name) DO UPDATE SET concurrency = excluded.concurrency,
            partition_concurrency = excluded.partition_concurrency,
            rate_limit = excluded.rate_limit, rate_period = excluded.rate_period,
            updated_at = excluded.updated_at""",
    queue_lock=f"""
        SELECT concurrency, partition_concurrency, rate_limit, rate_period FROM {_Q}
        WHERE queue_name = :q""",
    queue_names=f"SELECT queue_name FROM {_Q} ORDER BY queue_name",
    dedup_live=f"""
        SELECT e.instance_id FROM {_E} e JOIN {_I} i ON i.instance_id = e.instance_id
        WHERE e.queue_name = :q AND e.dedup_id = :dedup AND e.released_at IS NULL
          AND i.status NOT IN ('completed', 'failed', 'cancelled')""",
    queued_insert=f"""
        INSERT INTO {_I} (instance_id, workflow_name, status, input, run_started_at,
            lease_epoch, created_at, updated_at)
        VALUES (:iid, :name, 'queued', :input, :now, 0, :now, :now)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
    entry_insert=f"""
        INSERT INTO {_E} (instance_id, queue_name, partition_key, priority, dedup_id,
            enqueued_at)
        VALUES (:iid, :q, :part, :prio, :dedup, :now)""",
    release_ended=f"""
        UPDATE {_E} SET released_at = :now
        WHERE queue_name = :q AND admitted_at IS NOT NULL AND released_at IS NULL
          AND EXISTS (SELECT 1 FROM {_I} i WHERE i.instance_id = {_E}.instance_id
                      AND i.status IN {TERMINAL})""",
    running_by_partition=f"""
        SELECT partition_key, count(*) FROM {_E}
        WHERE queue_name = :q AND admitted_at IS NOT NULL AND released_at IS NULL
        GROUP BY partition_key""",
    admitted_since=f"""
        SELECT count(*), min(admitted_at) FROM {_E}
        WHERE queue_name = :q AND admitted_at IS NOT NULL AND admitted_at > :since""",
    candidates=f"""
        SELECT instance_id, partition_key FROM {_E}
        WHERE queue_name = :q AND admitted_at IS NULL
        ORDER BY priority DESC, enqueued_at, instance_id LIMIT :limit""",
    admit_entry=f"UPDATE {_E} SET admitted_at = :now WHERE instance_id = :iid",
    admit_instance=f"""
        UPDATE {_I} SET status = 'pending', updated_at = :now
        WHERE instance_id = :iid AND status = 'queued'""",
    depth=f"""
        SELECT queue_name, count(*) FILTER (WHERE admitted_at IS NULL),
            count(*) FILTER (WHERE admitted_at IS NOT NULL AND released_at IS NULL)
        FROM {_E} WHERE released_at IS NULL GROUP BY queue_name ORDER BY queue_name""",
)
