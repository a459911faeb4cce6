//! [`TaskHints`]: wake-ups for idle actors when tasks may have become runnable.
//!
//! A backend bumps a counter when tasks are inserted, signalled or released (PostgreSQL
//! through NOTIFY on channel `parade_tasks`, so inserts by any process count; SQLite
//! in-process). A hint may be spurious and may be missed (another process on SQLite, a lost
//! connection), so callers keep polling as the fallback.

use tokio::sync::watch;

/// A subscription to new-task hints.
#[derive(Debug, Clone)]
pub struct TaskHints {
    receiver: watch::Receiver<u64>,
}

/// The backend's side: bumps every subscription.
#[derive(Debug)]
pub(crate) struct TaskHintSender {
    sender: watch::Sender<u64>,
}

impl Default for TaskHintSender {
    fn default() -> Self {
        TaskHintSender {
            sender: watch::channel(0).0,
        }
    }
}

impl TaskHintSender {
    /// Wakes every subscriber.
    pub(crate) fn notify(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new subscription; it wakes only for hints sent after this call.
    pub(crate) fn subscribe(&self) -> TaskHints {
        TaskHints {
            receiver: self.sender.subscribe(),
        }
    }
}

impl TaskHints {
    /// Waits for the next hint. Returns false if the backend is gone (no hint will come).
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}
