//! The queue's one error type. Callers match on its variants; database failures keep their
//! source so logs show what PostgreSQL or SQLite said.

use super::TaskId;

/// Errors of every queue operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The id and performance token did not match an owned task: the token is wrong, the task
    /// was already returned, or its ownership expired and another actor owns it now.
    #[error("task {task_id}: invalid performance token (wrong token, already returned, or owned by another actor now)")]
    InvalidToken { task_id: TaskId },

    /// `new_waiter` on a task that has no `notify_channel_after`.
    #[error(
        "task {task_id} has no notify channel to wait on (insert it with notify_channel_after)"
    )]
    NoNotifyChannel { task_id: TaskId },

    /// The queue schema is missing: migrations were not applied to this database.
    #[error("queue unavailable: {0} (run `parade migrate` on this database)")]
    ServiceUnavailable(String),

    /// A status code that is not pending, in-progress, aborted or completed, or one that an
    /// operation does not accept (a task cannot be returned as in-progress).
    #[error("bad status code {0:?}")]
    BadStatus(String),

    /// The task does not exist.
    #[error("task {0} not found")]
    TaskNotFound(TaskId),

    /// `insert_tasks` was given a task whose id is already stored, or twice.
    #[error("task id already exists: {0}")]
    DuplicateTask(String),

    /// `insert_tasks` was given a task whose `to_signal_after` names a task that is neither in
    /// the batch nor stored.
    #[error("task {task_id}: to_signal_after names unknown task {successor}")]
    UnknownSuccessor { task_id: TaskId, successor: TaskId },

    /// A task field the backend cannot store (a negative count, say).
    #[error("task {task_id}: {problem}")]
    InvalidTask { task_id: TaskId, problem: String },

    /// The waiter was cancelled before its task finished.
    #[error("wait for task {0} cancelled")]
    Cancelled(TaskId),

    /// The waiter lost its means of hearing about the task (its listening connection failed
    /// for good, or the queue was closed).
    #[error("wait for task {task_id} failed: {problem}")]
    WaitFailed { task_id: TaskId, problem: String },

    /// The store could not be opened or prepared (named by its path).
    #[error("cannot use the queue database {location}: {problem}")]
    OpenStore { location: String, problem: String },

    /// The database URL is not one Parade can open.
    #[error("bad database URL {url:?}: {problem}")]
    BadUrl { url: String, problem: String },

    /// Applying migrations failed.
    #[error("migrating the queue schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Result of queue operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
