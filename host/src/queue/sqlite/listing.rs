//! Listing tasks a page at a time, and the reads of the task graph's walk, on SQLite.
//!
//! As on PostgreSQL (`postgres/listing.rs`), a listing is one statement built from the
//! filter's set fields. Insertion order is the rowid, the table's own key: a page walks the
//! table itself from its cursor and stops at the page size, and needs no index of its own
//! ([`access_path`]). A filter on the failed tasks reads `tasks_aborted_idx` instead. A
//! task's predecessors (the `predecessors_of` filter, and the graph's walk upwards) come from
//! `task_predecessors`, the pairs that triggers keep from each `to_signal_after` (migration
//! 0006).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{db_error, json_ids, now_micros, task_from_row, SqliteParade, TASK_COLUMNS};
use crate::queue::graph::GraphRows;
use crate::queue::sql::status_literal;
use crate::queue::{
    Error, ListedTask, Result, TaskCursor, TaskData, TaskFilter, TaskId, TaskPage, TaskState,
    TaskStatusCode,
};

/// The columns of [`TASK_COLUMNS`] with `body` and `status` left out (NULL), for the graph:
/// [`task_from_row`] reads them alike.
const GRAPH_COLUMNS: &str = "id, action, NULL, NULL, status_code, num_tries, num_failures, \
     max_tries, num_signals, total_dependencies, actor_id, action_deadline, performance_token, \
     to_signal_after, notify_channel_after, priority, run_after";

/// The condition of `state` on a row, `now` in microseconds since the Unix epoch.
fn push_state(q: &mut QueryBuilder<'static, Sqlite>, state: TaskState, now: i64) {
    const DEPENDENCIES_MET: &str =
        "status_code = 'pending' AND (total_dependencies IS NULL OR num_signals = total_dependencies)";
    match state {
        TaskState::Pending => {
            q.push(DEPENDENCIES_MET)
                .push(" AND (run_after IS NULL OR run_after <= ")
                .push_bind(now)
                .push(")");
        }
        TaskState::Delayed => {
            q.push(DEPENDENCIES_MET)
                .push(" AND run_after > ")
                .push_bind(now);
        }
        TaskState::Waiting => {
            q.push(
                "status_code = 'pending' \
                 AND total_dependencies IS NOT NULL AND num_signals <> total_dependencies",
            );
        }
        TaskState::InProgress => {
            q.push("status_code = 'in-progress'");
        }
        TaskState::Completed => {
            q.push("status_code = 'completed'");
        }
        TaskState::Aborted => {
            q.push("status_code = 'aborted'");
        }
    }
}

/// How a listing reads the table. With statistics of a big table, SQLite's planner prefers
/// a partial index that the filter implies (`tasks_delayed_idx` for delayed tasks, say) and
/// then sorts every match by rowid, which at 1,000,000 tasks takes hundreds of milliseconds
/// for a page it could read in the first few hundred rows. So a listing walks the table in
/// rowid order itself (NOT INDEXED), except for one task by id (its primary key), for tasks
/// in progress (few, bounded by the workers: the planner reads and sorts the index of owned
/// tasks), and for failed tasks, whose index is in rowid order too (`tasks_aborted_idx` on
/// the constant status_code) and holds nothing else. A task's predecessors are looked up by
/// rowid (which NOT INDEXED leaves open) from `task_predecessors`, whatever else the filter
/// says.
fn access_path(filter: &TaskFilter) -> &'static str {
    let is = |code: TaskStatusCode| {
        filter.status_code == Some(code) || filter.state.map(TaskState::status_code) == Some(code)
    };
    if filter.predecessors_of.is_some() {
        "NOT INDEXED"
    } else if filter.id.is_some() || is(TaskStatusCode::InProgress) {
        ""
    } else if is(TaskStatusCode::Aborted) {
        "INDEXED BY tasks_aborted_idx"
    } else {
        "NOT INDEXED"
    }
}

/// The listing of `filter`, reading one row past its limit when `peek` (to tell whether
/// another page follows).
fn listing(filter: &TaskFilter, peek: bool) -> QueryBuilder<'static, Sqlite> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {TASK_COLUMNS}, rowid, created_at, finished_at FROM tasks {} WHERE 1 {}",
        access_path(filter),
        status_literal(filter)
    ));
    if let Some(state) = filter.state {
        q.push(" AND ");
        push_state(&mut q, state, now_micros());
    }
    if let Some(action) = &filter.action {
        q.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(id) = &filter.id {
        q.push(" AND id = ").push_bind(id.as_str().to_owned());
    }
    if let Some(prefix) = &filter.id_prefix {
        q.push(" AND substr(id, 1, ")
            .push_bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
            .push(") = ")
            .push_bind(prefix.clone());
    }
    if let Some(from) = filter.enqueued_from {
        q.push(" AND created_at >= ")
            .push_bind(from.timestamp_micros());
    }
    if let Some(before) = filter.enqueued_before {
        q.push(" AND created_at < ")
            .push_bind(before.timestamp_micros());
    }
    if let Some(after) = filter.after {
        q.push(if filter.newest_first {
            " AND rowid < "
        } else {
            " AND rowid > "
        })
        .push_bind(after.0);
    }
    if let Some(successor) = &filter.predecessors_of {
        // The pairs of task_predecessors (its primary key, then tasks' by id) name the
        // candidates; each is checked against its to_signal_after, which an INSERT OR
        // REPLACE may have changed without the delete trigger (migration 0006).
        let successor = successor.as_str().to_owned();
        q.push(
            " AND rowid IN (SELECT t.rowid FROM task_predecessors p \
               JOIN tasks t ON t.id = p.predecessor_id WHERE p.successor_id = ",
        )
        .push_bind(successor.clone())
        .push(") AND EXISTS (SELECT 1 FROM json_each(tasks.to_signal_after) WHERE value = ")
        .push_bind(successor)
        .push(")");
    }
    q.push(if filter.newest_first {
        " ORDER BY rowid DESC"
    } else {
        " ORDER BY rowid"
    });
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ")
            .push_bind(i64::from(limit) + i64::from(peek));
    }
    q
}

fn listed_from_row(row: &SqliteRow) -> Result<ListedTask> {
    let task = task_from_row(row)?;
    let time = |micros: i64, what: &str| {
        DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| Error::InvalidTask {
            task_id: task.id.clone(),
            problem: format!("stored {what} is unreadable"),
        })
    };
    let enqueued_at = time(row.try_get(18)?, "created_at")?;
    let finished_at = row
        .try_get::<Option<i64>, _>(19)?
        .map(|us| time(us, "finished_at"))
        .transpose()?;
    Ok(ListedTask {
        cursor: TaskCursor(row.try_get(17)?),
        enqueued_at,
        finished_at,
        task,
    })
}

impl SqliteParade {
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
impl GraphRows for SqliteParade {
    async fn rows_by_id(&self, ids: &[TaskId]) -> Result<Vec<TaskData>> {
        // The primary key's index, one probe per id.
        let rows = sqlx::query(&format!(
            "SELECT {GRAPH_COLUMNS} FROM tasks WHERE id IN (SELECT value FROM json_each(?1))"
        ))
        .bind(json_ids(ids.iter().map(TaskId::as_str)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn predecessor_rows(&self, ids: &[TaskId], limit: u32) -> Result<Vec<TaskData>> {
        // task_predecessors' primary key names the candidates, tasks' primary key finds
        // them (each once, however many of `ids` it signals); each is checked against its
        // to_signal_after, as in the `predecessors_of` listing.
        let rows = sqlx::query(&format!(
            "SELECT {GRAPH_COLUMNS} FROM tasks \
             WHERE id IN (SELECT p.predecessor_id FROM task_predecessors p \
                          WHERE p.successor_id IN (SELECT value FROM json_each(?1))) \
               AND EXISTS (SELECT 1 FROM json_each(tasks.to_signal_after) s \
                           WHERE s.value IN (SELECT value FROM json_each(?1))) \
             LIMIT ?2"
        ))
        .bind(json_ids(ids.iter().map(TaskId::as_str)))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }
}
