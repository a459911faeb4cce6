//! Cancelling tasks on SQLite, with PostgreSQL's `cancel_tasks` semantics (migration 0010):
//! each listed task that has not ended is aborted as any abort is, and with `cascade` every
//! task that transitively waits on one of them, not past tasks that ended.

use std::collections::{HashSet, VecDeque};

use super::returns::{signal_successors, Effects};
use super::write_turn::WriteTx;
use super::{db_error, stored_successors};
use crate::queue::rules;
use crate::queue::{CancelOutcome, Cancellation, Result, TaskId, TaskOutcome, TaskStatusCode};

/// What a cancel changed besides the rows: the running tasks it ended, whose nodes must stop
/// them.
pub(super) struct Cancelled {
    pub(super) answers: Vec<Cancellation>,
    pub(super) running: Vec<TaskId>,
}

/// Cancels `ids` (and with `cascade` their waiting successors) inside `tx`.
pub(super) async fn cancel_batch(
    tx: &mut WriteTx,
    ids: &[TaskId],
    reason: &str,
    cascade: bool,
    now: i64,
    effects: &mut Effects,
) -> Result<Cancelled> {
    let status = rules::cancel_status(reason);
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = ids
        .iter()
        .filter(|id| seen.insert(id.0.clone()))
        .map(|id| id.0.clone())
        .collect();
    let mut answers = Vec::new();
    let mut running = Vec::new();
    while let Some(id) = queue.pop_front() {
        let stored: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT status_code, to_signal_after, notify_channel_after FROM tasks WHERE id = ?1",
        )
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
        let Some((code, successors, channel)) = stored else {
            answers.push(Cancellation {
                id: TaskId(id),
                outcome: CancelOutcome::NotFound,
            });
            continue;
        };
        let code: TaskStatusCode = code.parse()?;
        if code.is_final() {
            answers.push(Cancellation {
                id: TaskId(id),
                outcome: CancelOutcome::AlreadyEnded(code),
            });
            continue;
        }
        sqlx::query(
            "UPDATE tasks SET status = ?2, status_code = 'aborted', actor_id = NULL, \
             performance_token = NULL, run_after = NULL, finished_at = ?3 WHERE id = ?1",
        )
        .bind(&id)
        .bind(&status)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        effects.runnable |= signal_successors(tx, successors.as_deref(), true).await?;
        if cascade {
            if let Some(successors) = &successors {
                let successors = stored_successors(&id, successors)?;
                queue.extend(successors.into_iter().filter(|s| seen.insert(s.clone())));
            }
        }
        if channel.is_some() {
            effects.ended.push((
                id.clone(),
                TaskOutcome {
                    status: status.clone(),
                    status_code: TaskStatusCode::Aborted,
                },
            ));
        }
        if code == TaskStatusCode::InProgress {
            running.push(TaskId(id.clone()));
        }
        answers.push(Cancellation {
            id: TaskId(id),
            outcome: CancelOutcome::Cancelled,
        });
    }
    Ok(Cancelled { answers, running })
}
