//! [`ComponentActor`]: the ActionManager's actor for a set of plugins that can be replaced
//! while it runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::bail;
use async_trait::async_trait;

use super::{Plugin, Runtime};
use crate::manager::{ActionGroup, Actor, ActorResult, Declined};
use crate::queue::{ActorId, Backoff, OwnedTask, Parade};

/// Which plugin serves each action.
struct Registry {
    by_action: HashMap<String, Arc<Plugin>>,
    plugins: Vec<Arc<Plugin>>,
}

/// Checks that no two of `plugins` claim one action; the error names both.
pub fn check_claims(plugins: &[Arc<Plugin>]) -> anyhow::Result<()> {
    Registry::new(plugins.to_vec()).map(drop)
}

impl Registry {
    /// Two plugins that claim one action are an error naming both.
    fn new(plugins: Vec<Arc<Plugin>>) -> anyhow::Result<Self> {
        let mut by_action: HashMap<String, Arc<Plugin>> = HashMap::new();
        for plugin in &plugins {
            for action in &plugin.actions {
                if let Some(other) = by_action.get(action) {
                    bail!(
                        "action {action:?} is claimed by two plugins: {} ({}) and {} ({})",
                        other.name,
                        other.origin(),
                        plugin.name,
                        plugin.origin()
                    );
                }
                by_action.insert(action.clone(), plugin.clone());
            }
        }
        Ok(Registry { by_action, plugins })
    }
}

/// Performs each task in a fresh instance of the plugin that serves its action.
pub struct ComponentActor {
    runtime: Arc<Runtime>,
    registry: RwLock<Arc<Registry>>,
    /// Actions an operator paused on this node: not owned until resumed.
    paused: RwLock<BTreeSet<String>>,
    queue: Arc<dyn Parade>,
    actor_id: ActorId,
    /// Time limit of a task whose plugin sets none longer.
    max_duration: Duration,
}

impl ComponentActor {
    /// An actor for `plugins`, enqueueing follow-up tasks into `queue`. Two plugins that
    /// claim one action are an error naming both.
    pub fn new(
        runtime: Arc<Runtime>,
        plugins: Vec<Arc<Plugin>>,
        queue: Arc<dyn Parade>,
        actor_id: ActorId,
        max_duration: Duration,
    ) -> anyhow::Result<Self> {
        Ok(ComponentActor {
            runtime,
            registry: RwLock::new(Arc::new(Registry::new(plugins)?)),
            paused: RwLock::default(),
            queue,
            actor_id,
            max_duration,
        })
    }

    /// Serves `plugins` from now on, all at once: tasks that start from now on run in them,
    /// tasks already running finish in the plugin they started in, and owned tasks of an
    /// action no plugin serves any more are handed back. On a clash nothing changes.
    pub fn replace_plugins(&self, plugins: Vec<Arc<Plugin>>) -> anyhow::Result<()> {
        let registry = Arc::new(Registry::new(plugins)?);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = registry;
        Ok(())
    }

    /// The plugins it serves now.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.registry().plugins.clone()
    }

    /// Starts no more tasks of `action` on this node until [`ComponentActor::resume`]: it
    /// owns none, and any owned but not yet started (an own already under way) are handed
    /// back untried; running ones finish. False if no plugin serves it.
    pub fn pause(&self, action: &str) -> bool {
        let served = self.registry().by_action.contains_key(action);
        if served {
            self.paused
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(action.to_owned());
        }
        served
    }

    /// Owns tasks of `action` again. False if it was not paused.
    pub fn resume(&self, action: &str) -> bool {
        self.paused
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(action)
    }

    /// The paused actions.
    pub fn paused(&self) -> Vec<String> {
        self.paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl Actor for ComponentActor {
    fn actions(&self) -> Vec<String> {
        let paused = self.paused.read().unwrap_or_else(|e| e.into_inner());
        let mut actions: Vec<String> = self
            .registry()
            .by_action
            .keys()
            .filter(|action| !paused.contains(*action))
            .cloned()
            .collect();
        actions.sort();
        actions
    }

    fn actor_id(&self) -> ActorId {
        self.actor_id.clone()
    }

    /// The `retry` policy of the plugin serving `action` (the default for an action no
    /// plugin serves: its tasks are declined anyway).
    fn backoff(&self, action: &str) -> Backoff {
        self.registry()
            .by_action
            .get(action)
            .map_or_else(Backoff::default, |plugin| plugin.limits.retry)
    }

    /// The plugin serving `action`: its actions share its `concurrency` and
    /// `node_concurrency`.
    fn concurrency(&self, action: &str) -> Option<ActionGroup> {
        let registry = self.registry();
        let plugin = registry.by_action.get(action)?;
        Some(ActionGroup {
            name: plugin.name.clone(),
            limits: plugin.limits.concurrency,
        })
    }

    async fn perform(&self, task: &OwnedTask) -> anyhow::Result<ActorResult> {
        let paused = || {
            self.paused
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&task.action)
        };
        let plugin = match self.registry().by_action.get(&task.action) {
            Some(plugin) if !paused() => plugin.clone(),
            _ => {
                return Err(Declined {
                    action: task.action.clone(),
                }
                .into())
            }
        };
        let timeout = plugin.limits.timeout.min(self.max_duration);
        Ok(plugin
            .perform(&self.runtime, task, self.queue.clone(), timeout)
            .await)
    }
}
