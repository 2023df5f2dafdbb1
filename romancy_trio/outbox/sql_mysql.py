"""Every SQL statement of the outbox on MySQL 8 / MariaDB. Times are the server's clock (epoch
seconds).

Claims are bounded ``FOR UPDATE SKIP LOCKED`` batches (the procedure ``romancy_outbox_claim``,
storage migration 0002), so relayers in many processes take disjoint rows; every settlement is
fenced by ``(claimed_by, claim_epoch)``. Where the store expects the changed rows back, a
statement is a short script (the write, ``SET @n = ROW_COUNT()``, a guarded SELECT) sent in
one round trip, as in ``storage.sql_mysql``. ``{schema}`` is the backquoted database.
"""

from __future__ import annotations

from ._store import ROW_COLUMNS, OutboxQueries

_NOW = "UNIX_TIMESTAMP(NOW(6))"
_FENCE = (
    "seq = %(seq)s AND claimed_by = %(worker)s AND claim_epoch = %(epoch)s AND status = 'pending'"
)

QUERIES = OutboxQueries(
    insert=f"""
        INSERT INTO {{schema}}.outbox_events (event_id, source, type, subject, extensions, data,
            event_time, instance_id, activity_id, next_attempt_at, created_at)
        VALUES (%(event_id)s, %(source)s, %(type)s, %(subject)s, %(extensions)s, %(data)s,
            %(time)s, %(iid)s, %(aid)s, {_NOW}, %(time)s)
        ON DUPLICATE KEY UPDATE seq = seq""",
    run_no="SELECT run_no FROM {schema}.workflow_instances WHERE instance_id = %(iid)s",
    claim="CALL {schema}.romancy_outbox_claim(%(worker)s, %(ttl)s, %(limit)s)",
    delivered=f"""
        UPDATE {{schema}}.outbox_events
        SET status = 'delivered', attempts = attempts + 1, delivered_at = {_NOW},
            claimed_until = NULL, last_error = NULL
        WHERE {_FENCE};
        SET @n = ROW_COUNT();
        SELECT %(seq)s FROM DUAL WHERE @n > 0""",
    # MySQL assigns left to right: status is decided before attempts changes
    attempt_failed=f"""
        UPDATE {{schema}}.outbox_events
        SET status = CASE WHEN attempts + 1 >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
            attempts = attempts + 1, last_error = %(error)s,
            next_attempt_at = {_NOW} + %(delay)s, claimed_by = NULL, claimed_until = NULL
        WHERE {_FENCE};
        SET @n = ROW_COUNT();
        SELECT status FROM {{schema}}.outbox_events WHERE @n > 0 AND seq = %(seq)s""",
    release=f"""
        UPDATE {{schema}}.outbox_events SET claimed_by = NULL, claimed_until = NULL
        WHERE {_FENCE};
        SET @n = ROW_COUNT();
        SELECT %(seq)s FROM DUAL WHERE @n > 0""",
    next_due=f"""
        SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE LEAST(a, b) END - {_NOW}
        FROM (SELECT
            (SELECT next_attempt_at FROM {{schema}}.outbox_events
             WHERE status = 'pending' AND claimed_until IS NULL
             ORDER BY next_attempt_at, seq LIMIT 1) AS a,
            (SELECT min(GREATEST(next_attempt_at, claimed_until))
             FROM {{schema}}.outbox_events
             WHERE status = 'pending' AND claimed_until IS NOT NULL) AS b) t""",
    purge=f"""
        DELETE FROM {{schema}}.outbox_events
        WHERE status = 'delivered' AND delivered_at < {_NOW} - %(retention)s
        ORDER BY delivered_at LIMIT %(limit)s""",
    rows=f"""
        SELECT {ROW_COLUMNS} FROM {{schema}}.outbox_events
        WHERE (%(status)s IS NULL OR status = %(status)s)
        ORDER BY seq LIMIT %(limit)s""",
)
