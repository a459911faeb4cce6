-- Concurrency limits, as on PostgreSQL (migrations/postgres/0011_concurrency_limits.sql):
-- an own within a limit counts its group's tasks in progress with an unexpired ownership,
-- by action, in the owning transaction (which holds the file's write lock, so owners of one
-- group are serialized already). The count reads this index and stops at the limit.

CREATE INDEX tasks_in_progress_idx ON tasks (action, action_deadline)
    WHERE status_code = 'in-progress';
