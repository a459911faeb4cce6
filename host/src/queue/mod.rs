//! The durable task queue: types, the [`Parade`] trait, and its backends.
//!
//! Tasks are rows with an action name, an optional body and a lifecycle
//! (`pending` → `in-progress` → `completed` | `aborted`). Actors *own* batches of runnable
//! tasks for the actions they perform, receive a [`PerformanceToken`] for each, and *return*
//! each task with a status; ownership lapses at a deadline unless extended, and the task is
//! then offered again. Tasks can depend on each other: a task ends by *signalling* the
//! successors listed in its `to_signal_after`, and a task with `total_dependencies` runs
//! once it has received that many signals. Semantics follow the Go package `parade`, with
//! its defects fixed on purpose: `docs/queue-semantics.md` states every rule, and what
//! Parade changes from the Go package and why.
//!
//! [`Parade`] is the one interface. [`SqliteParade`] implements it on an embedded SQLite
//! file (the default, one node) and [`PgParade`] on PostgreSQL (several nodes, one database).
//! [`Prefixed`] namespaces any implementation, and [`open`] turns a database URL into a
//! backend, so callers never branch on which one they have.
//!
//! The rooms: [`open`](open()) and [`migrate`] (in `open.rs`) choose a backend from a URL;
//! `rules.rs` holds the input rules both backends apply (batch checks, return checks, retry
//! refusals); `sql.rs` what the SQL backends share (statements both dialects accept, row
//! decoding); `waiter.rs` and `hints.rs` the wake-ups every backend hands out; `prefix.rs`
//! the namespace wrapper; `postgres/` and `sqlite/` the backends themselves.

mod cancels;
mod error;
mod graph;
mod hints;
mod open;
mod postgres;
mod prefix;
mod rules;
mod sql;
mod sqlite;
mod types;
mod waiter;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub(crate) use cancels::CancelSender;
pub use cancels::TaskCancellations;
pub use error::{DatabaseError, Error, Result};
pub(crate) use hints::TaskHintSender;
pub use hints::TaskHints;
pub use open::{check_url, migrate, open, open_with, DEFAULT_DATABASE_URL};
pub use postgres::PgParade;
pub use prefix::Prefixed;
pub use rules::{is_cancel_status, MAX_ACTION_BYTES, MAX_CHANNEL_BYTES, MAX_ID_BYTES};
pub use sqlite::SqliteParade;
pub use types::{
    ActionAttention, ActorId, Backoff, CancelOutcome, Cancellation, FinishedMinute, OnCompletion,
    OwnRequest, OwnedTask, OwnerCount, PerformanceToken, QueueSummary, Retention, TaskCount,
    TaskData, TaskFilter, TaskId, TaskLease, TaskOutcome, TaskReturn, TaskStatusCode,
};
pub use types::{GraphTask, ListedTask, TaskCursor, TaskGraph, TaskPage, TaskState};
pub use waiter::Waiter;
pub(crate) use waiter::WaiterHandle;

/// A durable task queue. Every backend offers exactly these semantics (written down in
/// `docs/queue-semantics.md`); the conformance suite in `tests/conformance` runs against
/// each, bare and namespaced by [`Prefixed`].
#[async_trait]
pub trait Parade: Send + Sync {
    /// Stores tasks, all or nothing. Fails with [`Error::DuplicateTask`] if an id exists (or
    /// appears twice in the batch), with [`Error::UnknownSuccessor`] if a `to_signal_after`
    /// entry names a task found neither in the batch nor in the store, and with
    /// [`Error::InvalidTask`] for a task the store cannot hold (a NUL character, a negative
    /// count, an id or action over [`MAX_ID_BYTES`] / [`MAX_ACTION_BYTES`], an empty notify
    /// channel or one over [`MAX_CHANNEL_BYTES`]), naming the task.
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()>;

    /// Stores those of `tasks` whose ids are not stored yet, all or nothing, and returns
    /// their ids in batch order: an idempotent insert (a periodic task's slot, say, enqueued
    /// by several nodes). Otherwise as [`Parade::insert_tasks`]: a batch naming one id twice
    /// is [`Error::DuplicateTask`], and the same input rules apply.
    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> Result<Vec<TaskId>>;

    /// Owns up to `request.max_tasks` runnable tasks of `request.actions` for
    /// `request.actor`, until `max_duration` from now (forever if `None`). Expired ownerships
    /// are offered first (once their try's expiry backoff has passed), then pending tasks that
    /// are due (`run_after` passed or unset) by priority and insertion order. Concurrent
    /// callers receive disjoint tasks. Each owned task records the expiry backoff of its
    /// action for this try.
    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>>;

    /// [`Parade::own`] without expiry backoff: an ownership that expires is offered again at
    /// once, as in the seed.
    async fn own_tasks(
        &self,
        actor: &ActorId,
        max_tasks: u32,
        actions: &[String],
        max_duration: Option<Duration>,
    ) -> Result<Vec<OwnedTask>> {
        self.own(&OwnRequest {
            actor,
            max_tasks,
            actions,
            max_duration,
            expiry_backoff: &[],
            max_in_progress: None,
        })
        .await
    }

    /// Resets the deadline of an owned task to `duration` from now.
    /// [`Error::InvalidToken`] if the id and token do not match.
    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()>;

    /// Returns an owned task. `Completed` and `Aborted` end it (signalling successors and
    /// notifying its channel); `Pending` offers it again at once, or ends it `Aborted` if it
    /// has no tries left. (For a delay before the next try, see [`Parade::return_tasks`]
    /// and [`TaskReturn::retry_after`].) `InProgress` is [`Error::ReturnedInProgress`], a status the store cannot
    /// hold [`Error::InvalidReturn`], and a mismatched token [`Error::InvalidToken`]; each
    /// leaves the task as it was.
    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()>;

    /// Returns many owned tasks at once, each as [`Parade::return_task`] would, in as few
    /// round trips as the backend allows; a `Pending` return with tries left and a
    /// `retry_after` is offered again only that long from now. One result per input, in order: a bad
    /// return fails its own row only. The call fails as a whole only if the store could not
    /// be reached.
    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(returns.len());
        for r in returns {
            if r.retry_after.is_some() {
                results.push(Err(Error::InvalidReturn {
                    task_id: r.id.clone(),
                    problem: "this queue cannot delay a retry".into(),
                }));
                continue;
            }
            results.push(self.return_task(&r.id, r.token, &r.status, r.code).await);
        }
        Ok(results)
    }

    /// [`Parade::return_tasks`], and with [`OnCompletion::Delete`] a task returned
    /// `Completed` without a notify channel is deleted rather than kept (`[retention]
    /// completed = "0s"`). A backend that cannot delete at completion keeps the rows, as
    /// this default does: the pruner deletes them later.
    async fn return_tasks_with(
        &self,
        returns: &[TaskReturn],
        on_completion: OnCompletion,
    ) -> Result<Vec<Result<()>>> {
        let _ = on_completion;
        self.return_tasks(returns).await
    }

    /// Gives owned tasks back without using up their try: they are pending again at once.
    /// For an actor that shuts down before starting them. Pairs whose token no longer
    /// matches are skipped; returns how many were released.
    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64>;

    /// The earliest time a task of `actions` becomes runnable by the clock alone: a delayed
    /// task's `run_after`, or the earliest ownership deadline plus its expiry backoff (per
    /// action, as for [`Parade::own`]). `None` when no task of theirs waits for a time. An
    /// idle actor sleeps until then rather than polling.
    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[Backoff],
    ) -> Result<Option<DateTime<Utc>>>;

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

    /// Tasks matching `filter`, in insertion order (newest first with `newest_first`).
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>>;

    /// [`Parade::list_tasks`] a page at a time: the tasks with when each was enqueued and
    /// finished and its position, and the position the next page starts after (pass it as
    /// `filter.after`), `None` on the last page. `filter.limit` is the page size. Paging
    /// through a store that nobody changes meanwhile yields each matching task exactly once;
    /// each page reads about as many rows as it returns (in insertion order, by the key the
    /// store keeps in order), however deep it is, unless the filter matches few of them.
    async fn list_task_page(&self, filter: &TaskFilter) -> Result<TaskPage>;

    /// The DAG around task `id`: the task, its ancestors (tasks that signal it, and theirs,
    /// transitively) and descendants (tasks it signals, transitively), at most `max_nodes`
    /// of them (nearest first, so a cut graph has `truncated` set and its outermost nodes
    /// marked `more`), and the `to_signal_after` edges between them. Successors that are not
    /// stored are left out. `None` if there is no task `id`.
    async fn task_graph(&self, id: &TaskId, max_nodes: u32) -> Result<Option<TaskGraph>>;

    /// Task counts by action and status code, and the actors owning tasks now.
    async fn summary(&self) -> Result<QueueSummary>;

    /// How many tasks of each action ended `completed` or `aborted` in each minute since
    /// `since`, by their `finished_at` (tasks the store keeps: retention may have pruned
    /// some), oldest minute first, then by action and code. It reads every finished task's
    /// row (no index orders them by finish time): the dashboard asks once, at a node's start,
    /// for the hour before it. A backend that keeps no finish times answers nothing.
    async fn finished_by_minute(&self, since: DateTime<Utc>) -> Result<Vec<FinishedMinute>> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Cancels tasks: each listed task that has not ended — pending, waiting on
    /// dependencies, delayed or running — ends `aborted` with status `cancelled: REASON`, as
    /// any abort does (successors signalled with a failure, waiters woken); a running task's
    /// token stops working, and its node hears of it through [`Parade::task_cancellations`].
    /// With `cascade`, every task that transitively waits on a cancelled one (through
    /// `to_signal_after`, not past tasks that ended) is cancelled too. One answer per task:
    /// the listed ids in order (each once), then those the cascade reached (in no promised
    /// order). A reason with a NUL character is [`Error::InvalidArgument`].
    async fn cancel_tasks(
        &self,
        ids: &[TaskId],
        reason: &str,
        cascade: bool,
    ) -> Result<Vec<Cancellation>>;

    /// Deletes at most `max_rows` finished tasks whose retention has passed (`completed` or
    /// `aborted` for longer than `retention` keeps that outcome), oldest first as far as the
    /// store can tell cheaply, and returns how many it deleted. Nothing that has not ended is
    /// ever deleted, and deleting a finished task changes nothing for its successors (it
    /// already signalled them). Tasks that ended without a `finished_at` (stored so by plain
    /// SQL) are kept. Call it repeatedly for more: each call is one short transaction.
    async fn prune_finished(&self, retention: &Retention, max_rows: u32) -> Result<u64>;

    /// The ids of running tasks that are cancelled from now on, if the backend announces
    /// them (`None`: it does not; a node then learns it at its next deadline extension).
    async fn task_cancellations(&self) -> Result<Option<TaskCancellations>> {
        Ok(None)
    }

    /// Succeeds iff the store answers and holds the queue's schema ([`Error::NotMigrated`]
    /// otherwise): a health check.
    async fn ping(&self) -> Result<()>;

    /// Makes an aborted task pending again with no tries used: an operator's "retry". Refused
    /// for a task that is not aborted, or that signals successors (they were signalled when it
    /// aborted, and would be signalled twice).
    async fn retry_task(&self, id: &TaskId) -> Result<()>;
}
