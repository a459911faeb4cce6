-- A task's predecessors (the tasks whose to_signal_after lists it) come from an index: the
-- dashboard's task graph (its ancestors, a level at a time) and the `predecessors_of` listing
-- read the whole table without one, 0.1-0.6 s a task page at 1,000,000 tasks (BENCHMARKS.md
-- "The task browser").
--
-- Partial: only tasks that signal a successor have entries, so the no-op path (tasks without
-- successors inserted, owned and returned, none of them HOT updates) writes nothing to it. A
-- task that does signal writes one entry per successor at its insert and at each non-HOT
-- update (own, return) while it is stored.
--
-- The default GIN operator class for arrays (array_ops) serves varchar[]; a query uses it
-- only with an operand of the same type (`to_signal_after && $1::varchar[]`,
-- `to_signal_after @> ARRAY[$1::varchar]`): against text[] PostgreSQL casts the column and
-- the index no longer applies. `&&` and `@>` are strict, which proves the index's predicate.
-- Keys are bounded as the primary key's are (ids of at most 1,024 bytes, queue-semantics.md
-- "Input rules"): a plain SQL insert of an entry over about 2.7 kB, which could name no
-- stored task, is refused as the primary key would refuse it as an id.
CREATE INDEX tasks_to_signal_after_idx ON tasks USING gin (to_signal_after)
    WHERE to_signal_after IS NOT NULL;
