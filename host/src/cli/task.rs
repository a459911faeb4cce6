//! `parade task add|list|show|wait|delete`. What comes from the store is printed through
//! [`printable`](super::terminal::printable) in text output; `--file` is `task_file.rs`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use uuid::Uuid;

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
    /// 1 if it aborted, 2 on timeout or error. The task needs a notify channel.
    Wait {
        id: String,
        /// Give up after this long ("30s", "5m", "250ms").
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
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
    /// Insert every task of a JSON-lines file (one object per line; blank lines are skipped).
    ///
    /// A line may set id (default: a new random id), action (required), body, max_tries,
    /// priority, total_dependencies, to_signal_after, notify_channel_after and run_after. The
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
    /// Prints the number of tasks inserted, and progress on a terminal.
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

/// A new random task id: 32 lower-case hex digits.
pub(super) fn new_task_id() -> String {
    Uuid::new_v4().simple().to_string()
}

pub(super) async fn run(command: &TaskCommand, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::Add(args) => add(args, queue).await,
        TaskCommand::List(args) => list(args, queue).await,
        TaskCommand::Show { id, json } => show(id, *json, queue).await,
        TaskCommand::Wait { id, timeout } => wait(id, *timeout, queue).await,
        TaskCommand::Delete { ids } => {
            let ids: Vec<TaskId> = ids.iter().map(|id| TaskId::from(id.as_str())).collect();
            queue.delete_tasks(&ids).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn add(args: &AddArgs, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.file {
        let inserted = super::task_file::add_file(path, queue).await?;
        println!("{inserted}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(action) = &args.action else {
        bail!("--action or --file is required");
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
        ..TaskData::new(args.id.clone().unwrap_or_else(new_task_id), action.as_str())
    };
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
    } else {
        writeln!(
            out,
            "{:<34} {:<20} {:<11} {:>5}  STATUS",
            "ID", "ACTION", "CODE", "TRIES"
        )?;
        for task in tasks {
            writeln!(
                out,
                "{:<34} {:<20} {:<11} {:>5}  {}",
                printable(task.id.as_str()),
                printable(&task.action),
                task.status_code,
                task.num_tries,
                printable(task.status.as_deref().unwrap_or(""))
            )?;
        }
    }
    Ok(())
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
    let waiter = queue.new_waiter(&TaskId::from(id)).await?;
    match tokio::time::timeout(timeout, waiter.wait()).await {
        Ok(Ok(outcome)) => {
            println!("{}\t{}", outcome.status_code, printable(&outcome.status));
            Ok(match outcome.status_code {
                TaskStatusCode::Completed => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            })
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            waiter.cancel();
            bail!(
                "task {id} did not end within {}",
                humantime::format_duration(timeout)
            )
        }
    }
}
