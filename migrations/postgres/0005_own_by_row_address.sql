-- own_tasks and abort_expired_tasks chose their rows in a subquery that locks them (FOR
-- UPDATE SKIP LOCKED) and then found them again by primary key: WHERE t.id = ANY(ARRAY(...)).
-- The planner cannot know how many ids the subquery yields, and below a few tens of thousands
-- of rows it prices a sequential scan of the whole table under the primary-key probes. Each
-- call then read every row of tasks three times, even when it owned nothing: on a table of
-- 2,000 rows, auto_explain showed each UPDATE spend 0.08 ms on that scan while its subquery
-- took microseconds. At any size, the probes descended tasks_pkey once per owned task.
--
-- (Forcing generic plans on own_tasks was tried as well and dropped: at 1,000,000 pending
-- tasks the generic plan of the pending-task query is priced high enough to be JIT-compiled
-- on every call, 9.3 ms per call instead of 1.7.)
--
-- The subqueries now yield each locked row's physical address (ctid), and the UPDATE reads
-- the rows straight from it (a TID scan): no index probe, and nothing read when nothing was
-- chosen. A row locked by the subquery cannot move before the UPDATE, since nobody else can
-- update it meanwhile. If it was updated by a transaction that committed after this
-- statement's snapshot, the lock lands on the new version, which the snapshot does not see,
-- and the UPDATE skips it: the task is left for the next call, never owned twice.

CREATE OR REPLACE FUNCTION abort_expired_tasks(max_count INTEGER) RETURNS INTEGER
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    expired RECORD;
    aborted INTEGER := 0;
BEGIN
    FOR expired IN
        UPDATE tasks t
        SET status = format('ownership by %s expired on try %s of %s',
                            coalesce(t.actor_id, 'an unknown actor'), t.num_tries, t.max_tries),
            status_code = 'aborted',
            actor_id = NULL,
            performance_token = NULL,
            finished_at = now()
        WHERE t.ctid = ANY(ARRAY(
            SELECT e.ctid FROM tasks e
            WHERE e.status_code = 'in-progress' AND e.action_deadline < now()
              AND e.max_tries IS NOT NULL AND e.num_tries >= e.max_tries
            ORDER BY e.action_deadline
            LIMIT max_count
            FOR UPDATE SKIP LOCKED))
        RETURNING t.id, t.to_signal_after, t.notify_channel_after
    LOOP
        PERFORM signal_successors(expired.to_signal_after, true);
        IF expired.notify_channel_after IS NOT NULL THEN
            PERFORM pg_notify(expired.notify_channel_after, expired.id);
        END IF;
        aborted := aborted + 1;
    END LOOP;
    RETURN aborted;
END;
$$;

CREATE OR REPLACE FUNCTION own_tasks(
    max_tasks INTEGER, actions VARCHAR ARRAY, owner_id VARCHAR, max_duration INTERVAL
) RETURNS TABLE(task_id VARCHAR, token UUID, num_failures INTEGER, action VARCHAR, body TEXT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    wanted VARCHAR ARRAY := ARRAY(SELECT DISTINCT a FROM unnest(actions) a);
    owned INTEGER;
BEGIN
    PERFORM abort_expired_tasks(100);

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
