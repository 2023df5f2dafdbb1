-- migrate:up
-- Direct messages (a target) are taken by claim, whether the target subscribed or not:
-- its next one is found by this index without scanning the channel's broadcast messages.
CREATE INDEX channel_messages_direct ON channel_messages (channel, target, claimed_by, id);

-- migrate:down
DROP INDEX channel_messages_direct ON channel_messages;
