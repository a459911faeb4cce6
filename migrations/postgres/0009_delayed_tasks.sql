-- Time in the queue: delayed tasks, retry delays on return, and backoff after an expired
-- ownership.
--
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
-- Retry delays: return_tasks_with_delay takes a delay per row; a task returned pending
-- with one waits until then (run_after). The seed's return_task and Parade's return_tasks
-- keep offering it again at once.
--
-- Backoff after expiry: own_tasks_with_backoff takes a backoff policy per action, and an
-- expired ownership of such an action is offered again only once its deadline plus the
-- policy's delay for that try has passed (expiry_backoff; full jitter, drawn from the task's
-- id and try so every node computes the same time). The delay is worked out only for
-- expired rows, never on the path that owns pending work. The seed's own_tasks passes no
-- policy: an expired ownership is offered again at once, as before.
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

-- How long an expired ownership of try number `try` of task `id` waits past its deadline:
-- initial * multiplier^(try - 1), at most max; with jitter a share of that drawn from the
-- task's id and try (the same on every node, every time). Zero without a policy.
CREATE FUNCTION expiry_backoff(
    id VARCHAR, try INTEGER, initial interval, max interval, multiplier double precision,
    jitter boolean)
RETURNS interval
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN initial IS NULL OR max IS NULL THEN interval '0' ELSE
        make_interval(secs =>
            least(extract(epoch FROM max)::float8,
                  extract(epoch FROM initial)::float8
                    * power(coalesce(multiplier, 1), least(greatest(try - 1, 0), 64)))
            * CASE WHEN jitter
                   THEN (hashtext(id || '/' || try) & 65535)::float8 / 65536
                   ELSE 1 END)
    END
$$;

-- The earliest time a task of these actions becomes runnable by the clock: a delayed task's
-- run_after, or the earliest ownership deadline plus its expiry backoff (an expired
-- ownership is offered again then, or aborted on its last try). NULL when no such task
-- waits. An idle node sleeps until then.
CREATE FUNCTION next_due_time(
    actions VARCHAR ARRAY, backoff_initial interval[], backoff_max interval[],
    backoff_multiplier double precision[], backoff_jitter boolean[])
RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$
    SELECT min(due) FROM (
        SELECT (SELECT p.run_after FROM tasks p
                WHERE p.action = w.name AND p.status_code = 'pending'
                  AND p.run_after IS NOT NULL
                ORDER BY p.run_after LIMIT 1) AS due
        FROM unnest(actions) AS w(name)
        UNION ALL
        SELECT (SELECT e.action_deadline + expiry_backoff(
                           e.id, e.num_tries, b.initial, b.max, b.multiplier, b.jitter)
                FROM tasks e
                WHERE e.status_code = 'in-progress' AND e.action = b.name
                ORDER BY e.action_deadline LIMIT 1)
        FROM unnest(actions, backoff_initial, backoff_max, backoff_multiplier, backoff_jitter)
             AS b(name, initial, max, multiplier, jitter)
    ) d
$$;



-- Owning, as own_tasks in 0005, and besides: due delayed tasks are made runnable first, only
-- due tasks are offered, an expired ownership waits out its action's expiry backoff, and the
-- result carries the try number.
CREATE FUNCTION own_tasks_with_backoff(
    max_tasks integer, actions character varying[], owner_id character varying,
    max_duration interval, backoff_initial interval[], backoff_max interval[],
    backoff_multiplier double precision[], backoff_jitter boolean[])
RETURNS TABLE(task_id character varying, token uuid, num_failures integer,
              action character varying, body text, num_tries integer)
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
        LIMIT max_tasks
        FOR UPDATE SKIP LOCKED))
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body, t.num_tries;
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
    RETURNING t.id, t.performance_token, t.num_failures, t.action, t.body, t.num_tries;
END;
$$;

-- The seed's own_tasks: the same owning without backoff, with the seed's result columns.
CREATE OR REPLACE FUNCTION own_tasks(max_tasks integer, actions character varying[], owner_id character varying, max_duration interval) RETURNS TABLE(task_id character varying, token uuid, num_failures integer, action character varying, body text)
    LANGUAGE sql
    AS $$
    SELECT o.task_id, o.token, o.num_failures, o.action, o.body
    FROM own_tasks_with_backoff(max_tasks, actions, owner_id, max_duration,
                                '{}', '{}', '{}', '{}') o
$$;

-- Returning, as return_tasks in 0008, with a retry delay per row: a task that goes back to
-- pending for another try is offered again only after its delay.
CREATE FUNCTION return_tasks_with_delay(
    task_ids character varying[], tokens uuid[], result_statuses text[],
    result_status_codes task_status_code_value[], retry_delays interval[])
RETURNS TABLE(task_id character varying, num_updated integer)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    bad task_status_code_value;
    ended RECORD;
    returned BIGINT ARRAY := '{}';
    successors VARCHAR ARRAY := '{}';
    failures BOOLEAN ARRAY := '{}';
    unique_successors VARCHAR ARRAY;
BEGIN
    SELECT c.code INTO bad FROM unnest(result_status_codes) AS c(code)
    WHERE c.code NOT IN ('pending', 'aborted', 'completed') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot return a task with status code %', bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR ended IN
        WITH r AS (
            -- The first row of each (id, token): at most one token matches a task, so
            -- each task joins at most one row, the first with its token.
            SELECT DISTINCT ON (u.id, u.token) u.id, u.token, u.status, u.code, u.delay, u.n
            FROM unnest(task_ids, tokens, result_statuses, result_status_codes, retry_delays)
                 WITH ORDINALITY AS u(id, token, status, code, delay, n)
            ORDER BY u.id, u.token, u.n
        )
        UPDATE tasks t
        SET status = r.status,
            status_code = CASE WHEN r.code = 'pending' AND no_more_tries(t)
                               THEN 'aborted' ELSE r.code END,
            actor_id = NULL,
            performance_token = NULL,
            finished_at = CASE WHEN r.code = 'pending' AND NOT no_more_tries(t)
                               THEN NULL ELSE now() END,
            -- Another try waits out its delay (NULL: offered again at once).
            run_after = CASE WHEN r.code = 'pending' AND NOT no_more_tries(t)
                             THEN now() + r.delay END
        FROM r
        -- The ANY keeps the plan on tasks_pkey probes at every table size (see 0003).
        WHERE t.id = ANY(task_ids) AND t.id = r.id AND t.performance_token = r.token
        RETURNING r.n, t.id, t.status_code, t.notify_channel_after, t.to_signal_after
    LOOP
        returned := returned || ended.n;
        IF ended.status_code <> 'pending' THEN
            IF cardinality(ended.to_signal_after) > 0 THEN
                -- Each successor once per predecessor, as signal_successors does.
                unique_successors := ARRAY(SELECT DISTINCT unnest(ended.to_signal_after));
                successors := successors || unique_successors;
                failures := failures || array_fill(ended.status_code = 'aborted',
                                                   ARRAY[cardinality(unique_successors)]);
            END IF;
            PERFORM notify_task_ended(ended.notify_channel_after, ended.id);
        END IF;
    END LOOP;

    IF cardinality(successors) > 0 THEN
        -- Lock in id order, so batches of several nodes signalling shared successors
        -- cannot deadlock each other.
        PERFORM 1 FROM tasks WHERE id = ANY(successors) ORDER BY id FOR UPDATE;
        UPDATE tasks t
        SET num_signals = t.num_signals + s.signals,
            num_failures = t.num_failures + s.failed
        FROM (
            SELECT u.id, count(*)::INTEGER AS signals,
                   (count(*) FILTER (WHERE u.failed))::INTEGER AS failed
            FROM unnest(successors, failures) AS u(id, failed)
            GROUP BY u.id
        ) s
        WHERE t.id = ANY(successors) AND t.id = s.id;
        PERFORM pg_notify('parade_tasks', '');
    END IF;

    RETURN QUERY
    SELECT u.id, CASE WHEN r.n IS NULL THEN 0 ELSE 1 END
    FROM unnest(task_ids) WITH ORDINALITY AS u(id, n)
    LEFT JOIN unnest(returned) AS r(n) ON r.n = u.n
    ORDER BY u.n;
END;
$$;

-- Parade's return_tasks of 0004: the same returns without delays.
CREATE OR REPLACE FUNCTION return_tasks(task_ids character varying[], tokens uuid[], result_statuses text[], result_status_codes public.task_status_code_value[]) RETURNS TABLE(task_id character varying, num_updated integer)
    LANGUAGE sql
    AS $$
    SELECT r.task_id, r.num_updated
    FROM return_tasks_with_delay(task_ids, tokens, result_statuses, result_status_codes,
                                 array_fill(NULL::interval, ARRAY[cardinality(task_ids)])) r
$$;
