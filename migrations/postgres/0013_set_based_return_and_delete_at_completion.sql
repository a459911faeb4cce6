-- The return path, set-based, and completed tasks deleted as they complete (issue #21).
--
-- Profiled on a 100,000-task store (auto_explain with nested statements, ANALYZE, BUFFERS,
-- WAL; a batch of 1,000 completions): 0009's return_tasks_with_delay took 52.7 ms, of which
-- its UPDATE 25.9 ms and the PL/pgSQL loop over the UPDATE's rows most of the rest: per row
-- it appended to three arrays and called notify_task_ended, although no task of the batch
-- had a channel (1,000 calls of a function that does nothing). The UPDATE itself found its
-- rows by a sequential scan of the whole table (12.9 ms; the planner prices 1,000 probes of
-- tasks_pkey above reading the table once) and wrote 3 WAL records and 276 bytes per task.
--
-- Here one statement updates the batch and aggregates what the rest needs: the positions
-- returned, the (channel, id) pairs of ended tasks that have a channel (notify_task_ended is
-- called for those only) and the successors to signal. The function runs with
-- enable_seqscan off, so the batch's rows are found through tasks_pkey at every table size.
--
-- delete_completed (default false, so every caller of the five-argument form, and
-- return_tasks, behave as before): a task returned completed that has no notify channel is
-- deleted instead of updated, after signalling its successors as any completion does. That
-- is `[retention] completed = "0s"`: graphile-worker's model, one row version and no index
-- entries fewer per task. A task with a notify channel is updated as before, so its waiters
-- read its outcome; the node's pruner deletes it later.

DROP FUNCTION return_tasks_with_delay(varchar[], uuid[], text[], task_status_code_value[],
                                      interval[]);

CREATE FUNCTION return_tasks_with_delay(
    task_ids VARCHAR ARRAY, tokens UUID ARRAY, result_statuses TEXT ARRAY,
    result_status_codes task_status_code_value ARRAY, retry_delays INTERVAL ARRAY,
    delete_completed BOOLEAN DEFAULT false
) RETURNS TABLE(task_id VARCHAR, num_updated INTEGER)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    bad task_status_code_value;
    returned BIGINT ARRAY;
    notified_ids VARCHAR ARRAY;
    channels VARCHAR ARRAY;
    successors VARCHAR ARRAY;
    failures BOOLEAN ARRAY;
BEGIN
    SELECT c.code INTO bad FROM unnest(result_status_codes) AS c(code)
    WHERE c.code NOT IN ('pending', 'aborted', 'completed') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot return a task with status code %', bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH r AS (
        -- The first row of each (id, token): at most one token matches a task, so each task
        -- joins at most one row, the first with its token.
        SELECT DISTINCT ON (u.id, u.token) u.id, u.token, u.status, u.code, u.delay, u.n,
               delete_completed AND u.code = 'completed' AS deletes
        FROM unnest(task_ids, tokens, result_statuses, result_status_codes, retry_delays)
             WITH ORDINALITY AS u(id, token, status, code, delay, n)
        ORDER BY u.id, u.token, u.n
    ),
    -- The two statements touch disjoint rows: a row is deleted only if it has no channel,
    -- and updated only if it was not deleted: the rows of r that delete nothing are `kept`,
    -- a set difference (hashed, whatever the estimates), and the update is driven by the
    -- others with a hashed subplan of those. So a batch that deletes every row probes
    -- tasks_pkey once per row, not twice. (An anti-join with the deleted rows instead was
    -- planned as a nested loop from their estimate of one row: 120 ms for 1,000.)
    deleted AS (
        DELETE FROM tasks t
        USING r
        WHERE r.deletes AND t.notify_channel_after IS NULL
          AND t.id = r.id AND t.performance_token = r.token
        RETURNING r.n, t.id, 'completed'::task_status_code_value AS status_code,
                  t.notify_channel_after, t.to_signal_after
    ),
    kept AS (
        SELECT r.n FROM r WHERE r.deletes
        EXCEPT ALL
        SELECT deleted.n FROM deleted
    ),
    updated AS (
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
        WHERE (NOT r.deletes OR r.n IN (SELECT kept.n FROM kept))
          AND t.id = r.id AND t.performance_token = r.token
        RETURNING r.n, t.id, t.status_code, t.notify_channel_after, t.to_signal_after
    ),
    ended AS (
        SELECT * FROM deleted UNION ALL SELECT * FROM updated
    )
    SELECT e.returned, e.notified_ids, e.channels, s.successors, s.failures
    INTO returned, notified_ids, channels, successors, failures
    FROM (
        SELECT array_agg(ended.n) AS returned,
               array_agg(ended.id) FILTER (WHERE ended.status_code <> 'pending'
                                           AND ended.notify_channel_after IS NOT NULL)
                   AS notified_ids,
               array_agg(ended.notify_channel_after)
                   FILTER (WHERE ended.status_code <> 'pending'
                           AND ended.notify_channel_after IS NOT NULL) AS channels
        FROM ended
    ) e, (
        -- Each successor once per predecessor, as signal_successors does.
        SELECT array_agg(p.successor) AS successors, array_agg(p.failed) AS failures
        FROM (
            SELECT DISTINCT ended.n, unnest(ended.to_signal_after) AS successor,
                   ended.status_code = 'aborted' AS failed
            FROM ended
            WHERE ended.status_code <> 'pending' AND cardinality(ended.to_signal_after) > 0
        ) p
    ) s;

    IF cardinality(notified_ids) > 0 THEN
        PERFORM notify_task_ended(x.channel, x.id)
        FROM unnest(channels, notified_ids) AS x(channel, id);
    END IF;

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
    LEFT JOIN unnest(coalesce(returned, '{}')) AS r(n) ON r.n = u.n
    ORDER BY u.n;
END;
$$;
