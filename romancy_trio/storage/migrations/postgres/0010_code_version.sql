-- migrate:up
-- The code version an instance started on (AppConfig.code_version): a worker claims only
-- instances of its own or a declared-compatible version. NULL (instances from before this
-- column): any worker.
ALTER TABLE workflow_instances ADD COLUMN IF NOT EXISTS code_version text;

-- migrate:down
ALTER TABLE workflow_instances DROP COLUMN IF EXISTS code_version;
