-- What the ActionManager needs beyond the seed's functions: batched returns, handing owned
-- tasks back without using up a try, and hints that wake idle actors when work appears.

-- Returns many owned tasks in one call, each with exactly return_task's semantics (token
-- check, retry or abort, signalling, notification). One row per input, in input order:
-- num_updated is 0 where the id and token did not match.
CREATE FUNCTION return_tasks(
    task_ids VARCHAR ARRAY, tokens UUID ARRAY, result_statuses TEXT ARRAY,
    result_status_codes task_status_code_value ARRAY
) RETURNS TABLE(task_id VARCHAR, num_updated INTEGER)
LANGUAGE sql VOLATILE AS $$
    SELECT r.id, return_task(r.id, r.token, r.status, r.code)
    FROM unnest(task_ids, tokens, result_statuses, result_status_codes)
         WITH ORDINALITY AS r(id, token, status, code, n)
    ORDER BY r.n
$$;

-- Gives owned tasks back, pending at once and without counting the try (an actor shutting
-- down before it started them). Returns how many of the (id, token) pairs matched.
CREATE FUNCTION release_tasks(task_ids VARCHAR ARRAY, tokens UUID ARRAY) RETURNS INTEGER
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    released INTEGER;
BEGIN
    UPDATE tasks t
    SET status_code = 'pending',
        num_tries = greatest(t.num_tries - 1, 0),
        actor_id = NULL,
        performance_token = NULL,
        action_deadline = NULL
    FROM unnest(task_ids, tokens) AS r(id, token)
    WHERE t.id = r.id AND t.performance_token = r.token AND t.status_code = 'in-progress';
    GET DIAGNOSTICS released := ROW_COUNT;
    IF released > 0 THEN
        PERFORM pg_notify('parade_tasks', '');
    END IF;
    RETURN released;
END;
$$;

-- Idle actors LISTEN on channel parade_tasks: it is notified (empty payload) once per
-- statement that inserts tasks, whoever inserts them, and whenever tasks are signalled or
-- released, since that can make them runnable. A hint, not a promise: actors still poll.
CREATE FUNCTION notify_parade_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('parade_tasks', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION notify_parade_tasks();

CREATE OR REPLACE FUNCTION signal_successors(successors VARCHAR ARRAY, failed BOOLEAN)
RETURNS VOID
LANGUAGE sql VOLATILE AS $$
    UPDATE tasks
    SET num_signals = num_signals + 1,
        num_failures = num_failures + CASE WHEN failed THEN 1 ELSE 0 END
    WHERE id = ANY(successors);
    SELECT pg_notify('parade_tasks', '') WHERE cardinality(successors) > 0;
$$;
