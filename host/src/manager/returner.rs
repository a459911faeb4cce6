//! The returner: sends results back to the queue in batches, retrying with backoff while the
//! store is unreachable.
//!
//! A result is worth retrying for as long as its task is still owned: until its deadline (when
//! it was owned or last extended, plus `max_duration`), after which another node may own and
//! run it. So the returner keeps retrying a batch, with backoff capped at a couple of
//! seconds, and drops each result with a warning only once its deadline has passed; a store
//! that is back within the ownership loses nothing. While the manager closes, it retries for
//! no longer than `shutdown_grace`.
//!
//! A result the store refuses for its row (a status with a NUL character, the code
//! in-progress) cannot be stored as the actor gave it: the task is returned `aborted` with a
//! status saying why, rather than left in progress until its deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Counters, Finished, Shared};
use crate::queue::{Error, TaskReturn, TaskStatusCode};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the returner keeps beside each result of a batch.
struct Meta {
    action: String,
    deadline: Instant,
    /// This return already replaces a result the store refused.
    replaces_refused: bool,
}

/// A batch of results, with their [`Meta`] at the same index.
#[derive(Default)]
struct Batch {
    returns: Vec<TaskReturn>,
    meta: Vec<Meta>,
}

impl Batch {
    fn push(&mut self, result: TaskReturn, meta: Meta) {
        self.returns.push(result);
        self.meta.push(meta);
    }

    fn len(&self) -> usize {
        self.returns.len()
    }

    /// Removes the results `drop` picks; returns the actions of those removed.
    fn remove_where(&mut self, mut drop: impl FnMut(&Meta) -> bool) -> Vec<String> {
        let keep: Vec<bool> = self.meta.iter().map(|m| !drop(m)).collect();
        let removed = self
            .meta
            .iter()
            .zip(&keep)
            .filter(|(_, keep)| !**keep)
            .map(|(m, _)| m.action.clone())
            .collect();
        let mut kept = keep.iter();
        self.returns
            .retain(|_| kept.next().copied().unwrap_or(true));
        let mut kept = keep.iter();
        self.meta.retain(|_| kept.next().copied().unwrap_or(true));
        removed
    }
}

/// Returns results until every worker is gone and the channel is empty.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut results: mpsc::UnboundedReceiver<Finished>,
    stopped: watch::Receiver<bool>,
) {
    let mut batch = Batch::default();
    while let Some(first) = results.recv().await {
        let mut next = Some(first);
        while let Some(Finished {
            result,
            action,
            deadline,
        }) = next.take()
        {
            batch.push(
                result,
                Meta {
                    action,
                    deadline,
                    replaces_refused: false,
                },
            );
            if batch.len() < shared.batch.return_batch(&shared.props) {
                next = results.try_recv().ok();
            }
        }
        return_batch(&shared, &mut batch, &stopped).await;
        shared.settled.notify_one();
    }
}

/// Returns every result of `batch`, leaving it empty: each is stored, found lost, or dropped
/// once its task's ownership has expired.
async fn return_batch(shared: &Shared, batch: &mut Batch, stopped: &watch::Receiver<bool>) {
    let counters = &shared.counters;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    let mut closing_since = None;
    while batch.len() > 0 {
        attempt += 1;
        let on_completion = shared.on_completion();
        match shared
            .queue
            .return_tasks_with(&batch.returns, on_completion)
            .await
        {
            Ok(outcomes) => {
                settle(shared, batch, outcomes);
                // What is left replaces refused results: a first try of its own.
                (attempt, backoff) = (0, FIRST_BACKOFF);
            }
            Err(e) => {
                let now = Instant::now();
                if *stopped.borrow() {
                    closing_since.get_or_insert(now);
                }
                let closed =
                    closing_since.is_some_and(|since| now >= since + shared.props.shutdown_grace);
                let expired = batch.remove_where(|m| closed || m.deadline <= now);
                if !expired.is_empty() {
                    tracing::warn!(
                        error = %e, attempt, results = expired.len(),
                        "giving up returning results: {}; their tasks will be offered again",
                        if closed { "the manager is closing" } else { "their ownership has expired" }
                    );
                    for action in &expired {
                        counters.count_settled(action, &counters.return_failures);
                    }
                }
                let Some(first_deadline) = batch.meta.iter().map(|m| m.deadline).min() else {
                    return;
                };
                let wait = backoff.min(first_deadline.saturating_duration_since(now));
                tracing::warn!(
                    error = %e, attempt, results = batch.len(),
                    "returning results failed; retrying in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Counts the outcome of each result of `batch`, leaving in it only the aborted returns that
/// replace results the store refused.
fn settle(shared: &Shared, batch: &mut Batch, outcomes: Vec<crate::queue::Result<()>>) {
    let counters = &shared.counters;
    let answered = outcomes.len();
    if answered < batch.len() {
        tracing::error!(
            results = batch.len(),
            answered,
            "the store answered fewer returns than it was sent; the rest are offered again after their deadline"
        );
        for meta in &batch.meta[answered..] {
            counters.count_settled(&meta.action, &counters.return_failures);
        }
    }
    let mut replacements = Vec::new();
    let mut retrying = false;
    for ((result, meta), outcome) in batch
        .returns
        .drain(..)
        .zip(batch.meta.drain(..))
        .zip(outcomes)
    {
        match outcome {
            Ok(()) => {
                if result.code == TaskStatusCode::Pending {
                    retrying = true;
                    if let Some(delay) = result.retry_after {
                        // Stored by now: the store's time is due no later than this. Noted
                        // before the task counts as settled, so the fetch loop never sees
                        // everything settled and no retry waiting, and calls the node idle.
                        shared.retry_due_at(Instant::now() + delay);
                    }
                }
                counters.count_result(&meta.action, result.code);
            }
            Err(e @ Error::InvalidToken { .. }) => {
                tracing::warn!(task = %result.id, error = %e, "result dropped: ownership was lost");
                counters.count_settled(&meta.action, &counters.lost);
            }
            Err(e @ (Error::InvalidReturn { .. } | Error::ReturnedInProgress { .. }))
                if !meta.replaces_refused =>
            {
                tracing::warn!(task = %result.id, error = %e, "the store refused the actor's result; returning the task aborted");
                Counters::add(&counters.refused, 1);
                let status = format!("the actor's result was refused: {}", refusal(&e));
                replacements.push((
                    TaskReturn {
                        status,
                        code: TaskStatusCode::Aborted,
                        ..result
                    },
                    Meta {
                        replaces_refused: true,
                        ..meta
                    },
                ));
            }
            Err(e) => {
                tracing::error!(task = %result.id, error = %e, "result rejected");
                counters.count_settled(&meta.action, &counters.return_failures);
            }
        }
    }
    for (result, meta) in replacements {
        batch.push(result, meta);
    }
    if retrying {
        shared.retry_returned.notify_one();
    }
}

/// Why the store refused a result, in words for the task's status (free of NUL, which the
/// store would refuse again).
fn refusal(e: &Error) -> String {
    let why = match e {
        Error::ReturnedInProgress { .. } => {
            "it has the code in-progress, but a finished task is pending, aborted or completed"
                .to_owned()
        }
        Error::InvalidReturn { problem, .. } => problem.clone(),
        other => other.to_string(),
    };
    why.replace('\0', "\\0")
}
