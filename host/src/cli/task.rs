//! `parade task add|list|show|wait|delete`.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use uuid::Uuid;

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
    /// Insert every task of a JSON-lines file (one object per line, keys named like the
    /// columns: id, action, body, max_tries, total_dependencies, to_signal_after,
    /// notify_channel_after, priority, ...). All or nothing.
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

fn new_task_id() -> String {
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
        let tasks = read_task_file(path)?;
        let progress = std::io::stderr().is_terminal();
        if progress {
            eprint!(
                "inserting {} tasks from {} ...",
                tasks.len(),
                path.display()
            );
        }
        queue
            .insert_tasks(&tasks)
            .await
            .with_context(|| format!("{}: nothing was inserted", path.display()))?;
        if progress {
            eprintln!(" done");
        }
        println!("{}", tasks.len());
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

/// Reads a JSON-lines task file; see [`parse_task_lines`].
fn read_task_file(path: &Path) -> anyhow::Result<Vec<TaskData>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    parse_task_lines(&path.display().to_string(), BufReader::new(file))
}

/// Parses JSON lines of tasks (`name` names the source in errors); blank lines are skipped,
/// a task without an id gets one. The first bad line fails the whole file, naming its line
/// number.
fn parse_task_lines(name: &str, lines: impl BufRead) -> anyhow::Result<Vec<TaskData>> {
    let mut tasks = Vec::new();
    for (index, line) in lines.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("{name}:{number}: cannot read line"))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut task: TaskData = serde_json::from_str(&line)
            .with_context(|| format!("{name}:{number}: not a task; nothing was inserted"))?;
        if task.action.is_empty() {
            bail!("{name}:{number}: missing \"action\"; nothing was inserted");
        }
        if task.id.0.is_empty() {
            task.id = TaskId(new_task_id());
        }
        tasks.push(task);
    }
    Ok(tasks)
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
                task.id,
                task.action,
                task.status_code,
                task.num_tries,
                task.status.as_deref().unwrap_or("")
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
            writeln!(out, "{key}: {text}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait(id: &str, timeout: Duration, queue: &dyn Parade) -> anyhow::Result<ExitCode> {
    let waiter = queue.new_waiter(&TaskId::from(id)).await?;
    match tokio::time::timeout(timeout, waiter.wait()).await {
        Ok(Ok(outcome)) => {
            println!("{}\t{}", outcome.status_code, outcome.status);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse_task_lines;

    proptest! {
        /// Any bytes at all: an error naming a line, or tasks that each have an id and an
        /// action; never a panic.
        #[test]
        fn task_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse_task_lines("f", bytes.as_slice()) {
                Ok(tasks) => {
                    for task in tasks {
                        prop_assert!(!task.id.0.is_empty() && !task.action.is_empty());
                    }
                }
                Err(e) => prop_assert!(format!("{e:#}").starts_with("f:"), "{e:#}"),
            }
        }

        /// Lines shaped like tasks, with values of any kind in their fields.
        #[test]
        fn task_like_lines_parse_or_name_their_line(
            fields in proptest::collection::vec(
                (
                    prop::sample::select(vec!["id", "action", "body", "max_tries", "priority",
                        "to_signal_after", "total_dependencies", "num_tries", "bogus"]),
                    prop::sample::select(vec!["\"x\"", "1", "-1", "null", "[]", "[\"a\"]",
                        "{}", "1e400", "\"\\u0000\"", "99999999999"]),
                ),
                0..6,
            ),
            line_count in 1usize..4,
        ) {
            let object = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let text = vec![format!("{{{object}}}"); line_count].join("\n");
            if let Err(e) = parse_task_lines("f", text.as_bytes()) {
                prop_assert!(format!("{e:#}").starts_with("f:1:"), "{e:#}");
            }
        }
    }
}
