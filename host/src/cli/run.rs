//! `parade run`: the node.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::watch;

use super::redact::redact;
use crate::admin::{self, AdminState};
use crate::config::{AdminConfig, NodeConfig, Overrides, DEFAULT_ADMIN_LISTEN};
use crate::manager::{ActionManager, ActionStats};
use crate::queue::{ActorId, Parade, Prefixed};
use crate::reload::{self, Reloader};
use crate::retention::Pruner;
use crate::runtime::{ComponentActor, Runtime, RuntimeOptions};
use crate::schedule::Scheduler;

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// The plugins folder (overrides `[plugins] dir`; default ./plugins).
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Where the admin listener (health, metrics, dashboard) listens, or `off` (overrides
    /// `[admin] listen`; default 127.0.0.1:9187).
    #[arg(long, value_name = "ADDRESS|off")]
    admin: Option<String>,
    /// Tasks run at once (overrides `[manager] workers`).
    #[arg(long, value_name = "N")]
    workers: Option<NonZeroUsize>,
    /// Check the configuration and load every plugin, print what would run, and exit
    /// (0 if all is well, 2 otherwise). Does not connect to the database.
    #[arg(long)]
    check: bool,
    /// Exit once no runnable task is left for this node's actions, printing a summary.
    #[arg(long)]
    until_idle: bool,
    /// How log lines are written (to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(super) log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub(super) async fn run(
    args: &RunArgs,
    config: NodeConfig,
    database_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        database_url,
        admin_listen: args
            .admin
            .as_deref()
            .map(crate::config::parse_listen)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--admin: {e}"))?,
        plugins_dir: args.plugins.clone(),
        workers: args.workers.map(NonZeroUsize::get),
    };
    let url = super::database_url(overrides.database_url.as_deref(), &config.database);
    crate::queue::check_url(&url)?;
    let config = config.with_overrides(&overrides);

    let specs = config.plugin_specs()?;
    let runtime = Runtime::with_options(RuntimeOptions {
        cache_dir: Some(config.cache_dir.clone()),
        fuel: specs.iter().any(|s| s.limits.fuel.is_some()),
    })?;
    runtime.check_workers(config.manager.workers)?;
    let loaded = reload::build(&runtime, &specs, &[]).await?;
    reload::prune_cache(&runtime, &loaded);
    if args.check {
        print!("{}", describe(&config, &url, &loaded));
        println!("configuration OK");
        return Ok(ExitCode::SUCCESS);
    }
    if loaded.is_empty() {
        tracing::warn!(
            dir = %config.plugins_dir.display(),
            "no plugins: drop NAME.wasm components into the plugins folder (they are picked up live)"
        );
    }

    let store = crate::queue::open_with(&url, config.database.pool_size)
        .await
        .with_context(|| format!("cannot open the queue at {}", redact(&url)))?;
    let queue: Arc<dyn Parade> = match config.actor.prefix.as_deref() {
        Some(prefix) if !prefix.is_empty() => Arc::new(Prefixed::new(store, prefix)),
        _ => store,
    };
    let actor_id = ActorId::from(config.actor.id.clone().unwrap_or_else(default_actor_id));
    let props = config.manager.clone();
    let actor = Arc::new(ComponentActor::new(
        runtime.clone(),
        loaded.iter().map(|l| l.plugin.clone()).collect(),
        queue.clone(),
        actor_id.clone(),
        props.max_duration,
    )?);
    // Schedules enqueue on the node's queue (prefixed, like the manager's); they do not keep
    // an `--until-idle` node alive, and stop as soon as shutdown begins. So does the pruner,
    // which prunes the whole store (retention belongs to the store, not to a namespace); it
    // starts before the manager, which follows its retention from the first return.
    let (stop_scheduling, scheduling) = watch::channel(false);
    let (retention, pruned, pruner) =
        Pruner::spawn(queue.clone(), config.retention, scheduling.clone());
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let manager = Arc::new(ActionManager::start(
        actor.clone(),
        queue.clone(),
        props.clone(),
    ));
    manager.follow_retention(retention.subscribe());
    tracing::info!(
        actor = %actor_id,
        database = %redact(&url),
        workers = props.workers,
        actions = ?crate::manager::Actor::actions(actor.as_ref()),
        "node started"
    );

    let (stop_watching, watching) = watch::channel(false);
    let admin_config = config.admin.clone();
    let (schedules, scheduler) =
        Scheduler::spawn(queue.clone(), config.schedules.clone(), scheduling);
    let reloader = Reloader::new(runtime.clone(), actor.clone(), config, overrides, loaded)
        .with_schedules(schedules.clone())
        .with_retention(retention);
    let reloads = reloader.stats();
    let watcher = tokio::spawn({
        let watching = watching.clone();
        async move {
            if let Err(e) = reloader.watch(watching).await {
                tracing::error!("live reload is off: {e:#}");
            }
        }
    });
    let admin_state = Arc::new(AdminState {
        queue,
        manager: manager.clone(),
        actor,
        runtime,
        reloads,
        pruned,
        token: admin_config.token.clone(),
        actor_id: actor_id.to_string(),
        database: redact(&url),
        started,
        ready: AtomicBool::new(true),
        hosts: admin_config.hosts.clone(),
        limits: admin::AdminLimits::default(),
        summary: admin::SummaryCache::default(),
        schedules: Some(schedules),
        dashboard: admin::Dashboard::starting_at(started_at),
    });
    let admin = start_admin(&admin_config, admin_state.clone(), watching).await?;

    let interrupted = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down: finishing running tasks, handing the rest back (signal again to exit at once)");
            true
        }
        _ = manager.wait_idle(), if args.until_idle => false,
    };
    admin_state.ready.store(false, Ordering::Relaxed);
    stop_scheduling.send_replace(true);
    let _ = scheduler.await;
    let _ = pruner.await;
    if interrupted {
        tokio::spawn(async {
            let signal = shutdown_signal().await;
            tracing::warn!(
                signal,
                "exiting at once; owned tasks return to the queue at their deadline"
            );
            std::process::exit(130);
        });
    }
    manager.close().await;
    stop_watching.send_replace(true);
    let _ = watcher.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }

    let stats = manager.stats();
    print!("{}", summary(&manager.stats_by_action(), started.elapsed()));
    if stats.lost + stats.return_failures > 0 {
        println!(
            "{} results not stored (ownership lost or the store unreachable); their tasks run again after their deadline",
            stats.lost + stats.return_failures
        );
    }
    if stats.cancelled > 0 {
        println!(
            "cancelled while this node owned them (stopped, not run again): {}",
            stats.cancelled
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the admin listener where `config` says: the default address (a busy port there is
/// only a warning, so several nodes can share a machine), another address (a busy port is
/// an error), or nowhere.
async fn start_admin(
    config: &AdminConfig,
    state: Arc<AdminState>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let (address, explicit) = match config.listen {
        Some(None) => return Ok(None),
        Some(Some(address)) => (address, true),
        None => (
            DEFAULT_ADMIN_LISTEN
                .parse()
                .expect("a valid default address"),
            false,
        ),
    };
    let (listener, bound) = match admin::bind(address).await {
        Ok(bound) => bound,
        Err(e) if !explicit => {
            tracing::warn!(%address, error = %e, "admin listener off (set [admin] listen or --admin to choose another address)");
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::Error::from(e))
                .with_context(|| format!("cannot listen on {address} for the admin endpoints"))
        }
    };
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "the admin listener is reachable from other machines");
    }
    tracing::info!(url = %format!("http://{bound}/"), "admin listening (dashboard, /metrics, /healthz)");
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = admin::serve(listener, state, stop).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    })))
}

/// Waits for SIGINT or SIGTERM and says which.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for signals; stop the node with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// The host name and process id: unique among the nodes of one database.
fn default_actor_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parade".into());
    format!("{host}-{}", std::process::id())
}

/// What `--check` prints: the store and each plugin with its actions and limits.
fn describe(config: &NodeConfig, url: &str, loaded: &[reload::Loaded]) -> String {
    let mut out = String::new();
    let file = config
        .file
        .as_ref()
        .map_or("(none; defaults)".to_owned(), |f| f.display().to_string());
    let _ = writeln!(out, "config    {file}");
    let _ = writeln!(out, "database  {}", redact(url));
    let _ = writeln!(out, "plugins   {}", config.plugins_dir.display());
    let keep = |keep: Option<std::time::Duration>| {
        keep.map_or("forever".to_owned(), |k| {
            humantime::format_duration(k).to_string()
        })
    };
    let _ = writeln!(
        out,
        "retention completed {}, aborted {}",
        keep(config.retention.completed),
        keep(config.retention.aborted)
    );
    for l in loaded {
        let p = &l.plugin;
        let _ = writeln!(
            out,
            "plugin    {}  {}  sha256:{}  memory {} MiB  timeout {}{}{}{}{}  actions: {}",
            p.name,
            p.origin(),
            &p.hash[..12],
            p.limits.memory >> 20,
            humantime::format_duration(p.limits.timeout),
            p.limits
                .fuel
                .map(|f| format!("  fuel {f}"))
                .unwrap_or_default(),
            p.limits
                .concurrency
                .global
                .map(|n| format!("  concurrency {n}"))
                .unwrap_or_default(),
            p.limits
                .concurrency
                .node
                .map(|n| format!("  node_concurrency {n}"))
                .unwrap_or_default(),
            if p.grants.allowed_hosts.is_empty() {
                String::new()
            } else {
                format!("  http: {}", p.grants.allowed_host_names().join(", "))
            },
            p.actions.join(", ")
        );
    }
    out
}

/// What `parade run` prints when it stops: results per action.
fn summary(
    by_action: &std::collections::BTreeMap<String, ActionStats>,
    elapsed: std::time::Duration,
) -> String {
    let mut out = String::new();
    let width = by_action.keys().map(String::len).max().unwrap_or(0).max(6);
    let _ = writeln!(
        out,
        "{:width$}  {:>9}  {:>7}  {:>7}",
        "action", "completed", "aborted", "retried"
    );
    let mut total = ActionStats::default();
    for (action, stats) in by_action {
        let _ = writeln!(
            out,
            "{action:width$}  {:>9}  {:>7}  {:>7}",
            stats.completed, stats.aborted, stats.retried
        );
        total.completed += stats.completed;
        total.aborted += stats.aborted;
        total.retried += stats.retried;
    }
    let _ = writeln!(
        out,
        "{:width$}  {:>9}  {:>7}  {:>7}",
        "total", total.completed, total.aborted, total.retried
    );
    let _ = writeln!(out, "in {:.2}s", elapsed.as_secs_f64());
    out
}
