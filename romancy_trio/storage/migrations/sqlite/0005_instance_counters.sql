-- migrate:up
-- Numbers that activities count (ActivityContext.count), summed per instance over all its
-- runs; written in the transaction that records the activity; read by App.status.
CREATE TABLE instance_counters (
    instance_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       REAL NOT NULL,
    PRIMARY KEY (instance_id, name)
);

-- migrate:down
DROP TABLE instance_counters;
