-- migrate:up
-- Maintenance finds finished instances and ended runs older than the retention by these.
CREATE INDEX IF NOT EXISTS workflow_instances_finished
    ON workflow_instances (updated_at) WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX IF NOT EXISTS workflow_runs_ended
    ON workflow_runs (ended_at) WHERE ended_at IS NOT NULL;

-- migrate:down
DROP INDEX IF EXISTS workflow_runs_ended;
DROP INDEX IF EXISTS workflow_instances_finished;
