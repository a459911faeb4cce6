-- Concurrency limits: at most N tasks of a group of actions in progress at once, across
-- every owner of the store (a plugin's `concurrency` key).
--
-- own_tasks_limited owns as own_tasks_with_backoff does, but no more than the group's room:
-- N minus the tasks of its actions that are in progress with an unexpired ownership
-- (deadline NULL or not passed; an ownership that lapsed stops counting, and counts again
-- once it is owned again). Owners of one group take a transaction-level advisory lock on a
-- key derived from the group's set of actions before they count, so two of them never both
-- see the same room; each takes a fresh snapshot after the lock (a plpgsql statement in READ
-- COMMITTED), so it sees what the one before it committed. Owners of other groups, and every
-- unlimited own, never take the lock and run the same statements as before.
--
-- The count reads tasks_in_progress_idx, in-progress tasks by action and deadline, and stops
-- at N: it costs the limit, not the number of tasks in progress. The index takes one entry
-- per ownership (owning is not a HOT update); returns add none, since a returned row is no
-- longer in progress.

CREATE INDEX tasks_in_progress_idx ON tasks (action, action_deadline)
    WHERE status_code = 'in-progress';

-- Owning, as own_tasks_with_backoff, with at most max_in_progress tasks of these actions
-- together in progress afterwards. At the limit it owns nothing, and still ends the
-- ownerships that lapsed on their last try, as every own does.
CREATE FUNCTION own_tasks_limited(
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
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('parade concurrency limit: ' || array_to_string(wanted, E'\n'), 0));
    -- The group's unexpired ownerships, counted no further than the limit
    -- (tasks_in_progress_idx); a plpgsql statement, so its plan is kept between calls.
    SELECT count(*) INTO in_use FROM (
        (SELECT 1 FROM tasks r
         WHERE r.status_code = 'in-progress' AND r.action = ANY(wanted)
           AND r.action_deadline >= now()
         LIMIT greatest(max_in_progress, 0))
        UNION ALL
        (SELECT 1 FROM tasks r
         WHERE r.status_code = 'in-progress' AND r.action = ANY(wanted)
           AND r.action_deadline IS NULL
         LIMIT greatest(max_in_progress, 0))
    ) c;
    IF in_use >= max_in_progress THEN
        PERFORM abort_expired_tasks(100);
        RETURN;
    END IF;
    RETURN QUERY
    SELECT o.task_id, o.token, o.num_failures, o.action, o.body, o.num_tries
    FROM own_tasks_with_backoff(least(max_tasks, max_in_progress - in_use), actions,
                                owner_id, max_duration, backoff_initial, backoff_max,
                                backoff_multiplier, backoff_jitter) o;
END;
$$;
