-- migrate:up
-- Raises (SQLSTATE RX001) when a fenced write found its lease gone, so that statement can be sent
-- together with COMMIT in one round trip: the error aborts the transaction before COMMIT runs.
CREATE OR REPLACE FUNCTION romancy_fence_held(held boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT held THEN
        RAISE EXCEPTION 'romancy: the lease of this instance is no longer held'
            USING ERRCODE = 'RX001';
    END IF;
    RETURN true;
END
$$;

-- migrate:down
DROP FUNCTION IF EXISTS romancy_fence_held(boolean);
