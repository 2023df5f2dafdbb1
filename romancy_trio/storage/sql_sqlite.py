"""Every SQL statement the store runs on SQLite (one process: notifications are in-process).

``romancy_now()`` is registered by the driver (Python's clock). No ``{schema}`` token here:
SQLite has one namespace per database file (see ``sql_postgres`` for the PostgreSQL convention).
"""

from __future__ import annotations

from ._queries import INSTANCE_COLUMNS, Queries, WaitQueries, ended_flags
from ._retention import RetentionQueries

_FENCE = (
    "instance_id = :iid AND lease_owner = :owner AND lease_epoch = :epoch AND status = 'running'"
)

_ENDED = ended_flags("workflow_instances", "workflow_queue_entries", "workflow_instances")

_VERSIONS = ("(code_version IS NULL OR workflow_name || '|' || code_version IN "
             "(SELECT value FROM json_each(:versions)))")
"""A worker resumes instances of its own code version or a compatible one (``:versions``, a
JSON array of ``'<workflow name>|<version>'``), and those started without one (NULL)."""

QUERIES = Queries(
    add_counter="""
        INSERT INTO instance_counters (instance_id, name, value) VALUES (:iid, :name, :value)
        ON CONFLICT (instance_id, name) DO UPDATE SET value = value + excluded.value""",
    select_counters="""
        SELECT name, value FROM instance_counters WHERE instance_id = ? ORDER BY name""",
    note_error=f"""
        UPDATE workflow_instances SET error = :error WHERE {_FENCE} RETURNING instance_id""",
    create="""
        INSERT INTO workflow_instances (instance_id, workflow_name, status, input, run_started_at,
            lease_owner, lease_epoch, lease_expires_at, created_at, updated_at, attributes,
            code_version, watcher)
        VALUES (:iid, :name, :status, :input, :now, :owner, :epoch, romancy_now() + :ttl,
            :now, :now, :attributes, :version, :watcher)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id, NULL, NULL, NULL""",
    existing="""
        SELECT i.instance_id, i.workflow_name, coalesce(r.input, i.input), NULL
        FROM workflow_instances i
        LEFT JOIN workflow_runs r ON r.instance_id = i.instance_id AND r.run_no = 1
        WHERE i.instance_id = :iid""",
    target_status="SELECT status FROM workflow_instances WHERE instance_id = :target",
    select_instance=f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE instance_id = ?",
    list_instances=f"""
        SELECT {INSTANCE_COLUMNS} FROM workflow_instances
        WHERE (? IS NULL OR status = ?) AND (? IS NULL OR workflow_name = ?)
        ORDER BY created_at DESC, instance_id LIMIT ?""",
    claim=f"""
        UPDATE workflow_instances
        SET status = 'running', lease_owner = :owner, lease_epoch = lease_epoch + 1,
            lease_expires_at = romancy_now() + :ttl
        WHERE instance_id IN (
            SELECT instance_id FROM (
                SELECT instance_id, created_at FROM workflow_instances
                WHERE status IN ('pending', 'running')
                  AND (lease_expires_at IS NULL OR lease_expires_at < romancy_now())
                  AND lease_owner IS NOT :owner
                  AND workflow_name IN (SELECT value FROM json_each(:names))
                  AND {_VERSIONS}
                UNION ALL
                SELECT instance_id, created_at FROM workflow_instances
                WHERE status = 'waiting' AND wake_at <= romancy_now()
                  AND lease_owner IS NOT :owner
                  AND workflow_name IN (SELECT value FROM json_each(:names))
                  AND {_VERSIONS})
            ORDER BY created_at LIMIT :limit)
        RETURNING instance_id, workflow_name, input, run_no, lease_epoch, run_started_at,
                  cancel_requested, NULL, attributes""",
    renew="""
        UPDATE workflow_instances SET lease_expires_at = romancy_now() + ?
        WHERE lease_owner = ? AND status = 'running'
        RETURNING instance_id, lease_epoch""",
    release=f"""
        UPDATE workflow_instances
        SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
        WHERE {_FENCE}
        RETURNING instance_id""",
    finish=f"""
        UPDATE workflow_instances
        SET status = :status, result = :result, error = :error, updated_at = :now,
            lease_owner = NULL, lease_expires_at = NULL
        WHERE {_FENCE}
        RETURNING instance_id, {_ENDED}""",
    claim_and_expiry=None,  # the scheduler asks next_expiry separately
    any_unclaimed="""
        SELECT 1 FROM workflow_instances
        WHERE instance_id IN (SELECT value FROM json_each(:ids))
          AND status IN ('pending', 'running')
          AND (lease_expires_at IS NULL OR lease_expires_at < romancy_now())
        LIMIT 1""",
    worker_lock=None,
    take_over_dead=None,  # one process per file as a rule: the lease TTL covers the rest
    next_expiry=f"""
        SELECT min(delay) FROM (
            SELECT min(lease_expires_at) - romancy_now() AS delay FROM workflow_instances
            WHERE status IN ('pending', 'running') AND lease_owner IS NOT :owner
            UNION ALL
            SELECT min(wake_at) - romancy_now() FROM workflow_instances
            WHERE status = 'waiting' AND {_VERSIONS})""",
    record=f"""
        INSERT INTO workflow_history (instance_id, run_no, seq, kind, key, payload, worker_id,
            lease_epoch, created_at, compensation)
        SELECT instance_id, run_no, :seq, :kind, :key, :payload, :owner, :epoch, :at,
            :compensation
        FROM workflow_instances WHERE {_FENCE} AND run_no = :run_no""",
    select_history_since="""
        SELECT seq, kind, key, payload, created_at, compensation FROM workflow_history
        WHERE instance_id = ? AND run_no = ? AND seq >= ? ORDER BY seq""",
    select_history="""
        SELECT seq, kind, key, payload, created_at, compensation FROM workflow_history
        WHERE instance_id = ? AND run_no = ? ORDER BY seq""",
    select_current_history="""
        SELECT h.run_no, h.seq, h.kind, h.key, h.payload, h.created_at, h.compensation
        FROM workflow_history h JOIN workflow_instances i USING (instance_id, run_no)
        WHERE i.instance_id = ? ORDER BY h.seq""",
    fence="""
        SELECT run_no, input, run_started_at FROM workflow_instances
        WHERE instance_id = ? AND lease_owner = ? AND lease_epoch = ? AND status = 'running'""",
    archive_history="""
        INSERT INTO workflow_history_archive
        SELECT * FROM workflow_history WHERE instance_id = ? AND run_no = ?""",
    delete_history="DELETE FROM workflow_history WHERE instance_id = ? AND run_no = ?",
    close_run="""
        INSERT INTO workflow_runs (instance_id, run_no, continued_from, input, started_at,
            ended_at)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (instance_id, run_no) DO UPDATE SET ended_at = excluded.ended_at""",
    open_run="""
        INSERT INTO workflow_runs (instance_id, run_no, continued_from, input, started_at)
        VALUES (?, ?, ?, ?, ?)""",
    start_next_run="""
        UPDATE workflow_instances
        SET run_no = run_no + 1, input = ?, run_started_at = ?, updated_at = ?
        WHERE instance_id = ? AND lease_owner = ? AND lease_epoch = ? AND status = 'running'""",
    select_runs="""
        SELECT run_no, continued_from, started_at, ended_at FROM workflow_runs
        WHERE instance_id = ? ORDER BY run_no""",
    run_one="SELECT run_no, input, run_started_at FROM workflow_instances WHERE instance_id = ?",
)

_LOCK_FENCED = f"SELECT run_no, cancel_requested FROM workflow_instances WHERE {_FENCE}"

WAIT_QUERIES = WaitQueries(
    lock_fenced=_LOCK_FENCED,
    inbox_first="""
        SELECT source, event_id FROM workflow_inbox
        WHERE instance_id = :iid AND type = :type ORDER BY received_at, event_id LIMIT 1""",
    inbox_insert="""
        INSERT INTO workflow_inbox (instance_id, source, event_id, type, received_at)
        VALUES (:iid, :source, :event_id, :type, :now)
        ON CONFLICT DO NOTHING""",
    inbox_delete="""
        DELETE FROM workflow_inbox
        WHERE instance_id = :iid AND source = :source AND event_id = :event_id""",
    event_body="SELECT body FROM workflow_events WHERE source = :source AND event_id = :event_id",
    waits_delete="DELETE FROM workflow_waits WHERE instance_id = :iid",
    resolve_raises_when_fenced=False,
    resolve=(QUERIES.record + " RETURNING seq",
             "DELETE FROM workflow_waits WHERE instance_id = :iid"),
    suspend=("DELETE FROM workflow_waits WHERE instance_id = :iid",
             """
        INSERT INTO workflow_waits (instance_id, wait_id, kind, key, deadline, created_at)
        VALUES (:iid, :wait_id, :kind, :key, :deadline, :now)""",
             f"""
        UPDATE workflow_instances
        SET status = CASE WHEN cancel_requested THEN 'pending' ELSE 'waiting' END,
            wake_at = :wake_at, lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
        WHERE {_FENCE} AND run_no = :run_no
        RETURNING status"""),
    append_history="""
        INSERT INTO workflow_history (instance_id, run_no, seq, kind, key, payload, worker_id,
            lease_epoch, created_at)
        SELECT i.instance_id, i.run_no,
            (SELECT coalesce(max(h.seq) + 1, 0) FROM workflow_history h
             WHERE h.instance_id = i.instance_id AND h.run_no = i.run_no),
            :kind, :key, :payload, :worker, i.lease_epoch, :at
        FROM workflow_instances i WHERE i.instance_id = :iid""",
    event_insert="""
        INSERT INTO workflow_events (source, event_id, type, body, target, received_at)
        VALUES (:source, :event_id, :type, :body, :target, :now)
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING event_id""",
    event_broadcast=None,  # no data-modifying CTEs: the store's transaction does the steps
    lock_instance=
"SELECT status FROM workflow_instances WHERE instance_id = :iid",
    event_waiters="""
        SELECT w.instance_id, w.wait_id FROM workflow_waits w
        JOIN workflow_instances i ON i.instance_id = w.instance_id
        WHERE w.kind = 'event' AND w.key = :type AND i.status = 'waiting'
        ORDER BY w.instance_id""",
    instance_wait="""
        SELECT wait_id FROM workflow_waits
        WHERE instance_id = :iid AND kind = :kind AND key = :key""",
    wake="""
        UPDATE workflow_instances SET status = 'pending', wake_at = NULL, updated_at = :now
        WHERE instance_id = :iid AND status = 'waiting'""",
    cancel="""
        UPDATE workflow_instances
        SET cancel_requested = 1, wake_at = NULL, updated_at = :now,
            status = CASE
                WHEN status = 'running' THEN 'running'
                WHEN EXISTS (SELECT 1 FROM workflow_history h
                             WHERE h.instance_id = workflow_instances.instance_id
                               AND h.run_no = workflow_instances.run_no
                               AND h.compensation IS NOT NULL) THEN 'pending'
                ELSE 'cancelled' END
        WHERE instance_id = :iid AND status IN ('queued', 'pending', 'running', 'waiting')
        RETURNING status""",
    unqueue="""
        DELETE FROM workflow_queue_entries
        WHERE instance_id = :iid AND admitted_at IS NULL""",
    wake_waiters="""
        UPDATE workflow_instances SET status = 'pending', wake_at = NULL, updated_at = :now
        WHERE instance_id IN (
            SELECT w.instance_id FROM workflow_waits w
            JOIN workflow_instances i ON i.instance_id = w.instance_id
            WHERE w.kind = :kind AND w.key = :key AND i.status = 'waiting'
              AND (:target IS NULL OR w.instance_id = :target)
            ORDER BY w.created_at, w.instance_id
            LIMIT coalesce(:limit, -1))
        RETURNING instance_id""",
    wake_if_ready="""
        UPDATE workflow_instances SET status = 'pending', wake_at = NULL, updated_at = :now
        WHERE instance_id = :iid AND status = 'waiting'
          AND EXISTS (SELECT 1 FROM workflow_waits w
                      WHERE w.instance_id = :iid AND w.wait_id = :wait_id)
          AND coalesce(({ready}), 1)
        RETURNING instance_id""",
    woken_receivers="""(
        SELECT count(*) FROM workflow_waits w
        JOIN workflow_instances i ON i.instance_id = w.instance_id
        WHERE w.kind = 'channel' AND w.key = :channel AND w.instance_id <> :subscriber
          AND i.status IN ('pending', 'running'))""",
    wake_notifies=False,
    stale_channel_waiters="""
        SELECT w.instance_id, w.key FROM workflow_waits w
        JOIN workflow_instances i ON i.instance_id = w.instance_id
        JOIN (SELECT DISTINCT channel FROM channel_messages WHERE published_at >= :since) c
          ON c.channel = w.key
        WHERE w.kind = 'channel' AND i.status = 'waiting'
        ORDER BY w.instance_id LIMIT :limit""",
    events_cleanup="""
        DELETE FROM workflow_events WHERE rowid IN (
            SELECT rowid FROM workflow_events WHERE received_at < :before LIMIT :limit)""",
    inbox_cleanup="DELETE FROM workflow_inbox WHERE received_at < :before",
)


# -- data lifecycle (AppConfig.instance_retention) ----------------------------------------------
# One writer: every statement of a batch picks the same instances (the instances go last).
_DOOMED = """
    SELECT instance_id FROM workflow_instances
    WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < :before
    ORDER BY updated_at, instance_id LIMIT :limit"""
_OLD_RUNS = """
    SELECT instance_id, run_no FROM workflow_runs
    WHERE ended_at < :before ORDER BY ended_at, instance_id, run_no LIMIT :limit"""

RETENTION_QUERIES = RetentionQueries(
    purge_finished=(
        *(f"DELETE FROM {table} WHERE instance_id IN ({_DOOMED})"
          for table in ("workflow_history", "workflow_history_archive", "workflow_runs",
                        "workflow_waits", "workflow_inbox", "instance_counters",
                        "workflow_queue_entries")),
        f"DELETE FROM channel_subscriptions WHERE subscriber IN ({_DOOMED})",
        f"DELETE FROM channel_messages WHERE target IN ({_DOOMED})",
        f"DELETE FROM workflow_instances WHERE instance_id IN ({_DOOMED}) RETURNING instance_id",
    ),
    purge_runs=(
        f"DELETE FROM workflow_history_archive WHERE (instance_id, run_no) IN ({_OLD_RUNS})",
        f"""DELETE FROM workflow_runs WHERE (instance_id, run_no) IN ({_OLD_RUNS})
            RETURNING instance_id""",
    ),
)
