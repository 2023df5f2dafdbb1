-- migrate:up
-- Numbers that activities count (ActivityContext.count), summed per instance over all its
-- runs; written in the transaction that records the activity; read by App.status.
CREATE TABLE instance_counters (
    instance_id VARCHAR(255) NOT NULL,
    name        VARCHAR(200) NOT NULL,
    value       DOUBLE NOT NULL,
    PRIMARY KEY (instance_id, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- migrate:down
DROP TABLE instance_counters;
