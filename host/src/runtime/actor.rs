//! [`ComponentActor`]: the ActionManager's actor for a set of plugins.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use async_trait::async_trait;

use super::{Plugin, Runtime};
use crate::manager::{Actor, ActorResult};
use crate::queue::{ActorId, OwnedTask, Parade};

/// Performs each task in a fresh instance of the plugin that serves its action.
pub struct ComponentActor {
    runtime: Arc<Runtime>,
    by_action: HashMap<String, Arc<Plugin>>,
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
        let mut by_action: HashMap<String, Arc<Plugin>> = HashMap::new();
        for plugin in plugins {
            for action in &plugin.actions {
                if let Some(other) = by_action.get(action) {
                    bail!(
                        "action {action:?} is claimed by two plugins: {} and {}",
                        other.name,
                        plugin.name
                    );
                }
                by_action.insert(action.clone(), plugin.clone());
            }
        }
        Ok(ComponentActor {
            runtime,
            by_action,
            queue,
            actor_id,
            max_duration,
        })
    }
}

#[async_trait]
impl Actor for ComponentActor {
    fn actions(&self) -> Vec<String> {
        let mut actions: Vec<String> = self.by_action.keys().cloned().collect();
        actions.sort();
        actions
    }

    fn actor_id(&self) -> ActorId {
        self.actor_id.clone()
    }

    async fn handle(&self, action: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        bail!("component actors perform whole tasks; {action} reached handle() directly")
    }

    async fn perform(&self, task: &OwnedTask) -> anyhow::Result<ActorResult> {
        let Some(plugin) = self.by_action.get(&task.action) else {
            bail!("no plugin serves action {:?}", task.action);
        };
        let timeout = plugin.limits.timeout.min(self.max_duration);
        Ok(plugin
            .perform(&self.runtime, task, self.queue.clone(), timeout)
            .await)
    }
}
