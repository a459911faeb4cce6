-- Cancelling tasks: an operator ends pending, waiting or running tasks as aborted.
--
-- cancel_tasks(ids, reason, cascade) ends every listed task that has not ended yet, and
-- with cascade every task that transitively waits on one of them (through to_signal_after,
-- not past tasks that already ended), exactly as an abort would: status 'cancelled: REASON',
-- owner and token cleared (a late result of a running task is refused), successors
-- signalled with a failure, its channel notified. For each task that was running it
-- notifies channel parade_cancelled with the task's id, so the node running it stops it.
-- One row per task: the listed ids in order, then those the cascade reached, each with
-- 'cancelled', 'ended:CODE' (it had already ended) or 'not found'.
CREATE FUNCTION cancel_tasks(task_ids VARCHAR ARRAY, reason TEXT, cascade BOOLEAN)
RETURNS TABLE(task_id VARCHAR, outcome TEXT)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    targets VARCHAR ARRAY;
    running VARCHAR ARRAY;
    ended VARCHAR ARRAY := '{}';
    cancelled RECORD;
    status_text TEXT := CASE WHEN coalesce(reason, '') = '' THEN 'cancelled'
                             ELSE 'cancelled: ' || reason END;
BEGIN
    IF cascade THEN
        targets := ARRAY(
            WITH RECURSIVE closure(id, n) AS (
                SELECT u.id, u.n FROM unnest(task_ids) WITH ORDINALITY AS u(id, n)
                UNION
                SELECT s.id, 9223372036854775807
                FROM closure c
                JOIN tasks p ON p.id = c.id AND p.status_code IN ('pending', 'in-progress')
                CROSS JOIN LATERAL unnest(p.to_signal_after) AS s(id)
            )
            SELECT c.id FROM closure c GROUP BY c.id ORDER BY min(c.n), c.id);
    ELSE
        targets := ARRAY(
            SELECT u.id FROM unnest(task_ids) WITH ORDINALITY AS u(id, n)
            GROUP BY u.id ORDER BY min(u.n));
    END IF;

    -- Lock in id order, as return_tasks locks successors, so cancels and returns cannot
    -- deadlock each other.
    PERFORM 1 FROM tasks t WHERE t.id = ANY(targets) ORDER BY t.id FOR UPDATE;
    running := ARRAY(SELECT t.id FROM tasks t
                     WHERE t.id = ANY(targets) AND t.status_code = 'in-progress');

    FOR cancelled IN
        UPDATE tasks t
        SET status = status_text,
            status_code = 'aborted',
            actor_id = NULL,
            performance_token = NULL,
            run_after = NULL,
            finished_at = now()
        WHERE t.id = ANY(targets) AND t.status_code IN ('pending', 'in-progress')
        RETURNING t.id, t.to_signal_after, t.notify_channel_after
    LOOP
        ended := ended || cancelled.id;
        PERFORM signal_successors(cancelled.to_signal_after, true);
        PERFORM notify_task_ended(cancelled.notify_channel_after, cancelled.id);
    END LOOP;

    PERFORM pg_notify('parade_cancelled', r.id)
    FROM unnest(running) AS r(id) WHERE octet_length(r.id) < 8000;

    RETURN QUERY
    SELECT u.id,
           CASE WHEN u.id = ANY(ended) THEN 'cancelled'
                WHEN t.id IS NULL THEN 'not found'
                ELSE 'ended:' || t.status_code::text END
    FROM unnest(targets) WITH ORDINALITY AS u(id, n)
    LEFT JOIN tasks t ON t.id = u.id
    ORDER BY u.n;
END;
$$;
