//! Returning tasks on SQLite: a batch of returns in three statements, signalling
//! successors, and aborting expired last tries, with what each write changed ([`Effects`])
//! for the waiters and idle actors of this process. PostgreSQL does the same in its SQL
//! functions (`return_tasks`, `abort_expired_tasks`); the conformance suite holds both to it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::write_turn::WriteTx;
use super::{db_error, json_ids, micros_after, stored_successors, stored_token};
use crate::queue::rules::check_returns;
use crate::queue::{Error, OnCompletion, Result, TaskOutcome, TaskReturn, TaskStatusCode};

/// Expired last tries aborted per `own_tasks` call (as on PostgreSQL).
const EXPIRED_ABORTS_PER_OWN: i64 = 100;

/// Signals each successor once: one more signal, and one more failure if `failed`.
/// Ids that do not exist are ignored.
pub(super) async fn signal_successors(
    tx: &mut WriteTx,
    successors: Option<&str>,
    failed: bool,
) -> Result<bool> {
    let Some(successors) = successors else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE tasks SET num_signals = num_signals + 1, num_failures = num_failures + ?2 \
         WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(successors)
    .bind(i32::from(failed))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(true)
}

/// An in-progress task whose last allowed try expired.
#[derive(sqlx::FromRow)]
struct ExpiredTask {
    id: String,
    actor_id: Option<String>,
    num_tries: i32,
    max_tries: Option<i32>,
    to_signal_after: Option<String>,
    notify_channel_after: Option<String>,
}

/// Aborts tasks whose ownership expired on their last allowed try (uses
/// tasks_owned_deadline_idx); returns those with a notify channel, for their waiters.
pub(super) async fn abort_expired(tx: &mut WriteTx, now: i64, effects: &mut Effects) -> Result<()> {
    let expired: Vec<ExpiredTask> = sqlx::query_as(
        "SELECT id, actor_id, num_tries, max_tries, to_signal_after, notify_channel_after \
             FROM tasks INDEXED BY tasks_owned_deadline_idx \
             WHERE status_code = 'in-progress' AND action_deadline < ?1 \
               AND max_tries IS NOT NULL AND num_tries >= max_tries \
             ORDER BY action_deadline LIMIT ?2",
    )
    .bind(now)
    .bind(EXPIRED_ABORTS_PER_OWN)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    for task in expired {
        let status = format!(
            "ownership by {} expired on try {} of {}",
            task.actor_id.as_deref().unwrap_or("an unknown actor"),
            task.num_tries,
            task.max_tries.unwrap_or(task.num_tries)
        );
        sqlx::query(
            "UPDATE tasks SET status = ?2, status_code = 'aborted', actor_id = NULL, \
             performance_token = NULL, finished_at = ?3 WHERE id = ?1",
        )
        .bind(&task.id)
        .bind(&status)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        effects.runnable |= signal_successors(tx, task.to_signal_after.as_deref(), true).await?;
        if task.notify_channel_after.is_some() {
            let status_code = TaskStatusCode::Aborted;
            effects.ended.push((
                task.id,
                TaskOutcome {
                    status,
                    status_code,
                },
            ));
        }
    }
    Ok(())
}

/// What a committed write changed that others must hear about.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Tasks that ended, with a notify channel: their waiters are resolved.
    pub(super) ended: Vec<(String, TaskOutcome)>,
    /// Tasks may have become runnable: idle actors are hinted.
    pub(super) runnable: bool,
}

/// The columns of a task being returned that decide what its return changes.
#[derive(sqlx::FromRow)]
struct ReturnedTask {
    id: String,
    performance_token: Option<String>,
    num_tries: i32,
    max_tries: Option<i32>,
    to_signal_after: Option<String>,
    notify_channel_after: Option<String>,
}

/// Returns owned tasks inside `tx`, each with return_task's semantics on PostgreSQL and as
/// if one at a time in order (a task returned by an earlier row has no token left for a
/// later one), in at most four statements whatever the batch's size: one read of the
/// tasks, one update of them all, one delete of those completed under
/// [`OnCompletion::Delete`] (those without a notify channel), one update of every successor.
/// The outer result fails only if the store failed; each inner one is that row's answer.
pub(super) async fn return_batch(
    tx: &mut WriteTx,
    returns: &[TaskReturn],
    on_completion: OnCompletion,
    now: i64,
    effects: &mut Effects,
) -> Result<Vec<Result<()>>> {
    let mut results = check_returns(returns);
    let stored: Vec<ReturnedTask> = sqlx::query_as(
        "SELECT id, performance_token, num_tries, max_tries, to_signal_after, \
         notify_channel_after FROM tasks WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_ids(returns.iter().map(|r| r.id.as_str())))
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    let mut owned: HashMap<&str, &ReturnedTask> = stored
        .iter()
        .filter(|t| t.performance_token.is_some())
        .map(|t| (t.id.as_str(), t))
        .collect();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    // successor -> (signals, failures)
    let mut signals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (r, result) in returns.iter().zip(results.iter_mut()) {
        if result.is_err() {
            continue;
        }
        let token = stored_token(r.token);
        let Some(task) = owned
            .get(r.id.as_str())
            .copied()
            .filter(|t| t.performance_token.as_deref() == Some(token.as_str()))
        else {
            *result = Err(Error::InvalidToken {
                task_id: r.id.clone(),
            });
            continue;
        };
        owned.remove(r.id.as_str());
        let exhausted = task.max_tries.is_some_and(|max| task.num_tries >= max);
        let final_code = match r.code {
            TaskStatusCode::Pending if exhausted => TaskStatusCode::Aborted,
            code => code,
        };
        // Another try waits out its delay, if the return asks for one.
        let run_after = match (final_code, r.retry_after) {
            (TaskStatusCode::Pending, Some(delay)) => Some(micros_after(now, delay)),
            _ => None,
        };
        if on_completion == OnCompletion::Delete
            && final_code == TaskStatusCode::Completed
            && task.notify_channel_after.is_none()
        {
            deletes.push(r.id.as_str());
        } else {
            updates.push(serde_json::json!({
                "id": r.id.as_str(),
                "status": r.status,
                "code": final_code.as_str(),
                "finished": final_code.is_final().then_some(now),
                "run_after": run_after,
            }));
        }
        if !final_code.is_final() {
            effects.runnable = true;
            continue;
        }
        if let Some(successors) = &task.to_signal_after {
            effects.runnable = true;
            let successors = stored_successors(r.id.as_str(), successors)?;
            // Each successor once per predecessor, as on PostgreSQL.
            let unique: HashSet<String> = successors.into_iter().collect();
            for successor in unique {
                let counts = signals.entry(successor).or_default();
                counts.0 += 1;
                counts.1 += i64::from(final_code == TaskStatusCode::Aborted);
            }
        }
        if task.notify_channel_after.is_some() {
            let outcome = TaskOutcome {
                status: r.status.clone(),
                status_code: final_code,
            };
            effects.ended.push((r.id.0.clone(), outcome));
        }
    }
    if !updates.is_empty() {
        sqlx::query(
            "UPDATE tasks SET status = json_extract(r.value, '$.status'), \
             status_code = json_extract(r.value, '$.code'), actor_id = NULL, \
             performance_token = NULL, finished_at = json_extract(r.value, '$.finished'), \
             run_after = json_extract(r.value, '$.run_after') \
             FROM json_each(?1) AS r WHERE tasks.id = json_extract(r.value, '$.id')",
        )
        .bind(serde_json::Value::from(updates).to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    if !deletes.is_empty() {
        sqlx::query("DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(json_ids(deletes))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    if !signals.is_empty() {
        let signals: Vec<serde_json::Value> = signals
            .into_iter()
            .map(|(id, (n, failed))| serde_json::json!({"id": id, "n": n, "failed": failed}))
            .collect();
        sqlx::query(
            "UPDATE tasks SET num_signals = num_signals + json_extract(s.value, '$.n'), \
             num_failures = num_failures + json_extract(s.value, '$.failed') \
             FROM json_each(?1) AS s WHERE tasks.id = json_extract(s.value, '$.id')",
        )
        .bind(serde_json::Value::from(signals).to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(results)
}
