"""Every statement of the channel engine on MySQL 8 / MariaDB (PyMySQL, ``%(name)s`` params).

As on PostgreSQL, ``publish`` row-locks the channel's row in ``channels`` (an upsert) until the
publishing transaction ends, and only then draws the message id: within one channel, ids are
handed out in commit order, so a broadcast cursor never skips a message. Competing channels
publish without that lock (``unlocked_publish``).

MySQL has no ``UPDATE ... RETURNING``: a claim is a short script sent in one round trip (the
driver's sessions allow several statements): lock the oldest unclaimed message with
``FOR UPDATE SKIP LOCKED`` into ``@id``, mark it claimed, return it. Sessions run at READ
COMMITTED, so these locking reads take no gap locks (REPEATABLE READ's would block
concurrent publishes into the scanned range). ``LIMIT`` takes no expressions, so
``has_message`` compares a bounded count with ``{woken}`` instead of an ``OFFSET``.

Schema convention: ``{schema}.table``, filled in with the backquoted database (`qualify`).
"""

from __future__ import annotations

from ._protocol import MESSAGE_COLUMNS, ChannelQueries

_RECEIVABLE = "(target IS NULL OR target = %(subscriber)s)"
_COUNT_CAP = 100_000
"""``has_message`` counts at most this many untargeted messages of a competing channel."""

_LOCK_CHANNEL = """
        INSERT INTO {schema}.channels (channel, mode, created_at, last_published_at)
        VALUES (%(channel)s, NULL, %(now)s, %(now)s)
        ON DUPLICATE KEY UPDATE last_published_at = VALUES(last_published_at);"""
_INSERT = """
        INSERT INTO {schema}.channel_messages (channel, data, metadata, target, published_at)
        VALUES (%(channel)s, %(data)s, %(metadata)s, %(target)s, %(now)s);
        SELECT LAST_INSERT_ID()"""


def _claim(index: str, where: str) -> str:
    # The index named keeps the scan in id order, so it stops at the first row it can lock:
    # MySQL locks every row a locking read examines, and a sort would make it read (and lock)
    # every candidate, starving the other takers.
    return f"""
        SET @id = NULL;
        SELECT id INTO @id FROM {{schema}}.channel_messages FORCE INDEX ({index})
        WHERE {where}
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED;
        UPDATE {{schema}}.channel_messages
        SET claimed_by = %(subscriber)s, claimed_at = %(now)s
        WHERE id = @id;
        SELECT {MESSAGE_COLUMNS} FROM {{schema}}.channel_messages WHERE id = @id"""


_DIRECT_WAITING = """EXISTS (
                SELECT 1 FROM {schema}.channel_messages m
                WHERE m.channel = %(channel)s AND m.target = %(subscriber)s
                  AND m.claimed_by IS NULL)"""

QUERIES = ChannelQueries(
    lock_mode="""
        INSERT INTO {schema}.channels (channel, mode, created_at)
        VALUES (%(channel)s, %(mode)s, %(now)s)
        ON DUPLICATE KEY UPDATE mode = COALESCE(mode, VALUES(mode));
        SELECT mode FROM {schema}.channels WHERE channel = %(channel)s""",
    subscribe="""
        INSERT INTO {schema}.channel_subscriptions (channel, subscriber, mode, cursor_id,
            subscribed_at)
        SELECT %(channel)s, %(subscriber)s, %(mode)s, COALESCE(max(id), 0), %(now)s
        FROM {schema}.channel_messages WHERE channel = %(channel)s
        ON DUPLICATE KEY UPDATE channel = channel_subscriptions.channel""",
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
    publish=_LOCK_CHANNEL + _INSERT,
    publish_many=None,
    unlocked_publish=(_INSERT, None),
    next_broadcast=f"""
        SELECT {MESSAGE_COLUMNS} FROM {{schema}}.channel_messages
        WHERE channel = %(channel)s AND id > %(cursor)s AND target IS NULL
        ORDER BY id LIMIT 1""",
    advance_cursor="""
        UPDATE {schema}.channel_subscriptions SET cursor_id = %(cursor)s
        WHERE channel = %(channel)s AND subscriber = %(subscriber)s""",
    claim_competing=_claim(
        "channel_messages_unclaimed",
        f"channel = %(channel)s AND claimed_by IS NULL AND {_RECEIVABLE}"),
    take=None,  # the engine runs the steps
    has_message=f"""
        SELECT CASE s.mode
            WHEN 'competing' THEN {_DIRECT_WAITING}
                OR (SELECT count(*) FROM (
                        SELECT 1 FROM {{schema}}.channel_messages m
                        WHERE m.channel = %(channel)s AND m.claimed_by IS NULL
                          AND m.target IS NULL
                        LIMIT {_COUNT_CAP}) c) > ({{woken}})
            WHEN 'broadcast' THEN {_DIRECT_WAITING}
                OR EXISTS (
                    SELECT 1 FROM {{schema}}.channel_messages m
                    WHERE m.channel = s.channel AND m.id > s.cursor_id AND m.target IS NULL)
            ELSE {_DIRECT_WAITING} END
        FROM (SELECT 1) AS one
        LEFT JOIN {{schema}}.channel_subscriptions s
            ON s.channel = %(channel)s AND s.subscriber = %(subscriber)s""",
    claim_direct=_claim(
        "channel_messages_direct",
        "channel = %(channel)s AND target = %(subscriber)s AND claimed_by IS NULL "
        "AND id < %(before)s"),
    read_after=f"""
        SELECT {MESSAGE_COLUMNS} FROM {{schema}}.channel_messages
        WHERE channel = %(channel)s AND id > %(after_id)s AND target IS NULL
        ORDER BY id LIMIT %(limit)s""",
    cleanup="""
        DELETE x FROM {schema}.channel_messages x
        JOIN (SELECT id FROM (
            SELECT m.id FROM {schema}.channel_messages m
            WHERE m.published_at < %(cutoff)s
              AND ((m.claimed_by IS NOT NULL AND m.claimed_at < %(cutoff)s)
                   OR (m.claimed_by IS NULL AND NOT EXISTS (
                        SELECT 1 FROM {schema}.channel_subscriptions s
                        WHERE s.channel = m.channel
                          AND (m.target IS NULL OR s.subscriber = m.target)
                          AND (s.mode = 'competing' OR s.cursor_id < m.id
                               OR m.target IS NOT NULL))))
            LIMIT %(batch)s) picked) d ON x.id = d.id""",
)
