//! `parade task add|list|show|wait|cancel|prune|delete`. What comes from the store is printed
//! through [`printable`](super::terminal::printable) in text output; `--file` is
//! `task_file.rs`, `cancel` is `cancel.rs`, `prune` is `prune.rs`, and when a delayed task
//! is due is `due.rs`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::due::{due_text, timestamp};
use super::terminal::printable;
use crate::queue::{Error, Parade, TaskData, TaskFilter, TaskId, TaskStatusCode};

#[derive(Debug, Subcommand)]
pub(super) enum TaskCommand {
    /// Add one task (prints its id), or many from a JSON-lines file.
    Add(AddArgs),
    /// List tasks in insertion order.
    List(ListArgs),
    /// Show one task's whole row.
    Show {
        id: String,
        /// One JSON object with the column names as keys.
        #[arg(long)]
        json: bool,
    },
    /// Wait until a task ends; prints its status code and status. Exit 0 if it completed,
    /// 1 if it aborted, 2 on timeout or error. A task with a notify channel is waited for
    /// on it; any other is read until it ends (every 50 ms at first, then up to every 1 s).
    Wait {
        id: String,
        /// Give up after this long ("30s", "5m", "250ms").
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Cancel tasks that have not ended: each ends aborted with status "cancelled: REASON".
    /// Exit 0 if every id was cancelled or had already ended, 1 if any was not found.
    #[command(long_about = super::cancel::LONG_ABOUT)]
    Cancel(super::cancel::CancelArgs),
    /// Delete finished tasks past their retention now, as a node's pruner does: by
    /// [retention], or --older-than.
    #[command(long_about = super::prune::LONG_ABOUT)]
    Prune(super::prune::PruneArgs),
    /// Delete tasks, and successors left with no unmet dependency.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The action that performs the task.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    action: Option<String>,
    /// Task id (default: a new random id).
    #[arg(long, conflicts_with = "file")]
    id: Option<String>,
    /// The task's body (JSON by convention; opaque to Parade).
    #[arg(long, conflicts_with = "file")]
    body: Option<String>,
    /// Give up (abort) after this many tries.
    #[arg(long, conflicts_with = "file")]
    max_tries: Option<i32>,
    /// Signals from predecessors required before the task may run.
    #[arg(long, conflicts_with = "file")]
    total_dependencies: Option<i32>,
    /// A successor to signal when this task ends (repeatable).
    #[arg(long = "signal-after", value_name = "ID", conflicts_with = "file")]
    signal_after: Vec<String>,
    /// Channel to NOTIFY when this task ends (needed by `parade task wait`).
    #[arg(long = "notify", value_name = "CHANNEL", conflicts_with = "file")]
    notify: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, conflicts_with = "file")]
    priority: i32,
    /// Not offered before this long from now ("90s", "5m", "1h30m"). In a file: run_after.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay, allow_hyphen_values = true,
          conflicts_with_all = ["file", "at"])]
    delay: Option<Duration>,
    /// Not offered before this time, in RFC 3339: 2026-12-24T18:00:00Z, or with an offset
    /// such as 2026-12-24T19:00:00+01:00. A time that has passed is due at once.
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "file")]
    at: Option<DateTime<Utc>>,
    /// Add only tasks whose id is not stored yet, and leave those that are as they are
    /// (whatever they hold): an idempotent add, for a producer that may send a task twice.
    ///
    /// Prints one line per task instead of the id (or count): ID, a tab, and `added` or
    /// `already exists`. Exit 0 either way.
    #[arg(long)]
    if_absent: bool,
    /// Insert every task of a JSON-lines file (one object per line; blank lines are skipped).
    ///
    /// A line may set id (default: a new random id), action (required), body, max_tries,
    /// priority, total_dependencies, to_signal_after, notify_channel_after and run_after (an
    /// RFC 3339 time such as "2026-12-24T18:00:00Z": not offered before it). The
    /// columns the queue keeps (status, status_code, num_tries, num_failures, num_signals,
    /// actor_id, action_deadline, performance_token) are refused, and so is a line longer
    /// than 1 MiB. A task's successors (to_signal_after) may be anywhere in the file, or
    /// stored already.
    ///
    /// The whole file is checked first: a bad line, an id used twice or an unknown successor
    /// inserts nothing, and the error names the line. Then the tasks are inserted in file
    /// order, about 1,000 per transaction; a batch grows while one of its tasks names a
    /// successor further down, so no task is stored before its successors. If the store
    /// refuses a task after some batches went in (an id someone stored meanwhile, say), the
    /// error names its line and the lines that were inserted. The file is read twice (a
    /// regular file, not a pipe); memory grows with the number of ids, not with the bodies.
    /// Prints the number of tasks inserted (with --if-absent, one line per task), and
    /// progress on a terminal.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only tasks with this status code (pending, in-progress, aborted, completed).
    #[arg(long, value_parser = parse_status_code)]
    status: Option<TaskStatusCode>,
    /// Only tasks of this action.
    #[arg(long)]
    action: Option<String>,
    /// Only tasks whose id starts with this.
    #[arg(long, value_name = "PREFIX")]
    id_prefix: Option<String>,
    /// At most this many tasks.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Newest first.
    #[arg(long)]
    newest_first: bool,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Show the list again every second (a live table on a terminal), until interrupted.
    #[arg(long)]
    watch: bool,
}

fn parse_status_code(s: &str) -> Result<TaskStatusCode, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    // Taken as a value so that "-5s" is refused in these words, not as an unknown flag.
    if s.strip_prefix('-')
        .is_some_and(|d| humantime::parse_duration(d).is_ok())
    {
        return Err("a delay cannot be negative (to run the task now, leave --delay out)".into());
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 90s, 5m or 1h30m"))
}

/// An RFC 3339 time (as `--at` and a task file's `run_after` take it), in UTC.
pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "{e}; expected an RFC 3339 time such as 2026-12-24T18:00:00Z \
                 (or 2026-12-24T19:00:00+01:00)"
            )
        })
}

/// What `--if-absent` prints for a task: whether it was added or was stored already.
pub(super) fn if_absent_line(id: &TaskId, added: bool) -> String {
    let outcome = if added { "added" } else { "already exists" };
    format!("{}\t{outcome}", printable(id.as_str()))
}

/// A new random task id: 32 lower-case hex digits.
pub(super) fn new_task_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Runs `command` on `queue`; `retention` is the configuration's, for `prune`.
pub(super) async fn run(
    command: &TaskCommand,
    queue: &dyn Parade,
    retention: &crate::queue::Retention,
) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::Add(args) => add(args, queue).await,
        TaskCommand::List(args) => list(args, queue).await,
        TaskCommand::Show { id, json } => show(id, *json, queue).await,
        TaskCommand::Wait { id, timeout } => wait(id, *timeout, queue).await,
        TaskCommand::Cancel(args) => super::cancel::run(args, queue).await,
        TaskCommand::Prune(args) => super::prune::run(args, queue, retention).await,
        TaskCommand::Delete { ids } => {
            let ids: Vec<TaskId> = ids.iter().map(|id| TaskId::from(id.as_str())).collect();
            queue.delete_tasks(&ids).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn add(args: &AddArgs, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.file {
        let added = super::task_file::add_file(path, queue, args.if_absent).await?;
        let mut out = std::io::stdout().lock();
        match added.tasks {
            Some(tasks) => {
                for (id, new) in tasks {
                    writeln!(out, "{}", if_absent_line(&id, new))?;
                }
            }
            None => writeln!(out, "{}", added.count)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(action) = &args.action else {
        bail!("--action or --file is required");
    };
    let run_after = match (args.delay, args.at) {
        (Some(delay), _) => Some(
            chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| Utc::now().checked_add_signed(delay))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--delay {} is too far in the future",
                        humantime::format_duration(delay)
                    )
                })?,
        ),
        (None, at) => at,
    };
    let task = TaskData {
        body: args.body.clone(),
        max_tries: args.max_tries,
        total_dependencies: args.total_dependencies,
        to_signal_after: args
            .signal_after
            .iter()
            .map(|s| TaskId::from(s.as_str()))
            .collect(),
        notify_channel_after: args.notify.clone(),
        priority: args.priority,
        run_after,
        ..TaskData::new(args.id.clone().unwrap_or_else(new_task_id), action.as_str())
    };
    if args.if_absent {
        let added = queue
            .insert_tasks_if_absent(std::slice::from_ref(&task))
            .await?;
        println!("{}", if_absent_line(&task.id, added.contains(&task.id)));
        return Ok(ExitCode::SUCCESS);
    }
    queue.insert_tasks(std::slice::from_ref(&task)).await?;
    println!("{}", task.id);
    Ok(ExitCode::SUCCESS)
}

async fn list(args: &ListArgs, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    let filter = TaskFilter {
        status_code: args.status,
        action: args.action.clone(),
        id_prefix: args.id_prefix.clone(),
        limit: Some(args.limit),
        newest_first: args.newest_first,
        ..TaskFilter::default()
    };
    if !args.watch {
        let tasks = queue.list_tasks(&filter).await?;
        print_tasks(&tasks, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let terminal = std::io::stdout().is_terminal();
    loop {
        let tasks = queue.list_tasks(&filter).await?;
        if terminal {
            // Clear the screen and go home, so the table updates in place.
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "{}  ({} tasks)",
            chrono::Local::now().format("%H:%M:%S"),
            tasks.len()
        );
        print_tasks(&tasks, false)?;
        if !terminal {
            println!();
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn print_tasks(tasks: &[TaskData], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for task in tasks {
            writeln!(out, "{}", serde_json::to_string(task)?)?;
        }
        return Ok(());
    }
    // DUE: when a delayed pending task will be offered; empty once it is due.
    let now = Utc::now();
    let due: Vec<String> = tasks
        .iter()
        .map(|t| due_text(t, now).unwrap_or_default())
        .collect();
    let due_width = due.iter().map(String::len).max().unwrap_or(0).max(3);
    writeln!(
        out,
        "{:<34} {:<20} {:<11} {:>5}  {:<due_width$}  STATUS",
        "ID", "ACTION", "CODE", "TRIES", "DUE"
    )?;
    for (task, due) in tasks.iter().zip(due) {
        let line = format!(
            "{:<34} {:<20} {:<11} {:>5}  {due:<due_width$}  {}",
            printable(task.id.as_str()),
            printable(&task.action),
            task.status_code,
            task.num_tries,
            printable(task.status.as_deref().unwrap_or(""))
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `task show`'s text for `run_after`: when a pending task is due ("in 4m (TIME)", or "now"
/// once that time has passed), the stored time otherwise, empty if none.
fn shown_run_after(task: &TaskData) -> String {
    let Some(at) = task.run_after else {
        return String::new();
    };
    match due_text(task, Utc::now()) {
        Some(due) => due,
        None if task.status_code == TaskStatusCode::Pending => "now".into(),
        None => timestamp(at),
    }
}

async fn show(id: &str, json: bool, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    let Some(task) = queue.get_task(&TaskId::from(id)).await? else {
        bail!("task {id} not found");
    };
    if json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&task)?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let value = serde_json::to_value(&task)?;
    let mut out = std::io::stdout().lock();
    if let Some(fields) = value.as_object() {
        for (key, value) in fields {
            let text = match value {
                _ if key == "run_after" => shown_run_after(&task),
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(out, "{key}: {}", printable(&text))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait(id: &str, timeout: Duration, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    let task_id = TaskId::from(id);
    let ended = match queue.new_waiter(&task_id).await {
        Ok(waiter) => match tokio::time::timeout(timeout, waiter.wait()).await {
            Ok(outcome) => Some(outcome?),
            Err(_) => {
                waiter.cancel();
                None
            }
        },
        // No channel to be told on: read the task until it ends instead.
        Err(Error::NoNotifyChannel { .. }) => {
            match tokio::time::timeout(timeout, poll_until_ended(&task_id, queue)).await {
                Ok(outcome) => Some(outcome?),
                Err(_) => None,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let Some(outcome) = ended else {
        bail!(
            "task {id} did not end within {}",
            humantime::format_duration(timeout)
        )
    };
    println!("{}\t{}", outcome.status_code, printable(&outcome.status));
    Ok(match outcome.status_code {
        TaskStatusCode::Completed => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// First and longest pause between two reads of a task [`poll_until_ended`] waits for: a
/// short task is seen ending soon, and a long one costs the store a read a second.
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(1);

/// Reads task `id` until it has ended (completed or aborted), pausing [`POLL_FIRST`] and
/// then twice as long each time, up to [`POLL_MAX`]. For a task with no notify channel.
async fn poll_until_ended(
    id: &TaskId,
    queue: &dyn Parade,
) -> anyhow::Result<crate::queue::TaskOutcome> {
    let mut pause = POLL_FIRST;
    loop {
        let Some(task) = queue.get_task(id).await? else {
            bail!(
                "task {id} not found: deleted while waiting? (with [retention] completed = \"0s\" \
                 a task without a notify channel is deleted as it completes; give it a channel \
                 to wait for its result)"
            );
        };
        if matches!(
            task.status_code,
            TaskStatusCode::Completed | TaskStatusCode::Aborted
        ) {
            return Ok(crate::queue::TaskOutcome {
                status_code: task.status_code,
                status: task.status.unwrap_or_default(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}
