-- A task's NOTIFY can no longer fail the statement that ends it.
--
-- pg_notify raises for an empty channel, a channel of 64 bytes or more (longer than an
-- identifier) and a payload (the task id) of 8,000 bytes or more. A task with such a
-- notify_channel_after made every return batch holding it fail as a whole, and once its
-- last try expired, abort_expired_tasks (which every own_tasks call runs) raised on every
-- node, so one task stopped owning for the whole store. Parade's insert_tasks refuses such
-- tasks, but plain SQL inserts and seed-era clients can still store them.
--
-- Every task notification now goes through notify_task_ended, which skips what pg_notify
-- would refuse: such a task ends as any other, its waiters (who could not LISTEN on such a
-- channel either) find out by re-reading. The check costs a comparison; a savepoint around
-- pg_notify would cost a subtransaction per ended task.
CREATE FUNCTION notify_task_ended(channel VARCHAR, task_id VARCHAR) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF channel <> '' AND octet_length(channel) < 64 AND octet_length(task_id) < 8000 THEN
        PERFORM pg_notify(channel, task_id);
    END IF;
END;
$$;

-- The three functions that end tasks, as in 0006 (return_tasks), 0005
-- (abort_expired_tasks) and 0001 (return_task), with their NOTIFY through
-- notify_task_ended.

CREATE OR REPLACE FUNCTION abort_expired_tasks(max_count integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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
        PERFORM notify_task_ended(expired.notify_channel_after, expired.id);
        aborted := aborted + 1;
    END LOOP;
    RETURN aborted;
END;
$$;

CREATE OR REPLACE FUNCTION return_task(task_id character varying, token uuid, result_status text, result_status_code public.task_status_code_value) RETURNS integer
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_variable
DECLARE
    final_code task_status_code_value;
    channel VARCHAR;
    successors VARCHAR ARRAY;
BEGIN
    IF result_status_code NOT IN ('pending', 'aborted', 'completed') THEN
        RAISE EXCEPTION 'cannot return task % with status code %', task_id, result_status_code
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE tasks t
    SET status = result_status,
        status_code = CASE WHEN result_status_code = 'pending' AND no_more_tries(t)
                           THEN 'aborted' ELSE result_status_code END,
        actor_id = NULL,
        performance_token = NULL,
        finished_at = CASE WHEN result_status_code = 'pending' AND NOT no_more_tries(t)
                           THEN NULL ELSE now() END
    WHERE t.id = task_id AND t.performance_token = token
    RETURNING t.status_code, t.notify_channel_after, t.to_signal_after
    INTO final_code, channel, successors;

    IF NOT FOUND THEN
        RETURN 0;
    END IF;

    IF final_code <> 'pending' THEN
        PERFORM signal_successors(successors, final_code = 'aborted');
        PERFORM notify_task_ended(channel, task_id);
    END IF;
    RETURN 1;
END;
$$;

CREATE OR REPLACE FUNCTION return_tasks(task_ids character varying[], tokens uuid[], result_statuses text[], result_status_codes public.task_status_code_value[]) RETURNS TABLE(task_id character varying, num_updated integer)
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
            SELECT DISTINCT ON (u.id, u.token) u.id, u.token, u.status, u.code, u.n
            FROM unnest(task_ids, tokens, result_statuses, result_status_codes)
                 WITH ORDINALITY AS u(id, token, status, code, n)
            ORDER BY u.id, u.token, u.n
        )
        UPDATE tasks t
        SET status = r.status,
            status_code = CASE WHEN r.code = 'pending' AND no_more_tries(t)
                               THEN 'aborted' ELSE r.code END,
            actor_id = NULL,
            performance_token = NULL,
            finished_at = CASE WHEN r.code = 'pending' AND NOT no_more_tries(t)
                               THEN NULL ELSE now() END
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
