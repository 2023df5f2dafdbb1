-- migrate:up
-- Child workflows: the parent that started an instance, what happens to it when that parent
-- ends ('cancel' or 'abandon'), and whether the parent has been told of its outcome.
ALTER TABLE workflow_instances ADD COLUMN parent_instance_id TEXT;
ALTER TABLE workflow_instances ADD COLUMN parent_close_policy TEXT;
ALTER TABLE workflow_instances ADD COLUMN parent_notified INTEGER NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS workflow_instances_children
    ON workflow_instances (parent_instance_id) WHERE parent_instance_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_instances_live_children
    ON workflow_instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL AND status IN ('pending', 'running', 'waiting');
CREATE INDEX IF NOT EXISTS workflow_instances_children_to_tell
    ON workflow_instances (updated_at) WHERE parent_notified = 0;

-- Durable schedules: one row each; next_tick_at is the first tick not yet handled.
CREATE TABLE IF NOT EXISTS workflow_schedules (
    schedule_id      TEXT PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    input            TEXT NOT NULL,
    cron             TEXT,
    interval_seconds REAL,
    timezone         TEXT NOT NULL,
    catchup          TEXT NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0,
    next_tick_at     REAL NOT NULL,
    last_tick_at     REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_schedules_due
    ON workflow_schedules (next_tick_at) WHERE paused = 0;

-- migrate:down
DROP TABLE IF EXISTS workflow_schedules;
DROP INDEX IF EXISTS workflow_instances_children_to_tell;
DROP INDEX IF EXISTS workflow_instances_live_children;
DROP INDEX IF EXISTS workflow_instances_children;
ALTER TABLE workflow_instances DROP COLUMN parent_notified;
ALTER TABLE workflow_instances DROP COLUMN parent_close_policy;
ALTER TABLE workflow_instances DROP COLUMN parent_instance_id;
