//! `parade task prune [--older-than DURATION] [--status completed|aborted]`: one pass of what
//! a node's pruner does in the background ([`crate::retention`]), in the same batches of
//! [`PRUNE_BATCH`] rows through [`Parade::prune_finished`], printing how many tasks of each
//! outcome it deleted.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::queue::{Parade, Retention, TaskStatusCode};
use crate::retention::PRUNE_BATCH;

/// `parade task prune --help`.
pub(super) const LONG_ABOUT: &str = "\
Delete finished tasks now, as a running node's pruner does in the background.

Only completed and aborted tasks are deleted, and only those that finished longer ago than \
they are kept: by the configuration's [retention] (completed 24h and aborted 7d unless it \
says otherwise), or by --older-than. Nothing pending, waiting or running is touched, and a \
successor keeps the signals its deleted predecessors sent it. The tasks go in batches of \
1,000, each one short transaction, so running nodes are not held up; on PostgreSQL this \
command and the nodes' pruners take turns.

Prints one line per outcome: the status code, a tab, how many tasks were deleted, a tab, \
and the age they were deleted past (or \"kept forever\").";

#[derive(Debug, Args)]
pub(super) struct PruneArgs {
    /// Delete finished tasks that ended longer ago than this ("1d", "12h", "30m"), instead
    /// of by the configuration's [retention].
    #[arg(long, value_name = "DURATION", value_parser = parse_older_than)]
    older_than: Option<Duration>,
    /// Only tasks that ended with this code.
    #[arg(long, value_name = "completed|aborted", value_parser = parse_final_status)]
    status: Option<TaskStatusCode>,
}

fn parse_older_than(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write e.g. \"1d\", \"12h\" or \"30m\""))?;
    if age.is_zero() {
        return Err("must be more than zero: a task that just ended may still be waited on".into());
    }
    Ok(age)
}

fn parse_final_status(text: &str) -> Result<TaskStatusCode, String> {
    match text {
        "completed" => Ok(TaskStatusCode::Completed),
        "aborted" => Ok(TaskStatusCode::Aborted),
        other => Err(format!(
            "{other:?} is not an outcome that is pruned: write completed or aborted"
        )),
    }
}

pub(super) async fn run(
    args: &PruneArgs,
    queue: &dyn Parade,
    configured: &Retention,
) -> anyhow::Result<ExitCode> {
    let keep = |configured: Option<Duration>| args.older_than.map_or(configured, Some);
    // As the node's pruner: a completed retention of zero keeps waited-for tasks a minute.
    let configured = &crate::retention::pruning_retention(configured);
    let outcomes = [
        (TaskStatusCode::Completed, keep(configured.completed)),
        (TaskStatusCode::Aborted, keep(configured.aborted)),
    ];
    let mut out = std::io::stdout().lock();
    for (code, kept) in outcomes {
        if args.status.is_some_and(|wanted| wanted != code) {
            continue;
        }
        let Some(kept) = kept else {
            writeln!(out, "{code}\t0\tkept forever")?;
            continue;
        };
        let retention = match code {
            TaskStatusCode::Completed => Retention {
                completed: Some(kept),
                aborted: None,
            },
            _ => Retention {
                completed: None,
                aborted: Some(kept),
            },
        };
        let mut deleted = 0;
        loop {
            let batch = queue.prune_finished(&retention, PRUNE_BATCH).await?;
            deleted += batch;
            if batch < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        writeln!(
            out,
            "{code}\t{deleted}\tolder than {}",
            humantime::format_duration(kept)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
