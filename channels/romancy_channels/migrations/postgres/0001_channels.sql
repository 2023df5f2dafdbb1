-- migrate:up
-- One row per channel ever published to or subscribed to. mode is NULL until the first
-- subscription locks it. Publishers row-lock it (ids in commit order per channel).
CREATE TABLE IF NOT EXISTS channels (
    channel           text PRIMARY KEY,
    mode              text CHECK (mode IN ('broadcast', 'competing')),
    created_at        double precision NOT NULL,
    last_published_at double precision
);

-- cursor_id: broadcast, the id of the last message consumed (or the channel's last id when
-- subscribing). Unused in competing mode. mode repeats the channel's locked mode.
CREATE TABLE IF NOT EXISTS channel_subscriptions (
    channel       text NOT NULL,
    subscriber    text NOT NULL,
    mode          text NOT NULL CHECK (mode IN ('broadcast', 'competing')),
    cursor_id     bigint NOT NULL DEFAULT 0,
    subscribed_at double precision NOT NULL,
    PRIMARY KEY (channel, subscriber)
);

-- data and metadata are JSON text exactly as published (text, not jsonb: the bytes round-trip).
CREATE TABLE IF NOT EXISTS channel_messages (
    id           bigserial PRIMARY KEY,
    channel      text NOT NULL,
    data         text NOT NULL,
    metadata     text NOT NULL DEFAULT '{}',
    target       text,
    published_at double precision NOT NULL,
    claimed_by   text,
    claimed_at   double precision
);
CREATE INDEX IF NOT EXISTS channel_messages_by_channel ON channel_messages (channel, id);
CREATE INDEX IF NOT EXISTS channel_messages_unclaimed
    ON channel_messages (channel, id) WHERE claimed_by IS NULL;
CREATE INDEX IF NOT EXISTS channel_messages_by_age ON channel_messages (published_at);

-- migrate:down
DROP TABLE IF EXISTS channel_messages;
DROP TABLE IF EXISTS channel_subscriptions;
DROP TABLE IF EXISTS channels;
