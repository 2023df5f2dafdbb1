"""Every SQL statement the store runs on SQLite (one process: notifications are in-process).

``romancy_now()`` is registered by the driver (Python's clock).
"""

from __future__ import annotations

from ._queries import INSTANCE_COLUMNS, Queries

_FENCE = (
    "instance_id = :iid AND lease_owner = :owner AND lease_epoch = :epoch AND status = 'running'"
)

QUERIES = Queries(
    create="""
        INSERT INTO workflow_instances (instance_id, workflow_name, status, input, run_started_at,
            lease_owner, lease_epoch, lease_expires_at, created_at, updated_at)
        VALUES (:iid, :name, :status, :input, :now, :owner, :epoch, romancy_now() + :ttl,
            :now, :now)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id""",
    select_instance=f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE instance_id = ?",
    list_instances=f"""
        SELECT {INSTANCE_COLUMNS} FROM workflow_instances
        WHERE (? IS NULL OR status = ?) AND (? IS NULL OR workflow_name = ?)
        ORDER BY created_at DESC, instance_id LIMIT ?""",
    claim="""
        UPDATE workflow_instances
        SET status = 'running', lease_owner = :owner, lease_epoch = lease_epoch + 1,
            lease_expires_at = romancy_now() + :ttl
        WHERE instance_id IN (
            SELECT instance_id FROM workflow_instances
            WHERE status IN ('pending', 'running')
              AND (lease_expires_at IS NULL OR lease_expires_at < romancy_now())
              AND lease_owner IS NOT :owner
            ORDER BY created_at LIMIT :limit)
        RETURNING instance_id, workflow_name, input, run_no, lease_epoch, run_started_at""",
    renew="""
        UPDATE workflow_instances SET lease_expires_at = romancy_now() + ?
        WHERE lease_owner = ? AND status = 'running'
        RETURNING instance_id, lease_epoch""",
    release=f"""
        UPDATE workflow_instances
        SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
        WHERE {_FENCE}
        RETURNING instance_id""",
    cancel="""
        UPDATE workflow_instances
        SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
        WHERE instance_id = :iid AND status IN ('pending', 'running')
        RETURNING instance_id""",
    finish=f"""
        UPDATE workflow_instances
        SET status = :status, result = :result, error = :error, updated_at = :now,
            lease_owner = NULL, lease_expires_at = NULL
        WHERE {_FENCE}
        RETURNING instance_id""",
    next_expiry="""
        SELECT min(lease_expires_at) - romancy_now() FROM workflow_instances
        WHERE status IN ('pending', 'running') AND lease_owner IS NOT ?""",
    record=f"""
        INSERT INTO workflow_history (instance_id, run_no, seq, kind, key, payload, worker_id,
            lease_epoch, created_at)
        SELECT instance_id, run_no, :seq, :kind, :key, :payload, :owner, :epoch, :at
        FROM workflow_instances WHERE {_FENCE} AND run_no = :run_no""",
    select_history="""
        SELECT seq, kind, key, payload, created_at FROM workflow_history
        WHERE instance_id = ? AND run_no = ? ORDER BY seq""",
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
