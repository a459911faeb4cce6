//! A worker: takes owned tasks from the queue, runs the actor's handler with heartbeats, and
//! passes the result to the returner.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{stop_requested, ActorResult, Counters, Declined, Finished, Shared};
use crate::queue::{Error, OwnedTask, TaskLease, TaskReturn, TaskStatusCode};

pub(super) async fn run(
    shared: Arc<Shared>,
    queued: Arc<Mutex<mpsc::Receiver<OwnedTask>>>,
    results: mpsc::UnboundedSender<Finished>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let task = {
            let mut queued = queued.lock().await;
            tokio::select! {
                biased;
                _ = stop_requested(&mut stopped) => return,
                task = queued.recv() => match task {
                    Some(task) => task,
                    None => return,
                },
            }
        };
        shared.in_flight().insert(task.id.clone(), task.token);
        let span = tracing::info_span!("task", id = %task.id, action = %task.action);
        let action = task.action.clone();
        match perform(&shared, task).instrument(span).await {
            Done::Return(result) => {
                // The returner outlives every worker, so this cannot fail.
                let _ = results.send(Finished { result, action });
            }
            Done::Release(id, token) => {
                match shared
                    .queue
                    .release_tasks(&[TaskLease {
                        id: id.clone(),
                        token,
                    }])
                    .await
                {
                    Ok(1) => Counters::add(&shared.counters.released, 1),
                    // Someone else owns it by now.
                    Ok(_) => Counters::add(&shared.counters.lost, 1),
                    Err(e) => {
                        tracing::warn!(task = %id, error = %e, "could not hand a declined task back; it is offered again after its deadline");
                        Counters::add(&shared.counters.return_failures, 1);
                    }
                }
                shared.settled.notify_one();
            }
            Done::Lost => shared.settled.notify_one(),
        }
    }
}

/// How a worker is done with a task.
enum Done {
    /// Return this result.
    Return(TaskReturn),
    /// The actor declined the task: hand it back untried.
    Release(crate::queue::TaskId, crate::queue::PerformanceToken),
    /// Ownership was lost while it ran: its result must not be returned.
    Lost,
}

/// Aborts the handler if the worker stops waiting for it (lost ownership, shutdown).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one task's handler, extending its deadline while it runs.
async fn perform(shared: &Shared, task: OwnedTask) -> Done {
    let props = &shared.props;
    let mut handler = AbortOnDrop(tokio::spawn({
        let (actor, task) = (shared.actor.clone(), task.clone());
        async move { actor.perform(&task).await }.in_current_span()
    }));
    let start = tokio::time::Instant::now();
    let mut heartbeat = tokio::time::interval_at(start + props.heartbeat, props.heartbeat);
    let joined = loop {
        tokio::select! {
            joined = &mut handler.0 => break Some(joined),
            _ = heartbeat.tick() => {
                match shared.queue.extend_task_deadline(&task.id, task.token, props.max_duration).await {
                    Ok(()) => Counters::add(&shared.counters.heartbeats, 1),
                    Err(e @ Error::InvalidToken { .. }) => {
                        tracing::warn!(error = %e, "ownership lost while running; its result will be dropped");
                        Counters::add(&shared.counters.lost, 1);
                        break None;
                    }
                    Err(e) => tracing::warn!(error = %e, "extending the deadline failed; will retry"),
                }
            }
        }
    };
    shared.in_flight().remove(&task.id);
    shared
        .counters
        .for_action(&task.action, |s| s.durations.observe(start.elapsed()));
    let Some(joined) = joined else {
        return Done::Lost;
    };
    let result = match joined {
        Ok(Ok(result)) if result.status_code == TaskStatusCode::InProgress => {
            Counters::add(&shared.counters.handler_failures, 1);
            ActorResult::retry(format!(
                "handler returned status code in-progress (status {:?}); trying again",
                result.status
            ))
        }
        Ok(Ok(result)) => result,
        Ok(Err(e)) if e.is::<Declined>() => {
            tracing::info!(reason = %e, "handing the task back untried");
            return Done::Release(task.id, task.token);
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
    // Statuses come from plugins: a NUL in one would make PostgreSQL refuse the return.
    let status = if result.status.contains('\0') {
        result.status.replace('\0', "\u{FFFD}")
    } else {
        result.status
    };
    Done::Return(TaskReturn {
        id: task.id,
        token: task.token,
        status,
        code: result.status_code,
    })
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
