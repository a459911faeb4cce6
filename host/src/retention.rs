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
}

/// Changes the retention of a running [`Pruner`].
#[derive(Debug, Clone)]
pub struct RetentionControl(Arc<watch::Sender<Retention>>);

impl RetentionControl {
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
        let wait = match prune_interval(&current) {
            // Keeps everything: nothing to do until the retention changes.
            None => None,
            Some(interval) => match queue.prune_finished(&current, PRUNE_BATCH).await {
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
