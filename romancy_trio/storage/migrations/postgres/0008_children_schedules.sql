-- migrate:up
-- Child workflows: the parent that started an instance, what happens to it when that parent
-- ends ('cancel' or 'abandon'), and whether the parent has been told of its outcome.
ALTER TABLE workflow_instances ADD COLUMN IF NOT EXISTS parent_instance_id text;
ALTER TABLE workflow_instances ADD COLUMN IF NOT EXISTS parent_close_policy text;
ALTER TABLE workflow_instances ADD COLUMN IF NOT EXISTS parent_notified boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS workflow_instances_children
    ON workflow_instances (parent_instance_id) WHERE parent_instance_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_instances_live_children
    ON workflow_instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL AND status IN ('pending', 'running', 'waiting');
CREATE INDEX IF NOT EXISTS workflow_instances_children_to_tell
    ON workflow_instances (updated_at) WHERE NOT parent_notified;

-- Durable schedules: one row each; next_tick_at is the first tick not yet handled.
CREATE TABLE IF NOT EXISTS workflow_schedules (
    schedule_id      text PRIMARY KEY,
    workflow_name    text NOT NULL,
    input            text NOT NULL,
    cron             text,
    interval_seconds double precision,
    timezone         text NOT NULL,
    catchup          text NOT NULL,
    paused           boolean NOT NULL DEFAULT false,
    next_tick_at     double precision NOT NULL,
    last_tick_at     double precision,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_schedules_due
    ON workflow_schedules (next_tick_at) WHERE NOT paused;

-- migrate:down
DROP TABLE IF EXISTS workflow_schedules;
DROP INDEX IF EXISTS workflow_instances_children_to_tell;
DROP INDEX IF EXISTS workflow_instances_live_children;
DROP INDEX IF EXISTS workflow_instances_children;
ALTER TABLE workflow_instances DROP COLUMN IF EXISTS parent_notified;
ALTER TABLE workflow_instances DROP COLUMN IF EXISTS parent_close_policy;
ALTER TABLE workflow_instances DROP COLUMN IF EXISTS parent_instance_id;
