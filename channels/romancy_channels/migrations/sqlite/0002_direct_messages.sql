-- migrate:up
-- Direct messages (a target) are taken by claim, whether the target subscribed or not:
-- its next one is found by this index without scanning the channel's broadcast messages.
CREATE INDEX IF NOT EXISTS channel_messages_direct
    ON channel_messages (channel, target, id) WHERE claimed_by IS NULL AND target IS NOT NULL;

-- Before, a broadcast subscriber's direct messages were consumed by its cursor and left
-- unclaimed: mark the ones its cursor has passed as taken, so none is received twice.
-- (Applied once, by version: a later run would also mark direct messages sent before a
-- subscription.)
UPDATE channel_messages SET claimed_by = target, claimed_at = published_at
WHERE target IS NOT NULL AND claimed_by IS NULL AND EXISTS (
    SELECT 1 FROM channel_subscriptions s
    WHERE s.channel = channel_messages.channel AND s.subscriber = channel_messages.target
      AND s.mode = 'broadcast' AND s.cursor_id >= channel_messages.id);

-- migrate:down
DROP INDEX IF EXISTS channel_messages_direct;
