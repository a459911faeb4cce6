-- Concurrency limits cost an unlimited own nothing (migration 0011 made every ownership pay).
--
-- 0011's tasks_in_progress_idx took an entry for every task put in progress, limited or not:
-- owning is not a HOT update, so each ownership wrote one index entry more than before, and
-- the no-op throughput fell by about 5%. Only an own within a limit reads that index, so only
-- the tasks such an own takes are in it now: own_tasks_limited marks the rows it owns
-- (counts_toward_limit), and the index holds the in-progress rows so marked. The mark stays:
-- a task once owned within its action's limit counts toward it whenever it is in progress
-- again, whoever owns it. own_tasks_with_backoff, the unlimited own, is unchanged.
--
-- So the limit counts the tasks owned within it: every node that serves the group's actions
-- should have the limit configured (a node without it owns outside the count). Plugin
-- manifests are per node, so this holds whenever the nodes share their plugins.

ALTER TABLE tasks ADD COLUMN counts_toward_limit boolean NOT NULL DEFAULT false;
-- Tasks in progress now were counted by 0011's index; they stay counted until returned.
UPDATE tasks SET counts_toward_limit = true WHERE status_code = 'in-progress';

DROP INDEX tasks_in_progress_idx;
CREATE INDEX tasks_limited_in_progress_idx ON tasks (action, action_deadline)
    WHERE status_code = 'in-progress' AND counts_toward_limit;

-- As in 0011, but counting through tasks_limited_in_progress_idx, and owning with the body of
-- own_tasks_with_backoff (migrations/postgres/0009) plus the mark: calling that function and
-- then marking would write each row twice.
CREATE OR REPLACE FUNCTION own_tasks_limited(
    max_tasks integer, actions character varying[], owner_id character varying,
    max_duration interval, backoff_initial interval[], backoff_max interval[],
    backoff_multiplier double precision[], backoff_jitter boolean[],
    max_in_progress integer)
RETURNS TABLE(task_id character varying, token uuid, num_failures integer,
              action character varying, body text, num_tries integer)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    wanted VARCHAR ARRAY := ARRAY(SELECT DISTINCT a FROM unnest(actions) a ORDER BY a);
    in_use INTEGER;
    room INTEGER;
    owned INTEGER;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('parade concurrency limit: ' || array_to_string(wanted, E'\n'), 0));
    -- The group's unexpired ownerships, counted no further than the limit; a plpgsql
    -- statement, so its plan is kept between calls.
    SELECT count(*) INTO in_use FROM (
        (SELECT 1 FROM tasks r
         WHERE r.status_code = 'in-progress' AND r.counts_toward_limit
           AND r.action = ANY(wanted) AND r.action_deadline >= now()
         LIMIT greatest(max_in_progress, 0))
        UNION ALL
        (SELECT 1 FROM tasks r
         WHERE r.status_code = 'in-progress' AND r.counts_toward_limit
           AND r.action = ANY(wanted) AND r.action_deadline IS NULL
         LIMIT greatest(max_in_progress, 0))
    ) c;
    PERFORM abort_expired_tasks(100);
    IF in_use >= max_in_progress THEN
        RETURN;
    END IF;
    room := least(max_tasks, max_in_progress - in_use);
    PERFORM make_due_tasks_runnable(wanted, 1000);

    RETURN QUERY
    UPDATE tasks t
    SET actor_id = owner_id,
        status_code = 'in-progress',
        num_tries = t.num_tries + 1,
        performance_token = gen_random_uuid(),
        action_deadline = now() + max_duration,
        counts_toward_limit = true
    WHERE t.ctid = ANY(ARRAY(
        SELECT e.ctid FROM tasks e
        WHERE e.status_code = 'in-progress' AND e.action_deadline < now()
          AND e.action_deadline + expiry_backoff(
                  e.id, e.num_tries,
                  backoff_initial[array_position(actions, e.action)],
                  backoff_max[array_position(actions, e.action)],
                  backoff_multiplier[array_position(actions, e.action)],
                  backoff_jitter[array_position(actions, e.action)]) < now()
          AND e.action = ANY(wanted)
          AND (e.total_dependencies IS NULL OR e.num_signals = e.total_dependencies)
          AND (e.max_tries IS NULL OR e.num_tries < e.max_tries)
        ORDER BY e.action_deadline
        LIMIT room
        FOR UPDATE SKIP LOCKED))
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body, t.num_tries;
    GET DIAGNOSTICS owned := ROW_COUNT;

    IF owned >= room THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE tasks t
    SET actor_id = owner_id,
        status_code = 'in-progress',
        num_tries = t.num_tries + 1,
        performance_token = gen_random_uuid(),
        action_deadline = now() + max_duration,
        counts_toward_limit = true
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
            LIMIT room - owned
            FOR UPDATE SKIP LOCKED
        ) c
        ORDER BY c.priority DESC, c.seq
        LIMIT room - owned))
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body, t.num_tries;
END;
$$;
