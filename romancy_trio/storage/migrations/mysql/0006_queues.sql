-- migrate:up
-- Queues with limits: a queue's limits, and one entry per instance started on a queue (the
-- instance is 'queued' until admitted; admitted_at/released_at bound its time in a slot).
-- No partial indexes on MySQL: the composite indexes below serve the waiting entries best
-- first, the entries holding a slot by partition, the admissions in a rate window and the
-- live dedup ids.
CREATE TABLE workflow_queues (
    queue_name            VARCHAR(255) NOT NULL PRIMARY KEY,
    concurrency           INT,
    partition_concurrency INT,
    rate_limit            INT,
    rate_period           DOUBLE,
    updated_at            DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE workflow_queue_entries (
    instance_id   VARCHAR(255) NOT NULL PRIMARY KEY,
    queue_name    VARCHAR(255) NOT NULL,
    partition_key VARCHAR(255) NOT NULL DEFAULT '',
    priority      INT NOT NULL DEFAULT 0,
    dedup_id      VARCHAR(255),
    enqueued_at   DOUBLE NOT NULL,
    admitted_at   DOUBLE,
    released_at   DOUBLE,
    INDEX workflow_queue_entries_waiting (queue_name, admitted_at, priority DESC, enqueued_at),
    INDEX workflow_queue_entries_running (queue_name, released_at, partition_key),
    INDEX workflow_queue_entries_dedup (queue_name, dedup_id, released_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- migrate:down
DROP TABLE workflow_queue_entries;
DROP TABLE workflow_queues;
