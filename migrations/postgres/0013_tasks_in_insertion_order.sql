-- The dashboard's task browser lists tasks newest first, a page at a time from a cursor (the
-- last page's smallest seq), whatever their status: `seq < $cursor ORDER BY seq DESC LIMIT n`.
-- Without an index on seq that is a scan and sort of the whole table on every page (about
-- 180 ms at 1,000,000 tasks); with this one a page reads the rows it returns, at any depth.
-- SQLite needs none: its insertion order is the rowid, the table's own key.
--
-- Owning and returning are not HOT updates (they change status_code, which the partial
-- indexes' predicates read), so every index takes an entry per update: this one adds one to
-- the insert, the own and the return of every task. BENCHMARKS.md has what that costs.
CREATE INDEX tasks_seq_idx ON tasks (seq);
