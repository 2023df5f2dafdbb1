-- migrate:up
CREATE TABLE IF NOT EXISTS outbox_events (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text NOT NULL,
    source          text NOT NULL,
    type            text NOT NULL,
    subject         text,
    extensions      text NOT NULL DEFAULT '{}',
    data            text,
    event_time      double precision NOT NULL,
    instance_id     text,
    activity_id     text,
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    claimed_by      text,
    claim_epoch     bigint NOT NULL DEFAULT 0,
    claimed_until   double precision,
    last_error      text,
    created_at      double precision NOT NULL,
    delivered_at    double precision,
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
