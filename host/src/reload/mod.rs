//! Live reload: building the set of plugins a configuration describes, and rebuilding it
//! when `parade.toml` or the plugins folder changes.
//!
//! [`build`] loads every plugin of a configuration, reusing each already-loaded plugin whose
//! component bytes and settings are unchanged (so a reload compiles only what changed).
//! [`Reloader::watch`] follows the files with `notify`, waits for them to settle (editors
//! that save by rename and slow copies send bursts of events), rebuilds, and swaps the new
//! set into the [`ComponentActor`] at once, then hands the configuration's `[[schedule]]`
//! entries to the node's [`Scheduler`](crate::schedule::Scheduler) and its `[retention]` to
//! the node's [`Pruner`](crate::retention::Pruner). Anything invalid —
//! unreadable TOML, a bad schedule, a file that is not a component, two plugins claiming one
//! action, a directory grant that overlaps the node's own files — is logged and changes
//! nothing: the last good plugins keep serving and the last good schedules keep running.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::config::{NodeConfig, Overrides, PluginSpec};
use crate::retention::RetentionControl;
use crate::runtime::{check_claims, content_hash, ComponentActor, Plugin, Runtime};
use crate::schedule::Schedules;

/// Quiet time after the last file event before a reload starts.
const SETTLE: Duration = Duration::from_millis(200);
/// Longest a stream of events can put a reload off.
const MAX_DEFER: Duration = Duration::from_secs(2);

/// A loaded plugin and the spec it was loaded from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec: PluginSpec,
    pub plugin: Arc<Plugin>,
}

/// Loads the plugins `specs` describe, reusing every plugin of `previous` whose settings and
/// component bytes are unchanged, and checks that no two claim one action.
pub async fn build(
    runtime: &Runtime,
    specs: &[PluginSpec],
    previous: &[Loaded],
) -> anyhow::Result<Vec<Loaded>> {
    let mut loaded = Vec::with_capacity(specs.len());
    for spec in specs {
        let bytes = std::fs::read(&spec.file).with_context(|| {
            format!("{}: cannot read {}", spec.file_origin, spec.file.display())
        })?;
        let hash = content_hash(&bytes);
        if let Some(same) = previous
            .iter()
            .find(|l| l.plugin.hash == hash && l.spec.same_settings(spec))
        {
            loaded.push(Loaded {
                spec: spec.clone(),
                plugin: same.plugin.clone(),
            });
            continue;
        }
        let plugin = load(runtime, spec, &bytes, hash)
            .await
            .with_context(|| format!("plugin {} ({})", spec.name, spec.file.display()))?;
        loaded.push(Loaded {
            spec: spec.clone(),
            plugin: Arc::new(plugin),
        });
    }
    let plugins: Vec<Arc<Plugin>> = loaded.iter().map(|l| l.plugin.clone()).collect();
    check_claims(&plugins)?;
    Ok(loaded)
}

async fn load(
    runtime: &Runtime,
    spec: &PluginSpec,
    bytes: &[u8],
    hash: String,
) -> anyhow::Result<Plugin> {
    let mut plugin = runtime
        .load_hashed(&spec.name, bytes, hash, spec.limits.clone())
        .await?
        .with_grants(spec.grants.clone())?;
    plugin.file = Some(spec.file.clone());
    if let Some(actions) = &spec.actions {
        if let Some(missing) = actions.iter().find(|a| !plugin.actions.contains(a)) {
            let at = spec
                .actions_origin
                .as_ref()
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            bail!(
                "{at}action {missing:?} is not one the component exports (its actions() returns {})",
                plugin.actions.join(", ")
            );
        }
        plugin.actions = actions.clone();
    }
    Ok(plugin)
}

/// Reload counters, for logs and metrics, and the latest rejection, for the dashboard.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads that swapped in a new set of plugins.
    pub applied: AtomicU64,
    /// Reloads refused because something was invalid.
    pub rejected: AtomicU64,
    /// The latest reload refused since the last one applied (`None`: the files on disk are
    /// what runs, as far as the last reload could tell).
    last_rejection: std::sync::Mutex<Option<ReloadRejection>>,
}

/// A reload that was refused: when, and why (the error as the log states it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRejection {
    pub at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
}

impl ReloadStats {
    /// The latest reload refused since one was last applied.
    pub fn last_rejection(&self) -> Option<ReloadRejection> {
        self.rejection().clone()
    }

    fn rejection(&self) -> std::sync::MutexGuard<'_, Option<ReloadRejection>> {
        self.last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn count_applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
        *self.rejection() = None;
    }

    fn count_rejected(&self, reason: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        *self.rejection() = Some(ReloadRejection {
            at: chrono::Utc::now(),
            reason,
        });
    }
}

/// Follows a node's configuration and plugins folder and keeps its actor's plugins current.
pub struct Reloader {
    runtime: Arc<Runtime>,
    actor: Arc<ComponentActor>,
    /// `parade.toml`, if the node has one; otherwise the defaults below are kept.
    config_file: Option<PathBuf>,
    /// The command line's settings, applied to every re-read configuration.
    overrides: Overrides,
    /// The configuration in force: its plugins and plugins folder are the live ones, its
    /// restart-only sections those the node started with.
    config: NodeConfig,
    loaded: Vec<Loaded>,
    stats: Arc<ReloadStats>,
    /// The node's scheduler, if it runs one: each applied reload replaces its schedules.
    schedules: Option<Schedules>,
    /// The node's pruner, if it runs one: each applied reload hands it the retention.
    retention: Option<RetentionControl>,
}

impl Reloader {
    /// A reloader for a node started with `config` (read from its file, then `overrides`
    /// applied) and `loaded` (as built by [`build`]).
    pub fn new(
        runtime: Arc<Runtime>,
        actor: Arc<ComponentActor>,
        config: NodeConfig,
        overrides: Overrides,
        loaded: Vec<Loaded>,
    ) -> Self {
        Reloader {
            runtime,
            actor,
            config_file: config.file.clone(),
            overrides,
            config,
            loaded,
            stats: Arc::default(),
            schedules: None,
            retention: None,
        }
    }

    /// Has every applied reload replace the schedules of the scheduler `schedules` belongs
    /// to with the re-read configuration's (a rejected reload leaves them as they were).
    pub fn with_schedules(mut self, schedules: Schedules) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// Has every applied reload hand the re-read `[retention]` to the pruner `retention`
    /// controls.
    pub fn with_retention(mut self, retention: RetentionControl) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Counters of applied and rejected reloads.
    pub fn stats(&self) -> Arc<ReloadStats> {
        self.stats.clone()
    }

    /// Re-reads the configuration and the plugins folder and, if everything is valid, swaps
    /// the new set of plugins in, then the new schedules. On error nothing changes.
    pub async fn reload(&mut self) -> anyhow::Result<()> {
        let mut config = match &self.config_file {
            Some(file) => NodeConfig::load(file)?.with_overrides(&self.overrides),
            None => self.config.clone(),
        };
        if self.config.plugins_dir != config.plugins_dir {
            tracing::info!(
                from = %self.config.plugins_dir.display(),
                to = %config.plugins_dir.display(),
                "plugins folder changed"
            );
        }
        // Keep describing what actually runs: restart-only sections stay as they started.
        // Before the plugins are listed, so their grants are checked against the cache and
        // database the node really uses, not ones it will use only after a restart.
        let restart_only = config.keep_restart_only_from(&self.config);
        let specs = config.plugin_specs()?;
        let loaded = build(&self.runtime, &specs, &self.loaded).await?;
        self.actor
            .replace_plugins(loaded.iter().map(|l| l.plugin.clone()).collect())?;
        if !restart_only.is_empty() {
            tracing::warn!(
                sections = ?restart_only,
                "these settings changed but take effect only when the node restarts"
            );
        }
        log_changes(&self.loaded, &loaded);
        prune_cache(&self.runtime, &loaded);
        if let Some(schedules) = &self.schedules {
            schedules.replace(config.schedules.clone());
        }
        if let Some(retention) = &self.retention {
            if retention.replace(config.retention) {
                tracing::info!(retention = ?config.retention, "retention changed");
            }
        }
        self.loaded = loaded;
        self.config = config;
        Ok(())
    }

    /// Reloads whenever the configuration file or the plugins folder changes, until `stop`
    /// turns true.
    pub async fn watch(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = events_tx.send(event);
        })
        .context("cannot watch files for changes")?;
        let mut watched = self.watch_paths(&mut watcher, Vec::new());
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return Ok(()),
                event = events.recv() => match event {
                    Some(event) if self.is_relevant(&event) => {}
                    Some(_) => continue,
                    None => return Ok(()),
                },
            }
            // Let a burst of events (a save by rename, a slow copy) settle first.
            let deferred_since = tokio::time::Instant::now();
            while deferred_since.elapsed() < MAX_DEFER {
                match tokio::time::timeout(SETTLE, events.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(()),
                    Err(_) => break,
                }
            }
            match self.reload().await {
                Ok(()) => self.stats.count_applied(),
                Err(e) => {
                    tracing::error!(
                        "reload rejected, the previous plugins and schedules stay: {e:#}"
                    );
                    self.stats.count_rejected(format!("{e:#}"));
                }
            }
            watched = self.watch_paths(&mut watcher, watched);
        }
    }

    /// Watches the configuration file's folder and the plugins folder (replacing `watched`),
    /// creating the plugins folder if it is missing so components can be dropped in later.
    fn watch_paths(
        &self,
        watcher: &mut notify::RecommendedWatcher,
        watched: Vec<PathBuf>,
    ) -> Vec<PathBuf> {
        let mut wanted = Vec::new();
        if let Some(file) = &self.config_file {
            // The folder, not the file: editors replace the file by renaming over it.
            wanted.push(parent_or_dot(file));
        }
        let plugins_dir = &self.config.plugins_dir;
        if !plugins_dir.exists() {
            if let Err(e) = std::fs::create_dir_all(plugins_dir) {
                tracing::warn!(dir = %plugins_dir.display(), error = %e, "cannot create the plugins folder");
            }
        }
        wanted.push(plugins_dir.clone());
        wanted.dedup();
        if wanted == watched {
            return watched;
        }
        for path in &watched {
            let _ = watcher.unwatch(path);
        }
        wanted
            .into_iter()
            .filter(|path| match watcher.watch(path, RecursiveMode::NonRecursive) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot watch for changes");
                    false
                }
            })
            .collect()
    }

    /// Events about the configuration file, or about components and manifests in the
    /// plugins folder (not hidden files, which tools write while a file is in progress).
    fn is_relevant(&self, event: &notify::Result<notify::Event>) -> bool {
        let Ok(event) = event else {
            return true;
        };
        if event.kind.is_access() {
            return false;
        }
        event.paths.iter().any(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy());
            if let (Some(file), Some(name)) = (&self.config_file, &name) {
                if file.file_name().map(|n| n.to_string_lossy()).as_ref() == Some(name) {
                    return true;
                }
            }
            let in_plugins = path
                .parent()
                .is_some_and(|p| same_dir(p, &self.config.plugins_dir));
            in_plugins
                && name.is_some_and(|n| !n.starts_with('.'))
                && path
                    .extension()
                    .is_some_and(|ext| ext == "wasm" || ext == "toml")
        })
    }
}

fn parent_or_dot(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || a.canonicalize()
            .ok()
            .is_some_and(|a| Some(a) == b.canonicalize().ok())
}

/// Drops compiled components no plugin of `loaded` needs that have gone unused a while.
pub fn prune_cache(runtime: &Runtime, loaded: &[Loaded]) {
    let in_use: Vec<&str> = loaded.iter().map(|l| l.plugin.hash.as_str()).collect();
    runtime.prune_cache(&in_use);
}

/// Logs what a reload changed.
fn log_changes(before: &[Loaded], after: &[Loaded]) {
    let find = |set: &[Loaded], name: &str| set.iter().find(|l| l.spec.name == name).cloned();
    for now in after {
        match find(before, &now.spec.name) {
            None => {
                tracing::info!(plugin = %now.spec.name, hash = %short(&now.plugin.hash), actions = ?now.plugin.actions, "plugin added")
            }
            Some(was) if !Arc::ptr_eq(&was.plugin, &now.plugin) => tracing::info!(
                plugin = %now.spec.name, from = %short(&was.plugin.hash), to = %short(&now.plugin.hash),
                actions = ?now.plugin.actions, "plugin replaced; running tasks finish on the old version"
            ),
            Some(_) => {}
        }
    }
    for was in before {
        if find(after, &was.spec.name).is_none() {
            tracing::info!(plugin = %was.spec.name, actions = ?was.plugin.actions, "plugin removed; its running tasks finish");
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
