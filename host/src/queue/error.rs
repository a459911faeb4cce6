//! The queue's one error type. Callers match on its variants.
//!
//! Every variant's message is whole on its own (logs print errors with `%e`, which shows the
//! message alone), and the chain that `{:#}` renders says each thing once: a variant either
//! tells its cause in its message or offers it as a source, never both. Database failures
//! keep sqlx's error, so logs show what PostgreSQL or SQLite said.

use std::time::Duration;

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
    #[error(
        "the queue schema is missing from this database ({problem}); run `parade migrate` on it"
    )]
    NotMigrated { problem: String },

    /// Text that is not one of the status codes pending, in-progress, aborted, completed.
    #[error("bad status code {0:?} (expected pending, in-progress, aborted or completed)")]
    BadStatus(String),

    /// A task was returned as in-progress: a return ends a try, so it must say pending,
    /// aborted or completed.
    #[error("task {task_id}: returned as in-progress; a task can only be returned as pending, aborted or completed")]
    ReturnedInProgress { task_id: TaskId },

    /// A return the store cannot accept as given (a status with a NUL character, say). Only
    /// that return fails; the task keeps its ownership.
    #[error("task {task_id}: return refused: {problem}")]
    InvalidReturn { task_id: TaskId, problem: String },

    /// The task does not exist.
    #[error("task {task_id} not found")]
    TaskNotFound { task_id: TaskId },

    /// `insert_tasks` was given a task whose id is already stored, or given it twice.
    #[error("task {task_id} already exists")]
    DuplicateTask { task_id: TaskId },

    /// `insert_tasks` was given a task whose `to_signal_after` names a task that is neither in
    /// the batch nor stored.
    #[error("task {task_id}: to_signal_after names unknown task {successor}")]
    UnknownSuccessor { task_id: TaskId, successor: TaskId },

    /// A task the store cannot accept (a negative count, a NUL character), or one that an
    /// operation does not apply to (retrying a task that is not aborted).
    #[error("task {task_id}: {problem}")]
    InvalidTask { task_id: TaskId, problem: String },

    /// An argument of an operation that is not about one task the store cannot accept (a
    /// cancel reason with a NUL character, say).
    #[error("{what}: {problem}")]
    InvalidArgument { what: String, problem: String },

    /// The waiter was cancelled before its task finished.
    #[error("wait for task {task_id} cancelled")]
    Cancelled { task_id: TaskId },

    /// The waiter lost its means of hearing about the task (its listening connection failed
    /// for good, the task was deleted, or the queue was closed).
    #[error("wait for task {task_id} failed: {problem}")]
    WaitFailed { task_id: TaskId, problem: String },

    /// Another writer kept the store busy for longer than a writer waits for its turn.
    #[error("the store is busy: no turn to write within {}s", waited.as_secs())]
    Busy { waited: Duration },

    /// The store could not be opened or prepared (named by its path).
    #[error("cannot use the queue database {location}: {problem}")]
    OpenStore { location: String, problem: String },

    /// The database URL is not one Parade can open.
    #[error("bad database URL {url:?}: {problem}")]
    BadUrl { url: String, problem: String },

    /// Applying migrations failed. (sqlx's message already tells its cause.)
    #[error("migrating the queue schema failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),

    /// Any other database failure, as sqlx reports it.
    #[error(transparent)]
    Database(DatabaseError),
}

impl Error {
    /// The same error with every task id it names passed through `rename`: how a namespace
    /// ([`Prefixed`](super::Prefixed)) shows its callers their own names.
    pub fn rename_tasks(self, rename: impl Fn(TaskId) -> TaskId) -> Error {
        match self {
            Error::InvalidToken { task_id } => Error::InvalidToken {
                task_id: rename(task_id),
            },
            Error::NoNotifyChannel { task_id } => Error::NoNotifyChannel {
                task_id: rename(task_id),
            },
            Error::ReturnedInProgress { task_id } => Error::ReturnedInProgress {
                task_id: rename(task_id),
            },
            Error::InvalidReturn { task_id, problem } => Error::InvalidReturn {
                task_id: rename(task_id),
                problem,
            },
            Error::TaskNotFound { task_id } => Error::TaskNotFound {
                task_id: rename(task_id),
            },
            Error::DuplicateTask { task_id } => Error::DuplicateTask {
                task_id: rename(task_id),
            },
            Error::UnknownSuccessor { task_id, successor } => Error::UnknownSuccessor {
                task_id: rename(task_id),
                successor: rename(successor),
            },
            Error::InvalidTask { task_id, problem } => Error::InvalidTask {
                task_id: rename(task_id),
                problem,
            },
            Error::Cancelled { task_id } => Error::Cancelled {
                task_id: rename(task_id),
            },
            Error::WaitFailed { task_id, problem } => Error::WaitFailed {
                task_id: rename(task_id),
                problem,
            },
            other => other,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(DatabaseError(e))
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

/// A failure sqlx reported. sqlx's messages already include the text of their causes
/// ("error communicating with database: Connection refused"), so as a source this offers
/// only the causes its message does not tell: `{:#}` then says each thing once.
#[derive(Debug)]
pub struct DatabaseError(sqlx::Error);

impl DatabaseError {
    /// sqlx's error, for callers that inspect it.
    pub fn sqlx(&self) -> &sqlx::Error {
        &self.0
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let told = self.0.to_string();
        let mut next = std::error::Error::source(&self.0);
        while let Some(cause) = next {
            if !told.contains(&cause.to_string()) {
                return Some(cause);
            }
            next = cause.source();
        }
        None
    }
}

/// Result of queue operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The segments `{:#}` renders, one per error in the chain.
    fn chain(e: Error) -> Vec<String> {
        let mut segments = vec![e.to_string()];
        let mut next = std::error::Error::source(&e);
        while let Some(cause) = next {
            segments.push(cause.to_string());
            next = cause.source();
        }
        segments
    }

    fn assert_says_each_thing_once(e: Error) {
        let segments = chain(e);
        for (i, later) in segments.iter().enumerate().skip(1) {
            for earlier in &segments[..i] {
                assert!(
                    !earlier.contains(later.as_str()),
                    "{later:?} repeats what {earlier:?} said, in {segments:?}"
                );
            }
        }
    }

    fn io(message: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, message)
    }

    #[test]
    fn no_error_chain_repeats_a_segment() {
        let task_id = TaskId::from("t1");
        let errors = [
            Error::from(sqlx::Error::Io(io("connection refused"))),
            Error::from(sqlx::Error::Tls(Box::new(io("bad certificate")))),
            Error::from(sqlx::Error::Configuration(Box::new(io("bad port")))),
            Error::from(sqlx::Error::PoolTimedOut),
            Error::from(sqlx::migrate::MigrateError::Execute(sqlx::Error::Io(io(
                "disk full",
            )))),
            Error::from(sqlx::migrate::MigrateError::VersionMissing(3)),
            Error::Busy {
                waited: Duration::from_secs(30),
            },
            Error::NotMigrated {
                problem: "relation \"tasks\" does not exist".into(),
            },
            Error::ReturnedInProgress {
                task_id: task_id.clone(),
            },
            Error::DuplicateTask { task_id },
        ];
        for e in errors {
            assert_says_each_thing_once(e);
        }
    }

    #[test]
    fn database_errors_keep_their_message_whole() {
        let e = Error::from(sqlx::Error::Io(io("connection refused")));
        assert!(e.to_string().contains("connection refused"), "{e}");
        assert!(matches!(&e, Error::Database(db) if matches!(db.sqlx(), sqlx::Error::Io(_))));
    }
}
