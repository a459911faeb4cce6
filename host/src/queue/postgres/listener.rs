//! One listening connection per [`PgParade`](super::PgParade), shared by all its waiters.
//!
//! The hub task owns a `PgListener`. Registering a waiter LISTENs on its channel (once per
//! channel) before returning, so the caller can then read the task's state without a race:
//! a task that ends later is announced by a NOTIFY the hub will see. A notification's payload
//! is the id of the task that ended (Parade's `return_task` sends it); an empty payload, as a
//! seed-era client sends, wakes every waiter on the channel. Woken waiters re-read their
//! task, so a notification never resolves a waiter with a stale or foreign status. Channels
//! nobody waits on any more are UNLISTENed. Parade's `delete_tasks` notifies
//! [`DELETED_CHANNEL`] once per call, and every waiter re-reads its task then, so a waiter
//! whose task was deleted fails at once. After a lost connection, and every
//! [`RECHECK_INTERVAL`] as a safety net (tasks deleted by plain SQL), every waiter re-reads
//! its task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{mpsc, oneshot};

use super::read_outcomes;
use crate::queue::{
    CancelSender, Error, Result, TaskCancellations, TaskHintSender, TaskHints, TaskId, WaiterHandle,
};

/// The channel the schema notifies when tasks may have become runnable
/// (migrations/postgres/0002_manager.sql).
const HINT_CHANNEL: &str = "parade_tasks";

/// The channel `PgParade::delete_tasks` notifies (empty payload) when it deleted tasks.
pub(super) const DELETED_CHANNEL: &str = "parade_deleted";

/// The channel `cancel_tasks` notifies with the id of each running task it cancelled.
const CANCELLED_CHANNEL: &str = "parade_cancelled";

/// How often waiters re-read their tasks even without a notification.
const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

enum Command {
    Register {
        channel: String,
        handle: WaiterHandle,
        listening: oneshot::Sender<Result<()>>,
    },
}

/// The handle on the hub task; dropping it stops the task and fails its waiters.
#[derive(Debug)]
pub(super) struct NotificationHub {
    commands: mpsc::UnboundedSender<Command>,
    hints: Arc<TaskHintSender>,
    cancels: Arc<CancelSender>,
}

impl NotificationHub {
    /// Connects the listener and starts the hub task.
    pub(super) async fn start(pool: PgPool) -> Result<Self> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener
            .listen_all([HINT_CHANNEL, DELETED_CHANNEL, CANCELLED_CHANNEL])
            .await?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let hints = Arc::new(TaskHintSender::default());
        let cancels = Arc::new(CancelSender::default());
        tokio::spawn(run(
            pool,
            listener,
            receiver,
            hints.clone(),
            cancels.clone(),
        ));
        Ok(NotificationHub {
            commands,
            hints,
            cancels,
        })
    }

    /// A subscription to new-task hints (NOTIFY on `parade_tasks`).
    pub(super) fn hints(&self) -> TaskHints {
        self.hints.subscribe()
    }

    /// A subscription to the ids of running tasks cancelled by any client.
    pub(super) fn cancellations(&self) -> TaskCancellations {
        self.cancels.subscribe()
    }

    /// Adds a waiter on `channel`; returns once the channel is being listened to.
    pub(super) async fn register(&self, channel: String, handle: WaiterHandle) -> Result<()> {
        let (listening, ready) = oneshot::channel();
        let task_id = handle.task_id().clone();
        let closed = || Error::WaitFailed {
            task_id: task_id.clone(),
            problem: "the notification listener stopped".into(),
        };
        self.commands
            .send(Command::Register {
                channel,
                handle,
                listening,
            })
            .map_err(|_| closed())?;
        ready.await.map_err(|_| closed())?
    }
}

async fn run(
    pool: PgPool,
    mut listener: PgListener,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hints: Arc<TaskHintSender>,
    cancels: Arc<CancelSender>,
) {
    let mut waiters: HashMap<String, Vec<WaiterHandle>> = HashMap::new();
    let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
    recheck.tick().await;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(Command::Register { channel, handle, listening }) = command else {
                    break;
                };
                let handles = waiters.entry(channel.clone()).or_default();
                handles.retain(|h| !h.is_done());
                if handles.is_empty() {
                    if let Err(e) = listener.listen(&channel).await {
                        waiters.remove(&channel);
                        let _ = listening.send(Err(e.into()));
                        continue;
                    }
                }
                waiters.entry(channel).or_default().push(handle);
                let _ = listening.send(Ok(()));
            }
            // `try_recv` is cancel-safe (sqlx reads notifications from a buffered socket).
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    if notification.channel() == HINT_CHANNEL {
                        hints.notify();
                    }
                    if notification.channel() == CANCELLED_CHANNEL {
                        cancels.announce(TaskId::from(notification.payload()));
                        continue;
                    }
                    if notification.channel() == DELETED_CHANNEL {
                        tokio::spawn(resolve_finished(pool.clone(), all(&waiters)));
                        continue;
                    }
                    let task_id = notification.payload();
                    let woken: Vec<WaiterHandle> = waiters
                        .get(notification.channel())
                        .into_iter()
                        .flatten()
                        .filter(|h| task_id.is_empty() || h.task_id().as_str() == task_id)
                        .cloned()
                        .collect();
                    if !woken.is_empty() {
                        tokio::spawn(resolve_finished(pool.clone(), woken));
                    }
                }
                Ok(None) => {
                    tracing::warn!("notification listener reconnected; re-checking all waiters");
                    hints.notify();
                    tokio::spawn(resolve_finished(pool.clone(), all(&waiters)));
                }
                Err(e) => {
                    tracing::error!(error = %e, "notification listener failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    tokio::spawn(resolve_finished(pool.clone(), all(&waiters)));
                }
            },
            _ = recheck.tick() => {
                forget_finished(&mut listener, &mut waiters).await;
                tokio::spawn(resolve_finished(pool.clone(), all(&waiters)));
            }
        }
    }
    for handle in all(&waiters) {
        handle.fail("the queue was closed");
    }
}

fn all(waiters: &HashMap<String, Vec<WaiterHandle>>) -> Vec<WaiterHandle> {
    waiters.values().flatten().cloned().collect()
}

/// Drops resolved waiters and stops listening on channels nobody waits on.
async fn forget_finished(
    listener: &mut PgListener,
    waiters: &mut HashMap<String, Vec<WaiterHandle>>,
) {
    let mut idle = Vec::new();
    for (channel, handles) in waiters.iter_mut() {
        handles.retain(|h| !h.is_done());
        if handles.is_empty() {
            idle.push(channel.clone());
        }
    }
    for channel in idle {
        waiters.remove(&channel);
        if [HINT_CHANNEL, DELETED_CHANNEL, CANCELLED_CHANNEL].contains(&channel.as_str()) {
            continue;
        }
        if let Err(e) = listener.unlisten(&channel).await {
            tracing::warn!(%channel, error = %e, "UNLISTEN failed");
        }
    }
}

/// Re-reads the tasks of `handles` and resolves those that ended (or vanished).
async fn resolve_finished(pool: PgPool, handles: Vec<WaiterHandle>) {
    let handles: Vec<WaiterHandle> = handles.into_iter().filter(|h| !h.is_done()).collect();
    if handles.is_empty() {
        return;
    }
    let ids: Vec<String> = handles.iter().map(|h| h.task_id().0.clone()).collect();
    match read_outcomes(&pool, &ids).await {
        Ok(outcomes) => {
            for handle in handles {
                handle.resolve_from_store(outcomes.get(handle.task_id().as_str()));
            }
        }
        Err(e) => tracing::warn!(error = %e, "re-reading waited-on tasks failed; will retry"),
    }
}
