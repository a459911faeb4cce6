//! The input rules every backend applies alike, in one place: what a batch of new tasks must
//! satisfy, what a return must satisfy, and why an operator's retry is refused. Backends call
//! these before they write, so a rule never depends on which store holds the tasks, and a
//! bad row is refused with an error naming it rather than failing as a database error.
//! `docs/queue-semantics.md` states the rules for users.

use std::collections::HashSet;

use super::{Error, Result, TaskData, TaskId, TaskReturn, TaskStatusCode};

/// The longest task id a store keeps, in bytes of UTF-8 (as stored: a namespace's `PREFIX.`
/// counts). PostgreSQL's indexes refuse keys over about 2.7 kB of incompressible text; a
/// documented bound below that turns a database error into a clear one, on both backends.
pub const MAX_ID_BYTES: usize = 1024;
/// The longest action name a store keeps, in bytes (indexed like ids, as stored).
pub const MAX_ACTION_BYTES: usize = 1024;
/// The longest notify channel, in bytes: a PostgreSQL identifier (`pg_notify` refuses 64
/// bytes or more, and an empty channel).
pub const MAX_CHANNEL_BYTES: usize = 63;

/// Checks a batch before it is stored: texts must not hold NUL, counts must not be negative,
/// ids must be unique within the batch, and each `to_signal_after` entry must name a task of
/// the batch or one of `stored` (the entries not in the batch, as returned by
/// [`successors_outside`], that the store found).
pub(super) fn check_batch(tasks: &[TaskData], stored: &HashSet<&str>) -> Result<()> {
    let mut batch: HashSet<&str> = HashSet::with_capacity(tasks.len());
    for task in tasks {
        check_length("id", task.id.as_str(), MAX_ID_BYTES, &task.id)?;
        if !batch.insert(task.id.as_str()) {
            return Err(Error::DuplicateTask {
                task_id: task.id.clone(),
            });
        }
    }
    for task in tasks {
        check_task(task)?;
        if let Some(successor) = task
            .to_signal_after
            .iter()
            .find(|s| !batch.contains(s.as_str()) && !stored.contains(s.as_str()))
        {
            return Err(Error::UnknownSuccessor {
                task_id: task.id.clone(),
                successor: successor.clone(),
            });
        }
    }
    Ok(())
}

/// The rules for one new task that need nothing but the task.
fn check_task(task: &TaskData) -> Result<()> {
    let texts = [
        ("id", Some(task.id.as_str())),
        ("action", Some(task.action.as_str())),
        ("body", task.body.as_deref()),
        ("status", task.status.as_deref()),
        ("notify_channel_after", task.notify_channel_after.as_deref()),
    ];
    let successors = task
        .to_signal_after
        .iter()
        .map(|s| ("to_signal_after", Some(s.as_str())));
    if let Some((field, _)) = texts
        .into_iter()
        .chain(successors)
        .find(|(_, text)| text.is_some_and(has_nul))
    {
        return Err(Error::InvalidTask {
            task_id: task.id.clone(),
            problem: format!("{field} contains a NUL character, which cannot be stored"),
        });
    }
    check_length("action", &task.action, MAX_ACTION_BYTES, &task.id)?;
    for successor in &task.to_signal_after {
        check_length(
            "to_signal_after entry",
            successor.as_str(),
            MAX_ID_BYTES,
            &task.id,
        )?;
    }
    match task.notify_channel_after.as_deref() {
        Some("") => {
            return Err(Error::InvalidTask {
                task_id: task.id.clone(),
                problem: "notify_channel_after is empty; leave it unset for no channel".into(),
            })
        }
        Some(channel) => {
            check_length("notify_channel_after", channel, MAX_CHANNEL_BYTES, &task.id)?
        }
        None => {}
    }
    for (field, value) in [
        ("num_tries", Some(task.num_tries)),
        ("num_failures", Some(task.num_failures)),
        ("num_signals", Some(task.num_signals)),
        ("max_tries", task.max_tries),
        ("total_dependencies", task.total_dependencies),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(Error::InvalidTask {
                task_id: task.id.clone(),
                problem: format!("{field} must not be negative"),
            });
        }
    }
    Ok(())
}

/// Refuses `text` (the `field` of task `id`) if it is longer than `max` bytes. An overlong
/// id is named by its beginning.
fn check_length(field: &str, text: &str, max: usize, id: &TaskId) -> Result<()> {
    if text.len() <= max {
        return Ok(());
    }
    Err(Error::InvalidTask {
        task_id: named_briefly(id),
        problem: format!(
            "{field} is {} bytes; at most {max} can be stored",
            text.len()
        ),
    })
}

/// `id`, or for one too long to print whole its first 64 characters and an ellipsis.
fn named_briefly(id: &TaskId) -> TaskId {
    const SHOWN: usize = 64;
    match id.as_str().char_indices().nth(SHOWN) {
        Some((end, _)) => TaskId(format!("{}…", &id.as_str()[..end])),
        None => id.clone(),
    }
}

/// PostgreSQL text cannot hold NUL; both backends refuse it alike.
fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The `to_signal_after` entries of a batch that name no task of the batch itself: the ids a
/// backend must look up before [`check_batch`].
pub(super) fn successors_outside(tasks: &[TaskData]) -> Vec<String> {
    let batch: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let mut outside: Vec<String> = tasks
        .iter()
        .flat_map(|t| &t.to_signal_after)
        .filter(|s| !batch.contains(s.as_str()))
        .map(|s| s.0.clone())
        .collect();
    outside.sort_unstable();
    outside.dedup();
    outside
}

/// Checks one return before the store sees it: a return ends a try, so its code is pending,
/// aborted or completed; its status is stored, so it must not hold NUL.
pub(super) fn check_return(r: &TaskReturn) -> Result<()> {
    if r.code == TaskStatusCode::InProgress {
        return Err(Error::ReturnedInProgress {
            task_id: r.id.clone(),
        });
    }
    if has_nul(&r.status) {
        return Err(Error::InvalidReturn {
            task_id: r.id.clone(),
            problem: "the status contains a NUL character, which cannot be stored".into(),
        });
    }
    if has_nul(r.id.as_str()) {
        // No stored task has such an id (inserts refuse it), so no token can match.
        return Err(Error::InvalidToken {
            task_id: r.id.clone(),
        });
    }
    Ok(())
}

/// [`check_return`] of each return, in order: the rows a backend passes on are the `Ok`
/// ones; the others already hold their answer.
pub(super) fn check_returns(returns: &[TaskReturn]) -> Vec<Result<()>> {
    returns.iter().map(check_return).collect()
}

/// The status `cancel_tasks` gives the tasks it ends (PostgreSQL's `cancel_tasks`, migration
/// 0010, writes the same).
pub(super) fn cancel_status(reason: &str) -> String {
    if reason.is_empty() {
        "cancelled".to_owned()
    } else {
        format!("cancelled: {reason}")
    }
}

/// Whether `status` is one [`cancel_status`] gives.
pub fn is_cancel_status(status: &str) -> bool {
    status == "cancelled" || status.starts_with("cancelled: ")
}

/// Checks a cancel's reason, which becomes the cancelled tasks' status.
pub(super) fn check_cancel_reason(reason: &str) -> Result<()> {
    if has_nul(reason) {
        return Err(Error::InvalidArgument {
            what: "cancel reason".into(),
            problem: "it contains a NUL character, which cannot be stored".into(),
        });
    }
    Ok(())
}

/// Why `retry_task` found nothing to retry, from the task's stored status and whether it
/// signals successors.
pub(super) fn retry_refusal(id: &TaskId, stored: Option<(TaskStatusCode, bool)>) -> Error {
    match stored {
        None => Error::TaskNotFound {
            task_id: id.clone(),
        },
        Some((code, _)) if code != TaskStatusCode::Aborted => Error::InvalidTask {
            task_id: id.clone(),
            problem: format!("it is {code}; only aborted tasks can be retried"),
        },
        Some(_) => Error::InvalidTask {
            task_id: id.clone(),
            problem: "it signals successors, which were signalled when it aborted and would be \
                      signalled twice; insert a new task instead"
                .into(),
        },
    }
}

/// The channel a waiter on `id` listens to, from the task's stored `notify_channel_after`
/// (`None`: no such task). An empty channel is no channel, as in the seed.
pub(super) fn notify_channel(id: &TaskId, stored: Option<Option<String>>) -> Result<String> {
    match stored {
        None => Err(Error::TaskNotFound {
            task_id: id.clone(),
        }),
        Some(Some(channel)) if !channel.is_empty() => Ok(channel),
        Some(_) => Err(Error::NoNotifyChannel {
            task_id: id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::PerformanceToken;

    fn ret(id: &str, status: &str, code: TaskStatusCode) -> TaskReturn {
        TaskReturn {
            id: TaskId::from(id),
            token: PerformanceToken(uuid::Uuid::nil()),
            status: status.into(),
            code,
            retry_after: None,
        }
    }

    #[test]
    fn each_bad_return_is_refused_alone_with_its_reason() {
        let results = check_returns(&[
            ret("a", "done", TaskStatusCode::Completed),
            ret("b", "", TaskStatusCode::InProgress),
            ret("c", "bad\0status", TaskStatusCode::Aborted),
            ret("d", "again", TaskStatusCode::Pending),
        ]);
        assert!(results[0].is_ok());
        assert!(
            matches!(&results[1], Err(Error::ReturnedInProgress { task_id }) if task_id.as_str() == "b")
        );
        assert!(
            matches!(&results[2], Err(Error::InvalidReturn { task_id, .. }) if task_id.as_str() == "c")
        );
        assert!(results[3].is_ok());
    }

    #[test]
    fn an_overlong_id_is_named_by_its_beginning() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let Err(Error::InvalidTask { task_id, problem }) =
            check_batch(&[TaskData::new(long.as_str(), "a")], &HashSet::new())
        else {
            panic!("an overlong id must be refused");
        };
        assert_eq!(task_id.as_str(), format!("{}…", "x".repeat(64)));
        assert!(problem.contains("1025 bytes"), "{problem}");
    }

    #[test]
    fn a_batch_naming_one_id_twice_is_a_duplicate() {
        let tasks = [TaskData::new("x", "a"), TaskData::new("x", "b")];
        assert!(matches!(
            check_batch(&tasks, &HashSet::new()),
            Err(Error::DuplicateTask { task_id }) if task_id.as_str() == "x"
        ));
    }
}
