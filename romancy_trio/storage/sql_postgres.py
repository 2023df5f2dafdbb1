"""Every SQL statement the store runs on PostgreSQL. Lease times use the server's clock.

Schema convention (``romancy_channels._sql``): every table and function is written
``{schema}.name`` (``{{schema}}.name`` inside an f-string); `qualify` fills in the quoted schema
once per store, so pooled connections need no ``search_path``. New statements follow it; a test
(tests/romancy_trio/test_schema_qualified.py) fails on an unqualified table."""

from __future__ import annotations

from ._queries import INSTANCE_COLUMNS, Queries, WaitQueries, ended_flags
from ._retention import RetentionQueries
from .hints import DEADLINE, INSTANCE, NAMED_WAKEUPS, NEW

_TTL = "clock_timestamp() + %(ttl)s::float8 * interval '1 second'"
_NOW = "statement_timestamp()"
"""The clock of a claim's WHERE: stable within the statement, so the planner compares it with
the partial indexes (``clock_timestamp()`` is volatile: with it the claim read every waiting
row, ~100 ms at 100,000 of them; issue #22). test_claim_plans asserts the plans."""
_FENCE = ("instance_id = %(iid)s AND lease_owner = %(owner)s AND lease_epoch = %(epoch)s "
          "AND status = 'running'")

_ENDED = ended_flags("{schema}.workflow_instances", "{schema}.workflow_queue_entries", "u")

_TELL_WATCHER = ("CASE WHEN u.watcher <> %(owner)s THEN pg_notify(CASE u.watcher WHEN '*' THEN"
                 " %(topic)s ELSE %(topic)s || '_' || left(md5(u.watcher), 12) END, u.instance_id)"
                 " END")
"""The end, to its waiter in another process alone (on its channel: `Topics.done_for`)."""
_WAKE_NOW = f"coalesce(%(now)s::float8, EXTRACT(EPOCH FROM {_NOW})::float8)"
"""Due wake-ups compare with the app's durable clock when it has one (``now``: see
``romancy_trio._clock.sql_now``), else with the server's clock as always."""

_VERSIONS = ("(code_version IS NULL OR workflow_name || '|' || code_version IN "
             "(SELECT jsonb_array_elements_text(%(versions)s::jsonb)))")
"""A worker resumes instances of its own code version or a compatible one (``versions``: a
JSON array of ``'<workflow name>|<version>'``), and those started without one (NULL)."""

_CLAIM = f"""
        WITH c AS (
            SELECT instance_id, lease_owner FROM {{schema}}.workflow_instances
            WHERE ((status IN ('pending', 'running')
                    AND (lease_expires_at IS NULL OR lease_expires_at < {_NOW}))
                   OR (status = 'waiting' AND wake_at <= {_WAKE_NOW}))
              AND lease_owner IS DISTINCT FROM %(owner)s
              AND workflow_name IN (SELECT jsonb_array_elements_text(%(names)s::jsonb))
              AND {_VERSIONS}
            ORDER BY created_at
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED)
        UPDATE {{schema}}.workflow_instances w
        SET status = 'running', lease_owner = %(owner)s, lease_epoch = w.lease_epoch + 1,
            lease_expires_at = {_TTL}
        FROM c WHERE w.instance_id = c.instance_id
        RETURNING w.instance_id, w.workflow_name, w.input, w.run_no, w.lease_epoch,
                  w.run_started_at, w.cancel_requested, c.lease_owner, w.attributes"""


def _next_expiry(unclaimed: str = "") -> str:
    """When to claim again: the earliest foreign lease expiry or wake-up, and 0 if an
    instance that a claim could take now is there (``unclaimed``: one the claim sent with
    this did not take). A claim skips the rows another transaction holds locked (``SKIP
    LOCKED``), e.g. a publish's wake-up that locked a receiver another write had just made
    pending; whoever made it claimable has already notified, so without this answer the
    worker would sleep until the fallback re-check."""
    return f"""
        SELECT least(
            (SELECT EXTRACT(EPOCH FROM (min(lease_expires_at) - clock_timestamp()))::float8
             FROM {{schema}}.workflow_instances
             WHERE status IN ('pending', 'running') AND lease_owner IS DISTINCT FROM %(owner)s),
            (SELECT min(wake_at) - {_WAKE_NOW}
             FROM {{schema}}.workflow_instances WHERE status = 'waiting' AND {_VERSIONS}),
            (SELECT 0::float8 FROM {{schema}}.workflow_instances
             WHERE status IN ('pending', 'running') AND lease_expires_at IS NULL
               AND lease_owner IS DISTINCT FROM %(owner)s
               AND workflow_name IN (SELECT jsonb_array_elements_text(%(names)s::jsonb))
               AND {_VERSIONS}{unclaimed}
             LIMIT 1))"""


_NEXT_EXPIRY = _next_expiry()

_CLAIM_AND_EXPIRY = f"""
        WITH claimed AS ({_CLAIM})
        SELECT claimed.*, NULL::float8 FROM claimed
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ({_next_expiry(
            " AND instance_id NOT IN (SELECT instance_id FROM claimed)")})"""


def worker_lock_key(owner: str) -> str:
    """THE key of a worker's session-level advisory lock, as SQL (the one place it is
    derived): a bigint hash of ``'<schema>:<worker id>'``, ``%(ns)s`` being the schema's name.
    ``owner`` is the SQL expression of the worker id. Each live worker holds the lock in
    shared mode on its own connection (``_pg_session``); a worker that died holds nothing.
    Two ids that hash alike only make the faster takeover miss: the lease TTL still applies."""
    return f"hashtextextended(%(ns)s || ':' || {owner}, 0)"


_WORKER_LOCK = f"SELECT pg_advisory_lock_shared({worker_lock_key('%(owner)s')})"

_TIMELINE = "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
"""The server's WAL timeline (hex), as any user may read it: a promoted standby starts a new
one, while its ``pg_postmaster_start_time()`` is when it started as a standby."""

_HELD_WORKER_LOCKS = """
            SELECT (l.classid::text::bigint << 32) | l.objid::text::bigint AS key
            FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
              AND l.database = (SELECT oid FROM pg_database
                                WHERE datname = current_database())"""
"""The keys of the session-level advisory locks held in this database (`worker_lock_key`)."""

_TAKE_OVER_DEAD = f"""
        WITH held AS ({_HELD_WORKER_LOCKS}),
        foreign_leases AS (
            SELECT instance_id, lease_owner FROM {{schema}}.workflow_instances
            WHERE status = 'running' AND lease_owner <> %(owner)s
              AND lease_expires_at > clock_timestamp()),
        orphaned AS (
            SELECT DISTINCT f.lease_owner FROM foreign_leases f
            WHERE pg_postmaster_start_time()
                  < clock_timestamp() - %(grace)s::float8 * interval '1 second'
              AND NOT EXISTS (SELECT 1 FROM held
                              WHERE held.key = {worker_lock_key('f.lease_owner')})),
        dead AS (
            UPDATE {{schema}}.workflow_instances w SET lease_expires_at = clock_timestamp()
            FROM foreign_leases f
            WHERE w.instance_id = f.instance_id AND w.lease_owner = f.lease_owner
              AND w.status = 'running'
              AND f.lease_owner IN (SELECT lease_owner FROM orphaned)
              AND f.lease_owner = ANY(%(suspects)s::text[])
              AND {_TIMELINE} = %(timeline)s
            RETURNING w.instance_id),
        note AS (SELECT pg_notify(%(topic)s, '') FROM (SELECT 1 FROM dead LIMIT 1) d)
        SELECT (SELECT count(*) FROM foreign_leases), (SELECT count(*) FROM dead),
               (SELECT count(*) FROM note), ARRAY(SELECT lease_owner FROM orphaned),
               {_TIMELINE}"""

_WORKER_ALIVE = f"""
        SELECT EXISTS (SELECT 1 FROM ({_HELD_WORKER_LOCKS}) held
                       WHERE held.key = {worker_lock_key('%(worker)s')})"""

# h-sem: what start() compares a repeated start with (the id's workflow, its first input)
_EXISTING = """
        SELECT i.instance_id, i.workflow_name, coalesce(r.input, i.input), NULL
        FROM {schema}.workflow_instances i
        LEFT JOIN {schema}.workflow_runs r ON r.instance_id = i.instance_id AND r.run_no = 1
        WHERE i.instance_id = %(iid)s"""

QUERIES = Queries(
    add_counter="""
        INSERT INTO {schema}.instance_counters AS c (instance_id, name, value)
        VALUES (%(iid)s, %(name)s, %(value)s)
        ON CONFLICT (instance_id, name) DO UPDATE SET value = c.value + excluded.value""",
    select_counters="""
        SELECT name, value FROM {schema}.instance_counters WHERE instance_id = %s
        ORDER BY name""",
    note_error=f"""
        UPDATE {{schema}}.workflow_instances SET error = %(error)s WHERE {_FENCE}
        RETURNING instance_id""",
    create=f"""
        WITH ins AS (
            INSERT INTO {{schema}}.workflow_instances (instance_id, workflow_name, status, input,
                run_started_at, lease_owner, lease_epoch, lease_expires_at, created_at, updated_at,
                attributes, code_version, watcher)
            VALUES (%(iid)s, %(name)s, %(status)s, %(input)s, %(now)s, %(owner)s, %(epoch)s,
                {_TTL}, %(now)s, %(now)s, %(attributes)s, %(version)s, %(watcher)s)
            ON CONFLICT (instance_id) DO NOTHING
            RETURNING instance_id, status)
        SELECT instance_id, NULL::text, NULL::text,
            CASE WHEN status = 'pending'
                THEN pg_notify(%(topic)s, '{NEW}' || instance_id)::text END
        FROM ins
        UNION ALL
        {_EXISTING} AND NOT EXISTS (SELECT 1 FROM ins)""",
    existing=_EXISTING,
    target_status="""
        SELECT status FROM {schema}.workflow_instances WHERE instance_id = %(target)s""",
    select_instance=f"""
        SELECT {INSTANCE_COLUMNS} FROM {{schema}}.workflow_instances WHERE instance_id = %s""",
    list_instances=f"""
        SELECT {INSTANCE_COLUMNS} FROM {{schema}}.workflow_instances
        WHERE (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR workflow_name = %s)
        ORDER BY created_at DESC, instance_id LIMIT %s""",
    claim=_CLAIM,
    claim_and_expiry=_CLAIM_AND_EXPIRY,
    any_unclaimed=f"""
        SELECT 1 FROM {{schema}}.workflow_instances
        WHERE instance_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
          AND status IN ('pending', 'running')
          AND (lease_expires_at IS NULL OR lease_expires_at < {_NOW})
        LIMIT 1""",
    worker_lock=_WORKER_LOCK,
    take_over_dead=_TAKE_OVER_DEAD,
    worker_alive=_WORKER_ALIVE,
    renew="""
        UPDATE {schema}.workflow_instances
        SET lease_expires_at = clock_timestamp() + %s::float8 * interval '1 second'
        WHERE lease_owner = %s AND status = 'running'
        RETURNING instance_id, lease_epoch""",
    release=f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances
            SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                updated_at = %(now)s
            WHERE {_FENCE}
            RETURNING instance_id)
        SELECT instance_id, pg_notify(%(topic)s, %(hint)s) FROM u""",
    finish=f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances
            SET status = %(status)s, result = %(result)s, error = %(error)s,
                updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
            WHERE {_FENCE}
            RETURNING instance_id, parent_instance_id, watcher)
        SELECT instance_id, {_ENDED}, {_TELL_WATCHER} FROM u""",
    next_expiry=_NEXT_EXPIRY,  # unused here (claim_and_expiry)
    record=f"""
        INSERT INTO {{schema}}.workflow_history (instance_id, run_no, seq, kind, key,
            payload, worker_id, lease_epoch, created_at, compensation)
        SELECT instance_id, run_no, %(seq)s, %(kind)s, %(key)s, %(payload)s, %(owner)s,
            %(epoch)s, %(at)s, %(compensation)s
        FROM {{schema}}.workflow_instances WHERE {_FENCE} AND run_no = %(run_no)s
        FOR SHARE""",
    select_history="""
        SELECT seq, kind, key, payload, created_at, compensation FROM {schema}.workflow_history
        WHERE instance_id = %s AND run_no = %s ORDER BY seq""",
    select_current_history="""
        SELECT h.run_no, h.seq, h.kind, h.key, h.payload, h.created_at, h.compensation
        FROM {schema}.workflow_history h
        JOIN {schema}.workflow_instances i USING (instance_id, run_no)
        WHERE i.instance_id = %s ORDER BY h.seq""",
    fence="""
        SELECT run_no, input, run_started_at FROM {schema}.workflow_instances
        WHERE instance_id = %s AND lease_owner = %s AND lease_epoch = %s AND status = 'running'
        FOR SHARE""",
    archive_history="""
        INSERT INTO {schema}.workflow_history_archive
        SELECT * FROM {schema}.workflow_history WHERE instance_id = %s AND run_no = %s""",
    delete_history="DELETE FROM {schema}.workflow_history WHERE instance_id = %s AND run_no = %s",
    close_run="""
        INSERT INTO {schema}.workflow_runs (instance_id, run_no, continued_from, input, started_at,
            ended_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (instance_id, run_no) DO UPDATE SET ended_at = EXCLUDED.ended_at""",
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
    select_history_since="""
        SELECT seq, kind, key, payload, created_at, compensation FROM {schema}.workflow_history
        WHERE instance_id = %s AND run_no = %s AND seq >= %s ORDER BY seq""",
    mark_watcher="""
        UPDATE {schema}.workflow_instances SET watcher = CASE WHEN watcher IS NULL OR
            watcher = %(me)s THEN %(me)s ELSE '*' END
        WHERE instance_id = %(iid)s AND watcher IS DISTINCT FROM %(me)s RETURNING status""",
    # issue #22: the last activity's success and the finish, one statement (one commit)
    finish_recording=f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances
            SET status = %(status)s, result = %(result)s, error = %(error)s,
                updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
            WHERE {_FENCE} AND run_no = %(run_no)s
            RETURNING instance_id, run_no, parent_instance_id, watcher),
        h AS (
            INSERT INTO {{schema}}.workflow_history (instance_id, run_no, seq, kind, key,
                payload, worker_id, lease_epoch, created_at, compensation)
            SELECT instance_id, run_no, %(seq)s, %(kind)s, %(key)s, %(payload)s, %(owner)s,
                %(epoch)s, %(at)s, %(compensation)s FROM u)
        SELECT instance_id, {_ENDED}, {_TELL_WATCHER} FROM u""",
)

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
        ON CONFLICT DO NOTHING""",
    inbox_delete="""
        DELETE FROM {schema}.workflow_inbox
        WHERE instance_id = %(iid)s AND source = %(source)s AND event_id = %(event_id)s""",
    event_body="""
        SELECT body FROM {schema}.workflow_events
        WHERE source = %(source)s AND event_id = %(event_id)s""",
    waits_delete="DELETE FROM {schema}.workflow_waits WHERE instance_id = %(iid)s",
    resolve=(f"""
        WITH cleared AS (DELETE FROM {{schema}}.workflow_waits WHERE instance_id = %(iid)s),
        recorded AS (
            INSERT INTO {{schema}}.workflow_history (instance_id, run_no, seq, kind, key, payload,
                worker_id, lease_epoch, created_at, compensation)
            SELECT instance_id, run_no, %(seq)s, %(kind)s, %(key)s, %(payload)s, %(owner)s,
                %(epoch)s, %(at)s, %(compensation)s
            FROM {{schema}}.workflow_instances WHERE {_FENCE} AND run_no = %(run_no)s
            FOR SHARE
            RETURNING seq)
        SELECT seq FROM recorded
        UNION ALL
        SELECT {{schema}}.romancy_fenced_out(%(iid)s, %(owner)s, %(epoch)s)
        WHERE NOT EXISTS (SELECT 1 FROM recorded)""",),
    resolve_raises_when_fenced=True,
    suspend=(f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances
            SET status = CASE WHEN cancel_requested THEN 'pending' ELSE 'waiting' END,
                wake_at = %(wake_at)s, lease_owner = NULL, lease_expires_at = NULL,
                updated_at = %(now)s
            WHERE {_FENCE} AND run_no = %(run_no)s
            RETURNING instance_id, status, wake_at),
        other AS (
            DELETE FROM {{schema}}.workflow_waits w USING u
            WHERE w.instance_id = u.instance_id AND w.wait_id <> %(wait_id)s),
        w AS (
            INSERT INTO {{schema}}.workflow_waits (instance_id, wait_id, kind, key,
                deadline, created_at)
            SELECT instance_id, %(wait_id)s, %(kind)s, %(key)s, %(deadline)s, %(now)s FROM u
            ON CONFLICT (instance_id, wait_id) DO UPDATE
            SET kind = EXCLUDED.kind, key = EXCLUDED.key, deadline = EXCLUDED.deadline,
                created_at = EXCLUDED.created_at)
        SELECT status, CASE WHEN status = 'pending' THEN pg_notify(%(topic)s, '')
                            WHEN wake_at < %(hint_before)s
                            THEN pg_notify(%(topic)s, '{DEADLINE}' || wake_at::text) END
        FROM u""",),
    append_history="""
        INSERT INTO {schema}.workflow_history (instance_id, run_no, seq, kind, key, payload,
            worker_id, lease_epoch, created_at)
        SELECT i.instance_id, i.run_no,
            (SELECT coalesce(max(h.seq) + 1, 0) FROM {schema}.workflow_history h
             WHERE h.instance_id = i.instance_id AND h.run_no = i.run_no),
            %(kind)s, %(key)s, %(payload)s, %(worker)s, i.lease_epoch, %(at)s
        FROM {schema}.workflow_instances i WHERE i.instance_id = %(iid)s""",
    event_insert="""
        INSERT INTO {schema}.workflow_events (source, event_id, type, body, target, received_at)
        VALUES (%(source)s, %(event_id)s, %(type)s, %(body)s, %(target)s, %(now)s)
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING event_id""",
    event_broadcast="""
        WITH ev AS (
            INSERT INTO {schema}.workflow_events (source, event_id, type, body, target, received_at)
            VALUES (%(source)s, %(event_id)s, %(type)s, %(body)s, NULL, %(now)s)
            ON CONFLICT (source, event_id) DO NOTHING
            RETURNING event_id),
        w AS (
            SELECT w.instance_id, w.wait_id, i.run_no, i.lease_epoch
            FROM {schema}.workflow_waits w
            JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
            WHERE w.kind = 'event' AND w.key = %(type)s AND i.status = 'waiting'
              AND EXISTS (SELECT 1 FROM ev)
            ORDER BY w.instance_id
            FOR UPDATE OF i),
        h AS (
            INSERT INTO {schema}.workflow_history (instance_id, run_no, seq, kind, key, payload,
                worker_id, lease_epoch, created_at)
            SELECT w.instance_id, w.run_no,
                (SELECT coalesce(max(x.seq) + 1, 0) FROM {schema}.workflow_history x
                 WHERE x.instance_id = w.instance_id AND x.run_no = w.run_no),
                %(kind)s, w.wait_id, %(body)s, %(worker)s, w.lease_epoch, %(now)s
            FROM w),
        d AS (DELETE FROM {schema}.workflow_waits x USING w WHERE x.instance_id = w.instance_id),
        u AS (
            UPDATE {schema}.workflow_instances i SET status = 'pending', wake_at = NULL,
                updated_at = %(now)s
            FROM w WHERE i.instance_id = w.instance_id)
        SELECT EXISTS (SELECT 1 FROM ev),
               ARRAY(SELECT instance_id FROM w ORDER BY instance_id),
               CASE WHEN EXISTS (SELECT 1 FROM w) THEN pg_notify(%(topic)s, '') END""",
    lock_instance="""
        SELECT status FROM {schema}.workflow_instances WHERE instance_id = %(iid)s
        FOR UPDATE""",
    event_waiters="""
        SELECT w.instance_id, w.wait_id FROM {schema}.workflow_waits w
        JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
        WHERE w.kind = 'event' AND w.key = %(type)s AND i.status = 'waiting'
        ORDER BY w.instance_id
        FOR UPDATE OF i""",
    instance_wait="""
        SELECT wait_id FROM {schema}.workflow_waits
        WHERE instance_id = %(iid)s AND kind = %(kind)s AND key = %(key)s""",
    wake="""
        UPDATE {schema}.workflow_instances
        SET status = 'pending', wake_at = NULL, updated_at = %(now)s
        WHERE instance_id = %(iid)s AND status = 'waiting'""",
    cancel="""
        UPDATE {schema}.workflow_instances
        SET cancel_requested = true, wake_at = NULL, updated_at = %(now)s,
            status = CASE
                WHEN status = 'running' THEN 'running'
                WHEN EXISTS (SELECT 1 FROM {schema}.workflow_history h
                             WHERE h.instance_id = workflow_instances.instance_id
                               AND h.run_no = workflow_instances.run_no
                               AND h.compensation IS NOT NULL) THEN 'pending'
                ELSE 'cancelled' END
        WHERE instance_id = %(iid)s AND status IN ('queued', 'pending', 'running', 'waiting')
        RETURNING status""",
    unqueue="""
        DELETE FROM {schema}.workflow_queue_entries
        WHERE instance_id = %(iid)s AND admitted_at IS NULL""",
    wake_waiters=f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances SET status = 'pending', wake_at = NULL,
                updated_at = %(now)s
            WHERE instance_id IN (
                SELECT w.instance_id FROM {{schema}}.workflow_waits w
                JOIN {{schema}}.workflow_instances i ON i.instance_id = w.instance_id
                WHERE w.kind = %(kind)s AND w.key = %(key)s AND i.status = 'waiting'
                  AND (%(target)s::text IS NULL OR w.instance_id = %(target)s)
                ORDER BY w.created_at, w.instance_id
                LIMIT %(limit)s
                FOR UPDATE OF i)
            RETURNING instance_id),
        hints AS (
            SELECT u.instance_id,
                CASE WHEN (SELECT count(*) FROM u) > {NAMED_WAKEUPS} THEN ''
                     ELSE '{INSTANCE}' || u.instance_id END AS hint
            FROM u)
        SELECT instance_id, hint, pg_notify(%(topic)s, hint) FROM hints""",
    wake_if_ready=f"""
        WITH u AS (
            UPDATE {{schema}}.workflow_instances SET status = 'pending', wake_at = NULL,
                updated_at = %(now)s
            WHERE instance_id = %(iid)s AND status = 'waiting'
              AND EXISTS (SELECT 1 FROM {{schema}}.workflow_waits w
                          WHERE w.instance_id = %(iid)s AND w.wait_id = %(wait_id)s)
              AND coalesce(({{ready}}), true)
            RETURNING instance_id)
        SELECT instance_id, '{INSTANCE}' || instance_id,
            pg_notify(%(topic)s, '{INSTANCE}' || instance_id)
        FROM u""",
    woken_receivers="""(
        SELECT count(*) FROM {schema}.workflow_waits w
        JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
        WHERE w.kind = 'channel' AND w.key = %(channel)s AND w.instance_id <> %(subscriber)s
          AND i.status IN ('pending', 'running'))""",
    wake_notifies=True,
    stale_channel_waiters="""
        SELECT w.instance_id, w.key FROM {schema}.workflow_waits w
        JOIN {schema}.workflow_instances i ON i.instance_id = w.instance_id
        JOIN (SELECT DISTINCT channel FROM {schema}.channel_messages WHERE published_at >=
            %(since)s) c
          ON c.channel = w.key
        WHERE w.kind = 'channel' AND i.status = 'waiting'
        ORDER BY w.instance_id LIMIT %(limit)s""",
    events_cleanup="""
        DELETE FROM {schema}.workflow_events WHERE (source, event_id) IN (
            SELECT source, event_id FROM {schema}.workflow_events WHERE received_at < %(before)s
            LIMIT %(limit)s)""",
    inbox_cleanup="DELETE FROM {schema}.workflow_inbox WHERE received_at < %(before)s",
)


# -- data lifecycle (AppConfig.instance_retention) ----------------------------------------------
# One statement per batch; SKIP LOCKED keeps workers running maintenance at once apart.
RETENTION_QUERIES = RetentionQueries(
    purge_finished=("""
        WITH doomed AS (
            SELECT instance_id FROM {schema}.workflow_instances
            WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < %(before)s
            ORDER BY updated_at, instance_id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED),
        history AS (DELETE FROM {schema}.workflow_history x USING doomed d
                    WHERE x.instance_id = d.instance_id),
        archive AS (DELETE FROM {schema}.workflow_history_archive x USING doomed d
                    WHERE x.instance_id = d.instance_id),
        runs AS (DELETE FROM {schema}.workflow_runs x USING doomed d
                 WHERE x.instance_id = d.instance_id),
        waits AS (DELETE FROM {schema}.workflow_waits x USING doomed d
                  WHERE x.instance_id = d.instance_id),
        inbox AS (DELETE FROM {schema}.workflow_inbox x USING doomed d
                  WHERE x.instance_id = d.instance_id),
        subscriptions AS (DELETE FROM {schema}.channel_subscriptions x USING doomed d
                          WHERE x.subscriber = d.instance_id),
        messages AS (DELETE FROM {schema}.channel_messages x USING doomed d
                     WHERE x.target = d.instance_id),
        counters AS (DELETE FROM {schema}.instance_counters x USING doomed d
                     WHERE x.instance_id = d.instance_id),
        queued AS (DELETE FROM {schema}.workflow_queue_entries x USING doomed d
                   WHERE x.instance_id = d.instance_id),
        instances AS (DELETE FROM {schema}.workflow_instances x USING doomed d
                      WHERE x.instance_id = d.instance_id RETURNING x.instance_id)
        SELECT instance_id FROM instances""",),
    purge_runs=("""
        WITH old AS (
            SELECT instance_id, run_no FROM {schema}.workflow_runs
            WHERE ended_at < %(before)s
            ORDER BY ended_at, instance_id, run_no
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED),
        archive AS (DELETE FROM {schema}.workflow_history_archive x USING old o
                    WHERE x.instance_id = o.instance_id AND x.run_no = o.run_no)
        DELETE FROM {schema}.workflow_runs x USING old o
        WHERE x.instance_id = o.instance_id AND x.run_no = o.run_no
        RETURNING x.instance_id""",),
)
