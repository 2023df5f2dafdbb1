-- migrate:up
-- Due wake-ups compare with the app's durable clock (AppConfig.clock, e.g. a test's virtual
-- time) when the claim is given one (p_now, epoch seconds), else with the server's clock as
-- before. Leases stay on the server's clock.
DROP PROCEDURE IF EXISTS romancy_claim;
CREATE PROCEDURE romancy_claim(IN p_owner VARCHAR(255), IN p_ttl DOUBLE, IN p_names LONGTEXT,
                               IN p_limit INT, IN p_versions LONGTEXT, IN p_now DOUBLE)
BEGIN
    DECLARE v_done INT DEFAULT 0;
    DECLARE v_id VARCHAR(255);
    DECLARE v_prev VARCHAR(255);
    DECLARE v_locked VARCHAR(255);
    DECLARE v_claimed LONGTEXT DEFAULT '[]';
    DECLARE v_count INT DEFAULT 0;
    DECLARE v_scan INT DEFAULT p_limit * 4 + 8;
    DECLARE v_wake_now DOUBLE DEFAULT coalesce(p_now, UNIX_TIMESTAMP(NOW(6)));
    DECLARE c CURSOR FOR
        SELECT instance_id FROM workflow_instances
        WHERE ((status IN ('pending', 'running')
                AND (lease_expires_at IS NULL OR lease_expires_at < NOW(6)))
               OR (status = 'waiting' AND wake_at <= v_wake_now))
          AND NOT (lease_owner <=> p_owner)
          AND workflow_name IN (SELECT j.name FROM JSON_TABLE(p_names, '$[*]'
                                COLUMNS (name VARCHAR(255) PATH '$')) j)
          AND (code_version IS NULL OR CONCAT(workflow_name, '|', code_version) IN (
                SELECT v.x FROM JSON_TABLE(p_versions, '$[*]' COLUMNS (x VARCHAR(600) PATH '$')) v))
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
               OR (status = 'waiting' AND wake_at <= v_wake_now))
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
           w.cancel_requested, j.prev, w.attributes
    FROM JSON_TABLE(v_claimed, '$[*]' COLUMNS (id VARCHAR(255) PATH '$[0]',
                                               prev VARCHAR(255) PATH '$[1]')) j
    JOIN workflow_instances w ON w.instance_id = j.id;
END;

-- migrate:down
DROP PROCEDURE IF EXISTS romancy_claim;
CREATE PROCEDURE romancy_claim(IN p_owner VARCHAR(255), IN p_ttl DOUBLE, IN p_names LONGTEXT,
                               IN p_limit INT, IN p_versions LONGTEXT)
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
          AND (code_version IS NULL OR CONCAT(workflow_name, '|', code_version) IN (
                SELECT v.x FROM JSON_TABLE(p_versions, '$[*]' COLUMNS (x VARCHAR(600) PATH '$')) v))
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
           w.cancel_requested, j.prev, w.attributes
    FROM JSON_TABLE(v_claimed, '$[*]' COLUMNS (id VARCHAR(255) PATH '$[0]',
                                               prev VARCHAR(255) PATH '$[1]')) j
    JOIN workflow_instances w ON w.instance_id = j.id;
END;
