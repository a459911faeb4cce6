//! What the two SQL backends share: statements both dialects accept, and the decoding of
//! their rows into the queue's types. Each backend runs them on its own pool; the rules they
//! serve are in [`rules`](super::rules).

use std::collections::HashMap;

use super::{
    ActorId, Error, OwnerCount, QueueSummary, Result, TaskCount, TaskData, TaskFilter, TaskId,
    TaskOutcome,
};

/// Answers iff the store is reachable and holds the queue's schema (the `tasks` table).
const PING: &str = "SELECT 1 FROM tasks LIMIT 0";

/// Task counts by action and status code: rows of (action, status code, count).
const SUMMARY_COUNTS: &str =
    "SELECT CAST(action AS TEXT), CAST(status_code AS TEXT), count(*) FROM tasks \
     GROUP BY action, status_code ORDER BY action, status_code";

/// Tasks in progress by owner, most first: rows of (actor id, count).
const SUMMARY_OWNERS: &str = "SELECT CAST(actor_id AS TEXT), count(*) FROM tasks \
     WHERE status_code = 'in-progress' AND actor_id IS NOT NULL \
     GROUP BY actor_id ORDER BY count(*) DESC, actor_id";

/// The queue's [`QueueSummary`] on either backend's pool; `db_error` maps the backend's
/// failures as its other operations do.
pub(super) async fn summary<DB>(
    pool: &sqlx::Pool<DB>,
    db_error: fn(sqlx::Error) -> Error,
) -> Result<QueueSummary>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let counts = sqlx::query_as::<DB, (String, String, i64)>(SUMMARY_COUNTS)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let owners = sqlx::query_as::<DB, (String, i64)>(SUMMARY_OWNERS)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    summary_from_rows(counts, owners)
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

/// A [`QueueSummary`] from the rows of [`SUMMARY_COUNTS`] and [`SUMMARY_OWNERS`].
fn summary_from_rows(
    counts: Vec<(String, String, i64)>,
    owners: Vec<(String, i64)>,
) -> Result<QueueSummary> {
    let counts = counts
        .into_iter()
        .map(|(action, code, count)| {
            Ok(TaskCount {
                action,
                status_code: code.parse()?,
                count: u64::try_from(count).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let owners = owners
        .into_iter()
        .map(|(actor_id, count)| OwnerCount {
            actor_id: ActorId(actor_id),
            in_progress: u64::try_from(count).unwrap_or(0),
        })
        .collect();
    Ok(QueueSummary { counts, owners })
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
