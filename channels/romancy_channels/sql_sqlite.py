"""Every statement of the channel engine on SQLite (sqlite3, named ``:name`` params).

SQLite has one writer at a time, so ids are handed out in commit order without any locking of
our own, and a claim needs no SKIP LOCKED. ``AUTOINCREMENT`` ids are never reused after a
delete, so cursors stay valid after cleanup.
"""

from __future__ import annotations

from ._protocol import MESSAGE_COLUMNS, ChannelQueries

_RECEIVABLE = "(target IS NULL OR target = :subscriber)"

# -- h-sem: direct messages (send_to) are taken by claim, subscribed or not ---------------
_CLAIM_DIRECT = f"""
        UPDATE channel_messages SET claimed_by = :subscriber, claimed_at = :now
        WHERE id = (
            SELECT id FROM channel_messages
            WHERE channel = :channel AND target = :subscriber AND claimed_by IS NULL
              AND id < :before
            ORDER BY id LIMIT 1)
        RETURNING {MESSAGE_COLUMNS}"""
_DIRECT_WAITING = """EXISTS (
                SELECT 1 FROM channel_messages m
                WHERE m.channel = :channel AND m.target = :subscriber
                  AND m.claimed_by IS NULL)"""
_HAS_MESSAGE = f"""
        SELECT CASE s.mode
            WHEN 'competing' THEN {_DIRECT_WAITING}
                OR EXISTS (
                    SELECT 1 FROM channel_messages m
                    WHERE m.channel = s.channel AND m.claimed_by IS NULL AND m.target IS NULL
                    ORDER BY m.id LIMIT 1 OFFSET ({{woken}}))
            WHEN 'broadcast' THEN {_DIRECT_WAITING}
                OR EXISTS (
                    SELECT 1 FROM channel_messages m
                    WHERE m.channel = s.channel AND m.id > s.cursor_id AND m.target IS NULL)
            ELSE {_DIRECT_WAITING} END
        FROM (SELECT 1) AS one
        LEFT JOIN channel_subscriptions s
            ON s.channel = :channel AND s.subscriber = :subscriber"""
# -- end h-sem ------------------------------------------------------------------------------

QUERIES = ChannelQueries(
    lock_mode="""
        INSERT INTO channels AS c (channel, mode, created_at)
        VALUES (:channel, :mode, :now)
        ON CONFLICT (channel) DO UPDATE SET mode = COALESCE(c.mode, EXCLUDED.mode)
        RETURNING mode""",
    subscribe="""
        INSERT INTO channel_subscriptions (channel, subscriber, mode, cursor_id, subscribed_at)
        SELECT :channel, :subscriber, :mode, COALESCE(max(id), 0), :now
        FROM channel_messages WHERE channel = :channel
        ON CONFLICT (channel, subscriber) DO NOTHING""",
    unsubscribe="""
        DELETE FROM channel_subscriptions
        WHERE channel = :channel AND subscriber = :subscriber""",
    subscription_for_take="""
        SELECT mode, cursor_id FROM channel_subscriptions
        WHERE channel = :channel AND subscriber = :subscriber""",
    subscribers="""
        SELECT subscriber, mode FROM channel_subscriptions
        WHERE channel = :channel ORDER BY subscriber""",
    publish="""
        INSERT INTO channel_messages (channel, data, metadata, target, published_at)
        VALUES (:channel, :data, :metadata, :target, :now)
        RETURNING id""",
    publish_many=None,  # one INSERT per message (cheap in-process)
    next_broadcast=f"""
        SELECT {MESSAGE_COLUMNS} FROM channel_messages
        WHERE channel = :channel AND id > :cursor AND target IS NULL
        ORDER BY id LIMIT 1""",
    advance_cursor="""
        UPDATE channel_subscriptions SET cursor_id = :cursor
        WHERE channel = :channel AND subscriber = :subscriber""",
    claim_competing=f"""
        UPDATE channel_messages SET claimed_by = :subscriber, claimed_at = :now
        WHERE id = (
            SELECT id FROM channel_messages
            WHERE channel = :channel AND claimed_by IS NULL AND {_RECEIVABLE}
            ORDER BY id LIMIT 1)
        RETURNING {MESSAGE_COLUMNS}""",
    take=None,  # no data-modifying CTEs: the engine runs the steps
    has_message=_HAS_MESSAGE,
    claim_direct=_CLAIM_DIRECT,
    read_after=f"""
        SELECT {MESSAGE_COLUMNS} FROM channel_messages
        WHERE channel = :channel AND id > :after_id AND target IS NULL
        ORDER BY id LIMIT :limit""",
    cleanup="""
        DELETE FROM channel_messages WHERE id IN (
            SELECT m.id FROM channel_messages m
            WHERE m.published_at < :cutoff
              AND ((m.claimed_by IS NOT NULL AND m.claimed_at < :cutoff)
                   OR (m.claimed_by IS NULL AND NOT EXISTS (
                        SELECT 1 FROM channel_subscriptions s
                        WHERE s.channel = m.channel
                          AND (m.target IS NULL OR s.subscriber = m.target)
                          AND (s.mode = 'competing' OR s.cursor_id < m.id
                               OR m.target IS NOT NULL))))
            LIMIT :batch)""",
)
