"""Every statement of the channel engine on PostgreSQL (psycopg, named ``%(name)s`` params).

Ordering: ``publish`` row-locks the channel's row in ``channels`` until the publishing
transaction ends, and only then draws the message id. So within one channel, ids are handed out
in commit order: a reader that has seen id N can never later see a committed id below N, and a
cursor (``id > cursor``) never skips a message. The price: publishes to one broadcast channel
serialise, so keep publishing transactions short, and publish to several channels in a fixed
order. A competing channel needs no commit order (a taker claims any unclaimed message): its
publishes (``unlocked_publish``) leave the row alone and never wait for each other.

Competing claims use ``FOR UPDATE SKIP LOCKED``: concurrent takers never block on or share a
message; a claim that rolls back leaves the message unclaimed.

Schema convention (``romancy_channels._sql``): every table and function is written
``{schema}.name`` (``{{schema}}.name`` inside an f-string); `qualify` fills in the quoted schema
once per store, so pooled connections need no ``search_path``. New statements follow it; a test
(tests/romancy_trio/test_schema_qualified.py) fails on an unqualified table.
"""

from __future__ import annotations

from ._protocol import MESSAGE_COLUMNS, ChannelQueries

_RECEIVABLE = "(target IS NULL OR target = %(subscriber)s)"

_LOCKED_HEAD = """
            INSERT INTO {schema}.channels AS c (channel, mode, created_at, last_published_at)
            VALUES (%(channel)s, NULL, %(now)s, %(now)s)
            ON CONFLICT (channel) DO UPDATE SET last_published_at = EXCLUDED.last_published_at
            RETURNING channel"""
_FREE_HEAD = "SELECT %(channel)s::text AS channel"
"""A competing channel's publish: its row exists (its mode is set) and stays unlocked."""
_PUBLISH = """
        WITH head AS ({head})
        INSERT INTO {schema}.channel_messages (channel, data, metadata, target, published_at)
        SELECT channel, %(data)s::text, %(metadata)s::text, %(target)s::text,
            %(now)s::float8
        FROM head
        RETURNING id"""
_PUBLISH_MANY = """
        WITH head AS ({head}),
        items AS (
            SELECT d.data, d.n FROM unnest(%(data)s::text[]) WITH ORDINALITY AS d(data, n))
        INSERT INTO {schema}.channel_messages (channel, data, metadata, target, published_at)
        SELECT head.channel, items.data, %(metadata)s::text, %(target)s::text, %(now)s::float8
        FROM head CROSS JOIN items
        ORDER BY items.n
        RETURNING id, data"""

# -- h-sem: direct messages (send_to) are taken by claim, subscribed or not ---------------
# A direct message waits for its target, who takes it by claiming it (SKIP LOCKED), in id
# order with the broadcast messages after its cursor (if it subscribed to a broadcast
# channel) or with the competing queue (if competing); an instance that never subscribed
# takes only its direct messages.
_MAX_ID = "9223372036854775807"
_CLAIM_DIRECT = """
        WITH next AS (
            SELECT id FROM {schema}.channel_messages
            WHERE channel = %(channel)s AND target = %(subscriber)s AND claimed_by IS NULL
              AND id < %(before)s
            ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED)
        UPDATE {schema}.channel_messages m SET claimed_by = %(subscriber)s, claimed_at = %(now)s
        FROM next WHERE m.id = next.id
        RETURNING m.id, m.channel, m.data, m.metadata, m.target, m.published_at"""
_TAKE = f"""
        WITH s AS (
            SELECT mode, cursor_id FROM {{schema}}.channel_subscriptions
            WHERE channel = %(channel)s AND subscriber = %(subscriber)s
            FOR UPDATE),
        step AS (
            SELECT m.id, m.channel, m.data, m.metadata, m.target, m.published_at
            FROM {{schema}}.channel_messages m JOIN s ON s.mode = 'broadcast'
            WHERE m.channel = %(channel)s AND m.id > s.cursor_id AND m.target IS NULL
            ORDER BY m.id LIMIT 1),
        competing AS (
            SELECT id FROM {{schema}}.channel_messages
            WHERE channel = %(channel)s AND claimed_by IS NULL AND {_RECEIVABLE}
              AND EXISTS (SELECT 1 FROM s WHERE mode = 'competing')
            ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED),
        direct AS (
            SELECT id FROM {{schema}}.channel_messages
            WHERE channel = %(channel)s AND target = %(subscriber)s AND claimed_by IS NULL
              AND NOT EXISTS (SELECT 1 FROM s WHERE mode = 'competing')
              AND id < coalesce((SELECT id FROM step), {_MAX_ID})
            ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED),
        next AS (SELECT id FROM competing UNION ALL SELECT id FROM direct),
        claimed AS (
            UPDATE {{schema}}.channel_messages m
            SET claimed_by = %(subscriber)s, claimed_at = %(now)s
            FROM next WHERE m.id = next.id
            RETURNING m.id, m.channel, m.data, m.metadata, m.target, m.published_at),
        stepped AS (SELECT * FROM step WHERE NOT EXISTS (SELECT 1 FROM next)),
        advanced AS (
            UPDATE {{schema}}.channel_subscriptions c SET cursor_id = stepped.id FROM stepped
            WHERE c.channel = %(channel)s AND c.subscriber = %(subscriber)s),
        got AS (SELECT * FROM claimed UNION ALL SELECT * FROM stepped)
        SELECT s.mode, s.cursor_id, got.*
        FROM (SELECT 1) AS one LEFT JOIN s ON true LEFT JOIN got ON true"""
_DIRECT_WAITING = """EXISTS (
                SELECT 1 FROM {schema}.channel_messages m
                WHERE m.channel = %(channel)s AND m.target = %(subscriber)s
                  AND m.claimed_by IS NULL)"""
_HAS_MESSAGE = f"""
        SELECT CASE s.mode
            WHEN 'competing' THEN {_DIRECT_WAITING}
                OR EXISTS (
                    SELECT 1 FROM {{schema}}.channel_messages m
                    WHERE m.channel = s.channel AND m.claimed_by IS NULL AND m.target IS NULL
                    ORDER BY m.id LIMIT 1 OFFSET ({{woken}}))
            WHEN 'broadcast' THEN {_DIRECT_WAITING}
                OR EXISTS (
                    SELECT 1 FROM {{schema}}.channel_messages m
                    WHERE m.channel = s.channel AND m.id > s.cursor_id AND m.target IS NULL)
            ELSE {_DIRECT_WAITING} END
        FROM (SELECT 1) AS one
        LEFT JOIN {{schema}}.channel_subscriptions s
            ON s.channel = %(channel)s AND s.subscriber = %(subscriber)s"""
# -- end h-sem ------------------------------------------------------------------------------

QUERIES = ChannelQueries(
    lock_mode="""
        INSERT INTO {schema}.channels AS c (channel, mode, created_at)
        VALUES (%(channel)s, %(mode)s, %(now)s)
        ON CONFLICT (channel) DO UPDATE SET mode = COALESCE(c.mode, EXCLUDED.mode)
        RETURNING mode""",
    subscribe="""
        INSERT INTO {schema}.channel_subscriptions
            (channel, subscriber, mode, cursor_id, subscribed_at)
        SELECT %(channel)s, %(subscriber)s, %(mode)s, COALESCE(max(id), 0), %(now)s
        FROM {schema}.channel_messages WHERE channel = %(channel)s
        ON CONFLICT (channel, subscriber) DO NOTHING""",
    unsubscribe="""
        DELETE FROM {schema}.channel_subscriptions
        WHERE channel = %(channel)s AND subscriber = %(subscriber)s""",
    subscription_for_take="""
        SELECT mode, cursor_id FROM {schema}.channel_subscriptions
        WHERE channel = %(channel)s AND subscriber = %(subscriber)s
        FOR UPDATE""",
    subscribers="""
        SELECT subscriber, mode FROM {schema}.channel_subscriptions
        WHERE channel = %(channel)s ORDER BY subscriber""",
    publish=_PUBLISH.replace("{head}", _LOCKED_HEAD),
    publish_many=_PUBLISH_MANY.replace("{head}", _LOCKED_HEAD),
    next_broadcast=f"""
        SELECT {MESSAGE_COLUMNS} FROM {{schema}}.channel_messages
        WHERE channel = %(channel)s AND id > %(cursor)s AND target IS NULL
        ORDER BY id LIMIT 1""",
    advance_cursor="""
        UPDATE {schema}.channel_subscriptions SET cursor_id = %(cursor)s
        WHERE channel = %(channel)s AND subscriber = %(subscriber)s""",
    claim_competing=f"""
        WITH next AS (
            SELECT id FROM {{schema}}.channel_messages
            WHERE channel = %(channel)s AND claimed_by IS NULL AND {_RECEIVABLE}
            ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED)
        UPDATE {{schema}}.channel_messages m SET claimed_by = %(subscriber)s, claimed_at = %(now)s
        FROM next WHERE m.id = next.id
        RETURNING m.id, m.channel, m.data, m.metadata, m.target, m.published_at""",
    take=_TAKE,
    has_message=_HAS_MESSAGE,
    claim_direct=_CLAIM_DIRECT,
    read_after=f"""
        SELECT {MESSAGE_COLUMNS} FROM {{schema}}.channel_messages
        WHERE channel = %(channel)s AND id > %(after_id)s AND target IS NULL
        ORDER BY id LIMIT %(limit)s""",
    cleanup="""
        DELETE FROM {schema}.channel_messages WHERE id IN (
            SELECT m.id FROM {schema}.channel_messages m
            WHERE m.published_at < %(cutoff)s
              AND ((m.claimed_by IS NOT NULL AND m.claimed_at < %(cutoff)s)
                   OR (m.claimed_by IS NULL AND NOT EXISTS (
                        SELECT 1 FROM {schema}.channel_subscriptions s
                        WHERE s.channel = m.channel
                          AND (m.target IS NULL OR s.subscriber = m.target)
                          AND (s.mode = 'competing' OR s.cursor_id < m.id
                               OR m.target IS NOT NULL))))
            LIMIT %(batch)s
            FOR UPDATE OF m SKIP LOCKED)""",
    unlocked_publish=(_PUBLISH.replace("{head}", _FREE_HEAD),
                      _PUBLISH_MANY.replace("{head}", _FREE_HEAD)),
)
