-- migrate:up
-- Numbers that activities count (ActivityContext.count), summed per instance over all its
-- runs; written in the transaction that records the activity; read by App.status.
CREATE TABLE IF NOT EXISTS instance_counters (
    instance_id text NOT NULL,
    name        text NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (instance_id, name)
);

-- migrate:down
DROP TABLE IF EXISTS instance_counters;
