-- migrate:up
-- Queues with limits: a queue's limits, and one entry per instance started on a queue (the
-- instance is 'queued' until admitted; admitted_at/released_at bound its time in a slot).
CREATE TABLE IF NOT EXISTS workflow_queues (
    queue_name            text PRIMARY KEY,
    concurrency           integer,
    partition_concurrency integer,
    rate_limit            integer,
    rate_period           double precision,
    updated_at            double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS workflow_queue_entries (
    instance_id   text PRIMARY KEY,
    queue_name    text NOT NULL,
    partition_key text NOT NULL DEFAULT '',
    priority      integer NOT NULL DEFAULT 0,
    dedup_id      text,
    enqueued_at   double precision NOT NULL,
    admitted_at   double precision,
    released_at   double precision
);
CREATE INDEX IF NOT EXISTS workflow_queue_entries_waiting
    ON workflow_queue_entries (queue_name, priority DESC, enqueued_at) WHERE admitted_at IS NULL;
CREATE INDEX IF NOT EXISTS workflow_queue_entries_running
    ON workflow_queue_entries (queue_name, partition_key)
    WHERE admitted_at IS NOT NULL AND released_at IS NULL;
CREATE INDEX IF NOT EXISTS workflow_queue_entries_admitted
    ON workflow_queue_entries (queue_name, admitted_at) WHERE admitted_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_queue_entries_dedup
    ON workflow_queue_entries (queue_name, dedup_id)
    WHERE dedup_id IS NOT NULL AND released_at IS NULL;

-- migrate:down
DROP TABLE IF EXISTS workflow_queue_entries;
DROP TABLE IF EXISTS workflow_queues;
