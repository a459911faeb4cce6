//! The WebAssembly runtime: runs tasks in sandboxed components of the `parade:actor` world
//! (`wit/actor.wit`, version 0.2.0; components built against 0.1.0 keep running, see
//! `contract.rs`).
//!
//! One [`Runtime`] per process holds the wasmtime `Engine` (async, pooling instance
//! allocator, epoch interruption) and the `Linker` with WASI preview 2, `wasi:http` (gated by
//! each plugin's `allowed_hosts`) and Parade's host interface in every contract version.
//! [`Runtime::load`] compiles a component once (or loads it from the on-disk cache of
//! `cache.rs`, keyed by its content hash and the engine's settings), finds which version of
//! the world it implements ([`ContractVersion`]), and asks it for its actions: the result is
//! a [`Plugin`]. [`ComponentActor`] is the ActionManager's
//! [`Actor`](crate::manager::Actor) for a set of plugins.
//!
//! Every task runs in a fresh `Store` and instance: nothing survives between tasks and no
//! task sees another. The guest gets no ambient authority (no files, environment, network
//! or inherited stdio); its stdout and stderr are captured, bounded, and logged with the
//! task id (`output.rs`). Memory is limited per task instance, all its memories and tables
//! together (`limits.rs`); time per task, in guest code (epoch interruption) and while the
//! guest waits in a host call (a timer around the whole call). A trap, timeout,
//! out-of-memory or stack overflow ends only that task, with a status that says which.

mod actor;
mod cache;
mod contract;
mod http;
mod limits;
mod output;
mod plugin;
mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use actor::{check_claims, ComponentActor};
pub use cache::CACHE_KEEP;
pub use contract::ContractVersion;
pub use http::HostPattern;
pub use plugin::{content_hash, DirGrant, FailurePolicy, Plugin, PluginGrants, PluginLimits};
use state::TaskState;

/// How often the epoch advances: the granularity of time limits and of fair yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Memory and table bytes per pooled slot kept mapped between instances.
const KEEP_RESIDENT: usize = 2 << 20;
/// Largest memory any plugin may be granted.
pub const MAX_PLUGIN_MEMORY: usize = 1 << 30;
/// Component instances the pooling allocator holds at once: tasks running, and a plugin
/// being loaded.
const INSTANCE_SLOTS: u32 = 256;
/// Instance slots kept for loading and reloading plugins (one at a time).
const LOADING_SLOTS: u32 = 1;

/// The process's WebAssembly engine, linker and compiled-component cache.
pub struct Runtime {
    /// What its instances did, for metrics.
    pub stats: RuntimeStats,
    engine: Engine,
    linker: Linker<TaskState>,
    cache_dir: Option<PathBuf>,
    pooling: bool,
    fuel: bool,
    ticking: Arc<AtomicBool>,
}

/// What a runtime's instances did.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    instantiate: std::sync::Mutex<crate::manager::Histogram>,
    failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl RuntimeStats {
    fn instantiated(&self, took: Duration) {
        self.instantiate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(took);
    }

    fn failed(&self, kind: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    /// How long creating a task's store and instance took.
    pub fn instantiate_times(&self) -> crate::manager::Histogram {
        *self.instantiate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Failed instances by kind: timeout, stack_overflow, out_of_memory, out_of_fuel,
    /// unreachable, trap, invalid_utf8, other.
    pub fn failures(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How a [`Runtime`] is set up; fixed for the life of the process.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are kept across restarts (none: compile on every start).
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel, so plugins may set [`PluginLimits::fuel`]. Metering costs every plugin a
    /// little speed, so it is off unless some plugin needs it.
    pub fuel: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.cache_dir)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

fn engine_config(pooling: bool, fuel: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(INSTANCE_SLOTS)
            .total_core_instances(1024)
            .total_memories(512)
            .total_tables(512)
            .max_memory_size(MAX_PLUGIN_MEMORY)
            // Reset small memories and tables by writing zeros instead of returning pages
            // to the OS: a task's instance is short-lived, so this saves a syscall per task.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            // Without PAGEMAP_SCAN, resetting a slot writes every kept byte back, dirty or
            // not: a whole MiB for a no-op Rust guest, half of its per-task cost. With it
            // (Linux 6.7+; elsewhere `Auto` falls back to the plain reset) one ioctl finds
            // the pages the task wrote and only those are reset.
            .pagemap_scan(if swap_configured() {
                Enabled::No
            } else {
                Enabled::Auto
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// True unless the system is known to have no swap device.
///
/// Wasmtime 48's PAGEMAP_SCAN reset only resets dirty pages that are *present*: a dirty page
/// swapped out when the slot is reset is neither reset nor decommitted, so the next task in
/// that slot could read it (bytecodealliance/wasmtime#14357, not fixed in 48.0.8). That
/// would break the promise that no task sees another, so the scan is used only where
/// nothing can be swapped out. Caveat: a swap device added while the node runs is not seen.
fn swap_configured() -> bool {
    match std::fs::read_to_string("/proc/swaps") {
        // A header line, then one line per active swap device.
        Ok(swaps) => swaps.lines().skip(1).any(|line| !line.trim().is_empty()),
        Err(_) => true,
    }
}

impl Runtime {
    /// Creates the engine (pooling allocator, or on-demand allocation where the OS refuses
    /// the pool's reservation) and starts its epoch ticker. `cache_dir` keeps compiled
    /// components across restarts.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        Self::with_options(RuntimeOptions {
            cache_dir,
            ..RuntimeOptions::default()
        })
    }

    /// [`Runtime::new`] with every option.
    pub fn with_options(options: RuntimeOptions) -> anyhow::Result<Arc<Self>> {
        let RuntimeOptions { cache_dir, fuel } = options;
        let (engine, pooling) = match Engine::new(&engine_config(true, fuel)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; allocating on demand");
                (Engine::new(&engine_config(false, fuel))?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        contract::add_to_linker(&mut linker)?;

        let ticking = Arc::new(AtomicBool::new(true));
        std::thread::Builder::new()
            .name("parade-epoch".into())
            .spawn({
                let (engine, ticking) = (engine.clone(), ticking.clone());
                move || {
                    while ticking.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Arc::new(Runtime {
            stats: RuntimeStats::default(),
            engine,
            linker,
            cache_dir,
            pooling,
            fuel,
            ticking,
        }))
    }

    /// True if instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// True if this runtime meters fuel (see [`RuntimeOptions::fuel`]).
    pub fn meters_fuel(&self) -> bool {
        self.fuel
    }

    /// Checks that `workers` tasks can run at once: the pooling allocator has a fixed number
    /// of instance slots, and a task past them would fail to start. Allocating on demand
    /// has no such bound.
    pub fn check_workers(&self, workers: usize) -> anyhow::Result<()> {
        let for_tasks = INSTANCE_SLOTS - LOADING_SLOTS;
        if self.pooling && workers > for_tasks as usize {
            anyhow::bail!(
                "workers = {workers} is more than the pooling allocator's {INSTANCE_SLOTS} \
                 instance slots allow ({LOADING_SLOTS} kept for loading plugins): set \
                 [manager] workers (or --workers) to at most {for_tasks}"
            );
        }
        Ok(())
    }

    /// Compiles (or loads from the cache) the component in `bytes`, checks that it
    /// implements the `parade:actor/actor` world (of any [`ContractVersion`]), and asks it
    /// for its actions.
    pub async fn load(
        &self,
        name: &str,
        bytes: &[u8],
        limits: PluginLimits,
    ) -> anyhow::Result<Plugin> {
        self.load_hashed(name, bytes, plugin::content_hash(bytes), limits)
            .await
    }

    /// [`Runtime::load`] of bytes whose [`content_hash`] the caller already has.
    pub async fn load_hashed(
        &self,
        name: &str,
        bytes: &[u8],
        hash: String,
        limits: PluginLimits,
    ) -> anyhow::Result<Plugin> {
        plugin::check_header(bytes)?;
        // Compiling takes from milliseconds to seconds of CPU: keep it off the async threads
        // that run tasks.
        let component = tokio::task::spawn_blocking({
            let (engine, cache_dir, hash, bytes) = (
                self.engine.clone(),
                self.cache_dir.clone(),
                hash.clone(),
                bytes.to_vec(),
            );
            move || cache::compile(&engine, cache_dir.as_deref(), &hash, &bytes)
        })
        .await??;
        Plugin::new(self, name, hash, component, limits).await
    }

    /// Deletes compiled components from the cache that none of `in_use` (content hashes)
    /// needs and that nobody has loaded for [`CACHE_KEEP`], and half-written files left by
    /// a compile that crashed. Several nodes may share one cache: every load refreshes its
    /// file's time, so another node's plugins stay. Returns how many files went.
    pub fn prune_cache(&self, in_use: &[&str]) -> usize {
        match &self.cache_dir {
            Some(dir) => cache::prune(dir, in_use),
            None => 0,
        }
    }

    /// Loads the component at `path`, named after its file stem.
    pub async fn load_file(&self, path: &Path, limits: PluginLimits) -> anyhow::Result<Plugin> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut plugin = self
            .load(&name, &bytes, limits)
            .await
            .with_context(|| format!("{}", path.display()))?;
        plugin.file = Some(path.to_owned());
        Ok(plugin)
    }

    /// A store for one call, with the plugin's limits and nothing but its grants.
    fn store(
        &self,
        plugin: &Plugin,
        context: Option<state::TaskContext>,
        timeout: Duration,
        output: &output::CapturedOutput,
    ) -> wasmtime::Result<wasmtime::Store<TaskState>> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdout(output.stdout.clone())
            .stderr(output.stderr.clone());
        for (name, value) in &plugin.grants.env {
            wasi.env(name, value);
        }
        for dir in &plugin.grants.dirs {
            let perms = if dir.writable {
                wasmtime_wasi::FsPerms::ReadWrite
            } else {
                wasmtime_wasi::FsPerms::ReadOnly
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)?;
        }
        let plugin_name: Arc<str> = plugin.name.as_str().into();
        let state = TaskState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            limits: limits::InstanceLimits::new(plugin.limits.memory),
            log_budget: output.budget.clone(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_gate: http::HttpGate {
                allowed: plugin.grants.allowed_hosts.clone(),
                plugin: plugin_name.clone(),
                task: context
                    .as_ref()
                    .map(|c| c.task.id.to_string())
                    .unwrap_or_default(),
            },
            plugin: plugin_name,
            context,
        };
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if self.fuel {
            store.set_fuel(plugin.limits.fuel.unwrap_or(u64::MAX))?;
        }
        let started = Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() > timeout {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        Ok(store)
    }
}

/// A status as the queue stores it: NUL characters (which PostgreSQL text cannot hold)
/// replaced by U+FFFD, then [`cut_to`] `max_len` bytes. Every status made of guest text
/// goes through here.
fn status_text(text: String, max_len: usize) -> String {
    let text = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    };
    cut_to(text, max_len)
}

/// `text` cut to at most `max_len` bytes, at a character boundary, and marked ` [cut]`, if it
/// is longer; otherwise `text` as it is. Keeps what a guest hands the host (statuses, log
/// lines) bounded, whatever it sends.
fn cut_to(mut text: String, max_len: usize) -> String {
    if text.len() > max_len {
        let mut end = max_len;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [cut]");
    }
    text
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_holds_no_nul_and_stays_within_its_limit() {
        assert_eq!(status_text("a\0b\0".to_owned(), 100), "a\u{FFFD}b\u{FFFD}");
        // Replacing grows the text (1 byte to 3); the cut comes after.
        assert_eq!(status_text("\0\0".to_owned(), 4), "\u{FFFD} [cut]");
        assert_eq!(status_text("plain".to_owned(), 100), "plain");
    }

    #[test]
    fn text_within_the_limit_is_kept_whole() {
        assert_eq!(cut_to("héllo".to_owned(), 6), "héllo");
    }

    #[test]
    fn a_cut_inside_a_multi_byte_character_keeps_the_whole_character_out() {
        // "é" is bytes 1..3: a limit of 2 would split it, so the cut falls before it.
        assert_eq!(cut_to("héllo".to_owned(), 2), "h [cut]");
        // "🦀" is 4 bytes: any limit inside it cuts before it.
        for max_len in 2..=4 {
            assert_eq!(cut_to("a🦀b".to_owned(), max_len), "a [cut]");
        }
        assert_eq!(cut_to("a🦀b".to_owned(), 5), "a🦀 [cut]");
    }
}
