-- WAL written per owned task (BENCHMARKS.md, "Concurrency limits"): run in a throwaway
-- database made from a migrated template, on a cluster with full_page_writes off (so page
-- images after a checkpoint do not blur the figure):
--   psql "$DB" -At -f bench/own-wal.sql     # prints bytes per task, then tasks owned
TRUNCATE tasks CASCADE;
INSERT INTO tasks (id, action, body) SELECT 't' || g, 'noop', '' FROM generate_series(1, 20000) g;
SELECT pg_current_wal_insert_lsn() AS l0 \gset
DO $$ BEGIN FOR i IN 1..20 LOOP PERFORM * FROM own_tasks_with_backoff(500, ARRAY['noop']::varchar[], 'a', interval '5 min', ARRAY[NULL]::interval[], ARRAY[NULL]::interval[], ARRAY[NULL]::float8[], ARRAY[NULL]::bool[]); END LOOP; END $$;
SELECT pg_current_wal_insert_lsn() AS l1 \gset
SELECT round(pg_wal_lsn_diff(:'l1', :'l0') / 10000.0);
SELECT count(*) FROM tasks WHERE status_code = 'in-progress';
