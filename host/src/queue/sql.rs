//! What the two SQL backends share: statements both dialects accept, and the decoding of
//! their rows into the queue's types. Each backend runs them on its own pool; the rules they
//! serve are in [`rules`](super::rules).

use std::collections::HashMap;

use super::{
    ActionAttention, ActorId, Error, FinishedMinute, OwnerCount, QueueSummary, Result, TaskCount,
    TaskData, TaskFilter, TaskId, TaskOutcome,
};

/// Answers iff the store is reachable and holds the queue's schema (the `tasks` table).
const PING: &str = "SELECT 1 FROM tasks LIMIT 0";

/// Task counts by action and status code, with `$now` the dialect's current time as the
/// column holds it: rows of (action, status code, count, runnable, past deadline, within
/// limit), the last three counting, within their group, pending tasks that can be owned now
/// (the conditions of `tasks_runnable_idx`, or a delay that has passed), tasks in progress
/// whose deadline has passed, and the unexpired ownerships a concurrency limit counts
/// (marked `counts_toward_limit`, as `own_tasks_limited` counts them). One scan, as the
/// plain counts took before.
macro_rules! summary_counts {
    ($now:expr) => {
        concat!(
            "SELECT CAST(action AS TEXT), CAST(status_code AS TEXT), count(*), \
               sum(CASE WHEN status_code = 'pending' \
                         AND (run_after IS NULL OR run_after <= ",
            $now,
            ") \
                         AND (total_dependencies IS NULL OR num_signals = total_dependencies) \
                         AND (max_tries IS NULL OR num_tries < max_tries) \
                        THEN 1 ELSE 0 END), \
               sum(CASE WHEN status_code = 'in-progress' AND action_deadline < ",
            $now,
            " \
                        THEN 1 ELSE 0 END), \
               sum(CASE WHEN status_code = 'in-progress' AND counts_toward_limit \
                         AND (action_deadline IS NULL OR action_deadline >= ",
            $now,
            ") \
                        THEN 1 ELSE 0 END) \
             FROM tasks GROUP BY action, status_code ORDER BY action, status_code"
        )
    };
}

/// [`summary_counts!`] on PostgreSQL.
pub(super) const SUMMARY_COUNTS_POSTGRES: &str = summary_counts!("now()");

/// [`summary_counts!`] on SQLite, whose times are microseconds since the Unix epoch.
pub(super) const SUMMARY_COUNTS_SQLITE: &str =
    summary_counts!("CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)");

/// A row of [`SUMMARY_COUNTS_POSTGRES`] or [`SUMMARY_COUNTS_SQLITE`].
type CountRow = (String, String, i64, i64, i64, i64);

/// Tasks in progress by owner, most first: rows of (actor id, count).
const SUMMARY_OWNERS: &str = "SELECT CAST(actor_id AS TEXT), count(*) FROM tasks \
     WHERE status_code = 'in-progress' AND actor_id IS NOT NULL \
     GROUP BY actor_id ORDER BY count(*) DESC, actor_id";

/// The queue's [`QueueSummary`] on either backend's pool, its counts by `counts` (the
/// backend's [`summary_counts!`]); `db_error` maps the backend's failures as its other
/// operations do.
pub(super) async fn summary<DB>(
    pool: &sqlx::Pool<DB>,
    counts: &'static str,
    db_error: fn(sqlx::Error) -> Error,
) -> Result<QueueSummary>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    CountRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let counts = sqlx::query_as::<DB, CountRow>(counts)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let owners = sqlx::query_as::<DB, (String, i64)>(SUMMARY_OWNERS)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    summary_from_rows(counts, owners)
}

/// Finished tasks by minute since `$1` (microseconds since the Unix epoch), with `$minute`
/// the dialect's start of the row's minute and `$since` its bound, both in microseconds:
/// rows of (minute, action, status code, count).
macro_rules! finished_by_minute {
    ($minute:expr, $since:expr) => {
        concat!(
            "SELECT ",
            $minute,
            " AS minute, CAST(action AS TEXT), CAST(status_code AS TEXT), \
               count(*) \
             FROM tasks WHERE status_code IN ('completed', 'aborted') \
               AND finished_at >= ",
            $since,
            " \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
    };
}

/// [`finished_by_minute!`] on PostgreSQL.
pub(super) const FINISHED_BY_MINUTE_POSTGRES: &str = finished_by_minute!(
    "CAST(extract(epoch FROM date_trunc('minute', finished_at)) * 1000000 AS BIGINT)",
    "to_timestamp($1 / 1000000.0)"
);

/// [`finished_by_minute!`] on SQLite, whose times are microseconds since the Unix epoch.
pub(super) const FINISHED_BY_MINUTE_SQLITE: &str =
    finished_by_minute!("(finished_at / 60000000) * 60000000", "$1");

/// [`Parade::finished_by_minute`](super::Parade::finished_by_minute) on either backend's
/// pool, by its [`finished_by_minute!`] statement.
pub(super) async fn finished_by_minute<DB>(
    pool: &sqlx::Pool<DB>,
    statement: &'static str,
    since: chrono::DateTime<chrono::Utc>,
    db_error: fn(sqlx::Error) -> Error,
) -> Result<Vec<FinishedMinute>>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, (i64, String, String, i64)>(statement)
        .bind(since.timestamp_micros())
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.into_iter()
        .map(|(minute, action, code, count)| {
            Ok(FinishedMinute {
                minute: chrono::DateTime::from_timestamp_micros(minute).unwrap_or_default(),
                action,
                status_code: code.parse()?,
                count: u64::try_from(count).unwrap_or(0),
            })
        })
        .collect()
}

/// [`Parade::ping`](super::Parade::ping) on either backend's pool.
pub(super) async fn ping<DB>(
    pool: &sqlx::Pool<DB>,
    db_error: fn(sqlx::Error) -> Error,
) -> Result<()>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query::<DB>(PING)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A [`QueueSummary`] from the rows of [`summary_counts!`] and [`SUMMARY_OWNERS`].
fn summary_from_rows(rows: Vec<CountRow>, owners: Vec<(String, i64)>) -> Result<QueueSummary> {
    let mut counts = Vec::with_capacity(rows.len());
    let mut attention: Vec<ActionAttention> = Vec::new();
    for (action, code, count, runnable, past_deadline, within_limit) in rows {
        let [runnable, past_deadline, within_limit] =
            [runnable, past_deadline, within_limit].map(|n| u64::try_from(n).unwrap_or(0));
        if runnable > 0 || past_deadline > 0 || within_limit > 0 {
            // Rows come ordered by action: its entry, if any, is the last one.
            match attention.last_mut() {
                Some(last) if last.action == action => {
                    last.runnable += runnable;
                    last.past_deadline += past_deadline;
                    last.within_limit += within_limit;
                }
                _ => attention.push(ActionAttention {
                    action: action.clone(),
                    runnable,
                    past_deadline,
                    within_limit,
                }),
            }
        }
        counts.push(TaskCount {
            action,
            status_code: code.parse()?,
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    let owners = owners
        .into_iter()
        .map(|(actor_id, count)| OwnerCount {
            actor_id: ActorId(actor_id),
            in_progress: u64::try_from(count).unwrap_or(0),
        })
        .collect();
    Ok(QueueSummary {
        counts,
        owners,
        attention,
    })
}

/// Task outcomes by id, from rows of (id, status, status code).
pub(super) fn outcomes_from_rows(
    rows: Vec<(String, String, String)>,
) -> Result<HashMap<String, TaskOutcome>> {
    rows.into_iter()
        .map(|(id, status, code)| {
            Ok((
                id,
                TaskOutcome {
                    status,
                    status_code: code.parse()?,
                },
            ))
        })
        .collect()
}

/// The status filter of `filter` spelled as a literal in `list_tasks`' SQL (beside the bound
/// parameter, which a prepared plan cannot see through): only then can either planner use
/// the index of failed tasks (`tasks_aborted_seq_idx`, `tasks_aborted_idx`) for the
/// dashboard's recent failures. The status is one of four fixed words, never user text.
pub(super) fn status_literal(filter: &TaskFilter) -> String {
    filter
        .status_code
        .map(|code| format!("AND status_code = '{}'", code.as_str()))
        .unwrap_or_default()
}

/// The ids an insert-if-absent stored (`stored`, in whatever order the database returned
/// them), in the order of the batch `tasks`.
pub(super) fn in_batch_order(tasks: &[TaskData], stored: Vec<String>) -> Vec<TaskId> {
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    tasks
        .iter()
        .filter(|t| stored.contains(t.id.as_str()))
        .map(|t| t.id.clone())
        .collect()
}
