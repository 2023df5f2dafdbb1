-- migrate:up
-- Pooled connections carry no search_path of the library's: a function must not resolve names
-- through its caller's. Pin each function of ours to the schema it lives in (the migration runs
-- with SET LOCAL search_path to that schema, which FROM CURRENT captures). New functions get
-- the same clause in their CREATE FUNCTION.
ALTER FUNCTION romancy_fenced_out(text, text, bigint) SET search_path FROM CURRENT;

-- migrate:down
ALTER FUNCTION romancy_fenced_out(text, text, bigint) RESET search_path;
