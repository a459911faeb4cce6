-- A task's predecessors (the tasks whose to_signal_after lists it) come from a table of their
-- own, as on PostgreSQL they come from an index (migrations/postgres/0014): the dashboard's
-- task graph (its ancestors, a level at a time) and the `predecessors_of` listing read the
-- whole table without it (BENCHMARKS.md "The task browser"). to_signal_after is a JSON
-- array, which no SQLite index can open, so each of its entries is a row here, keyed by the
-- successor.
--
-- Triggers keep it, not the store's code, so rows that plain SQL clients insert, update or
-- delete are listed alike. Only tasks that signal a successor write to it: on the no-op path
-- an insert or a delete (the pruner's, delete_tasks', at completion: all plain DELETEs)
-- evaluates a trigger's WHEN and writes nothing, and owns and returns, which update neither
-- id nor to_signal_after (nothing Parade runs does), fire no trigger. A to_signal_after that
-- is not JSON (only a plain SQL client can store one; the store cannot read it) lists
-- nothing. A migration that rebuilds tasks (create, copy, drop, rename) drops the triggers
-- with it and must create them again.
--
-- An INSERT OR REPLACE deletes the row it replaces without firing delete triggers (unless
-- the connection set recursive_triggers), so it can leave pairs behind: the reads check each
-- candidate against its to_signal_after (host/src/queue/sqlite/listing.rs). A successor
-- listed twice is one pair (OR IGNORE; deduplicating with DISTINCT instead, a sort per row,
-- more than doubled the triggers' cost). An outer statement's explicit OR ABORT, OR FAIL or OR
-- ROLLBACK overrides that OR IGNORE, so such an insert of a row listing a successor twice
-- fails on this table's key; a plain INSERT, OR IGNORE and OR REPLACE are unaffected.
CREATE TABLE task_predecessors (
    successor_id TEXT NOT NULL,
    predecessor_id TEXT NOT NULL,
    PRIMARY KEY (successor_id, predecessor_id)
) WITHOUT ROWID;

INSERT OR IGNORE INTO task_predecessors (successor_id, predecessor_id)
SELECT s.value, t.id FROM tasks t, json_each(t.to_signal_after) s
WHERE json_valid(t.to_signal_after);

CREATE TRIGGER tasks_predecessors_on_insert AFTER INSERT ON tasks
WHEN json_valid(NEW.to_signal_after)
BEGIN
    INSERT OR IGNORE INTO task_predecessors (successor_id, predecessor_id)
    SELECT value, NEW.id FROM json_each(NEW.to_signal_after);
END;

CREATE TRIGGER tasks_predecessors_on_delete AFTER DELETE ON tasks
WHEN json_valid(OLD.to_signal_after)
BEGIN
    DELETE FROM task_predecessors
    WHERE successor_id IN (SELECT value FROM json_each(OLD.to_signal_after))
      AND predecessor_id = OLD.id;
END;

CREATE TRIGGER tasks_predecessors_on_update AFTER UPDATE OF id, to_signal_after ON tasks
WHEN OLD.id IS NOT NEW.id OR OLD.to_signal_after IS NOT NEW.to_signal_after
BEGIN
    -- One trigger, old pairs out before new ones in (the order of two triggers is not
    -- defined); a value that is not JSON lists nothing (json_each of NULL is empty).
    DELETE FROM task_predecessors
    WHERE successor_id IN (SELECT value FROM json_each(
            CASE WHEN json_valid(OLD.to_signal_after) THEN OLD.to_signal_after END))
      AND predecessor_id = OLD.id;
    INSERT OR IGNORE INTO task_predecessors (successor_id, predecessor_id)
    SELECT value, NEW.id FROM json_each(
        CASE WHEN json_valid(NEW.to_signal_after) THEN NEW.to_signal_after END);
END;
