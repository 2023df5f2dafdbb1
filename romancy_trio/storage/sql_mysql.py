"""Every SQL statement the store runs on MySQL 8 / MariaDB (PyMySQL: ``%s`` / ``%(name)s``).

MySQL has no ``UPDATE ... RETURNING`` and no data-modifying CTEs. Where the store expects the
changed rows back, a statement here is a short script of several statements sent in one round
trip (the driver's sessions allow multi-statements): the write, ``SET @n = ROW_COUNT()``, then a
SELECT of what changed guarded by ``@n``. The claim, which must skip locked rows and then
update them, is the stored procedure ``romancy_claim`` (migration 0001). All of it runs in the
caller's transaction (sessions are not autocommit), so a script is all or nothing.

Where PostgreSQL sends ``pg_notify`` from a statement, these scripts append the same
(topic, payload) to ``romancy_signals`` in the same transaction: other processes' hubs read it
(``_mysql_signals``). Statements woken through the store's ``tx.notify`` get theirs from the
driver at COMMIT.

Locks (InnoDB, READ COMMITTED). A statement that changes an indexed column of
``workflow_instances`` (status, lease, wake-up) locks the row's primary key first, then its
entries in the secondary indexes. A locking scan through a secondary index takes them the other
way round, so it deadlocks with those writes. Statements that lock several instances therefore
first read their ids without locks (a plain SELECT ... INTO, a consistent read), then lock or
update them through the primary key in id order, their conditions checked again under the lock
(`_ids_into`, `_by_ids`). ``SET @v = (SELECT ...)`` and multi-table UPDATE/DELETE would take
shared locks on every row they read: plain ``SELECT ... INTO`` instead. Fences lock the row
FOR UPDATE, never in share mode: a transaction that went on to update the row it share-locked
would deadlock with any other waiting to update it (renewal). A locking range scan that
does not end at an exact key prefix (``instance_id = %s AND wait_id <> %s``) also locks the
first row past its end - another instance's: such deletes use the prefix alone.

Lease times use the server's clock (``NOW(6)``, sessions in UTC). ``{schema}`` is filled in
with the backquoted database of the library's tables (`qualify_mysql`).
"""

from __future__ import annotations

from typing import TypeVar

from romancy_channels import qualify

from ._queries import INSTANCE_COLUMNS, Queries, WaitQueries, ended_flags
from ._retention import RetentionQueries
from .hints import DEADLINE, NEW

Q = TypeVar("Q")

_FENCE = (
    "instance_id = %(iid)s AND lease_owner = %(owner)s AND lease_epoch = %(epoch)s "
    "AND status = 'running'"
)
_NOW_EPOCH = "UNIX_TIMESTAMP(NOW(6))"
_ENDED = ended_flags("{schema}.workflow_instances", "{schema}.workflow_queue_entries", "i")
_SIGNAL = "INSERT INTO {schema}.romancy_signals (topic, payload, origin)"
_ALL = 18446744073709551615
"""``LIMIT`` of an ordered derived table: without one, the server drops its ``ORDER BY``."""


def _ids_into(var: str, where: str) -> str:
    """A plain (non-locking) read of the ids of ``workflow_instances`` that match ``where``
    (alias ``i``), in primary-key order, into ``@var`` (a JSON array)."""
    return f"""SELECT coalesce(JSON_ARRAYAGG(instance_id), '[]') INTO @{var} FROM (
            SELECT i.instance_id FROM {{schema}}.workflow_instances i WHERE {where}
            ORDER BY i.instance_id LIMIT {_ALL}) ids"""


def _by_ids(var: str) -> str:
    """``workflow_instances i`` reached through the ids in ``@var``, one primary-key lookup
    each, in their order: the table to write (or lock) after `_ids_into`."""
    return (f"JSON_TABLE(@{var}, '$[*]' COLUMNS (id VARCHAR(255) PATH '$')) j "
            "STRAIGHT_JOIN {schema}.workflow_instances i FORCE INDEX (PRIMARY) "
            "ON i.instance_id = j.id")


def worker_lock_name(owner: str) -> str:
    """THE name of a worker's ``GET_LOCK`` lock, as SQL (the one place it is derived):
    ``'romancy:'`` and the MD5 of ``'<schema>:<worker id>'`` (lock names are at most 64
    characters), ``%(ns)s`` being the database's name. Each live worker holds it on its own
    session (``MysqlWorkerSession``); the server releases it when that session ends, so a
    worker that died holds nothing. Two ids that hash alike only make the faster takeover
    miss: the lease TTL still applies."""
    return f"CONCAT('romancy:', MD5(CONCAT(%(ns)s, ':', {owner})))"


# held until the session ends; waits (10 s) only if a previous session of this worker id is
# still ending; 0 (timed out) leaves the TTL as the only takeover, as without this lock
_WORKER_LOCK = f"SELECT GET_LOCK({worker_lock_name('%(owner)s')}, 10)"

_FOREIGN = """i.status = 'running' AND i.lease_owner <> %(owner)s AND i.lease_expires_at > NOW(6)"""
_ORPHANED = f"""{_FOREIGN}
          AND JSON_CONTAINS(COALESCE(@romancy_orphans, '[]'), JSON_QUOTE(i.lease_owner))
          AND JSON_CONTAINS(%(suspects_json)s, JSON_QUOTE(i.lease_owner))"""

# Other workers' running leases whose worker holds no lock (its session ended) are expired
# now when the check before found the same (``suspects``, JSON), so they are claimed at once.
# No timeline (MySQL has none): a restarted server's workers reconnect and take their locks
# again within the confirmation the suspects give. Reads without locks, then writes by
# primary key (see "Locks" in the module's docstring).
_TAKE_OVER_DEAD = f"""
        SELECT COUNT(*) INTO @romancy_foreign FROM {{schema}}.workflow_instances i
        WHERE {_FOREIGN};
        SELECT JSON_ARRAYAGG(o) INTO @romancy_orphans FROM (
            SELECT DISTINCT i.lease_owner AS o FROM {{schema}}.workflow_instances i
            WHERE {_FOREIGN}
              AND IS_USED_LOCK({worker_lock_name('i.lease_owner')}) IS NULL) t;
        {_ids_into('romancy_doomed', _ORPHANED)};
        UPDATE {_by_ids('romancy_doomed')} SET i.lease_expires_at = NOW(6)
        WHERE {_ORPHANED};
        SET @n = ROW_COUNT();
        {_SIGNAL} SELECT %(topic)s, '', @romancy_origin FROM DUAL WHERE @n > 0;
        SELECT @romancy_foreign, @n, @n > 0, COALESCE(@romancy_orphans, '[]'), NULL"""


def qualify_mysql(queries: Q, schema: str) -> Q:
    """``queries`` with ``{schema}`` replaced by the backquoted ``schema``."""
    return qualify(queries, schema, dialect="mysql")


_EXISTING = """
        SELECT i.instance_id, i.workflow_name, coalesce(r.input, i.input), NULL
        FROM {schema}.workflow_instances i
        LEFT JOIN {schema}.workflow_runs r ON r.instance_id = i.instance_id AND r.run_no = 1
        WHERE i.instance_id = %(iid)s"""

_NEXT_EXPIRY = f"""
        SELECT LEAST(COALESCE(a, b, c), COALESCE(b, c, a), COALESCE(c, a, b)) FROM (
            SELECT (SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), min(lease_expires_at)) / 1e6
                    FROM {{schema}}.workflow_instances
                    WHERE status IN ('pending', 'running')
                      AND NOT (lease_owner <=> %(owner)s)) AS a,
                   (SELECT min(wake_at) - coalesce(%(now)s, {_NOW_EPOCH})
                    FROM {{schema}}.workflow_instances WHERE status = 'waiting') AS b,
                   (SELECT 0 FROM {{schema}}.workflow_instances
                    WHERE status IN ('pending', 'running') AND lease_expires_at IS NULL
                      AND NOT (lease_owner <=> %(owner)s)
                      AND workflow_name IN (SELECT j.name FROM JSON_TABLE(%(names)s, '$[*]'
                                            COLUMNS (name VARCHAR(255) PATH '$')) j)
                      AND (code_version IS NULL OR CONCAT(workflow_name, '|', code_version) IN (
                            SELECT v.x FROM JSON_TABLE(%(versions)s, '$[*]'
                                                       COLUMNS (x VARCHAR(600) PATH '$')) v))
                    LIMIT 1) AS c) t"""
"""When to claim again (asked right after a claim): the earliest foreign lease expiry or
wake-up, and 0 if an instance is claimable now (``c``): the claim skips the rows another
transaction holds locked (SKIP LOCKED), and whoever made such a row claimable has already
signalled, so without this answer the worker would sleep until the fallback re-check."""

QUERIES = Queries(
    # the id exists: ON DUPLICATE KEY changes nothing but @dup (a plain INSERT would fail on a
    # concurrent insert of the same id; INSERT IGNORE would also turn bad data into warnings)
    create=f"""
        SET @dup = 0;
        INSERT INTO {{schema}}.workflow_instances (instance_id, workflow_name, status, input,
            run_started_at, lease_owner, lease_epoch, lease_expires_at, created_at, updated_at,
            attributes, code_version, watcher)
        VALUES (%(iid)s, %(name)s, %(status)s, %(input)s, %(now)s, %(owner)s, %(epoch)s,
            CASE WHEN %(ttl)s IS NULL THEN NULL
                 ELSE NOW(6) + INTERVAL ROUND(%(ttl)s * 1000000) MICROSECOND END,
            %(now)s, %(now)s, %(attributes)s, %(version)s, %(watcher)s)
        ON DUPLICATE KEY UPDATE instance_id = IF(@dup := 1, instance_id, instance_id);
        {_SIGNAL} SELECT %(topic)s, CONCAT('{NEW}', %(iid)s), @romancy_origin FROM DUAL
        WHERE @dup = 0 AND %(status)s = 'pending';
        SELECT %(iid)s, NULL, NULL, NULL FROM DUAL WHERE @dup = 0""",
    existing=_EXISTING,
    add_counter="""
        INSERT INTO {schema}.instance_counters (instance_id, name, value)
        VALUES (%(iid)s, %(name)s, %(value)s)
        ON DUPLICATE KEY UPDATE value = value + VALUES(value)""",
    select_counters="""
        SELECT name, value FROM {schema}.instance_counters WHERE instance_id = %s ORDER BY name""",
    note_error=f"""
        UPDATE {{schema}}.workflow_instances SET error = %(error)s WHERE {_FENCE};
        SET @n = ROW_COUNT();
        SELECT %(iid)s FROM DUAL WHERE @n > 0""",
    target_status="""
        SELECT status FROM {schema}.workflow_instances WHERE instance_id = %(target)s""",
    select_instance=f"""
        SELECT {INSTANCE_COLUMNS} FROM {{schema}}.workflow_instances WHERE instance_id = %s""",
    list_instances=f"""
        SELECT {INSTANCE_COLUMNS} FROM {{schema}}.workflow_instances
        WHERE (%s IS NULL OR status = %s) AND (%s IS NULL OR workflow_name = %s)
        ORDER BY created_at DESC, instance_id LIMIT %s""",
    claim="""CALL {schema}.romancy_claim(%(owner)s, %(ttl)s, %(names)s, %(limit)s,
                                       %(versions)s, %(now)s)""",
    claim_and_expiry=None,
    any_unclaimed="""
        SELECT 1 FROM {schema}.workflow_instances
        WHERE instance_id IN (SELECT j.id FROM JSON_TABLE(%(ids)s, '$[*]'
                                               COLUMNS (id VARCHAR(255) PATH '$')) j)
          AND status IN ('pending', 'running')
          AND (lease_expires_at IS NULL OR lease_expires_at < NOW(6))
        LIMIT 1""",
    worker_lock=_WORKER_LOCK,
    take_over_dead=_TAKE_OVER_DEAD,
    renew=f"""
        SET @ttl = %s, @owner = %s;
        {_ids_into('romancy_mine', "i.lease_owner = @owner AND i.status = 'running'")};
        UPDATE {_by_ids('romancy_mine')}
        SET i.lease_expires_at = NOW(6) + INTERVAL ROUND(@ttl * 1000000) MICROSECOND
        WHERE i.lease_owner = @owner AND i.status = 'running';
        SELECT instance_id, lease_epoch FROM {{schema}}.workflow_instances
        WHERE lease_owner = @owner AND status = 'running'""",
    release=f"""
        UPDATE {{schema}}.workflow_instances
        SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
            updated_at = %(now)s
        WHERE {_FENCE};
        SET @n = ROW_COUNT();
        {_SIGNAL} SELECT %(topic)s, %(hint)s, @romancy_origin FROM DUAL WHERE @n > 0;
        SELECT %(iid)s FROM DUAL WHERE @n > 0""",
    # the done signal only to a waiter elsewhere (``mark_watcher``): this transaction holds the
    # row's lock since its UPDATE, so the watcher it reads is the newest; a mark committed
    # after it is followed by the waiter's status read, which sees the end
    finish=f"""
        UPDATE {{schema}}.workflow_instances
        SET status = %(status)s, result = %(result)s, error = %(error)s,
            updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
        WHERE {_FENCE};
        SET @n = ROW_COUNT();
        {_SIGNAL} SELECT %(topic)s, %(iid)s, @romancy_origin
        FROM {{schema}}.workflow_instances w
        WHERE @n > 0 AND w.instance_id = %(iid)s AND w.watcher <> %(owner)s;
        SELECT i.instance_id, {_ENDED}
        FROM {{schema}}.workflow_instances i WHERE i.instance_id = %(iid)s AND @n > 0""",
    next_expiry=_NEXT_EXPIRY,
    mark_watcher="""
        UPDATE {schema}.workflow_instances
        SET watcher = CASE WHEN watcher IS NULL OR watcher = %(me)s THEN %(me)s ELSE '*' END
        WHERE instance_id = %(iid)s AND NOT (watcher <=> %(me)s)""",
    record=f"""
        INSERT INTO {{schema}}.workflow_history (instance_id, run_no, seq, kind, `key`,
            payload, worker_id, lease_epoch, created_at, compensation)
        SELECT instance_id, run_no, %(seq)s, %(kind)s, %(key)s, %(payload)s, %(owner)s,
            %(epoch)s, %(at)s, %(compensation)s
        FROM {{schema}}.workflow_instances WHERE {_FENCE} AND run_no = %(run_no)s
        FOR UPDATE""",
    select_history="""
        SELECT seq, kind, `key`, payload, created_at, compensation FROM {schema}.workflow_history
        WHERE instance_id = %s AND run_no = %s ORDER BY seq""",
    select_history_since="""
        SELECT seq, kind, `key`, payload, created_at, compensation FROM {schema}.workflow_history
        WHERE instance_id = %s AND run_no = %s AND seq >= %s ORDER BY seq""",
    select_current_history="""
        SELECT h.run_no, h.seq, h.kind, h.`key`, h.payload, h.created_at, h.compensation
        FROM {schema}.workflow_history h
        JOIN {schema}.workflow_instances i USING (instance_id, run_no)
        WHERE i.instance_id = %s ORDER BY h.seq""",
    fence="""
        SELECT run_no, input, run_started_at FROM {schema}.workflow_instances
        WHERE instance_id = %s AND lease_owner = %s AND lease_epoch = %s AND status = 'running'
        FOR UPDATE""",
    archive_history="""
        INSERT INTO {schema}.workflow_history_archive
        SELECT * FROM {schema}.workflow_history WHERE instance_id = %s AND run_no = %s""",
    delete_history="DELETE FROM {schema}.workflow_history WHERE instance_id = %s AND run_no = %s",
    close_run="""
        INSERT INTO {schema}.workflow_runs (instance_id, run_no, continued_from, input,
            started_at, ended_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON DUPLICATE KEY UPDATE ended_at = VALUES(ended_at)""",
    open_run="""
        INSERT INTO {schema}.workflow_runs (instance_id, run_no, continued_from, input, started_at)
        VALUES (%s, %s, %s, %s, %s)""",
    start_next_run="""
        UPDATE {schema}.workflow_instances
        SET run_no = run_no + 1, input = %s, run_started_at = %s, updated_at = %s
        WHERE instance_id = %s AND lease_owner = %s AND lease_epoch = %s AND status = 'running'""",
    select_runs="""
        SELECT run_no, continued_from, started_at, ended_at FROM {schema}.workflow_runs
        WHERE instance_id = %s ORDER BY run_no""",
    run_one="""
        SELECT run_no, input, run_started_at FROM {schema}.workflow_instances
        WHERE instance_id = %s""",
)

_RECORD_FENCED = f"""
        INSERT INTO {{schema}}.workflow_history (instance_id, run_no, seq, kind, `key`, payload,
            worker_id, lease_epoch, created_at, compensation)
        SELECT instance_id, run_no, %(seq)s, %(kind)s, %(key)s, %(payload)s, %(owner)s,
            %(epoch)s, %(at)s, %(compensation)s
        FROM {{schema}}.workflow_instances WHERE {_FENCE} AND run_no = %(run_no)s
        FOR UPDATE"""

WAIT_QUERIES = WaitQueries(
    lock_fenced=f"""
        SELECT run_no, cancel_requested FROM {{schema}}.workflow_instances WHERE {_FENCE}
        FOR UPDATE""",
    inbox_first="""
        SELECT source, event_id FROM {schema}.workflow_inbox
        WHERE instance_id = %(iid)s AND type = %(type)s ORDER BY received_at, event_id LIMIT 1""",
    inbox_insert="""
        INSERT INTO {schema}.workflow_inbox (instance_id, source, event_id, type, received_at)
        VALUES (%(iid)s, %(source)s, %(event_id)s, %(type)s, %(now)s)
        ON DUPLICATE KEY UPDATE instance_id = instance_id""",
    inbox_delete="""
        DELETE FROM {schema}.workflow_inbox
        WHERE instance_id = %(iid)s AND source = %(source)s AND event_id = %(event_id)s""",
    event_body="""
        SELECT body FROM {schema}.workflow_events
        WHERE source = %(source)s AND event_id = %(event_id)s""",
    waits_delete="DELETE FROM {schema}.workflow_waits WHERE instance_id = %(iid)s",
    # the fenced insert, then (fenced out) a SIGNAL that leaves the transaction to roll back
    resolve=(f"""
        DELETE FROM {{schema}}.workflow_waits WHERE instance_id = %(iid)s;
        {_RECORD_FENCED};
        SET @n = ROW_COUNT();
        SELECT %(seq)s FROM DUAL WHERE @n > 0;
        CALL {{schema}}.romancy_fenced_out(@n = 0, %(iid)s, %(owner)s, %(epoch)s)""",),
    resolve_raises_when_fenced=True,
    suspend=(f"""
        UPDATE {{schema}}.workflow_instances
        SET status = CASE WHEN cancel_requested THEN 'pending' ELSE 'waiting' END,
            wake_at = %(wake_at)s, lease_owner = NULL, lease_expires_at = NULL,
            updated_at = %(now)s
        WHERE {_FENCE} AND run_no = %(run_no)s;
        SET @n = ROW_COUNT();
        DELETE FROM {{schema}}.workflow_waits WHERE @n > 0 AND instance_id = %(iid)s;
        INSERT INTO {{schema}}.workflow_waits (instance_id, wait_id, kind, `key`, deadline,
            created_at)
        SELECT %(iid)s, %(wait_id)s, %(kind)s, %(key)s, %(deadline)s, %(now)s FROM DUAL
        WHERE @n > 0
        ON DUPLICATE KEY UPDATE kind = VALUES(kind), `key` = VALUES(`key`),
            deadline = VALUES(deadline), created_at = VALUES(created_at);
        SELECT max(status) INTO @status FROM {{schema}}.workflow_instances
        WHERE @n > 0 AND instance_id = %(iid)s;
        {_SIGNAL}
        SELECT %(topic)s, CASE WHEN @status = 'pending' THEN ''
                               ELSE CONCAT('{DEADLINE}', %(wake_at)s) END,
            @romancy_origin
        FROM DUAL
        WHERE @n > 0 AND (@status = 'pending' OR %(wake_at)s < %(hint_before)s);
        SELECT @status FROM DUAL WHERE @n > 0""",),
    append_history="""
        INSERT INTO {schema}.workflow_history (instance_id, run_no, seq, kind, `key`, payload,
            worker_id, lease_epoch, created_at)
        SELECT i.instance_id, i.run_no,
            (SELECT coalesce(max(h.seq) + 1, 0) FROM {schema}.workflow_history h
             WHERE h.instance_id = i.instance_id AND h.run_no = i.run_no),
            %(kind)s, %(key)s, %(payload)s, %(worker)s, i.lease_epoch, %(at)s
        FROM {schema}.workflow_instances i WHERE i.instance_id = %(iid)s""",
    event_insert="""
        SET @dup = 0;
        INSERT INTO {schema}.workflow_events (source, event_id, type, body, target, received_at)
        VALUES (%(source)s, %(event_id)s, %(type)s, %(body)s, %(target)s, %(now)s)
        ON DUPLICATE KEY UPDATE source = IF(@dup := 1, source, source);
        SELECT %(event_id)s FROM DUAL WHERE @dup = 0""",
    event_broadcast=None,  # no data-modifying CTEs: the store's transaction does the steps
    lock_instance="""
        SELECT status FROM {schema}.workflow_instances WHERE instance_id = %(iid)s
        FOR UPDATE""",
    # read without locks, then lock each instance (and then its wait) by primary key
    event_waiters=f"""
        SELECT coalesce(JSON_ARRAYAGG(instance_id), '[]') INTO @romancy_waiting FROM (
            SELECT w.instance_id FROM {{schema}}.workflow_waits w
            JOIN {{schema}}.workflow_instances i ON i.instance_id = w.instance_id
            WHERE w.kind = 'event' AND w.`key` = %(type)s AND i.status = 'waiting'
            ORDER BY w.instance_id LIMIT {_ALL}) ids;
        SELECT i.instance_id, w.wait_id FROM {_by_ids('romancy_waiting')}
        STRAIGHT_JOIN {{schema}}.workflow_waits w ON w.instance_id = i.instance_id
        WHERE w.kind = 'event' AND w.`key` = %(type)s AND i.status = 'waiting'
        FOR UPDATE""",
    instance_wait="""
        SELECT wait_id FROM {schema}.workflow_waits
        WHERE instance_id = %(iid)s AND kind = %(kind)s AND `key` = %(key)s""",
    wake="""
        UPDATE {schema}.workflow_instances
        SET status = 'pending', wake_at = NULL, updated_at = %(now)s
        WHERE instance_id = %(iid)s AND status = 'waiting'""",
    cancel="""
        UPDATE {schema}.workflow_instances i
        SET cancel_requested = TRUE, wake_at = NULL, updated_at = %(now)s,
            status = CASE
                WHEN status = 'running' THEN 'running'
                WHEN EXISTS (SELECT 1 FROM {schema}.workflow_history h
                             WHERE h.instance_id = i.instance_id AND h.run_no = i.run_no
                               AND h.compensation IS NOT NULL) THEN 'pending'
                ELSE 'cancelled' END
        WHERE instance_id = %(iid)s AND status IN ('queued', 'pending', 'running', 'waiting');
        SET @n = ROW_COUNT();
        SELECT status FROM {schema}.workflow_instances
        WHERE @n > 0 AND instance_id = %(iid)s""",
    unqueue="""
        DELETE FROM {schema}.workflow_queue_entries
        WHERE instance_id = %(iid)s AND admitted_at IS NULL""",
    # The candidates (at most limit, oldest first) read into @woken, then woken by primary key
    # in id order with their status checked again under the row lock (READ COMMITTED re-reads
    # a row an UPDATE waited for); those this statement woke carry its own updated_at.
    wake_waiters=f"""
        SELECT coalesce(JSON_ARRAYAGG(instance_id), '[]') INTO @woken FROM (
            SELECT instance_id FROM (
                SELECT w.instance_id,
                       ROW_NUMBER() OVER (ORDER BY w.created_at, w.instance_id) AS rn
                FROM {{schema}}.workflow_waits w
                JOIN {{schema}}.workflow_instances i ON i.instance_id = w.instance_id
                WHERE w.kind = %(kind)s AND w.`key` = %(key)s AND i.status = 'waiting'
                  AND (%(target)s IS NULL OR w.instance_id = %(target)s)) c
            WHERE rn <= coalesce(%(limit)s, rn)
            ORDER BY instance_id LIMIT {_ALL}) ids;
        UPDATE {_by_ids('woken')}
        SET i.status = 'pending', i.wake_at = NULL, i.updated_at = %(now)s
        WHERE i.status = 'waiting';
        SELECT i.instance_id FROM {{schema}}.workflow_instances i
        JOIN JSON_TABLE(@woken, '$[*]' COLUMNS (id VARCHAR(255) PATH '$')) j
          ON i.instance_id = j.id
        WHERE i.status = 'pending' AND i.updated_at = %(now)s""",
    wake_if_ready="""
        UPDATE {schema}.workflow_instances
        SET status = 'pending', wake_at = NULL, updated_at = %(now)s
        WHERE instance_id = %(iid)s AND status = 'waiting'
          AND EXISTS (SELECT 1 FROM {schema}.workflow_waits w
                      WHERE w.instance_id = %(iid)s AND w.wait_id = %(wait_id)s)
          AND coalesce(({ready}), TRUE);
        SET @n = ROW_COUNT();
        SELECT %(iid)s FROM DUAL WHERE @n > 0""",
    woken_receivers="""(
        SELECT count(*) FROM {schema}.workflow_waits w
        JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
        WHERE w.kind = 'channel' AND w.`key` = %(channel)s AND w.instance_id <> %(subscriber)s
          AND i.status IN ('pending', 'running'))""",
    wake_notifies=False,
    stale_channel_waiters="""
        SELECT w.instance_id, w.`key` FROM {schema}.workflow_waits w
        JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
        JOIN (SELECT DISTINCT channel FROM {schema}.channel_messages
              WHERE published_at >= %(since)s) c
          ON c.channel = w.`key`
        WHERE w.kind = 'channel' AND i.status = 'waiting'
        ORDER BY w.instance_id LIMIT %(limit)s""",
    events_cleanup="""
        DELETE FROM {schema}.workflow_events WHERE received_at < %(before)s
        ORDER BY received_at LIMIT %(limit)s""",
    inbox_cleanup="DELETE FROM {schema}.workflow_inbox WHERE received_at < %(before)s",
)


# -- data lifecycle (AppConfig.instance_retention) ----------------------------------------------
# The batch is read once into @doomed / @old; every statement then deletes by it. Finished
# instances and ended runs never change again, so two workers purging at once at worst both
# delete the same rows (the second finds them gone).
_PICK_FINISHED = """
        SELECT coalesce(JSON_ARRAYAGG(instance_id), '[]') INTO @doomed FROM (
            SELECT instance_id FROM {schema}.workflow_instances
            WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < %(before)s
            ORDER BY updated_at, instance_id
            LIMIT %(limit)s) d"""
_DOOMED = "(SELECT id FROM JSON_TABLE(@doomed, '$[*]' COLUMNS (id VARCHAR(255) PATH '$')) j)"
_PICK_RUNS = """
        SELECT coalesce(JSON_ARRAYAGG(JSON_ARRAY(instance_id, run_no)), '[]') INTO @old FROM (
            SELECT instance_id, run_no FROM {schema}.workflow_runs
            WHERE ended_at < %(before)s
            ORDER BY ended_at, instance_id, run_no
            LIMIT %(limit)s) o"""
_OLD = ("(SELECT id, n FROM JSON_TABLE(@old, '$[*]' COLUMNS "
        "(id VARCHAR(255) PATH '$[0]', n INT PATH '$[1]')) j)")

RETENTION_QUERIES = RetentionQueries(
    purge_finished=(
        _PICK_FINISHED,
        *(f"DELETE FROM {{schema}}.{table} WHERE instance_id IN {_DOOMED}"
          for table in ("workflow_history", "workflow_history_archive", "workflow_runs",
                        "workflow_waits", "workflow_inbox", "instance_counters",
                        "workflow_queue_entries")),
        f"DELETE FROM {{schema}}.channel_subscriptions WHERE subscriber IN {_DOOMED}",
        f"DELETE FROM {{schema}}.channel_messages WHERE target IN {_DOOMED}",
        f"DELETE FROM {{schema}}.workflow_instances WHERE instance_id IN {_DOOMED}",
        f"SELECT id FROM {_DOOMED} d",
    ),
    purge_runs=(
        _PICK_RUNS,
        f"""DELETE FROM {{schema}}.workflow_history_archive
            WHERE (instance_id, run_no) IN {_OLD}""",
        f"DELETE FROM {{schema}}.workflow_runs WHERE (instance_id, run_no) IN {_OLD}",
        f"SELECT id FROM {_OLD} o",
    ),
)
