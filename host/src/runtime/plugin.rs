//! [`Plugin`]: one loaded component, its actions and limits, and how a task runs in it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Trap;

use super::contract::v0_2::parade::actor::types::{ActorResult as GuestResult, StatusCode};
use super::contract::{ActorPre, ContractVersion};
use super::output::CapturedOutput;
use super::state::TaskContext;
use super::Runtime;
use crate::manager::{ActorResult, MAX_RETRY_DELAY};
use crate::queue::{Backoff, OwnedTask, Parade, TaskStatusCode};

/// Longest status text kept from a guest; longer ones are cut.
const MAX_STATUS: usize = 64 * 1024;
/// Longest a component's `actions()` may take at load (less if its `timeout` is shorter):
/// a plugin that hangs there must not block a node's start or its reloads.
const ACTIONS_TIMEOUT: Duration = Duration::from_secs(10);

/// What happens to a task whose plugin trapped, timed out or ran out of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Return it pending: it runs again until its `max_tries` are used up.
    #[default]
    Retry,
    /// Abort it at once.
    Abort,
}

/// Resource limits of a plugin's instances, and what happens to a task that fails in one.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginLimits {
    /// Memory of one task's instance, in bytes: all its linear memories together, and its
    /// tables at 8 bytes an element (default 64 MiB, at most 1 GiB).
    pub memory: usize,
    /// Wall-clock time per task, including time spent waiting in host calls (sleeps,
    /// polls, HTTP requests); default 30 minutes, the ActionManager's max duration.
    pub timeout: Duration,
    /// WebAssembly instructions (roughly) per task; none by default. Needs a runtime that
    /// meters fuel ([`RuntimeOptions::fuel`](super::RuntimeOptions::fuel)).
    pub fuel: Option<u64>,
    /// What a failed instance means for its task.
    pub on_failure: FailurePolicy,
    /// How long a task of this plugin waits before its next try, after a pending result or
    /// an ownership that lapsed (the manifest's `retry`; default [`Backoff::default`]). See
    /// [`Actor::backoff`](crate::manager::Actor::backoff).
    pub retry: Backoff,
    /// How many tasks of the plugin's actions may be in progress at once, across the store
    /// (`concurrency`) and on this node (`node_concurrency`); unlimited by default.
    pub concurrency: crate::manager::ConcurrencyLimits,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory: 64 << 20,
            timeout: Duration::from_secs(30 * 60),
            fuel: None,
            on_failure: FailurePolicy::Retry,
            retry: Backoff::default(),
            concurrency: crate::manager::ConcurrencyLimits::default(),
        }
    }
}

/// What a plugin's instances may reach beyond their own memory: nothing unless granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginGrants {
    /// Environment variables, as (name, value).
    pub env: Vec<(String, String)>,
    /// Directories of the host, visible to the guest at a path of its own.
    pub dirs: Vec<DirGrant>,
    /// Hosts it may send HTTP requests to through `wasi:http`; none by default.
    pub allowed_hosts: Arc<[super::HostPattern]>,
}

impl PluginGrants {
    /// The `allowed_hosts` entries as written, for display.
    pub fn allowed_host_names(&self) -> Vec<String> {
        self.allowed_hosts.iter().map(ToString::to_string).collect()
    }
}

/// One host directory granted to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// Where the guest sees it (for example `/data`).
    pub guest: String,
    /// May the guest create, change and delete files in it (default read-only)?
    pub writable: bool,
}

/// A compiled component ready to instantiate, with the actions it serves.
pub struct Plugin {
    /// Its name (the file stem, or the manifest's name).
    pub name: String,
    /// Hex SHA-256 of the component's bytes.
    pub hash: String,
    /// The file it was loaded from, if any.
    pub file: Option<std::path::PathBuf>,
    /// The actions it exports through `actions()`.
    pub actions: Vec<String>,
    pub limits: PluginLimits,
    /// What its instances may reach; see [`Plugin::with_grants`].
    pub grants: PluginGrants,
    pre: ActorPre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("actions", &self.actions)
            .field("contract", &self.contract())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Refuses bytes that are not a WebAssembly component, saying what they are instead.
pub(super) fn check_header(bytes: &[u8]) -> anyhow::Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        bail!("not a WebAssembly file");
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => bail!(
            "a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it \
             with `wasm-tools component new`"
        ),
        _ => bail!("a WebAssembly binary of an unsupported version"),
    }
}

/// Hex SHA-256 of a component's bytes: its identity in the cache and across reloads.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Plugin {
    pub(super) async fn new(
        runtime: &Runtime,
        name: &str,
        hash: String,
        component: Component,
        limits: PluginLimits,
    ) -> anyhow::Result<Self> {
        if limits.memory > super::MAX_PLUGIN_MEMORY {
            bail!(
                "memory limit {} MiB is above the largest allowed, {} MiB",
                limits.memory >> 20,
                super::MAX_PLUGIN_MEMORY >> 20
            );
        }
        if limits.fuel.is_some() && !runtime.meters_fuel() {
            bail!(
                "it sets a fuel limit, but this node started without fuel metering (it meters \
                 fuel when a plugin configured at start sets one): restart the node to apply it"
            );
        }
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "it imports something a Parade node does not provide (only WASI preview 2, wasi:http \
             and parade:actor/host are available)",
            )?;
        let pre = ActorPre::detect(instance_pre)?;
        let mut plugin = Plugin {
            name: name.to_owned(),
            hash,
            file: None,
            actions: Vec::new(),
            limits,
            grants: PluginGrants::default(),
            pre,
        };
        let output = CapturedOutput::new();
        let limit = ACTIONS_TIMEOUT.min(plugin.limits.timeout);
        // Epoch interruption stops it looping in its own code; the timer, waiting in a host
        // call.
        let listed = tokio::time::timeout(limit, async {
            let mut store = runtime.store(&plugin, None, limit, &output)?;
            let instance = plugin.pre.instantiate(&mut store).await?;
            wasmtime::Result::Ok(instance.call_actions(&mut store).await)
        })
        .await;
        output.log(name, "", "");
        let interrupted =
            |e: &wasmtime::Error| matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt));
        let actions = match listed {
            Ok(Ok(Ok(actions))) => actions,
            Ok(Ok(Err(e))) if !interrupted(&e) => {
                return Err(anyhow::Error::from(e).context("calling its actions() failed"))
            }
            Ok(Err(e)) if !interrupted(&e) => return Err(e.into()),
            _elapsed_or_interrupted => bail!(
                "its actions() did not return within {}: a plugin must list its actions at once",
                humantime::format_duration(limit)
            ),
        };
        if actions.is_empty() {
            bail!("its actions() returned no action");
        }
        let contract = plugin.contract();
        tracing::info!(
            plugin = %name,
            contract = %contract,
            actions = ?actions,
            "component loaded{}",
            if contract < ContractVersion::CURRENT {
                " (built against an older contract; it runs unchanged)"
            } else {
                ""
            }
        );
        plugin.actions = actions;
        Ok(plugin)
    }

    /// The version of the `parade:actor` contract it was built against.
    pub fn contract(&self) -> ContractVersion {
        self.pre.version()
    }

    /// Where it came from, for messages: its file, or its name.
    pub fn origin(&self) -> String {
        match &self.file {
            Some(file) => file.display().to_string(),
            None => self.name.clone(),
        }
    }

    /// Grants its instances environment variables and directories. Every granted directory
    /// must exist.
    pub fn with_grants(mut self, grants: PluginGrants) -> anyhow::Result<Self> {
        for dir in &grants.dirs {
            if !dir.host.is_dir() {
                bail!(
                    "plugin {}: granted directory {} does not exist",
                    self.name,
                    dir.host.display()
                );
            }
        }
        self.grants = grants;
        Ok(self)
    }

    /// Performs `task` in a fresh instance. Never fails: a trap, timeout or bad result
    /// becomes the task's status, with the code the plugin's failure policy gives.
    pub(super) async fn perform(
        &self,
        runtime: &Runtime,
        task: &OwnedTask,
        queue: Arc<dyn Parade>,
        timeout: Duration,
    ) -> ActorResult {
        let output = CapturedOutput::new();
        let context = TaskContext {
            task: task.clone(),
            queue,
            time_limit: timeout,
            enqueued: Default::default(),
        };
        let failures = u32::try_from(task.num_signalled_failures).unwrap_or(0);
        let call = async {
            let started = std::time::Instant::now();
            let mut store = runtime.store(self, Some(context), timeout, &output)?;
            let instance = self.pre.instantiate(&mut store).await?;
            runtime.stats.instantiated(started.elapsed());
            instance
                .call_handle(&mut store, &task.action, task.body.as_deref(), failures)
                .await
        };
        // Epoch interruption stops guest code at the time limit, but not a guest waiting in
        // a host call (a sleep, a poll, a slow HTTP response): this timer does, by dropping
        // the call and its store. Either way the task ends the same.
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_elapsed) => Err(wasmtime::Error::new(Trap::Interrupt)
                .context("the time limit passed while the guest waited in a host call")),
        };
        output.log(&self.name, &task.action, task.id.as_str());
        match result {
            Ok(result) => self.task_result(result),
            Err(e) => {
                let (kind, why) = describe_failure(&e, timeout, self.limits.memory);
                runtime.stats.failed(kind);
                tracing::warn!(plugin = %self.name, task = %task.id, error = %format!("{e:#}"), "{why}");
                ActorResult {
                    status: super::status_text(format!("plugin {}: {why}", self.name), MAX_STATUS),
                    status_code: match self.limits.on_failure {
                        FailurePolicy::Retry => TaskStatusCode::Pending,
                        FailurePolicy::Abort => TaskStatusCode::Aborted,
                    },
                    retry_after: None,
                }
            }
        }
    }

    /// What the queue is told of a result the guest returned: its status made storable, and
    /// for a `pending` one its retry delay (`retry-after-ms`), at most [`MAX_RETRY_DELAY`]: a
    /// longer one is cut, and the status says so.
    fn task_result(&self, result: GuestResult) -> ActorResult {
        let mut status = super::status_text(result.status, MAX_STATUS);
        let status_code = match result.code {
            StatusCode::Completed => TaskStatusCode::Completed,
            StatusCode::Aborted => TaskStatusCode::Aborted,
            StatusCode::Pending => TaskStatusCode::Pending,
        };
        let retry_after = match (status_code, result.retry_after_ms) {
            (TaskStatusCode::Pending, Some(ms)) => {
                let asked = Duration::from_millis(ms);
                if asked > MAX_RETRY_DELAY {
                    let days = MAX_RETRY_DELAY.as_secs() / 86_400;
                    status.push_str(&format!(
                        " (plugin {}: retry-after-ms {ms} is more than {days} days; trying \
                         again in {days} days)",
                        self.name
                    ));
                }
                Some(asked.min(MAX_RETRY_DELAY))
            }
            _ => None,
        };
        ActorResult {
            status,
            status_code,
            retry_after,
        }
    }
}

/// Says in a few words why an instance failed, and what kind of failure it was (a
/// metrics label: timeout, stack_overflow, out_of_memory, out_of_fuel, unreachable, trap,
/// invalid_utf8, other).
fn describe_failure(
    e: &wasmtime::Error,
    timeout: Duration,
    memory: usize,
) -> (&'static str, String) {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => (
                "timeout",
                format!("timed out after {}", humantime::format_duration(timeout)),
            ),
            Trap::StackOverflow => ("stack_overflow", "stack overflow".to_owned()),
            Trap::OutOfFuel => ("out_of_fuel", "ran out of fuel".to_owned()),
            Trap::UnreachableCodeReached => (
                "unreachable",
                "trapped: unreachable code (a panic in the guest?)".to_owned(),
            ),
            other => ("trap", format!("trapped: {other}")),
        };
    }
    let text = format!("{e:#}");
    // What `InstanceLimits` says when a memory or table may not grow.
    if text.contains("growing memory")
        || text.contains("growing a table")
        || text.contains("memory limit")
    {
        return (
            "out_of_memory",
            format!("out of memory (limit {} MiB)", memory >> 20),
        );
    }
    // wasmtime checks every string it lifts from a guest (`std::str::Utf8Error`'s text).
    if text.contains("utf-8 byte sequence") || text.contains("utf-8 sequence") {
        return (
            "invalid_utf8",
            format!("passed the host a string that is not valid UTF-8 ({text})"),
        );
    }
    ("other", format!("failed: {text}"))
}
