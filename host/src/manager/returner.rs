//! The returner: sends results back to the queue in batches, retrying with backoff while the
//! store is unreachable.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Counters, Finished, Shared};
use crate::queue::{Error, TaskReturn};

/// Tries per batch before its tasks are left to their deadline.
const RETURN_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Returns results until every worker is gone and the channel is empty.
pub(super) async fn run(shared: Arc<Shared>, mut results: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(shared.props.return_batch);
    let mut actions = Vec::with_capacity(shared.props.return_batch);
    while let Some(first) = results.recv().await {
        let mut next = Some(first);
        while let Some(Finished { result, action }) = next.take() {
            batch.push(result);
            actions.push(action);
            if batch.len() < shared.props.return_batch {
                next = results.try_recv().ok();
            }
        }
        return_batch(&shared, &batch, &actions).await;
        shared.settled.notify_one();
        batch.clear();
        actions.clear();
    }
}

/// Returns `batch` (whose tasks have the `actions` at the same index).
async fn return_batch(shared: &Shared, batch: &[TaskReturn], actions: &[String]) {
    let counters = &shared.counters;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=RETURN_ATTEMPTS {
        match shared.queue.return_tasks(batch).await {
            Ok(outcomes) => {
                for ((result, action), outcome) in batch.iter().zip(actions).zip(outcomes) {
                    match outcome {
                        Ok(()) => counters.count_result(action, result.code),
                        Err(e @ Error::InvalidToken { .. }) => {
                            tracing::warn!(task = %result.id, error = %e, "result dropped: ownership was lost");
                            Counters::add(&counters.lost, 1);
                        }
                        Err(e) => {
                            tracing::error!(task = %result.id, error = %e, "result rejected");
                            Counters::add(&counters.return_failures, 1);
                        }
                    }
                }
                return;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e, attempt, results = batch.len(),
                    "returning results failed; retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::error!(
        results = batch.len(),
        "giving up returning results; their tasks will be offered again after their deadline"
    );
    Counters::add(&counters.return_failures, batch.len() as u64);
}
