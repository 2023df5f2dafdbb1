-- migrate:up
-- MySQL >= 8.0 / MariaDB >= 10.6, InnoDB, utf8mb4 with a binary collation (ids compare exactly,
-- as on PostgreSQL and SQLite). Ids and keys are VARCHAR(255) (they are indexed); documents are
-- LONGTEXT holding JSON text exactly as written (MySQL's JSON type would rewrite it), checked
-- with JSON_VALID as MariaDB's JSON alias does. Instants are epoch seconds in DOUBLE
-- (microseconds), leases DATETIME(6) on the server's clock (sessions run in UTC).
CREATE TABLE IF NOT EXISTS workflow_instances (
    instance_id      VARCHAR(255) NOT NULL PRIMARY KEY,
    workflow_name    VARCHAR(255) NOT NULL,
    status           VARCHAR(16) NOT NULL,
    input            LONGTEXT NOT NULL CHECK (JSON_VALID(input)),
    result           LONGTEXT CHECK (result IS NULL OR JSON_VALID(result)),
    error            LONGTEXT CHECK (error IS NULL OR JSON_VALID(error)),
    run_no           INT NOT NULL DEFAULT 1,
    run_started_at   DOUBLE NOT NULL,
    lease_owner      VARCHAR(255),
    lease_epoch      BIGINT NOT NULL DEFAULT 0,
    lease_expires_at DATETIME(6),
    wake_at          DOUBLE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       DOUBLE NOT NULL,
    updated_at       DOUBLE NOT NULL,
    INDEX workflow_instances_runnable (status, lease_expires_at),
    INDEX workflow_instances_due (status, wake_at),
    INDEX workflow_instances_by_status (status, created_at),
    INDEX workflow_instances_by_owner (lease_owner, status),
    INDEX workflow_instances_finished (status, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_history (
    instance_id  VARCHAR(255) NOT NULL,
    run_no       INT NOT NULL,
    seq          INT NOT NULL,
    kind         VARCHAR(64) NOT NULL,
    `key`        VARCHAR(255) NOT NULL,
    payload      LONGTEXT NOT NULL CHECK (JSON_VALID(payload)),
    worker_id    VARCHAR(255) NOT NULL,
    lease_epoch  BIGINT NOT NULL,
    created_at   DOUBLE NOT NULL,
    compensation LONGTEXT,
    PRIMARY KEY (instance_id, run_no, seq),
    UNIQUE KEY workflow_history_key (instance_id, run_no, `key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_history_archive (
    instance_id  VARCHAR(255) NOT NULL,
    run_no       INT NOT NULL,
    seq          INT NOT NULL,
    kind         VARCHAR(64) NOT NULL,
    `key`        VARCHAR(255) NOT NULL,
    payload      LONGTEXT NOT NULL,
    worker_id    VARCHAR(255) NOT NULL,
    lease_epoch  BIGINT NOT NULL,
    created_at   DOUBLE NOT NULL,
    compensation LONGTEXT,
    PRIMARY KEY (instance_id, run_no, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_runs (
    instance_id    VARCHAR(255) NOT NULL,
    run_no         INT NOT NULL,
    continued_from INT,
    input          LONGTEXT NOT NULL,
    started_at     DOUBLE NOT NULL,
    ended_at       DOUBLE,
    PRIMARY KEY (instance_id, run_no),
    INDEX workflow_runs_ended (ended_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_waits (
    instance_id VARCHAR(255) NOT NULL,
    wait_id     VARCHAR(255) NOT NULL,
    kind        VARCHAR(16) NOT NULL,
    `key`       VARCHAR(255) NOT NULL,
    deadline    DOUBLE,
    created_at  DOUBLE NOT NULL,
    PRIMARY KEY (instance_id, wait_id),
    INDEX workflow_waits_by_key (kind, `key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_events (
    source      VARCHAR(255) NOT NULL,
    event_id    VARCHAR(255) NOT NULL,
    type        VARCHAR(255) NOT NULL,
    body        LONGTEXT NOT NULL CHECK (JSON_VALID(body)),
    target      VARCHAR(255),
    received_at DOUBLE NOT NULL,
    PRIMARY KEY (source, event_id),
    INDEX workflow_events_by_time (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS workflow_inbox (
    instance_id VARCHAR(255) NOT NULL,
    source      VARCHAR(255) NOT NULL,
    event_id    VARCHAR(255) NOT NULL,
    type        VARCHAR(255) NOT NULL,
    received_at DOUBLE NOT NULL,
    PRIMARY KEY (instance_id, source, event_id),
    INDEX workflow_inbox_by_type (instance_id, type, received_at),
    INDEX workflow_inbox_by_time (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Cross-process wake-ups (MySQL has no LISTEN/NOTIFY): a write that would NOTIFY on PostgreSQL
-- appends (topic, payload) here in its own transaction; every worker reads what follows the
-- last id it saw with one indexed query per poll (see romancy_trio.storage._mysql_signals);
-- origin: the writing process (which skips its own rows: it woke its waiters itself).
CREATE TABLE IF NOT EXISTS romancy_signals (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    topic      VARCHAR(255) NOT NULL,
    payload    VARCHAR(8000) NOT NULL,
    origin     VARCHAR(64),
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX romancy_signals_by_time (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The claim: lease up to p_limit runnable instances that nobody else has locked to p_owner,
-- and return them with their previous owner. MySQL locks every row a locking read examines,
-- and the runnable conditions cannot be read in created_at order from one index (a sort would
-- read, and lock, every runnable row). So the oldest candidates are read without locks first,
-- then each is locked by primary key, its conditions checked again, SKIP LOCKED (taken by a
-- concurrent claim: skipped). A cursor, because MySQL can neither UPDATE ... RETURNING nor
-- skip locked rows in an UPDATE. Runs in the caller's transaction (sessions are not
-- autocommit).
DROP PROCEDURE IF EXISTS romancy_claim;
CREATE PROCEDURE romancy_claim(IN p_owner VARCHAR(255), IN p_ttl DOUBLE, IN p_names LONGTEXT,
                               IN p_limit INT)
BEGIN
    DECLARE v_done INT DEFAULT 0;
    DECLARE v_id VARCHAR(255);
    DECLARE v_prev VARCHAR(255);
    DECLARE v_locked VARCHAR(255);
    DECLARE v_claimed LONGTEXT DEFAULT '[]';
    DECLARE v_count INT DEFAULT 0;
    DECLARE v_scan INT DEFAULT p_limit * 4 + 8;
    DECLARE c CURSOR FOR
        SELECT instance_id FROM workflow_instances
        WHERE ((status IN ('pending', 'running')
                AND (lease_expires_at IS NULL OR lease_expires_at < NOW(6)))
               OR (status = 'waiting' AND wake_at <= UNIX_TIMESTAMP(NOW(6))))
          AND NOT (lease_owner <=> p_owner)
          AND workflow_name IN (SELECT j.name FROM JSON_TABLE(p_names, '$[*]'
                                COLUMNS (name VARCHAR(255) PATH '$')) j)
        ORDER BY created_at
        LIMIT v_scan;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
    OPEN c;
    claiming: LOOP
        FETCH c INTO v_id;
        IF v_done OR v_count >= p_limit THEN
            LEAVE claiming;
        END IF;
        SET v_locked = NULL;
        SELECT instance_id, lease_owner INTO v_locked, v_prev FROM workflow_instances
        WHERE instance_id = v_id
          AND ((status IN ('pending', 'running')
                AND (lease_expires_at IS NULL OR lease_expires_at < NOW(6)))
               OR (status = 'waiting' AND wake_at <= UNIX_TIMESTAMP(NOW(6))))
          AND NOT (lease_owner <=> p_owner)
        FOR UPDATE SKIP LOCKED;
        SET v_done = 0;  -- no row (taken meanwhile, or locked) set it: the cursor goes on
        IF v_locked IS NOT NULL THEN
            UPDATE workflow_instances
            SET status = 'running', lease_owner = p_owner, lease_epoch = lease_epoch + 1,
                lease_expires_at = NOW(6) + INTERVAL ROUND(p_ttl * 1000000) MICROSECOND
            WHERE instance_id = v_id;
            SET v_claimed = JSON_ARRAY_APPEND(v_claimed, '$', JSON_ARRAY(v_id, v_prev));
            SET v_count = v_count + 1;
        END IF;
    END LOOP;
    CLOSE c;
    SELECT w.instance_id, w.workflow_name, w.input, w.run_no, w.lease_epoch, w.run_started_at,
           w.cancel_requested, j.prev
    FROM JSON_TABLE(v_claimed, '$[*]' COLUMNS (id VARCHAR(255) PATH '$[0]',
                                               prev VARCHAR(255) PATH '$[1]')) j
    JOIN workflow_instances w ON w.instance_id = j.id;
END;

-- Called after a fenced write with p_fenced true if it wrote nothing (its lease is gone): raises,
-- so that the transaction can only roll back (PostgreSQL's romancy_fenced_out, SQLSTATE RT001).
-- The driver turns MYSQL_ERRNO 31001 into LeaseLostError.
DROP PROCEDURE IF EXISTS romancy_fenced_out;
CREATE PROCEDURE romancy_fenced_out(IN p_fenced BOOLEAN, IN p_iid VARCHAR(255),
                                    IN p_owner VARCHAR(255), IN p_epoch BIGINT)
BEGIN
    DECLARE v_message VARCHAR(512) DEFAULT CONCAT('worker ', p_owner,
        ' no longer holds instance ', p_iid, ' at epoch ', p_epoch);
    IF p_fenced THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_message;
    END IF;
END;

-- migrate:down
DROP PROCEDURE IF EXISTS romancy_fenced_out;
DROP PROCEDURE IF EXISTS romancy_claim;
DROP TABLE IF EXISTS romancy_signals;
DROP TABLE IF EXISTS workflow_inbox;
DROP TABLE IF EXISTS workflow_events;
DROP TABLE IF EXISTS workflow_waits;
DROP TABLE IF EXISTS workflow_runs;
DROP TABLE IF EXISTS workflow_history_archive;
DROP TABLE IF EXISTS workflow_history;
DROP TABLE IF EXISTS workflow_instances;
