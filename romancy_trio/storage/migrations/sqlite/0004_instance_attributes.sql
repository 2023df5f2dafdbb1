-- migrate:up
-- Instance attributes: string pairs given at start (by the caller, or hooks, e.g. the W3C
-- traceparent that ties every run of the instance to one trace), as JSON; NULL: none.
ALTER TABLE workflow_instances ADD COLUMN attributes TEXT;

-- migrate:down
ALTER TABLE workflow_instances DROP COLUMN attributes;
