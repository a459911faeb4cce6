//! The durable task queue: types, the [`Parade`] trait, and its backends.
//!
//! Tasks are rows with an action name, an optional body and a lifecycle
//! (`pending` → `in-progress` → `completed` | `aborted`). Actors *own* batches of runnable
//! tasks for the actions they perform, receive a [`PerformanceToken`] for each, and *return*
//! each task with a status; ownership lapses at a deadline unless extended, and the task is
//! then offered again. Tasks can depend on each other: a task ends by *signalling* the
//! successors listed in its `to_signal_after`, and a task with `total_dependencies` runs
//! once it has received that many signals. Semantics follow the Go package `parade`
//! (see `shared/parade-spec.md`), with the defects listed in the migration fixed on purpose.
//!
//! [`Parade`] is the one interface. [`SqliteParade`] implements it on an embedded SQLite
//! file (the default, one node) and [`PgParade`] on PostgreSQL (several nodes, one database).
//! [`Prefixed`] namespaces any implementation, and [`open`] turns a database URL into a
//! backend, so callers never branch on which one they have.

mod error;
mod hints;
mod postgres;
mod prefix;
mod sqlite;
mod types;
mod waiter;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use error::{Error, Result};
pub use hints::{TaskHintSender, TaskHints};
pub use postgres::PgParade;
pub use prefix::Prefixed;
pub use sqlite::SqliteParade;
pub use types::{
    ActorId, OwnedTask, OwnerCount, PerformanceToken, QueueSummary, TaskCount, TaskData,
    TaskFilter, TaskId, TaskOutcome, TaskReturn, TaskStatusCode,
};
pub use waiter::{Waiter, WaiterHandle};

/// A durable task queue. Every backend offers exactly these semantics; the conformance suite
/// in `tests/conformance` runs against each.
#[async_trait]
pub trait Parade: Send + Sync {
    /// Stores tasks, all or nothing. Fails with [`Error::DuplicateTask`] if an id exists, and
    /// with [`Error::UnknownSuccessor`] if a `to_signal_after` entry names a task found
    /// neither in the batch nor in the store.
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()>;

    /// Owns up to `max_tasks` runnable tasks of `actions` for `actor`, until `max_duration`
    /// from now (forever if `None`). Expired ownerships are offered first, then pending tasks
    /// by priority and insertion order. Concurrent callers receive disjoint tasks.
    async fn own_tasks(
        &self,
        actor: &ActorId,
        max_tasks: u32,
        actions: &[String],
        max_duration: Option<Duration>,
    ) -> Result<Vec<OwnedTask>>;

    /// Resets the deadline of an owned task to `duration` from now.
    /// [`Error::InvalidToken`] if the id and token do not match.
    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()>;

    /// Returns an owned task. `Completed` and `Aborted` end it (signalling successors and
    /// notifying its channel); `Pending` offers it again, or ends it `Aborted` if it has no
    /// tries left. `InProgress` is [`Error::BadStatus`]; a mismatched token is
    /// [`Error::InvalidToken`].
    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()>;

    /// Returns many owned tasks at once, each exactly as [`Parade::return_task`] would, in
    /// as few round trips as the backend allows. One result per input, in order; the call
    /// fails as a whole only if the store could not be reached.
    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(returns.len());
        for r in returns {
            results.push(self.return_task(&r.id, r.token, &r.status, r.code).await);
        }
        Ok(results)
    }

    /// Gives owned tasks back without using up their try: they are pending again at once.
    /// For an actor that shuts down before starting them. Pairs whose token no longer
    /// matches are skipped; returns how many were released.
    async fn release_tasks(&self, tasks: &[(TaskId, PerformanceToken)]) -> Result<u64>;

    /// Wake-ups for idle actors when tasks may have become runnable, if the backend has them
    /// (`None`: poll only). See [`TaskHints`].
    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        Ok(None)
    }

    /// A [`Waiter`] for the end of a task that has a notify channel. Create it before acting
    /// on the task: a task that ends in between is not missed.
    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter>;

    /// Deletes tasks, removing them as dependencies; successors left with every remaining
    /// dependency satisfied are deleted too, recursively. Unknown ids are ignored.
    async fn delete_tasks(&self, ids: &[TaskId]) -> Result<()>;

    /// One task's whole row, if it exists.
    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskData>>;

    /// Tasks matching `filter`, in insertion order.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>>;

    /// Task counts by action and status code, and the actors owning tasks now.
    async fn summary(&self) -> Result<QueueSummary>;

    /// Makes an aborted task pending again with no tries used: an operator's "retry". Refused
    /// for a task that is not aborted, or that signals successors (they were signalled when it
    /// aborted, and would be signalled twice).
    async fn retry_task(&self, id: &TaskId) -> Result<()>;
}

/// The store used when none is configured: `parade.db` in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://parade.db";

/// The backend a database URL names.
enum Scheme {
    Postgres,
    Sqlite,
}

fn scheme(url: &str) -> Result<Scheme> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Scheme::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Scheme::Sqlite)
    } else {
        Err(Error::BadUrl {
            url: url.to_owned(),
            problem: "expected postgres://…, sqlite://PATH or sqlite::memory:".into(),
        })
    }
}

/// Opens the queue at `url`: `postgres://…` (the schema must be migrated: see [`migrate`]),
/// `sqlite://PATH` (created and migrated on first use) or `sqlite::memory:`.
pub async fn open(url: &str) -> Result<Arc<dyn Parade>> {
    open_with(url, None).await
}

/// [`open`], with at most `max_connections` connections (default: 16 for PostgreSQL, 8
/// for a SQLite file).
pub async fn open_with(url: &str, max_connections: Option<u32>) -> Result<Arc<dyn Parade>> {
    Ok(match scheme(url)? {
        Scheme::Postgres => Arc::new(PgParade::connect_with(url, max_connections).await?),
        Scheme::Sqlite => Arc::new(SqliteParade::open_with(url, max_connections).await?),
    })
}

/// Checks that `url` names a kind of store Parade knows, without connecting.
pub fn check_url(url: &str) -> Result<()> {
    scheme(url).map(drop)
}

/// Creates or upgrades the queue schema of the database at `url`.
pub async fn migrate(url: &str) -> Result<()> {
    match scheme(url)? {
        Scheme::Postgres => PgParade::connect(url).await?.migrate().await,
        Scheme::Sqlite => SqliteParade::open(url).await.map(drop),
    }
}

/// Checks a batch before it is stored: counts must not be negative, and each
/// `to_signal_after` entry must name a task of the batch or one of `stored` (the entries not in
/// the batch, as returned by [`successors_outside`], that the store found).
fn check_batch(tasks: &[TaskData], stored: &HashSet<&str>) -> Result<()> {
    let batch: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    for task in tasks {
        // PostgreSQL text cannot hold NUL; refuse it on both backends alike.
        let texts = [
            ("id", Some(task.id.as_str())),
            ("action", Some(task.action.as_str())),
            ("body", task.body.as_deref()),
            ("notify_channel_after", task.notify_channel_after.as_deref()),
        ];
        let successors = task
            .to_signal_after
            .iter()
            .map(|s| ("to_signal_after", Some(s.as_str())));
        if let Some((field, _)) = texts
            .into_iter()
            .chain(successors)
            .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        {
            return Err(Error::InvalidTask {
                task_id: task.id.clone(),
                problem: format!("{field} contains a NUL character, which cannot be stored"),
            });
        }
        for (field, value) in [
            ("num_tries", Some(task.num_tries)),
            ("num_failures", Some(task.num_failures)),
            ("num_signals", Some(task.num_signals)),
            ("max_tries", task.max_tries),
            ("total_dependencies", task.total_dependencies),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(Error::InvalidTask {
                    task_id: task.id.clone(),
                    problem: format!("{field} must not be negative"),
                });
            }
        }
        if let Some(successor) = task
            .to_signal_after
            .iter()
            .find(|s| !batch.contains(s.as_str()) && !stored.contains(s.as_str()))
        {
            return Err(Error::UnknownSuccessor {
                task_id: task.id.clone(),
                successor: successor.clone(),
            });
        }
    }
    Ok(())
}

/// The `to_signal_after` entries of a batch that name no task of the batch itself: the ids a
/// backend must look up before [`check_batch`].
fn successors_outside(tasks: &[TaskData]) -> Vec<String> {
    let batch: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let mut outside: Vec<String> = tasks
        .iter()
        .flat_map(|t| &t.to_signal_after)
        .filter(|s| !batch.contains(s.as_str()))
        .map(|s| s.0.clone())
        .collect();
    outside.sort_unstable();
    outside.dedup();
    outside
}

/// Why `retry_task` found nothing to retry, from the task's stored status and successors.
fn retry_refusal(id: &TaskId, stored: Option<(TaskStatusCode, bool)>) -> Error {
    match stored {
        None => Error::TaskNotFound(id.clone()),
        Some((code, _)) if code != TaskStatusCode::Aborted => Error::InvalidTask {
            task_id: id.clone(),
            problem: format!("it is {code}; only aborted tasks can be retried"),
        },
        Some(_) => Error::InvalidTask {
            task_id: id.clone(),
            problem: "it signals successors, which were signalled when it aborted and would be \
                      signalled twice; insert a new task instead"
                .into(),
        },
    }
}

/// The status filter of `filter` spelled as a literal in `list_tasks`' SQL (beside the bound
/// parameter, which a prepared plan cannot see through): only then can either planner use
/// the index of failed tasks (`tasks_aborted_seq_idx`, `tasks_aborted_idx`) for the
/// dashboard's recent failures. The status is one of four fixed words, never user text.
fn status_literal(filter: &TaskFilter) -> String {
    filter
        .status_code
        .map(|code| format!("AND status_code = '{}'", code.as_str()))
        .unwrap_or_default()
}

/// A task can be returned as pending, aborted or completed, not as in-progress.
fn check_return_code(id: &TaskId, code: TaskStatusCode) -> Result<()> {
    if code == TaskStatusCode::InProgress {
        return Err(Error::BadStatus(format!(
            "{code} (task {id} can only be returned as pending, aborted or completed)"
        )));
    }
    Ok(())
}

/// The channel a waiter on `id` listens to, from the task's stored `notify_channel_after`
/// (`None`: no such task).
fn notify_channel(id: &TaskId, stored: Option<Option<String>>) -> Result<String> {
    match stored {
        None => Err(Error::TaskNotFound(id.clone())),
        Some(Some(channel)) if !channel.is_empty() => Ok(channel),
        Some(_) => Err(Error::NoNotifyChannel {
            task_id: id.clone(),
        }),
    }
}
