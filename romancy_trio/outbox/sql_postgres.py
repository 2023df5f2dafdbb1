"""Every SQL statement of the outbox on PostgreSQL. Times are the server's clock (epoch seconds).

Claims are bounded ``FOR UPDATE SKIP LOCKED`` batches, so relayers in many processes take disjoint
rows; every settlement is fenced by ``(claimed_by, claim_epoch)``.

Schema convention (``romancy_channels._sql``): every table and function is written
``{schema}.name`` (``{{schema}}.name`` inside an f-string); `qualify` fills in the quoted schema
once per store, so pooled connections need no ``search_path``. New statements follow it; a test
(tests/romancy_trio/test_schema_qualified.py) fails on an unqualified table.
"""

from __future__ import annotations

from ._store import EVENT_COLUMNS, ROW_COLUMNS, OutboxQueries

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_FENCE = (
    "seq = %(seq)s AND claimed_by = %(worker)s AND claim_epoch = %(epoch)s AND status = 'pending'"
)

QUERIES = OutboxQueries(
    insert=f"""
        INSERT INTO {{schema}}.outbox_events (event_id, source, type, subject, extensions, data,
            event_time, instance_id, activity_id, next_attempt_at, created_at)
        VALUES (%(event_id)s, %(source)s, %(type)s, %(subject)s, %(extensions)s, %(data)s,
            %(time)s, %(iid)s, %(aid)s, {_NOW}, %(time)s)
        ON CONFLICT (source, event_id) DO NOTHING""",
    run_no="SELECT run_no FROM {schema}.workflow_instances WHERE instance_id = %(iid)s",
    claim=f"""
        WITH c AS (
            SELECT seq FROM {{schema}}.outbox_events
            WHERE status = 'pending' AND next_attempt_at <= {_NOW}
              AND (claimed_until IS NULL OR claimed_until < {_NOW})
            ORDER BY next_attempt_at, seq
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED)
        UPDATE {{schema}}.outbox_events o
        SET claimed_by = %(worker)s, claimed_until = {_NOW} + %(ttl)s::float8,
            claim_epoch = o.claim_epoch + 1
        FROM c WHERE o.seq = c.seq
        RETURNING o.seq, o.claim_epoch, o.attempts, {EVENT_COLUMNS}""",
    delivered=f"""
        UPDATE {{schema}}.outbox_events
        SET status = 'delivered', attempts = attempts + 1, delivered_at = {_NOW},
            claimed_until = NULL, last_error = NULL
        WHERE {_FENCE}
        RETURNING seq""",
    attempt_failed=f"""
        UPDATE {{schema}}.outbox_events
        SET attempts = attempts + 1, last_error = %(error)s,
            status = CASE WHEN attempts + 1 >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
            next_attempt_at = {_NOW} + %(delay)s::float8, claimed_by = NULL,
            claimed_until = NULL
        WHERE {_FENCE}
        RETURNING status""",
    release=f"""
        UPDATE {{schema}}.outbox_events SET claimed_by = NULL, claimed_until = NULL
        WHERE {_FENCE}
        RETURNING seq""",
    next_due=f"""
        SELECT least(
            (SELECT next_attempt_at FROM {{schema}}.outbox_events
             WHERE status = 'pending' AND claimed_until IS NULL
             ORDER BY next_attempt_at, seq LIMIT 1),
            (SELECT min(greatest(next_attempt_at, claimed_until)) FROM {{schema}}.outbox_events
             WHERE status = 'pending' AND claimed_until IS NOT NULL)
        ) - {_NOW}""",
    purge=f"""
        DELETE FROM {{schema}}.outbox_events WHERE seq IN (
            SELECT seq FROM {{schema}}.outbox_events
            WHERE status = 'delivered' AND delivered_at < {_NOW} - %(retention)s::float8
            ORDER BY delivered_at LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED)""",
    rows=f"""
        SELECT {ROW_COLUMNS} FROM {{schema}}.outbox_events
        WHERE (%(status)s::text IS NULL OR status = %(status)s)
        ORDER BY seq LIMIT %(limit)s""",
)
