//! `parade schedule list`: the `[[schedule]]` entries of the configuration and when each
//! next falls due, read from `parade.toml` alone (no store is opened); `parade schedule run
//! NAME`: one task of a schedule, enqueued now outside its slots (as the dashboard's "run
//! now" button does).

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::config::{NodeConfig, ScheduleSpec};
use crate::queue::{Parade, Prefixed};
use crate::schedule::{run_now_task, slot_text};

#[derive(Debug, Subcommand)]
pub(super) enum ScheduleCommand {
    /// List the schedules, each with its next slot in UTC and in its time zone.
    ///
    /// Reads the configuration (`--config FILE`, else ./parade.toml) and nothing else:
    /// nothing is enqueued and no database is needed. Exit 0, or 2 if the configuration is
    /// invalid (the error names the file, the line and the key).
    List {
        /// One JSON object per line: name, timing, action, timezone, next (UTC, RFC 3339)
        /// and next_local (in its time zone); `next` is null for a schedule that never falls
        /// due again.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue one task of a schedule now, outside its slots; its slots go on as before.
    ///
    /// The task is the schedule's (action, body, max_tries, priority), with the id
    /// schedule:NAME:now:TIME, which no slot's task can have; it goes into the store of
    /// `--database` (else `[database] url`), namespaced by `[actor] prefix` as the node's
    /// own schedules are. Prints the task's id. Exit 0, or 2 if the configuration has no
    /// such schedule.
    Run {
        /// The schedule's `name`.
        name: String,
    },
}

/// `parade schedule run NAME` on the store at `url`.
async fn run_now(name: &str, config: &NodeConfig, url: &str) -> anyhow::Result<ExitCode> {
    let Some(spec) = config.schedules.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = config.schedules.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: no schedule {name:?} in {} (its schedules: {}); `parade schedule list` \
             shows them",
            config
                .file
                .as_ref()
                .map_or("the configuration".into(), |f| f.display().to_string()),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Ok(ExitCode::from(2));
    };
    let store = crate::queue::open(url).await?;
    let queue: std::sync::Arc<dyn Parade> = match config.actor.prefix.as_deref() {
        Some(prefix) if !prefix.is_empty() => std::sync::Arc::new(Prefixed::new(store, prefix)),
        _ => store,
    };
    let task = run_now_task(spec, Utc::now());
    queue.insert_tasks(std::slice::from_ref(&task)).await?;
    println!("{}", task.id);
    Ok(ExitCode::SUCCESS)
}

/// Runs `command`; `url` gives the store's URL, for the commands that open it.
pub(super) async fn run(
    command: &ScheduleCommand,
    config: &NodeConfig,
    url: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    match command {
        ScheduleCommand::List { json } => {
            let now = Utc::now();
            if *json {
                for spec in &config.schedules {
                    println!("{}", json_line(spec, spec.timing.next_after(now)));
                }
            } else {
                print!("{}", table(config, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::Run { name } => {
            let url = url()?;
            run_now(name, config, &url)
                .await
                .map_err(|e| super::redact::hide_in_error(e, &url))
        }
    }
}

/// The text listing: a header and one row per schedule, or a line saying there are none.
fn table(config: &NodeConfig, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    if config.schedules.is_empty() {
        let _ = match &config.file {
            Some(file) => writeln!(out, "no [[schedule]] entries in {}", file.display()),
            None => writeln!(
                out,
                "no schedules: no configuration file (pass --config FILE, or add ./parade.toml)"
            ),
        };
        return out;
    }
    let rows: Vec<[String; 5]> = config
        .schedules
        .iter()
        .map(|spec| {
            let next = spec.timing.next_after(now);
            [
                spec.name.clone(),
                spec.timing.to_string(),
                spec.action.clone(),
                next.map_or_else(|| "never".into(), slot_text),
                next.map_or_else(String::new, |n| local(spec, n)),
            ]
        })
        .collect();
    let header = [
        "name",
        "timing",
        "action",
        "next (UTC)",
        "next (its time zone)",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `next` in the schedule's time zone: `2026-12-02T03:00:00+01:00 Europe/Paris`.
fn local(spec: &ScheduleSpec, next: DateTime<Utc>) -> String {
    let timezone = spec.timing.timezone();
    format!(
        "{} {}",
        next.with_timezone(&timezone).format("%Y-%m-%dT%H:%M:%S%:z"),
        timezone.name()
    )
}

fn json_line(spec: &ScheduleSpec, next: Option<DateTime<Utc>>) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name,
        "timing": spec.timing.to_string(),
        "action": spec.action,
        "timezone": spec.timing.timezone().name(),
        "next": next.map(slot_text),
        "next_local": next.map(|n| n
            .with_timezone(&spec.timing.timezone())
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()),
    })
}
