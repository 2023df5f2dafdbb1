-- migrate:up
-- The transactional outbox (see romancy_trio.outbox). Times are epoch seconds (DOUBLE).
CREATE TABLE IF NOT EXISTS outbox_events (
    seq             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id        VARCHAR(255) NOT NULL,
    source          VARCHAR(255) NOT NULL,
    type            VARCHAR(255) NOT NULL,
    subject         LONGTEXT,
    extensions      LONGTEXT NOT NULL DEFAULT ('{}') CHECK (JSON_VALID(extensions)),
    data            LONGTEXT CHECK (data IS NULL OR JSON_VALID(data)),
    event_time      DOUBLE NOT NULL,
    instance_id     VARCHAR(255),
    activity_id     VARCHAR(255),
    status          VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE NOT NULL,
    claimed_by      VARCHAR(255),
    claim_epoch     BIGINT NOT NULL DEFAULT 0,
    claimed_until   DOUBLE,
    last_error      LONGTEXT,
    created_at      DOUBLE NOT NULL,
    delivered_at    DOUBLE,
    UNIQUE KEY outbox_events_id (source, event_id),
    INDEX outbox_events_due (status, next_attempt_at, seq),
    INDEX outbox_events_claimed (status, claimed_until),
    INDEX outbox_events_delivered (status, delivered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A relayer's claim: up to p_limit due rows nobody else holds (SKIP LOCKED), claimed for
-- p_ttl seconds and returned (a cursor: MySQL can neither UPDATE ... RETURNING nor skip
-- locked rows in an UPDATE). Runs in the caller's transaction.
DROP PROCEDURE IF EXISTS romancy_outbox_claim;
CREATE PROCEDURE romancy_outbox_claim(IN p_worker VARCHAR(255), IN p_ttl DOUBLE,
                                      IN p_limit INT)
BEGIN
    DECLARE v_done INT DEFAULT 0;
    DECLARE v_seq BIGINT;
    DECLARE v_now DOUBLE DEFAULT UNIX_TIMESTAMP(NOW(6));
    DECLARE v_claimed LONGTEXT DEFAULT '[]';
    DECLARE c CURSOR FOR
        SELECT seq FROM outbox_events
        WHERE status = 'pending' AND next_attempt_at <= v_now
          AND (claimed_until IS NULL OR claimed_until < v_now)
        ORDER BY next_attempt_at, seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
    OPEN c;
    claiming: LOOP
        FETCH c INTO v_seq;
        IF v_done THEN
            LEAVE claiming;
        END IF;
        UPDATE outbox_events
        SET claimed_by = p_worker, claimed_until = v_now + p_ttl, claim_epoch = claim_epoch + 1
        WHERE seq = v_seq;
        SET v_claimed = JSON_ARRAY_APPEND(v_claimed, '$', v_seq);
    END LOOP;
    CLOSE c;
    SELECT o.seq, o.claim_epoch, o.attempts, o.event_id, o.source, o.type, o.subject,
           o.extensions, o.data, o.event_time
    FROM JSON_TABLE(v_claimed, '$[*]' COLUMNS (s BIGINT PATH '$')) j
    JOIN outbox_events o ON o.seq = j.s
    ORDER BY o.next_attempt_at, o.seq;
END;

-- migrate:down
DROP PROCEDURE IF EXISTS romancy_outbox_claim;
DROP TABLE IF EXISTS outbox_events;
