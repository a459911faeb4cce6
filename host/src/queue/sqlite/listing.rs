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
///
/// An id prefix that few tasks match (`sparse_prefix`, counted beforehand by
/// `SqliteParade::sparse_prefix`) is read from the primary key's range instead, and its matches sorted: walking
/// the table would pass every newer task first (80 ms at 1,000,000 tasks for a prefix of a
/// few tasks, BENCHMARKS.md "The task browser"). A prefix that many match is walked, as
/// a prefixed store's own id prefix is.
fn access_path(filter: &TaskFilter, sparse_prefix: bool) -> &'static str {
    let is = |code: TaskStatusCode| {
        filter.status_code == Some(code) || filter.state.map(TaskState::status_code) == Some(code)
    };
    if filter.predecessors_of.is_some() {
        "NOT INDEXED"
    } else if filter.id.is_some() {
        ""
    } else if sparse_prefix {
        "INDEXED BY sqlite_autoindex_tasks_1"
    } else if is(TaskStatusCode::InProgress) {
        ""
    } else if is(TaskStatusCode::Aborted) {
        "INDEXED BY tasks_aborted_idx"
    } else {
        "NOT INDEXED"
    }
}

/// The listing of `filter`, reading one row past its limit when `peek` (to tell whether
/// another page follows).
fn listing(filter: &TaskFilter, peek: bool, sparse_prefix: bool) -> QueryBuilder<'static, Sqlite> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {TASK_COLUMNS}, rowid, created_at, finished_at FROM tasks {} WHERE 1 {}",
        access_path(filter, sparse_prefix),
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
        // Exactly the ids that start with it, and what the primary key can serve.
        push_id_range(&mut q, prefix);
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

/// The range of the primary key that holds exactly the ids starting with `prefix`: `id >=
/// prefix` and, unless no string is past them all, `id <` the least string past them (SQLite
/// compares TEXT bytewise, and UTF-8's byte order is its code points' order).
fn push_id_range(q: &mut QueryBuilder<'static, Sqlite>, prefix: &str) {
    q.push(" AND id >= ").push_bind(prefix.to_owned());
    if let Some(past) = past_prefix(prefix) {
        q.push(" AND id < ").push_bind(past);
    }
}

/// The least string greater than every string starting with `prefix`: its last character
/// that is not the greatest one, raised by one, with what follows dropped. `None` when every
/// character is the greatest (or there is none): no string is past them all.
fn past_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, over the surrogates, which are no chars.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Below this many matches an id prefix is read from the primary key's range and sorted;
/// from it on the table is walked, where the matches are at least this dense on average.
const SPARSE_PREFIX_MATCHES: i64 = 2_000;

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
    /// Whether fewer than [`SPARSE_PREFIX_MATCHES`] ids start with the filter's prefix,
    /// counted in the primary key alone. Asked only where the prefix would choose the path.
    async fn sparse_prefix(&self, filter: &TaskFilter) -> Result<bool> {
        let Some(prefix) = &filter.id_prefix else {
            return Ok(false);
        };
        if filter.id.is_some() || filter.predecessors_of.is_some() {
            return Ok(false);
        }
        let mut q = QueryBuilder::new(
            "SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY sqlite_autoindex_tasks_1 \
             WHERE 1",
        );
        push_id_range(&mut q, prefix);
        q.push(" LIMIT ").push_bind(SPARSE_PREFIX_MATCHES).push(")");
        let matches: i64 = q
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(matches < SPARSE_PREFIX_MATCHES)
    }

    pub(super) async fn list(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        let sparse = self.sparse_prefix(filter).await?;
        let rows = listing(filter, false, sparse)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn list_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        let sparse = self.sparse_prefix(filter).await?;
        let rows = listing(filter, true, sparse)
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

#[cfg(test)]
mod tests {
    use super::past_prefix;

    #[test]
    fn past_prefix_is_the_least_string_after_every_extension() {
        assert_eq!(past_prefix("ab").as_deref(), Some("ac"));
        assert_eq!(past_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(past_prefix("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(past_prefix("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(past_prefix(""), None);
    }
}
