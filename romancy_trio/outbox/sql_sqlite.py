"""Every SQL statement of the outbox on SQLite (one process; ``romancy_now()`` is the clock).

SQLite has one writer, so a claim is a plain ``UPDATE ... RETURNING``: no two claims interleave.
"""

from __future__ import annotations

from ._store import EVENT_COLUMNS, ROW_COLUMNS, OutboxQueries

_NOW = "romancy_now()"
_FENCE = "seq = :seq AND claimed_by = :worker AND claim_epoch = :epoch AND status = 'pending'"

QUERIES = OutboxQueries(
    insert=f"""
        INSERT INTO outbox_events (event_id, source, type, subject, extensions, data,
            event_time, instance_id, activity_id, next_attempt_at, created_at)
        VALUES (:event_id, :source, :type, :subject, :extensions, :data, :time, :iid, :aid,
            {_NOW}, :time)
        ON CONFLICT (source, event_id) DO NOTHING""",
    run_no="SELECT run_no FROM workflow_instances WHERE instance_id = :iid",
    claim=f"""
        UPDATE outbox_events
        SET claimed_by = :worker, claimed_until = {_NOW} + :ttl, claim_epoch = claim_epoch + 1
        WHERE seq IN (
            SELECT seq FROM outbox_events
            WHERE status = 'pending' AND next_attempt_at <= {_NOW}
              AND (claimed_until IS NULL OR claimed_until < {_NOW})
            ORDER BY next_attempt_at, seq
            LIMIT :limit)
        RETURNING seq, claim_epoch, attempts, {EVENT_COLUMNS}""",
    delivered=f"""
        UPDATE outbox_events
        SET status = 'delivered', attempts = attempts + 1, delivered_at = {_NOW},
            claimed_until = NULL, last_error = NULL
        WHERE {_FENCE}
        RETURNING seq""",
    attempt_failed=f"""
        UPDATE outbox_events
        SET attempts = attempts + 1, last_error = :error,
            status = CASE WHEN attempts + 1 >= :max_attempts THEN 'failed' ELSE 'pending' END,
            next_attempt_at = {_NOW} + :delay, claimed_by = NULL, claimed_until = NULL
        WHERE {_FENCE}
        RETURNING status""",
    release=f"""
        UPDATE outbox_events SET claimed_by = NULL, claimed_until = NULL
        WHERE {_FENCE}
        RETURNING seq""",
    next_due=f"""
        WITH unclaimed AS (
            SELECT next_attempt_at AS due FROM outbox_events
            WHERE status = 'pending' AND claimed_until IS NULL
            ORDER BY next_attempt_at, seq LIMIT 1),
        claimed AS (
            SELECT min(max(next_attempt_at, claimed_until)) AS due FROM outbox_events
            WHERE status = 'pending' AND claimed_until IS NOT NULL)
        SELECT min(coalesce(u.due, c.due), coalesce(c.due, u.due)) - {_NOW}
        FROM claimed c LEFT JOIN unclaimed u ON 1 = 1""",
    purge=f"""
        DELETE FROM outbox_events WHERE seq IN (
            SELECT seq FROM outbox_events
            WHERE status = 'delivered' AND delivered_at < {_NOW} - :retention
            ORDER BY delivered_at LIMIT :limit)""",
    rows=f"""
        SELECT {ROW_COLUMNS} FROM outbox_events
        WHERE (:status IS NULL OR status = :status)
        ORDER BY seq LIMIT :limit""",
)
