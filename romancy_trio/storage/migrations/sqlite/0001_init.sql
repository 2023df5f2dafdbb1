-- migrate:up
CREATE TABLE IF NOT EXISTS workflow_instances (
    instance_id      TEXT PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    result           text,
    error            text,
    run_no           integer NOT NULL DEFAULT 1,
    run_started_at   REAL NOT NULL,
    lease_owner      text,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_instances_runnable
    ON workflow_instances (lease_expires_at) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS workflow_instances_by_status
    ON workflow_instances (status, created_at);

CREATE TABLE IF NOT EXISTS workflow_history (
    instance_id TEXT NOT NULL,
    run_no      integer NOT NULL,
    seq         integer NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    worker_id   TEXT NOT NULL,
    lease_epoch INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (instance_id, run_no, seq),
    UNIQUE (instance_id, run_no, key)
);

CREATE TABLE IF NOT EXISTS workflow_history_archive (
    instance_id TEXT NOT NULL,
    run_no      integer NOT NULL,
    seq         integer NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    worker_id   TEXT NOT NULL,
    lease_epoch INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (instance_id, run_no, seq)
);

CREATE TABLE IF NOT EXISTS workflow_runs (
    instance_id    TEXT NOT NULL,
    run_no         integer NOT NULL,
    continued_from integer,
    input          TEXT NOT NULL,
    started_at     REAL NOT NULL,
    ended_at       REAL,
    PRIMARY KEY (instance_id, run_no)
);

-- migrate:down
DROP TABLE IF EXISTS workflow_runs;
DROP TABLE IF EXISTS workflow_history_archive;
DROP TABLE IF EXISTS workflow_history;
DROP TABLE IF EXISTS workflow_instances;
