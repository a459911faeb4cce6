-- Concurrency limits cost an unlimited own nothing, as on PostgreSQL
-- (migrations/postgres/0012_limit_index_off_the_hot_path.sql): only an own within a limit
-- marks the tasks it owns (counts_toward_limit, kept afterwards), and only marked tasks in
-- progress are in the index its count reads.

ALTER TABLE tasks ADD COLUMN counts_toward_limit INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET counts_toward_limit = 1 WHERE status_code = 'in-progress';

DROP INDEX tasks_in_progress_idx;
CREATE INDEX tasks_limited_in_progress_idx ON tasks (action, action_deadline)
    WHERE status_code = 'in-progress' AND counts_toward_limit;
