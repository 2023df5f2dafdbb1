-- migrate:up
-- Child workflows: the parent that started an instance, what happens to it when that parent
-- ends ('cancel' or 'abandon'), and whether the parent has been told of its outcome.
-- MySQL has no partial indexes: composite ones serve the same queries (children of a parent
-- in start order; live children to cancel with their ended parent (ordinary instances have
-- no close policy); ended children not yet told, oldest first; due unpaused schedules).
ALTER TABLE workflow_instances
    ADD COLUMN parent_instance_id VARCHAR(255),
    ADD COLUMN parent_close_policy VARCHAR(16),
    ADD COLUMN parent_notified BOOLEAN NOT NULL DEFAULT TRUE,
    ADD INDEX workflow_instances_children (parent_instance_id, created_at),
    ADD INDEX workflow_instances_live_children (parent_close_policy, status, parent_instance_id),
    ADD INDEX workflow_instances_children_to_tell (parent_notified, updated_at);

-- Durable schedules: one row each; next_tick_at is the first tick not yet handled.
CREATE TABLE workflow_schedules (
    schedule_id      VARCHAR(255) NOT NULL PRIMARY KEY,
    workflow_name    VARCHAR(255) NOT NULL,
    input            LONGTEXT NOT NULL CHECK (JSON_VALID(input)),
    cron             VARCHAR(255),
    interval_seconds DOUBLE,
    timezone         VARCHAR(255) NOT NULL,
    catchup          VARCHAR(16) NOT NULL,
    paused           BOOLEAN NOT NULL DEFAULT FALSE,
    next_tick_at     DOUBLE NOT NULL,
    last_tick_at     DOUBLE,
    created_at       DOUBLE NOT NULL,
    updated_at       DOUBLE NOT NULL,
    INDEX workflow_schedules_due (paused, next_tick_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- migrate:down
DROP TABLE workflow_schedules;
ALTER TABLE workflow_instances
    DROP INDEX workflow_instances_children_to_tell,
    DROP INDEX workflow_instances_live_children,
    DROP INDEX workflow_instances_children,
    DROP COLUMN parent_notified,
    DROP COLUMN parent_close_policy,
    DROP COLUMN parent_instance_id;
