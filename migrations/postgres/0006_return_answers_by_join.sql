-- return_tasks answered each input row with `u.n = ANY(returned)`, a scan of the array of
-- returned positions per row: quadratic in the batch. The node returns up to 500 results
-- per call since the manager's return_batch grew from 100 to 500, which made that scan a
-- tenth of the function's time: 10,000 returns in batches of 500 took about 10% less with
-- the join below (alternating runs, each position compared: 111-115 ms vs 101-103 ms first,
-- 99-104 ms vs 90-105 ms second). The answer is now a join of the two lists; nothing else
-- changes.

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
    SELECT u.id, CASE WHEN r.n IS NULL THEN 0 ELSE 1 END
    FROM unnest(task_ids) WITH ORDINALITY AS u(id, n)
    LEFT JOIN unnest(returned) AS r(n) ON r.n = u.n
    ORDER BY u.n;
END;
$$;
