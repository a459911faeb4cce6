//! Listing tasks a page at a time, and the reads of the task graph's walk, on PostgreSQL.
//!
//! A listing is one statement built from the filter's set fields only, so the planner sees
//! each combination as it is (no `$1 IS NULL OR ...` that a cached plan cannot see through).
//! It reads in insertion order (`seq`, which has no index of its own: one would cost every
//! insert, own and return an entry, BENCHMARKS.md "The task browser"), so the planner scans
//! and sorts unless a partial index serves the filter; a filter on the status of the failed
//! tasks reads `tasks_aborted_seq_idx`. A task's predecessors (the `predecessors_of` filter,
//! and the graph's walk upwards) come from `tasks_to_signal_after_idx`, the GIN index of the
//! tasks that signal a successor (migration 0014).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{db_error, task_from_row, PgParade, TASK_COLUMNS};
use crate::queue::graph::GraphRows;
use crate::queue::sql::status_literal;
use crate::queue::{
    ListedTask, Result, TaskCursor, TaskData, TaskFilter, TaskId, TaskPage, TaskState,
};

/// The columns of [`TASK_COLUMNS`] with `body` and `status` left out (NULL), for the graph:
/// [`task_from_row`] reads them alike.
const GRAPH_COLUMNS: &str = "id::text, action::text, NULL::text, NULL::text, status_code::text, \
     num_tries, num_failures, max_tries, num_signals, total_dependencies, actor_id::text, \
     action_deadline, performance_token, to_signal_after::text[], notify_channel_after::text, \
     priority, run_after";

/// The condition of `state` on a row, with the store's clock. Fixed text, never user input.
fn state_condition(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => {
            "status_code = 'pending' \
             AND (total_dependencies IS NULL OR num_signals = total_dependencies) \
             AND (run_after IS NULL OR run_after <= now())"
        }
        TaskState::Delayed => {
            "status_code = 'pending' \
             AND (total_dependencies IS NULL OR num_signals = total_dependencies) \
             AND run_after > now()"
        }
        TaskState::Waiting => {
            "status_code = 'pending' \
             AND total_dependencies IS NOT NULL AND num_signals <> total_dependencies"
        }
        TaskState::InProgress => "status_code = 'in-progress'",
        TaskState::Completed => "status_code = 'completed'",
        TaskState::Aborted => "status_code = 'aborted'",
    }
}

/// The listing of `filter`, reading one row past its limit when `peek` (to tell whether
/// another page follows).
///
/// A listing with a limit picks its rows by their address first (`ctid = ANY(ARRAY(SELECT
/// ctid ... LIMIT n))`) and reads their columns after: a scan's top-N sort then keeps
/// `(seq, ctid)` pairs, not whole rows (bodies included), which made the newest page of
/// 1,000,000 tasks without an index on `seq` 2.7 times as fast (BENCHMARKS.md "The task
/// browser"). Both parts run in the statement's one snapshot, so the addresses are those of
/// the row versions the outer read sees.
fn listing(filter: &TaskFilter, peek: bool) -> QueryBuilder<'static, Postgres> {
    let order = if filter.newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    };
    let by_address = if filter.limit.is_some() {
        "ctid = ANY(ARRAY(SELECT ctid FROM tasks WHERE "
    } else {
        ""
    };
    let mut q = QueryBuilder::new(format!(
        "SELECT {TASK_COLUMNS}, seq, created_at, finished_at FROM tasks WHERE {by_address}true {}",
        status_literal(filter)
    ));
    if let Some(state) = filter.state {
        q.push(" AND ").push(state_condition(state));
    }
    if let Some(action) = &filter.action {
        q.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(id) = &filter.id {
        q.push(" AND id = ").push_bind(id.as_str().to_owned());
    }
    if let Some(prefix) = &filter.id_prefix {
        q.push(" AND starts_with(id, ")
            .push_bind(prefix.clone())
            .push(")");
    }
    if let Some(from) = filter.enqueued_from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(before) = filter.enqueued_before {
        q.push(" AND created_at < ").push_bind(before);
    }
    if let Some(after) = filter.after {
        q.push(if filter.newest_first {
            " AND seq < "
        } else {
            " AND seq > "
        })
        .push_bind(after.0);
    }
    if let Some(successor) = &filter.predecessors_of {
        // `@>` of the column's own type, varchar[], so tasks_to_signal_after_idx serves it
        // (`$1 = ANY(...)` cannot use an index; a text[] operand would cast the column).
        q.push(" AND to_signal_after @> ARRAY[")
            .push_bind(successor.as_str().to_owned())
            .push("::varchar]");
    }
    q.push(order);
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ")
            .push_bind(i64::from(limit) + i64::from(peek))
            .push("))")
            .push(order);
    }
    q
}

fn listed_from_row(row: &PgRow) -> Result<ListedTask> {
    Ok(ListedTask {
        task: task_from_row(row)?,
        cursor: TaskCursor(row.try_get(17)?),
        enqueued_at: row.try_get::<DateTime<Utc>, _>(18)?,
        finished_at: row.try_get(19)?,
    })
}

impl PgParade {
    pub(super) async fn list(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        let rows = listing(filter, false)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn list_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        let rows = listing(filter, true)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let tasks = rows
            .iter()
            .map(listed_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(TaskPage::cut(tasks, filter.limit))
    }
}

#[async_trait]
impl GraphRows for PgParade {
    async fn rows_by_id(&self, ids: &[TaskId]) -> Result<Vec<TaskData>> {
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        // tasks_pkey, one probe per id.
        let rows = sqlx::query(&format!(
            "SELECT {GRAPH_COLUMNS} FROM tasks WHERE id = ANY($1::varchar[])"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn predecessor_rows(&self, ids: &[TaskId], limit: u32) -> Result<Vec<TaskData>> {
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        // tasks_to_signal_after_idx (GIN, partial: the strict `&&` proves its predicate),
        // one probe per id; the operand is varchar[] as the column is, or it would not apply.
        let rows = sqlx::query(&format!(
            "SELECT {GRAPH_COLUMNS} FROM tasks WHERE to_signal_after && $1::varchar[] \
             LIMIT $2"
        ))
        .bind(&ids)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }
}
