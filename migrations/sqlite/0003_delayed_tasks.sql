-- Delayed tasks, as on PostgreSQL (migrations/postgres/0009_delayed_tasks.sql): run_after
-- (microseconds since the Unix epoch; NULL: due now) keeps a pending task out of the
-- runnable index until owning makes it runnable at its time, so owning never reads future
-- tasks, whatever their number.

ALTER TABLE tasks ADD COLUMN run_after INTEGER;

DROP INDEX tasks_runnable_idx;
CREATE INDEX tasks_runnable_idx ON tasks (action, priority DESC)
    WHERE status_code = 'pending'
      AND run_after IS NULL
      AND (total_dependencies IS NULL OR num_signals = total_dependencies)
      AND (max_tries IS NULL OR num_tries < max_tries);

CREATE INDEX tasks_delayed_idx ON tasks (action, run_after)
    WHERE status_code = 'pending' AND run_after IS NOT NULL;
