-- migrate:up
-- Raised by a fenced write whose lease is gone, so that the statements sent after it in the
-- same round trip (COMMIT) are skipped and the transaction rolls back. SQLSTATE RT001; the
-- driver turns it into LeaseLostError.
CREATE OR REPLACE FUNCTION romancy_fenced_out(iid text, owner text, epoch bigint)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'worker % no longer holds instance % at epoch %', owner, iid, epoch
        USING ERRCODE = 'RT001';
END
$$;

-- migrate:down
DROP FUNCTION IF EXISTS romancy_fenced_out(text, text, bigint);
