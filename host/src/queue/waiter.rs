//! [`Waiter`]: a handle on the end of one task, shared by every backend.
//!
//! A backend creates the waiter *before* it checks the task, so a task that finishes between
//! creation and [`Waiter::wait`] is never missed: the backend either resolves the waiter at
//! once (the task already ended) or keeps a [`WaiterHandle`] and resolves it when it hears the
//! task ended. Cancelling resolves it too, so `wait` never blocks after `cancel`.
//! [`new_waiter`] is that sequence, written once for every backend: look the task's channel
//! up, register the handle, then read the task, finishing the waiter at once if it ended.

use std::sync::Arc;

use tokio::sync::watch;

use super::rules::notify_channel;
use super::{Error, Result, TaskId, TaskOutcome};

#[derive(Debug, Clone)]
enum WaitResult {
    Finished(TaskOutcome),
    Cancelled,
    Failed(String),
}

type Slot = watch::Sender<Option<WaitResult>>;

/// Waits for a task to end. Clones share one wait: cancelling any cancels all.
#[derive(Debug, Clone)]
pub struct Waiter {
    task_id: TaskId,
    slot: Arc<Slot>,
    // Held so the backend can tell, through the receiver count, that nobody waits any more.
    receiver: watch::Receiver<Option<WaitResult>>,
}

/// The backend's side of a [`Waiter`]: resolves it, once.
#[derive(Debug, Clone)]
pub(crate) struct WaiterHandle {
    task_id: TaskId,
    slot: Arc<Slot>,
}

impl Waiter {
    /// A waiter and the handle that resolves it.
    pub(crate) fn new(task_id: TaskId) -> (Waiter, WaiterHandle) {
        let (slot, receiver) = watch::channel(None);
        let slot = Arc::new(slot);
        let handle = WaiterHandle {
            task_id: task_id.clone(),
            slot: slot.clone(),
        };
        let waiter = Waiter {
            task_id,
            slot,
            receiver,
        };
        (waiter, handle)
    }

    /// The task this waiter waits for.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// Blocks until the task ends and returns its status text and code. Returns
    /// [`Error::Cancelled`] at once after [`Waiter::cancel`]. May be called from several tasks.
    pub async fn wait(&self) -> Result<TaskOutcome> {
        let mut receiver = self.receiver.clone();
        // The sender lives in `self.slot`, so the channel cannot close while we wait.
        let result = match receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        match result {
            Some(WaitResult::Finished(outcome)) => Ok(outcome),
            Some(WaitResult::Cancelled) => Err(Error::Cancelled {
                task_id: self.task_id.clone(),
            }),
            Some(WaitResult::Failed(problem)) => Err(Error::WaitFailed {
                task_id: self.task_id.clone(),
                problem,
            }),
            None => Err(Error::WaitFailed {
                task_id: self.task_id.clone(),
                problem: "the queue was closed".into(),
            }),
        }
    }

    /// Stops waiting: every pending and future [`Waiter::wait`] returns [`Error::Cancelled`].
    /// Does nothing if the task already ended.
    pub fn cancel(&self) {
        settle(&self.slot, WaitResult::Cancelled);
    }
}

impl WaiterHandle {
    /// The task the waiter waits for.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// Resolves the waiter with the task's final status.
    pub fn finish(&self, outcome: TaskOutcome) {
        settle(&self.slot, WaitResult::Finished(outcome));
    }

    /// Resolves the waiter from its task as read from the store (`None`: the task is gone):
    /// finished if the task ended, failed if it was deleted, left waiting otherwise. Returns
    /// true if the waiter is resolved now.
    pub(crate) fn resolve_from_store(&self, stored: Option<&TaskOutcome>) -> bool {
        match stored {
            Some(outcome) if outcome.status_code.is_final() => self.finish(outcome.clone()),
            Some(_) => return false,
            None => self.fail("the task was deleted"),
        }
        true
    }

    /// Resolves the waiter with a failure.
    pub fn fail(&self, problem: impl Into<String>) {
        settle(&self.slot, WaitResult::Failed(problem.into()));
    }

    /// True once the waiter was resolved or cancelled, or every [`Waiter`] clone was dropped:
    /// the backend may forget it.
    pub fn is_done(&self) -> bool {
        self.slot.borrow().is_some() || self.slot.receiver_count() == 0
    }
}

/// What a backend offers [`new_waiter`]: the reads it makes of the store, and where it keeps
/// the handles of waiters until their tasks end.
pub(crate) trait WaiterRegistry {
    /// The task's `notify_channel_after` (`None`: no such task).
    async fn stored_channel(&self, id: &TaskId) -> Result<Option<Option<String>>>;
    /// Keeps `handle` until the backend hears that its task ended on `channel`.
    async fn register(&self, channel: String, handle: WaiterHandle) -> Result<()>;
    /// The task's current outcome (`None`: no such task).
    async fn outcome(&self, id: &TaskId) -> Result<Option<TaskOutcome>>;
}

/// A [`Waiter`] for the end of task `id`, as every backend makes one: the task must have a
/// notify channel; the handle is registered before the task is read, so a task that ends in
/// between is announced to the registry and not missed.
pub(crate) async fn new_waiter(registry: &impl WaiterRegistry, id: &TaskId) -> Result<Waiter> {
    let channel = notify_channel(id, registry.stored_channel(id).await?)?;
    let (waiter, handle) = Waiter::new(id.clone());
    registry.register(channel, handle.clone()).await?;
    match registry.outcome(id).await? {
        Some(outcome) if outcome.status_code.is_final() => handle.finish(outcome),
        Some(_) => {}
        None => {
            return Err(Error::TaskNotFound {
                task_id: id.clone(),
            })
        }
    }
    Ok(waiter)
}

/// Stores the first result; later ones are ignored.
fn settle(slot: &Slot, result: WaitResult) {
    slot.send_if_modified(|current| {
        if current.is_some() {
            return false;
        }
        *current = Some(result);
        true
    });
}
