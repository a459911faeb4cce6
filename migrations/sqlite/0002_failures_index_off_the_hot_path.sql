-- Operators' lists by status used an index of every task's status_code, which owning and
-- returning rewrite: two of the index writes on every task's hot path. What is listed by
-- status on every dashboard refresh is the recent failures, and failures are few: they keep
-- an index of their own, which the hot path never writes. Other lists by status read the
-- table in rowid order.
DROP INDEX tasks_status_idx;
CREATE INDEX tasks_aborted_idx ON tasks (status_code) WHERE status_code = 'aborted';
