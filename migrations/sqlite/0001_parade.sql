-- Parade's queue schema for SQLite: the same table as on PostgreSQL, with SQLite's types.
-- SQLite has no stored functions, so the queue's logic lives in host/src/queue/sqlite.rs;
-- the indexes below are the ones it relies on.
--
-- Differences in representation only:
--   * status_code is TEXT, checked against the four codes;
--   * action_deadline, created_at and finished_at are microseconds since the Unix epoch;
--   * performance_token is the uuid as 32 lower-case hex digits;
--   * to_signal_after is a JSON array of ids;
--   * insertion order is the rowid (`seq` on PostgreSQL).

CREATE TABLE tasks (
    id TEXT NOT NULL PRIMARY KEY,
    action TEXT NOT NULL,
    body TEXT,
    status TEXT,
    status_code TEXT NOT NULL DEFAULT 'pending'
        CHECK (status_code IN ('pending', 'in-progress', 'aborted', 'completed')),
    num_tries INTEGER NOT NULL DEFAULT 0,
    num_failures INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER,
    total_dependencies INTEGER,
    num_signals INTEGER NOT NULL DEFAULT 0,
    actor_id TEXT,
    action_deadline INTEGER,
    performance_token TEXT,
    to_signal_after TEXT,
    notify_channel_after TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);

-- Pending tasks that may run now, per action, by priority then rowid (insertion order).
CREATE INDEX tasks_runnable_idx ON tasks (action, priority DESC)
    WHERE status_code = 'pending'
      AND (total_dependencies IS NULL OR num_signals = total_dependencies)
      AND (max_tries IS NULL OR num_tries < max_tries);

-- Owned tasks by deadline: finds expired ownerships without scanning pending work.
CREATE INDEX tasks_owned_deadline_idx ON tasks (action_deadline)
    WHERE status_code = 'in-progress';

-- Operators list tasks by status (`parade task list --status`).
CREATE INDEX tasks_status_idx ON tasks (status_code);
