//! `parade task cancel ID... [--reason TEXT] [--cascade] [--json]`: ends tasks that have not
//! ended through [`Parade::cancel_tasks`], one line per task. The answers' JSON shape
//! ([`CancelAnswer`]) is shared with the admin listener's `POST /api/task/cancel`.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::terminal::printable;
use crate::queue::{CancelOutcome, Cancellation, Parade, TaskId, TaskStatusCode};

/// Exit code when some listed id names no task (the others were still cancelled).
const EXIT_NOT_FOUND: u8 = 1;

/// `parade task cancel --help`.
pub(super) const LONG_ABOUT: &str = "\
Cancel tasks that have not ended.

Each listed task that is pending, waiting for its dependencies, delayed or running ends \
aborted with status \"cancelled: REASON\" (\"cancelled\" without --reason), as any abort \
does: its successors are signalled with a failure and its waiters wake. A running task's \
owner can no longer extend or return it: the store refuses its late result. A task that \
has already ended is left as it is. All of it happens in one transaction.

Prints one line per task: the id, a tab, and `cancelled`, `already ended as CODE` or \
`not found` (`cancelled (cascade)` for a task reached through --cascade); with --json one \
object per line instead.

Exit codes: 0 if every listed id was cancelled or had already ended, 1 if any listed id \
names no task (the others are cancelled all the same), 2 on any error (then nothing was \
cancelled).";

#[derive(Debug, Args)]
pub(super) struct CancelArgs {
    /// The tasks to cancel.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
    /// Why: stored in the status as "cancelled: REASON" (without it, "cancelled").
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Also cancel every task that waits on a cancelled one (its successors through
    /// to_signal_after, and theirs), except tasks that have ended.
    #[arg(long)]
    cascade: bool,
    /// One JSON object per task: {"id", "outcome" (cancelled, already-ended, not-found),
    /// "status_code" (for already-ended), "cascade" (reached through --cascade)}.
    #[arg(long)]
    json: bool,
}

/// One task's answer to a cancel, as the CLI's `--json` and the admin listener print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CancelAnswer {
    pub id: TaskId,
    /// `cancelled`, `already-ended` or `not-found`.
    pub outcome: &'static str,
    /// The code an already ended task ended with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<TaskStatusCode>,
    /// Not listed, but reached by the cascade.
    pub cascade: bool,
}

impl CancelAnswer {
    /// The answers to a cancel of `listed`, in the queue's order (the listed ids, then those
    /// the cascade reached).
    pub(crate) fn all(listed: &[TaskId], answers: Vec<Cancellation>) -> Vec<CancelAnswer> {
        let listed: HashSet<&TaskId> = listed.iter().collect();
        answers
            .into_iter()
            .map(|c| {
                let (outcome, status_code) = match c.outcome {
                    CancelOutcome::Cancelled => ("cancelled", None),
                    CancelOutcome::AlreadyEnded(code) => ("already-ended", Some(code)),
                    CancelOutcome::NotFound => ("not-found", None),
                };
                CancelAnswer {
                    cascade: !listed.contains(&c.id),
                    id: c.id,
                    outcome,
                    status_code,
                }
            })
            .collect()
    }

    /// "cancelled", "cancelled (cascade)", "already ended as completed", "not found".
    pub(crate) fn describe(&self) -> String {
        match (self.outcome, self.status_code) {
            ("cancelled", _) if self.cascade => "cancelled (cascade)".into(),
            ("already-ended", Some(code)) => format!("already ended as {code}"),
            (outcome, _) => outcome.replace('-', " "),
        }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.outcome == "not-found"
    }
}

pub(super) async fn run(args: &CancelArgs, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    let ids: Vec<TaskId> = args
        .ids
        .iter()
        .map(|id| TaskId::from(id.as_str()))
        .collect();
    let answers = CancelAnswer::all(
        &ids,
        queue
            .cancel_tasks(&ids, args.reason.as_deref().unwrap_or(""), args.cascade)
            .await?,
    );
    let mut out = std::io::stdout().lock();
    for answer in &answers {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(answer)?)?;
        } else {
            writeln!(
                out,
                "{}\t{}",
                printable(answer.id.as_str()),
                answer.describe()
            )?;
        }
    }
    Ok(if answers.iter().any(CancelAnswer::is_not_found) {
        ExitCode::from(EXIT_NOT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_say_what_happened_and_which_the_cascade_reached() {
        let listed = [TaskId::from("a"), TaskId::from("b"), TaskId::from("c")];
        let answers = CancelAnswer::all(
            &listed,
            vec![
                Cancellation {
                    id: "a".into(),
                    outcome: CancelOutcome::Cancelled,
                },
                Cancellation {
                    id: "b".into(),
                    outcome: CancelOutcome::AlreadyEnded(TaskStatusCode::Completed),
                },
                Cancellation {
                    id: "c".into(),
                    outcome: CancelOutcome::NotFound,
                },
                Cancellation {
                    id: "d".into(),
                    outcome: CancelOutcome::Cancelled,
                },
            ],
        );
        let described: Vec<String> = answers.iter().map(CancelAnswer::describe).collect();
        assert_eq!(
            described,
            [
                "cancelled",
                "already ended as completed",
                "not found",
                "cancelled (cascade)"
            ]
        );
        assert_eq!(
            serde_json::to_value(&answers).unwrap(),
            serde_json::json!([
                {"id": "a", "outcome": "cancelled", "cascade": false},
                {"id": "b", "outcome": "already-ended", "status_code": "completed", "cascade": false},
                {"id": "c", "outcome": "not-found", "cascade": false},
                {"id": "d", "outcome": "cancelled", "cascade": true},
            ])
        );
    }
}
