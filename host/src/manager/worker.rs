//! A worker: takes owned tasks from the queue, checks that each still has its ownership, runs
//! the actor's handler with heartbeats, and passes the result to the returner.
//!
//! A task may have waited in the queue: one that waited past `max_duration` has lost its
//! ownership (another node may run it by now), so it is handed back unstarted; one that
//! waited longer than a heartbeat has its deadline extended before it starts, so it never
//! runs on an ownership about to lapse. Heartbeats then follow the last extension.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::{stop_requested, ActorResult, Counters, Declined, Finished, Queued, Shared};
use crate::queue::{is_cancel_status, Error, OwnedTask, TaskId, TaskReturn, TaskStatusCode};

pub(super) async fn run(
    shared: Arc<Shared>,
    queued: Arc<Mutex<mpsc::Receiver<Queued>>>,
    results: mpsc::UnboundedSender<Finished>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let Queued { task, owned_at } = {
            let mut queued = queued.lock().await;
            tokio::select! {
                biased;
                _ = stop_requested(&mut stopped) => return,
                queued = queued.recv() => match queued {
                    Some(queued) => queued,
                    None => return,
                },
            }
        };
        shared.in_flight().insert(task.id.clone(), task.token);
        let span = tracing::info_span!("task", id = %task.id, action = %task.action);
        let action = task.action.clone();
        let done = async {
            match still_owned(&shared, &task, owned_at).await {
                Some(extended_at) => perform(&shared, task, extended_at).await,
                None => Done::Skipped(task),
            }
        }
        .instrument(span.clone())
        .await;
        match done {
            Done::Return(result, deadline) => {
                // The returner outlives every worker, so this cannot fail.
                let _ = results.send(Finished {
                    result,
                    action,
                    deadline,
                });
            }
            Done::Release(task) => {
                release(&shared, &task).instrument(span).await;
                shared.settled.notify_one();
            }
            Done::Skipped(task) => {
                shared.in_flight().remove(&task.id);
                shared.settled.notify_one();
            }
            Done::Lost => shared.settled.notify_one(),
        }
        shared.worker_free.notify_one();
    }
}

/// How a worker is done with a task.
enum Done {
    /// Return this result; the task's ownership lapses at the instant unless extended.
    Return(TaskReturn, Instant),
    /// The actor declined the task: hand it back untried.
    Release(OwnedTask),
    /// Not started, and already settled (handed back or lost) by [`still_owned`].
    Skipped(OwnedTask),
    /// Ownership was lost while it ran: its result must not be returned.
    Lost,
}

/// Checks a task's ownership before it starts: `Some(when its deadline was last set)` if it
/// may start, `None` if it was settled instead (handed back or found lost).
async fn still_owned(shared: &Shared, task: &OwnedTask, owned_at: Instant) -> Option<Instant> {
    let props = &shared.props;
    let waited = owned_at.elapsed();
    if waited >= props.max_duration {
        tracing::warn!(
            ?waited, max_duration = ?props.max_duration,
            "waited in the queue longer than its ownership lasts; handing it back unstarted"
        );
        release(shared, task).await;
        return None;
    }
    // A cancel heard while it waited is confirmed by the extension below (which fails).
    if waited < props.heartbeat && !shared.take_cancelled_unstarted(&task.id) {
        return Some(owned_at);
    }
    let asked = Instant::now();
    match shared
        .queue
        .extend_task_deadline(&task.id, task.token, props.max_duration)
        .await
    {
        Ok(()) => {
            Counters::add(&shared.counters.heartbeats, 1);
            Some(asked)
        }
        Err(e @ Error::InvalidToken { .. }) => {
            if was_cancelled(shared, &task.id).await {
                tracing::info!("cancelled while waiting for a worker: not started");
                shared
                    .counters
                    .count_settled(&task.action, &shared.counters.cancelled);
            } else {
                tracing::warn!(error = %e, "ownership lost while waiting in the queue; not starting it");
                shared
                    .counters
                    .count_settled(&task.action, &shared.counters.lost);
            }
            None
        }
        Err(e) => {
            // Its ownership still holds; the heartbeats try again while it runs.
            tracing::warn!(error = %e, "extending the deadline before starting failed; starting anyway");
            Some(owned_at)
        }
    }
}

/// Whether the task whose token stopped working was ended by `cancel_tasks` (aborted with
/// a `cancelled` status), not owned by another actor after its deadline: an announcement of
/// the cancel can be missed (SQLite's come only from this process), and then the store says
/// it. A read that fails answers no, so the task counts as lost, as before.
async fn was_cancelled(shared: &Shared, id: &TaskId) -> bool {
    match shared.queue.get_task(id).await {
        Ok(Some(task)) => {
            task.status_code == TaskStatusCode::Aborted
                && task.status.as_deref().is_some_and(is_cancel_status)
        }
        _ => false,
    }
}

/// Hands an unstarted task back without using up its try.
async fn release(shared: &Shared, task: &OwnedTask) {
    shared.in_flight().remove(&task.id);
    let counters = &shared.counters;
    match shared.queue.release_tasks(&[task.lease()]).await {
        Ok(1) => counters.count_settled(&task.action, &counters.released),
        // Someone else owns it by now.
        Ok(_) => counters.count_settled(&task.action, &counters.lost),
        Err(e) => {
            tracing::warn!(error = %e, "could not hand a task back; it is offered again after its deadline");
            counters.count_settled(&task.action, &counters.return_failures);
        }
    }
}

/// Aborts the handler if the worker stops waiting for it (lost ownership, shutdown).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one task's handler, extending its deadline every heartbeat after `extended_at` (when
/// it was owned or last extended) while it runs.
async fn perform(shared: &Shared, task: OwnedTask, extended_at: Instant) -> Done {
    let props = &shared.props;
    let mut handler = AbortOnDrop(tokio::spawn({
        let (actor, task) = (shared.actor.clone(), task.clone());
        async move { actor.perform(&task).await }.in_current_span()
    }));
    let start = Instant::now();
    let mut deadline = extended_at + props.max_duration;
    let mut heartbeat = tokio::time::interval_at(extended_at + props.heartbeat, props.heartbeat);
    // A tick missed (a slow extension, or a first one already due) is not made up in a burst.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cancels = shared.cancel_epoch.subscribe();
    let joined = loop {
        // Checked at the start too: a cancel heard before subscribing is in the set already.
        if shared.take_cancelled(&task.id) {
            // Dropping the handler stops the component (its call is abandoned); the store
            // already ended the task and voided its token.
            tracing::info!("cancelled while running: stopped");
            shared
                .counters
                .count_settled(&task.action, &shared.counters.cancelled);
            break None;
        }
        tokio::select! {
            joined = &mut handler.0 => break Some(joined),
            Ok(()) = cancels.changed() => continue,
            _ = heartbeat.tick() => {
                let asked = Instant::now();
                match shared.queue.extend_task_deadline(&task.id, task.token, props.max_duration).await {
                    Ok(()) => {
                        Counters::add(&shared.counters.heartbeats, 1);
                        deadline = asked + props.max_duration;
                    }
                    Err(e @ Error::InvalidToken { .. }) => {
                        // Cancelled in the store (a node that did not hear the announcement finds out
                        // here), or owned elsewhere after its deadline: either way the component
                        // is stopped as the handler is dropped below.
                        if was_cancelled(shared, &task.id).await {
                            tracing::info!("cancelled while running (found at its heartbeat): stopped");
                            shared.counters.count_settled(&task.action, &shared.counters.cancelled);
                        } else {
                            tracing::warn!(error = %e, "ownership lost while running (owned elsewhere after its deadline): stopped; its result will be dropped");
                            shared.counters.count_settled(&task.action, &shared.counters.lost);
                        }
                        break None;
                    }
                    Err(e) => tracing::warn!(error = %e, "extending the deadline failed; will retry"),
                }
            }
        }
    };
    shared.in_flight().remove(&task.id);
    // A cancel heard as the handler finished is of no use any more.
    shared.take_cancelled(&task.id);
    let ran = start.elapsed();
    shared.pace.observe(ran);
    shared
        .counters
        .for_action(&task.action, |s| s.durations.observe(ran));
    let Some(joined) = joined else {
        return Done::Lost;
    };
    // A result the store refuses (the code in-progress, a NUL in the status) is the
    // returner's to handle: it returns the task aborted with the reason.
    let result = match joined {
        Ok(Ok(result)) => result,
        Ok(Err(e)) if e.is::<Declined>() => {
            tracing::info!(reason = %e, "handing the task back untried");
            return Done::Release(task);
        }
        Ok(Err(e)) => {
            Counters::add(&shared.counters.handler_failures, 1);
            tracing::warn!(error = %format!("{e:#}"), "handler failed");
            ActorResult::retry(format!("handler failed: {e:#}"))
        }
        Err(e) => {
            Counters::add(&shared.counters.handler_failures, 1);
            let why = match e.try_into_panic() {
                Ok(panic) => panic_message(panic.as_ref()),
                Err(e) => e.to_string(),
            };
            tracing::warn!(panic = %why, "handler panicked");
            ActorResult::retry(format!("handler panicked: {why}"))
        }
    };
    Done::Return(
        super::retry::task_return(shared.actor.as_ref(), task, result, chrono::Utc::now()),
        deadline,
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
