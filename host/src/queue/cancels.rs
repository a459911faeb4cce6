//! [`TaskCancellations`]: how a node hears that a task it is running was cancelled.
//!
//! `cancel_tasks` ends a running task in the store at once (its token stops working); the
//! node running it must also stop the work. A backend announces the ids of cancelled running
//! tasks (PostgreSQL through NOTIFY on channel `parade_cancelled`, so cancels from any
//! process count; SQLite in-process). An announcement may be missed (a lost connection,
//! another process on SQLite, a subscriber too slow to keep up), so a node also treats a
//! failed deadline extension as the end of its ownership.

use tokio::sync::broadcast;

use super::TaskId;

/// Announcements kept for a subscriber that has not read them yet.
const BACKLOG: usize = 1024;

/// A subscription to the ids of running tasks that were cancelled.
#[derive(Debug)]
pub struct TaskCancellations {
    receiver: broadcast::Receiver<TaskId>,
    /// A namespace's `PREFIX.`: ids outside it are skipped, ids inside lose it.
    namespace: Option<String>,
}

impl TaskCancellations {
    /// The next cancelled running task; `None` once the backend is gone. Announcements a
    /// slow subscriber fell behind on are skipped.
    pub async fn next(&mut self) -> Option<TaskId> {
        loop {
            match self.receiver.recv().await {
                Ok(id) => match &self.namespace {
                    None => return Some(id),
                    Some(prefix) => {
                        if let Some(own) = id.as_str().strip_prefix(prefix.as_str()) {
                            return Some(TaskId::from(own));
                        }
                    }
                },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// This subscription seen through a namespace: only its tasks, named without `prefix`
    /// (which includes its trailing `.`).
    pub(crate) fn within(mut self, prefix: String) -> Self {
        self.namespace = Some(match self.namespace.take() {
            Some(outer) => format!("{outer}{prefix}"),
            None => prefix,
        });
        self
    }
}

/// The backend's side: announces cancelled running tasks to every subscription.
#[derive(Debug)]
pub(crate) struct CancelSender {
    sender: broadcast::Sender<TaskId>,
}

impl Default for CancelSender {
    fn default() -> Self {
        CancelSender {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl CancelSender {
    /// Announces that running task `id` was cancelled.
    pub(crate) fn announce(&self, id: TaskId) {
        // No subscriber is not an error: no node of this process runs tasks.
        let _ = self.sender.send(id);
    }

    /// A new subscription; it hears only of cancels announced after this call.
    pub(crate) fn subscribe(&self) -> TaskCancellations {
        TaskCancellations {
            receiver: self.sender.subscribe(),
            namespace: None,
        }
    }
}
