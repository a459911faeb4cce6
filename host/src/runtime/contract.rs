//! The versions of the `parade:actor` contract a node speaks, and how a component's is found.
//!
//! `wit/actor.wit` is the current contract, `parade:actor@0.2.0`; `wit/0.1.0/actor.wit` is
//! the first one, kept as it was, because components built against it must load and run
//! unchanged on every later node. Both worlds are bound here ([`v0_2`], [`v0_1`]) and both
//! hosts' imports go into the one linker: their versions differ in the minor number, so
//! wasmtime's semver matching keeps `parade:actor/host@0.1.0` and `@0.2.0` apart (and a
//! component built against a later patch release, say 0.2.1, still finds 0.2.0).
//!
//! At load, [`ActorPre::detect`] type-checks the component's exports against the current
//! world, then against the older one: the first that fits is the component's
//! [`ContractVersion`]. Everything else sees one contract, the current one. The 0.1.0 host
//! imports are adapters onto the 0.2.0 implementation in `state.rs` (a task a 0.1.0
//! component enqueues has no delay and the default priority), and a 0.1.0 result is a
//! 0.2.0 result without a retry delay.

use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

use super::state::TaskState;

/// Bindings of the current contract, `parade:actor@0.2.0` (`wit/actor.wit`).
pub(super) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "parade:actor/actor@0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// Bindings of the first contract, `parade:actor@0.1.0` (`wit/0.1.0/actor.wit`).
pub(super) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "parade:actor/actor@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use v0_2::parade::actor::{host, types};

/// The version of the `parade:actor` contract a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `parade:actor@0.1.0`: no task delays, priorities or retry delays.
    V0_1,
    /// `parade:actor@0.2.0`, the current one.
    V0_2,
}

impl ContractVersion {
    /// The version new components are built against (`wit/actor.wit`).
    pub const CURRENT: ContractVersion = ContractVersion::V0_2;

    /// The version number alone, as in the WIT package name: `"0.2.0"`.
    pub fn number(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }
}

impl std::fmt::Display for ContractVersion {
    /// The package with its version: `parade:actor@0.2.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "parade:actor@{}", self.number())
    }
}

/// Adds the host imports of every contract version to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<TaskState>) -> anyhow::Result<()> {
    v0_2::Actor::add_to_linker::<TaskState, HasSelf<TaskState>>(linker, |s| s)?;
    v0_1::Actor::add_to_linker::<TaskState, HasSelf<TaskState>>(linker, |s| s)?;
    Ok(())
}

/// A component ready to instantiate, with the contract version its exports fit.
pub(super) enum ActorPre {
    V0_1(v0_1::ActorPre<TaskState>),
    V0_2(v0_2::ActorPre<TaskState>),
}

impl ActorPre {
    /// Finds which version of the `actor` world the component exports: the current one,
    /// else the older one. When neither fits, the error says how it fails the current one.
    pub fn detect(instance_pre: InstancePre<TaskState>) -> anyhow::Result<Self> {
        let current = match v0_2::ActorPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(ActorPre::V0_2(pre)),
            Err(e) => e,
        };
        if let Ok(pre) = v0_1::ActorPre::new(instance_pre) {
            return Ok(ActorPre::V0_1(pre));
        }
        Err(anyhow::Error::from(current).context(format!(
            "it does not export the parade:actor/actor world (actions and handle) of {} or {}",
            ContractVersion::V0_2,
            ContractVersion::V0_1
        )))
    }

    /// The contract version of the component.
    pub fn version(&self) -> ContractVersion {
        match self {
            ActorPre::V0_1(_) => ContractVersion::V0_1,
            ActorPre::V0_2(_) => ContractVersion::V0_2,
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate(&self, store: &mut Store<TaskState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            ActorPre::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            ActorPre::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// An instance of a component, of either contract version.
pub(super) enum Instance {
    V0_1(v0_1::Actor),
    V0_2(v0_2::Actor),
}

impl Instance {
    /// Calls its `actions()`.
    pub async fn call_actions(
        &self,
        store: &mut Store<TaskState>,
    ) -> wasmtime::Result<Vec<String>> {
        match self {
            Instance::V0_1(actor) => actor.call_actions(store).await,
            Instance::V0_2(actor) => actor.call_actions(store).await,
        }
    }

    /// Calls its `handle`; the result in the current contract's terms.
    pub async fn call_handle(
        &self,
        store: &mut Store<TaskState>,
        action: &str,
        body: Option<&str>,
        signalled_failures: u32,
    ) -> wasmtime::Result<types::ActorResult> {
        match self {
            Instance::V0_2(actor) => {
                actor
                    .call_handle(store, action, body, signalled_failures)
                    .await
            }
            Instance::V0_1(actor) => {
                let result = actor
                    .call_handle(store, action, body, signalled_failures)
                    .await?;
                Ok(types::ActorResult {
                    status: result.status,
                    code: match result.code {
                        v0_1::parade::actor::types::StatusCode::Completed => {
                            types::StatusCode::Completed
                        }
                        v0_1::parade::actor::types::StatusCode::Aborted => {
                            types::StatusCode::Aborted
                        }
                        v0_1::parade::actor::types::StatusCode::Pending => {
                            types::StatusCode::Pending
                        }
                    },
                    retry_after_ms: None,
                })
            }
        }
    }
}

/// A task as a 0.1.0 component enqueues it, in the current contract's terms: due at once,
/// at the default priority.
fn current_new_task(task: v0_1::parade::actor::host::NewTask) -> host::NewTask {
    let v0_1::parade::actor::host::NewTask {
        id,
        action,
        body,
        max_tries,
        signal_after,
        total_dependencies,
        notify_channel,
    } = task;
    host::NewTask {
        id,
        action,
        body,
        max_tries,
        signal_after,
        total_dependencies,
        notify_channel,
        delay_ms: None,
        priority: None,
    }
}

impl v0_1::parade::actor::types::Host for TaskState {}

/// The 0.1.0 host imports: each is the current one, its arguments translated.
impl v0_1::parade::actor::host::Host for TaskState {
    async fn log(
        &mut self,
        level: v0_1::parade::actor::host::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        use v0_1::parade::actor::host::Level;
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::Host::log(self, level, message).await
    }

    async fn task_id(&mut self) -> wasmtime::Result<String> {
        host::Host::task_id(self).await
    }

    async fn try_number(&mut self) -> wasmtime::Result<u32> {
        host::Host::try_number(self).await
    }

    async fn extend_deadline(&mut self, seconds: u32) -> wasmtime::Result<Result<(), String>> {
        host::Host::extend_deadline(self, seconds).await
    }

    async fn enqueue(
        &mut self,
        tasks: Vec<v0_1::parade::actor::host::NewTask>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        let tasks = tasks.into_iter().map(current_new_task).collect();
        host::Host::enqueue(self, tasks).await
    }
}
