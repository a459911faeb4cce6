-- return_tasks called return_task once per task: one UPDATE per task, and for every task that
-- ended one more UPDATE (signal_successors), even with no successors. A batch of 100 returns
-- cost 200 statements, twice what owning the same 100 tasks costs. It now updates the whole
-- batch in one statement and signals every successor of the batch in one more, with the
-- same semantics: per input row, the token check, pending turned aborted when no tries are
-- left, successors signalled once per ended predecessor (with a failure if it aborted),
-- channels notified; one row per input in input order, num_updated 0 where the id and token
-- did not match. An id given more than once is returned by its first row whose token
-- matches, as one return_task call per row in order would (that return clears the token,
-- so later rows find none). return_task itself is unchanged for SQL clients.

CREATE OR REPLACE FUNCTION return_tasks(
    task_ids VARCHAR ARRAY, tokens UUID ARRAY, result_statuses TEXT ARRAY,
    result_status_codes task_status_code_value ARRAY
) RETURNS TABLE(task_id VARCHAR, num_updated INTEGER)
LANGUAGE plpgsql VOLATILE AS $$
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
            IF ended.notify_channel_after IS NOT NULL THEN
                PERFORM pg_notify(ended.notify_channel_after, ended.id);
            END IF;
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
    SELECT u.id, CASE WHEN u.n = ANY(returned) THEN 1 ELSE 0 END
    FROM unnest(task_ids) WITH ORDINALITY AS u(id, n)
    ORDER BY u.n;
END;
$$;
