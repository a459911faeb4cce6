//! `parade plugin call FILE ACTION`: runs one task in a component, as a node would, with no
//! store to set up, and prints what happened.
//!
//! Nothing here is a second way of running a task: the component is loaded with its
//! `FILE.toml` settings by the node's loader (`reload::build`, `config::sidecar_spec`), and
//! the task is performed by the node's [`ComponentActor`] in the same sandbox, with the
//! same limits, its compiled code kept in a cache of the user's as a node keeps it (see
//! [`author_cache_dir`]). Only the queue differs: a scratch in-memory SQLite queue holds the one task,
//! so the host functions behave as on a node (`extend-deadline`, and `enqueue` checking its
//! batch by the store's own rules), and what the guest enqueued is printed and then
//! dropped with it. The guest's log lines and output are captured from the runtime's log
//! events for this task.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use clap::Args;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::SubscriberExt;

use super::terminal::printable;
use crate::manager::{Actor, ManagerProperties};
use crate::queue::{ActorId, Parade, SqliteParade, TaskData, TaskFilter, TaskId, TaskStatusCode};
use crate::runtime::{ComponentActor, DirGrant, HostPattern, Plugin, Runtime, RuntimeOptions};

/// Exit code when the guest returned `aborted`.
pub(super) const EXIT_ABORTED: u8 = 1;
/// Exit code when the guest returned `pending` (it asked to be tried again).
pub(super) const EXIT_PENDING: u8 = 3;
/// Exit code when the instance failed: a trap, timeout, out-of-memory, ...
pub(super) const EXIT_FAILED: u8 = 4;

/// What `plugin call --help` says after the flags.
pub(super) const AFTER_HELP: &str = "\
Prints, one per line and tab-separated: each log line of the guest (`log`, LEVEL or stdout/
stderr, TEXT), each task it enqueued (`enqueued`, ID, ACTION, its other fields as JSON), the
kind of failure if its instance failed (`failed`, timeout|out_of_memory|stack_overflow|
unreachable|trap|out_of_fuel|invalid_utf8|other), then `code` and `status`.

The task runs in the sandbox a node gives it, with FILE.toml's settings if that file exists
(timeout, memory, fuel, on_failure, env, dirs, allowed_hosts, actions): the same limits
stop it. Tasks it enqueues are checked as a node's store checks them, printed, and dropped.
Compiled code is kept in $XDG_CACHE_HOME/parade/components (else ~/.cache/parade/
components), as a node keeps it, so a later call of the same build starts at once.

Exit status: 0 completed, 1 aborted, 3 pending (it asked to be tried again), 4 its instance
failed (the `failed` line says how), 2 it could not run (unusable component, unknown
action, bad flag).";

#[derive(Debug, Args)]
pub(super) struct CallArgs {
    /// The component (FILE.toml beside it, if any, holds its settings).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The action to perform: one the component serves.
    action: String,
    /// The task's body.
    #[arg(long)]
    body: Option<String>,
    /// The task's id (default: a new random id).
    #[arg(long)]
    id: Option<String>,
    /// Which try this is, as `try-number` reports it.
    #[arg(long = "try", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    try_number: i32,
    /// Predecessors that ended aborted, as `handle` is told.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..))]
    signalled_failures: i32,
    /// Grants beyond FILE.toml's (repeatable): env:NAME=VALUE, dir:HOST_PATH=GUEST_PATH
    /// (read-only), dir-rw:HOST_PATH=GUEST_PATH, or http:HOST (an allowed_hosts entry).
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
}

/// One extra grant of `--grant`.
#[derive(Debug, PartialEq)]
enum Grant {
    Env(String, String),
    Dir(DirGrant),
    Http(HostPattern),
}

impl Grant {
    fn parse(text: &str) -> anyhow::Result<Grant> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--grant {text:?}: {why}; write env:NAME=VALUE, dir:HOST_PATH=GUEST_PATH, \
                 dir-rw:HOST_PATH=GUEST_PATH or http:HOST"
            )
        };
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("no kind"))?;
        let pair = || rest.split_once('=').ok_or_else(|| bad("no `=`"));
        match kind {
            "env" => {
                let (name, value) = pair()?;
                if name.is_empty() {
                    return Err(bad("no variable name"));
                }
                Ok(Grant::Env(name.to_owned(), value.to_owned()))
            }
            "dir" | "dir-rw" => {
                let (host, guest) = pair()?;
                if host.is_empty() || !guest.starts_with('/') {
                    return Err(bad("a folder of this machine, and an absolute guest path"));
                }
                Ok(Grant::Dir(DirGrant {
                    host: PathBuf::from(host),
                    guest: guest.to_owned(),
                    writable: kind == "dir-rw",
                }))
            }
            "http" => HostPattern::parse(rest)
                .map(Grant::Http)
                .map_err(|e| bad(&e)),
            _ => Err(bad(&format!("unknown kind {kind:?}"))),
        }
    }
}

/// The plugin author's cache of this user: `$XDG_CACHE_HOME/parade`, else
/// `~/.cache/parade` (none without either variable). It holds compiled components
/// ([`author_cache_dir`]) and the target folder Rust projects share (`plugin_new.rs`).
pub(super) fn author_cache_home() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("parade"))
}

/// Where `plugin build` and `plugin call` keep compiled components, as a node keeps them in
/// its `plugins.cache_dir`: `components/` of [`author_cache_home`]. A Python or JavaScript
/// component takes seconds to compile; this way `call` after `build`, and every later
/// `call` of the same build, loads it in milliseconds.
fn author_cache_dir() -> Option<PathBuf> {
    Some(author_cache_home()?.join("components"))
}

/// Loads `component` as a node loads a component of its plugins folder: with the settings
/// of its `NAME.toml`, if any, plus `extra` grants (none of which may overlap the
/// component's folder or the compile cache, as in a node); in a runtime that meters fuel if
/// those settings set a fuel limit.
pub(super) async fn load_like_a_node(
    component: &Path,
    extra: &[String],
) -> anyhow::Result<(Arc<Runtime>, Arc<Plugin>)> {
    let mut spec = crate::config::sidecar_spec(component)?;
    for grant in extra {
        match Grant::parse(grant)? {
            Grant::Env(name, value) => spec.grants.env.push((name, value)),
            Grant::Dir(dir) => spec.grants.dirs.push(dir),
            Grant::Http(host) => {
                let mut hosts = spec.grants.allowed_hosts.to_vec();
                hosts.push(host);
                spec.grants.allowed_hosts = hosts.into();
            }
        }
    }
    let cache_dir = author_cache_dir();
    let folder = component.parent().unwrap_or(Path::new(""));
    let mut places = crate::config::NodeConfig::defaults(folder);
    if let Some(cache) = &cache_dir {
        places.cache_dir = cache.clone();
    }
    places.check_grants(std::slice::from_ref(&spec))?;
    let runtime = Runtime::with_options(RuntimeOptions {
        cache_dir,
        fuel: spec.limits.fuel.is_some(),
    })?;
    let mut loaded = crate::reload::build(&runtime, std::slice::from_ref(&spec), &[]).await?;
    let plugin = loaded
        .pop()
        .context("the loader returned no plugin")?
        .plugin;
    runtime.prune_cache(&[plugin.hash.as_str()]);
    Ok((runtime, plugin))
}

/// A line the guest wrote during the call: (LEVEL or stream, text).
type GuestLine = (String, String);

/// Collects the runtime's log events of one task's guest: its `log` calls
/// (`runtime::state`) and its stdout and stderr (`runtime::output`).
struct GuestLines {
    task: String,
    lines: Arc<Mutex<Vec<GuestLine>>>,
}

#[derive(Default)]
struct EventFields {
    message: String,
    task: Option<String>,
    stream: Option<String>,
}

impl tracing::field::Visit for EventFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "task" => self.task = Some(value.to_owned()),
            "stream" => self.stream = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "task" => self.task = Some(format!("{value}", value = DebugText(value))),
            _ => {}
        }
    }
}

/// A `Debug` value as the text it prints.
struct DebugText<'a>(&'a dyn std::fmt::Debug);

impl std::fmt::Display for DebugText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for GuestLines {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let target = event.metadata().target();
        if !(target.ends_with("runtime::state") || target.ends_with("runtime::output")) {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        if fields.task.as_deref() != Some(self.task.as_str()) {
            return;
        }
        let kind = fields
            .stream
            .unwrap_or_else(|| event.metadata().level().as_str().to_ascii_lowercase());
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, fields.message));
    }
}

/// What the guest enqueued, as one JSON object of the fields it set.
fn enqueued_fields(task: &TaskData) -> serde_json::Value {
    let mut fields = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        if !value.is_null() {
            fields.insert(key.to_owned(), value);
        }
    };
    put("body", task.body.clone().into());
    put("max_tries", task.max_tries.into());
    put("total_dependencies", task.total_dependencies.into());
    if !task.to_signal_after.is_empty() {
        put(
            "signal_after",
            task.to_signal_after
                .iter()
                .map(|id| id.as_str().to_owned())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    put("notify_channel", task.notify_channel_after.clone().into());
    if task.priority != 0 {
        put("priority", task.priority.into());
    }
    put(
        "run_after",
        task.run_after.map(super::due::timestamp).into(),
    );
    serde_json::Value::Object(fields)
}

/// Runs `plugin call`.
pub(super) async fn run(args: &CallArgs) -> anyhow::Result<ExitCode> {
    let (runtime, plugin) = load_like_a_node(&args.file, &args.grants).await?;
    if !plugin.actions.contains(&args.action) {
        bail!(
            "{} does not serve action {:?}: it serves {}",
            args.file.display(),
            args.action,
            plugin.actions.join(", ")
        );
    }
    let id = args.id.clone().unwrap_or_else(super::task::new_task_id);
    let queue: Arc<dyn Parade> = Arc::new(
        SqliteParade::open("sqlite::memory:")
            .await
            .context("cannot open the scratch queue")?,
    );
    let properties = ManagerProperties::default();
    queue
        .insert_tasks(&[TaskData {
            body: args.body.clone(),
            ..TaskData::new(id.clone(), args.action.as_str())
        }])
        .await
        .with_context(|| format!("task {id}"))?;
    let actor_id = ActorId::from("parade-plugin-call");
    let mut task = queue
        .own_tasks(
            &actor_id,
            1,
            std::slice::from_ref(&args.action),
            Some(properties.max_duration),
        )
        .await?
        .pop()
        .context("the scratch queue did not hand over the task")?;
    task.num_tries = args.try_number;
    task.num_signalled_failures = args.signalled_failures;

    let actor = ComponentActor::new(
        runtime.clone(),
        vec![plugin],
        queue.clone(),
        actor_id,
        properties.max_duration,
    )?;
    let lines: Arc<Mutex<Vec<GuestLine>>> = Arc::default();
    let capture = tracing_subscriber::registry().with(GuestLines {
        task: id.clone(),
        lines: lines.clone(),
    });
    let result = actor.perform(&task).with_subscriber(capture).await?;

    let mut out = String::new();
    for (kind, text) in lines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        out.push_str(&format!("log\t{kind}\t{}\n", printable(text)));
    }
    let enqueued = queue
        .list_tasks(&TaskFilter {
            limit: Some(u32::MAX),
            ..TaskFilter::default()
        })
        .await?;
    for new in enqueued
        .iter()
        .filter(|t| t.id != TaskId::from(id.as_str()))
    {
        out.push_str(&format!(
            "enqueued\t{}\t{}\t{}\n",
            printable(new.id.as_str()),
            printable(&new.action),
            enqueued_fields(new)
        ));
    }
    let failure = runtime.stats.failures().into_keys().next();
    if let Some(kind) = failure {
        out.push_str(&format!("failed\t{kind}\n"));
    }
    out.push_str(&format!("code\t{}\n", result.status_code));
    if let Some(wait) = result.retry_after {
        out.push_str(&format!(
            "retry_after\t{}\n",
            humantime::format_duration(wait)
        ));
    }
    out.push_str(&format!("status\t{}\n", printable(&result.status)));
    print!("{out}");
    Ok(match (failure, result.status_code) {
        (Some(_), _) => ExitCode::from(EXIT_FAILED),
        (None, TaskStatusCode::Completed) => ExitCode::SUCCESS,
        (None, TaskStatusCode::Aborted) => ExitCode::from(EXIT_ABORTED),
        (None, _) => ExitCode::from(EXIT_PENDING),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_parsed_or_refused_with_the_forms_they_take() {
        assert_eq!(
            Grant::parse("env:MODE=fast=yes").unwrap(),
            Grant::Env("MODE".into(), "fast=yes".into())
        );
        assert_eq!(
            Grant::parse("dir-rw:/tmp/x=/data").unwrap(),
            Grant::Dir(DirGrant {
                host: "/tmp/x".into(),
                guest: "/data".into(),
                writable: true
            })
        );
        assert!(matches!(
            Grant::parse("http:api.example.com").unwrap(),
            Grant::Http(_)
        ));
        for bad in [
            "env",
            "env:=1",
            "dir:/tmp/x=data",
            "net:all",
            "http:ftp://x",
        ] {
            let e = Grant::parse(bad).unwrap_err().to_string();
            assert!(e.contains("env:NAME=VALUE"), "{bad}: {e}");
        }
    }
}
