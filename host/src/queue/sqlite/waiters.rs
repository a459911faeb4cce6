//! Waiters on the SQLite backend. There is no LISTEN/NOTIFY: a task that ends in this
//! process resolves its waiters directly ([`LocalWaiters::announce`]), and a background
//! re-check every [`RECHECK_INTERVAL`] resolves waiters whose task was ended by another
//! process sharing the file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::SqlitePool;

use crate::queue::{TaskOutcome, WaiterHandle};

/// How often waiting tasks are re-read, for tasks ended by other processes.
pub(super) const RECHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The waiters of one [`SqliteParade`](super::SqliteParade), by task id.
#[derive(Debug, Default)]
pub(super) struct LocalWaiters {
    waiting: Mutex<HashMap<String, Vec<WaiterHandle>>>,
    recheck_started: std::sync::OnceLock<()>,
}

impl LocalWaiters {
    /// Adds a waiter; starts the re-check task the first time.
    pub(super) fn register(self: &Arc<Self>, handle: WaiterHandle, pool: &SqlitePool) {
        self.lock()
            .entry(handle.task_id().0.clone())
            .or_default()
            .push(handle);
        let weak = Arc::downgrade(self);
        let pool = pool.clone();
        self.recheck_started.get_or_init(|| {
            tokio::spawn(recheck(weak, pool));
        });
    }

    /// Resolves the waiters of tasks that just ended in this process.
    pub(super) fn announce(&self, ended: Vec<(String, TaskOutcome)>) {
        if ended.is_empty() {
            return;
        }
        let mut waiting = self.lock();
        for (id, outcome) in ended {
            for handle in waiting.remove(&id).unwrap_or_default() {
                handle.finish(outcome.clone());
            }
        }
    }

    /// Fails the waiters of tasks that were just deleted in this process.
    pub(super) fn forget_deleted(&self, deleted: &[String]) {
        self.resolve(&HashMap::new(), deleted);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<WaiterHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets resolved waiters and returns the ids still waited on.
    fn waited_ids(&self) -> Vec<String> {
        let mut waiting = self.lock();
        waiting.retain(|_, handles| {
            handles.retain(|h| !h.is_done());
            !handles.is_empty()
        });
        waiting.keys().cloned().collect()
    }

    fn resolve(&self, outcomes: &HashMap<String, TaskOutcome>, ids: &[String]) {
        let mut waiting = self.lock();
        for id in ids {
            if let Some(handles) = waiting.get_mut(id) {
                handles.retain(|handle| !handle.resolve_from_store(outcomes.get(id)));
                if handles.is_empty() {
                    waiting.remove(id);
                }
            }
        }
    }
}

impl Drop for LocalWaiters {
    fn drop(&mut self) {
        for handle in self.lock().drain().flat_map(|(_, handles)| handles) {
            handle.fail("the queue was closed");
        }
    }
}

async fn recheck(waiters: Weak<LocalWaiters>, pool: SqlitePool) {
    let mut interval = tokio::time::interval(RECHECK_INTERVAL);
    loop {
        interval.tick().await;
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        let ids = waiters.waited_ids();
        if ids.is_empty() {
            continue;
        }
        match super::read_outcomes(&pool, &ids).await {
            Ok(outcomes) => waiters.resolve(&outcomes, &ids),
            Err(e) => tracing::warn!(error = %e, "re-reading waited-on tasks failed; will retry"),
        }
    }
}
