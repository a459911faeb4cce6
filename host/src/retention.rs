//! Retention: a node's background pruner, which deletes finished tasks once `[retention]`
//! has kept them long enough.
//!
//! [`config`](crate::config) reads `[retention]` into a [`Retention`] (a day for completed
//! tasks and a week for aborted ones unless it says otherwise, or `"forever"`). `parade run`
//! starts one [`Pruner`] beside the ActionManager and the scheduler; it calls
//! [`Parade::prune_finished`] in batches of [`PRUNE_BATCH`] rows, each one short
//! transaction of the store, so owning and returning are never held up for long: it goes on
//! at once while batches come back full (yielding in between, so a waiting owner takes its
//! turn), and sleeps [`prune_interval`] when one comes back short. The store decides what may
//! be deleted (only `completed` and `aborted` tasks past their time) and, on PostgreSQL, that
//! the pruners of several nodes take turns. [`reload`](crate::reload) hands it the new
//! retention whenever a reload is applied; `parade task prune` runs the same batches once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::queue::{Parade, Retention};

/// Most tasks one batch deletes: one short transaction (a few milliseconds on either
/// backend), so an owner waiting behind it is not stalled.
pub const PRUNE_BATCH: u32 = 1000;

/// The shortest and the longest sleep between passes: a retention of seconds is kept to
/// within a fraction of a second, and one of days costs one query a minute.
const INTERVAL_BOUNDS: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(60));

/// How long a completed task is kept when `[retention] completed` is zero: only tasks with a
/// notify channel are left by then (the others are deleted as they complete, see
/// [`OnCompletion`](crate::queue::OnCompletion)), and their waiters read their outcome once
/// told, or at their next re-check (every 10 s on PostgreSQL, if a notification was missed).
pub const KEEP_WAITED_FOR: Duration = Duration::from_secs(60);

/// What the pruner deletes by, for `retention`: the same, but a completed retention of zero
/// keeps what is left of completed tasks (those with a notify channel) [`KEEP_WAITED_FOR`].
pub fn pruning_retention(retention: &Retention) -> Retention {
    Retention {
        completed: retention.completed.map(|keep| {
            if keep.is_zero() {
                KEEP_WAITED_FOR
            } else {
                keep
            }
        }),
        aborted: retention.aborted,
    }
}

/// The longest wait before retrying after the store failed.
const MAX_ERROR_WAIT: Duration = Duration::from_secs(60);

/// How long the pruner sleeps after a batch that came back short: a tenth of the shortest
/// retention, within 200 ms and a minute. `None` when `retention` keeps everything.
pub fn prune_interval(retention: &Retention) -> Option<Duration> {
    let shortest = [retention.completed, retention.aborted]
        .into_iter()
        .flatten()
        .min()?;
    Some((shortest / 10).clamp(INTERVAL_BOUNDS.0, INTERVAL_BOUNDS.1))
}

/// What a pruner has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct PruneStats {
    /// Finished tasks deleted.
    pub pruned: AtomicU64,
    /// Batches that failed (the store unreachable, say) and were retried later.
    pub failures: AtomicU64,
}

/// Changes the retention of a running [`Pruner`].
#[derive(Debug, Clone)]
pub struct RetentionControl(Arc<watch::Sender<Retention>>);

impl RetentionControl {
    /// The retention of now and every later one: the manager follows it to delete completed
    /// tasks at completion while their retention is zero.
    pub fn subscribe(&self) -> watch::Receiver<Retention> {
        self.0.subscribe()
    }

    /// From now on, prune by `retention` (at once); says whether it changed.
    pub fn replace(&self, retention: Retention) -> bool {
        self.0.send_if_modified(|current| {
            let changed = *current != retention;
            *current = retention;
            changed
        })
    }
}

/// The background task that prunes finished tasks of a store.
pub struct Pruner;

impl Pruner {
    /// Starts pruning `queue` by `retention` until `stop` turns true. Errors of the store are
    /// logged and retried, never fatal.
    pub fn spawn(
        queue: Arc<dyn Parade>,
        retention: Retention,
        stop: watch::Receiver<bool>,
    ) -> (RetentionControl, Arc<PruneStats>, JoinHandle<()>) {
        let (control, retention) = watch::channel(retention);
        let control = Arc::new(control);
        let stats = Arc::new(PruneStats::default());
        let task = tokio::spawn({
            // The pruner holds the sender too: it goes on with the last retention it was
            // given even if no one is left to change it (live reload off).
            let control = control.clone();
            let stats = stats.clone();
            async move {
                prune_until_stopped(queue, retention, stats, stop).await;
                drop(control);
            }
        });
        (RetentionControl(control), stats, task)
    }
}

async fn prune_until_stopped(
    queue: Arc<dyn Parade>,
    mut retention: watch::Receiver<Retention>,
    stats: Arc<PruneStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut error_wait: Option<Duration> = None;
    loop {
        let current = *retention.borrow_and_update();
        // At a completed retention of zero, by a minute: a pass every 200 ms would scan the
        // whole table five times a second (the profile of issue #21's drain saw it).
        let pruned_by = pruning_retention(&current);
        let wait = match prune_interval(&pruned_by) {
            // Keeps everything: nothing to do until the retention changes.
            None => None,
            Some(interval) => match tokio::select! {
                // A batch is one short transaction, but a store that does not answer could
                // hold up the node's shutdown; dropped, the transaction rolls back.
                batch = queue.prune_finished(&pruned_by, PRUNE_BATCH) => batch,
                _ = stop.wait_for(|stop| *stop) => return,
            } {
                Ok(deleted) => {
                    error_wait = None;
                    stats.pruned.fetch_add(deleted, Ordering::Relaxed);
                    if deleted > 0 {
                        tracing::debug!(deleted, "pruned finished tasks");
                    }
                    if deleted >= u64::from(PRUNE_BATCH) {
                        // More are due: go on, after whoever waits for the store.
                        tokio::task::yield_now().await;
                        if *stop.borrow() {
                            return;
                        }
                        continue;
                    }
                    Some(interval)
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    let wait = error_wait
                        .map_or(interval.max(Duration::from_secs(1)), |w| w * 2)
                        .min(MAX_ERROR_WAIT);
                    error_wait = Some(wait);
                    tracing::warn!(error = %e, retry_in = ?wait, "pruning finished tasks failed");
                    Some(wait)
                }
            },
        };
        let sleep = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = retention.changed() => {}
            () = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{ActorId, SqliteParade, TaskData, TaskStatusCode};
    use sqlx::Connection;

    /// Waits (up to a minute) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} did not happen within a minute");
    }

    #[tokio::test]
    async fn the_pruner_retries_after_a_store_error_and_stops_with_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("queue.db").display());
        let store: Arc<dyn Parade> = Arc::new(SqliteParade::open(&url).await.unwrap());
        store
            .insert_tasks(&[TaskData::new("a", "work"), TaskData::new("b", "work")])
            .await
            .unwrap();
        let owned = store
            .own_tasks(&ActorId::from("test"), 2, &["work".into()], None)
            .await
            .unwrap();
        for t in &owned {
            let code = TaskStatusCode::Completed;
            store
                .return_task(&t.id, t.token, code.as_str(), code)
                .await
                .unwrap();
        }
        // The table out of the way: every batch fails until it is back.
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("ALTER TABLE tasks RENAME TO tasks_away")
            .execute(&mut other)
            .await
            .unwrap();
        let (stop, stopping) = watch::channel(false);
        let retention = Retention {
            completed: Some(Duration::from_millis(100)),
            aborted: None,
        };
        let (_control, stats, pruner) = Pruner::spawn(store.clone(), retention, stopping);
        until("a failed batch", || {
            stats.failures.load(Ordering::Relaxed) > 0
        })
        .await;
        assert!(!pruner.is_finished(), "an error stopped the pruner");
        sqlx::query("ALTER TABLE tasks_away RENAME TO tasks")
            .execute(&mut other)
            .await
            .unwrap();
        until("both tasks pruned", || {
            stats.pruned.load(Ordering::Relaxed) == 2
        })
        .await;
        assert!(store.get_task(&"a".into()).await.unwrap().is_none());
        stop.send_replace(true);
        pruner.await.unwrap();
    }

    #[test]
    fn a_completed_retention_of_zero_prunes_waited_for_tasks_after_a_minute() {
        let zero = Retention {
            completed: Some(Duration::ZERO),
            aborted: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            pruning_retention(&zero),
            Retention {
                completed: Some(KEEP_WAITED_FOR),
                aborted: Some(Duration::from_secs(3600)),
            }
        );
        let day = Retention {
            completed: Some(Duration::from_secs(86_400)),
            aborted: None,
        };
        assert_eq!(pruning_retention(&day), day);
        // The pruner passes every 6 s (a tenth of the minute), not every 200 ms.
        assert_eq!(
            prune_interval(&pruning_retention(&zero)),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn the_interval_is_a_tenth_of_the_shortest_retention_within_bounds() {
        let keep = |completed: Option<u64>, aborted: Option<u64>| Retention {
            completed: completed.map(Duration::from_secs),
            aborted: aborted.map(Duration::from_secs),
        };
        assert_eq!(prune_interval(&keep(None, None)), None);
        assert_eq!(
            prune_interval(&keep(Some(10), Some(3600))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            prune_interval(&keep(None, Some(1))),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            prune_interval(&keep(Some(86_400), None)),
            Some(Duration::from_secs(60))
        );
    }
}
