-- migrate:up
CREATE TABLE IF NOT EXISTS workflow_instances (
    instance_id      text PRIMARY KEY,
    workflow_name    text NOT NULL,
    status           text NOT NULL,
    input            text NOT NULL,
    result           text,
    error            text,
    run_no           integer NOT NULL DEFAULT 1,
    run_started_at   double precision NOT NULL,
    lease_owner      text,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    wake_at          double precision,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_instances_runnable
    ON workflow_instances (lease_expires_at) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS workflow_instances_due
    ON workflow_instances (wake_at) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS workflow_instances_by_status
    ON workflow_instances (status, created_at);

CREATE TABLE IF NOT EXISTS workflow_history (
    instance_id text NOT NULL,
    run_no      integer NOT NULL,
    seq         integer NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    payload     text NOT NULL,
    worker_id   text NOT NULL,
    lease_epoch bigint NOT NULL,
    created_at  double precision NOT NULL,
    compensation text,
    PRIMARY KEY (instance_id, run_no, seq),
    UNIQUE (instance_id, run_no, key)
);

CREATE TABLE IF NOT EXISTS workflow_history_archive (
    instance_id text NOT NULL,
    run_no      integer NOT NULL,
    seq         integer NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    payload     text NOT NULL,
    worker_id   text NOT NULL,
    lease_epoch bigint NOT NULL,
    created_at  double precision NOT NULL,
    compensation text,
    PRIMARY KEY (instance_id, run_no, seq)
);

CREATE TABLE IF NOT EXISTS workflow_runs (
    instance_id    text NOT NULL,
    run_no         integer NOT NULL,
    continued_from integer,
    input          text NOT NULL,
    started_at     double precision NOT NULL,
    ended_at       double precision,
    PRIMARY KEY (instance_id, run_no)
);

-- What a suspended instance waits for: an event type, a channel, or only a timer.
CREATE TABLE IF NOT EXISTS workflow_waits (
    instance_id text NOT NULL,
    wait_id     text NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    deadline    double precision,
    created_at  double precision NOT NULL,
    PRIMARY KEY (instance_id, wait_id)
);
CREATE INDEX IF NOT EXISTS workflow_waits_by_key ON workflow_waits (kind, key);

-- Every event received, once per (source, id): idempotency, audit, targeted delivery.
CREATE TABLE IF NOT EXISTS workflow_events (
    source      text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    body        text NOT NULL,
    target      text,
    received_at double precision NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX IF NOT EXISTS workflow_events_by_time ON workflow_events (received_at);

-- Targeted events not yet consumed by their instance (a mailbox).
CREATE TABLE IF NOT EXISTS workflow_inbox (
    instance_id text NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (instance_id, source, event_id)
);
CREATE INDEX IF NOT EXISTS workflow_inbox_by_type ON workflow_inbox (instance_id, type, received_at);

-- migrate:down
DROP TABLE IF EXISTS workflow_inbox;
DROP TABLE IF EXISTS workflow_events;
DROP TABLE IF EXISTS workflow_waits;
DROP TABLE IF EXISTS workflow_runs;
DROP TABLE IF EXISTS workflow_history_archive;
DROP TABLE IF EXISTS workflow_history;
DROP TABLE IF EXISTS workflow_instances;
