-- migrate:up
-- One row per channel ever published to or subscribed to. mode is NULL until the first
-- subscription locks it. (SQLite: one writer, so ids are in commit order.)
CREATE TABLE IF NOT EXISTS channels (
    channel           TEXT PRIMARY KEY,
    mode              TEXT CHECK (mode IN ('broadcast', 'competing')),
    created_at        REAL NOT NULL,
    last_published_at REAL
);

-- cursor_id: broadcast, the id of the last message consumed (or the channel's last id when
-- subscribing). Unused in competing mode. mode repeats the channel's locked mode.
CREATE TABLE IF NOT EXISTS channel_subscriptions (
    channel       TEXT NOT NULL,
    subscriber    TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('broadcast', 'competing')),
    cursor_id     INTEGER NOT NULL DEFAULT 0,
    subscribed_at REAL NOT NULL,
    PRIMARY KEY (channel, subscriber)
);

-- AUTOINCREMENT: ids are never reused after a delete, so cursors stay valid.
-- data and metadata are JSON text exactly as published (the text round-trips unchanged).
CREATE TABLE IF NOT EXISTS channel_messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL,
    data         TEXT NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    target       TEXT,
    published_at REAL NOT NULL,
    claimed_by   TEXT,
    claimed_at   REAL
);
CREATE INDEX IF NOT EXISTS channel_messages_by_channel ON channel_messages (channel, id);
CREATE INDEX IF NOT EXISTS channel_messages_unclaimed
    ON channel_messages (channel, id) WHERE claimed_by IS NULL;
CREATE INDEX IF NOT EXISTS channel_messages_by_age ON channel_messages (published_at);

-- migrate:down
DROP TABLE IF EXISTS channel_messages;
DROP TABLE IF EXISTS channel_subscriptions;
DROP TABLE IF EXISTS channels;
