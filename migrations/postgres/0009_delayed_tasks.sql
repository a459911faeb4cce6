-- Delayed tasks: a pending task may carry a time before which it is not offered.
--
-- run_after NULL means "due now", so seed-era inserts and the seed's SQL functions behave
-- exactly as before. A pending task whose run_after is set waits outside the runnable index
-- (tasks_runnable_idx now requires run_after IS NULL), in tasks_delayed_idx by action and
-- time; owning first makes the due ones of its actions runnable (make_due_tasks_runnable
-- clears their run_after, up to 1,000 per call), then picks among all runnable tasks by
-- priority and insertion order as before. So owning never reads a future task, whatever
-- their number, and priority holds among due tasks.
--
-- The runnable index is rebuilt: on a large table this migration holds its lock on tasks
-- for as long as the build takes.

ALTER TABLE tasks ADD COLUMN run_after TIMESTAMPTZ;
COMMENT ON COLUMN tasks.run_after IS
    'a pending task is not offered before this time; NULL: due (cleared when it becomes due)';

DROP INDEX tasks_runnable_idx;
CREATE INDEX tasks_runnable_idx ON tasks (action, priority DESC, seq)
    WHERE status_code = 'pending'
      AND run_after IS NULL
      AND (total_dependencies IS NULL OR num_signals = total_dependencies)
      AND (max_tries IS NULL OR num_tries < max_tries);

CREATE INDEX tasks_delayed_idx ON tasks (action, run_after)
    WHERE status_code = 'pending' AND run_after IS NOT NULL;

-- Makes up to max_count due delayed tasks of the wanted actions runnable, earliest first,
-- skipping rows other owners hold.
CREATE FUNCTION make_due_tasks_runnable(wanted VARCHAR ARRAY, max_count INTEGER) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    made INTEGER;
BEGIN
    UPDATE tasks t
    SET run_after = NULL
    WHERE t.ctid = ANY(ARRAY(
        SELECT d.ctid
        FROM unnest(wanted) AS w(name)
        CROSS JOIN LATERAL (
            SELECT p.ctid, p.run_after FROM tasks p
            WHERE p.action = w.name
              AND p.status_code = 'pending'
              AND p.run_after IS NOT NULL
              AND p.run_after <= now()
            ORDER BY p.run_after
            LIMIT max_count
            FOR UPDATE SKIP LOCKED
        ) d
        ORDER BY d.run_after
        LIMIT max_count));
    GET DIAGNOSTICS made := ROW_COUNT;
    RETURN made;
END;
$$;

-- The earliest time a task of these actions becomes runnable by the clock: a delayed task's
-- run_after, or an ownership's deadline (an expired ownership is offered again). NULL when
-- no such task waits. An idle node sleeps until then.
CREATE FUNCTION next_due_time(actions VARCHAR ARRAY) RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$
    SELECT min(due) FROM (
        SELECT (SELECT p.run_after FROM tasks p
                WHERE p.action = w.name AND p.status_code = 'pending'
                  AND p.run_after IS NOT NULL
                ORDER BY p.run_after LIMIT 1) AS due
        FROM unnest(actions) AS w(name)
        UNION ALL
        SELECT min(e.action_deadline) FROM tasks e
        WHERE e.status_code = 'in-progress' AND e.action = ANY(actions)
    ) d
$$;

-- own_tasks as in 0005, making due tasks runnable first and offering only tasks that are due.
CREATE OR REPLACE FUNCTION own_tasks(max_tasks integer, actions character varying[], owner_id character varying, max_duration interval) RETURNS TABLE(task_id character varying, token uuid, num_failures integer, action character varying, body text)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    wanted VARCHAR ARRAY := ARRAY(SELECT DISTINCT a FROM unnest(actions) a);
    owned INTEGER;
BEGIN
    PERFORM abort_expired_tasks(100);
    PERFORM make_due_tasks_runnable(wanted, 1000);

    RETURN QUERY
    UPDATE tasks t
    SET actor_id = owner_id,
        status_code = 'in-progress',
        num_tries = t.num_tries + 1,
        performance_token = gen_random_uuid(),
        action_deadline = now() + max_duration
    WHERE t.ctid = ANY(ARRAY(
        SELECT e.ctid FROM tasks e
        WHERE e.status_code = 'in-progress' AND e.action_deadline < now()
          AND e.action = ANY(wanted)
          AND (e.total_dependencies IS NULL OR e.num_signals = e.total_dependencies)
          AND (e.max_tries IS NULL OR e.num_tries < e.max_tries)
        ORDER BY e.action_deadline
        LIMIT max_tasks
        FOR UPDATE SKIP LOCKED))
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body;
    GET DIAGNOSTICS owned := ROW_COUNT;

    IF owned >= max_tasks THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE tasks t
    SET actor_id = owner_id,
        status_code = 'in-progress',
        num_tries = t.num_tries + 1,
        performance_token = gen_random_uuid(),
        action_deadline = now() + max_duration
    WHERE t.ctid = ANY(ARRAY(
        SELECT c.ctid
        FROM unnest(wanted) AS w(name)
        CROSS JOIN LATERAL (
            SELECT p.ctid, p.priority, p.seq FROM tasks p
            WHERE p.action = w.name
              AND p.status_code = 'pending'
              AND p.run_after IS NULL
              AND (p.total_dependencies IS NULL OR p.num_signals = p.total_dependencies)
              AND (p.max_tries IS NULL OR p.num_tries < p.max_tries)
            ORDER BY p.priority DESC, p.seq
            LIMIT max_tasks - owned
            FOR UPDATE SKIP LOCKED
        ) c
        ORDER BY c.priority DESC, c.seq
        LIMIT max_tasks - owned))
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body;
END;
$$;
