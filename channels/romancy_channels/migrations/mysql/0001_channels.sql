-- migrate:up
-- MySQL >= 8.0 / MariaDB >= 10.6, InnoDB, utf8mb4 with a binary collation (names compare
-- exactly). One row per channel ever published to or subscribed to. mode is NULL until the
-- first subscription locks it. Publishers row-lock it (ids in commit order per channel).
CREATE TABLE IF NOT EXISTS channels (
    channel           VARCHAR(255) NOT NULL PRIMARY KEY,
    mode              VARCHAR(16) CHECK (mode IN ('broadcast', 'competing')),
    created_at        DOUBLE NOT NULL,
    last_published_at DOUBLE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- cursor_id: broadcast, the id of the last message consumed (or the channel's last id when
-- subscribing). Unused in competing mode. mode repeats the channel's locked mode.
CREATE TABLE IF NOT EXISTS channel_subscriptions (
    channel       VARCHAR(255) NOT NULL,
    subscriber    VARCHAR(255) NOT NULL,
    mode          VARCHAR(16) NOT NULL CHECK (mode IN ('broadcast', 'competing')),
    cursor_id     BIGINT NOT NULL DEFAULT 0,
    subscribed_at DOUBLE NOT NULL,
    PRIMARY KEY (channel, subscriber),
    INDEX channel_subscriptions_by_subscriber (subscriber)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- data and metadata are JSON text exactly as published (LONGTEXT checked as JSON, as MariaDB's
-- JSON alias is; MySQL's JSON type would rewrite the text).
CREATE TABLE IF NOT EXISTS channel_messages (
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    channel      VARCHAR(255) NOT NULL,
    data         LONGTEXT NOT NULL CHECK (JSON_VALID(data)),
    metadata     LONGTEXT NOT NULL DEFAULT ('{}') CHECK (JSON_VALID(metadata)),
    target       VARCHAR(255),
    published_at DOUBLE NOT NULL,
    claimed_by   VARCHAR(255),
    claimed_at   DOUBLE,
    INDEX channel_messages_by_channel (channel, id),
    INDEX channel_messages_unclaimed (channel, claimed_by, id),
    INDEX channel_messages_by_age (published_at),
    INDEX channel_messages_by_target (target)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- migrate:down
DROP TABLE IF EXISTS channel_messages;
DROP TABLE IF EXISTS channel_subscriptions;
DROP TABLE IF EXISTS channels;
