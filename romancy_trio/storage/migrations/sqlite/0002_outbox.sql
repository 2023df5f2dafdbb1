-- migrate:up
CREATE TABLE IF NOT EXISTS outbox_events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    source          TEXT NOT NULL,
    type            TEXT NOT NULL,
    subject         TEXT,
    extensions      TEXT NOT NULL DEFAULT '{}',
    data            TEXT,
    event_time      REAL NOT NULL,
    instance_id     TEXT,
    activity_id     TEXT,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    claimed_by      TEXT,
    claim_epoch     INTEGER NOT NULL DEFAULT 0,
    claimed_until   REAL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS outbox_events_due
    ON outbox_events (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_events_claimed
    ON outbox_events (claimed_until) WHERE status = 'pending' AND claimed_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_events_delivered
    ON outbox_events (delivered_at) WHERE status = 'delivered';

-- migrate:down
DROP TABLE IF EXISTS outbox_events;
