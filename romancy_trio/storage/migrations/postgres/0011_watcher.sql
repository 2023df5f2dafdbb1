-- migrate:up
-- Who waits for the instance's end (issue #22): the worker id of the app whose `run` or
-- `result` waits, '*' for several. The finish sends the done notification only when a waiter
-- other than the finishing worker is marked; NULL (no one waits, or instances from before
-- this column that no one has marked since): none is sent.
ALTER TABLE workflow_instances ADD COLUMN IF NOT EXISTS watcher text;

-- migrate:down
ALTER TABLE workflow_instances DROP COLUMN IF EXISTS watcher;
