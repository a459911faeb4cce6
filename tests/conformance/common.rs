//! Fixtures for the scenarios: a namespaced queue on a fresh store, and short-hands for the
//! calls every scenario makes.

use std::sync::Arc;
use std::time::Duration;

use parade_host::queue::{ActorId, OwnedTask, Parade, TaskData, TaskId, TaskStatusCode};

use crate::support::Store;

pub type Queue = Arc<dyn Parade>;

/// A queue on a fresh store, bare or namespaced as `store` says.
pub async fn queue(store: Store) -> anyhow::Result<Queue> {
    store.open().await
}

pub fn task(id: &str, action: &str) -> TaskData {
    TaskData::new(id, action)
}

pub fn ids(names: &[&str]) -> Vec<TaskId> {
    names.iter().map(|n| TaskId::from(*n)).collect()
}

pub fn actions(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Owns up to `max` tasks of `names` for `actor`, for `duration`.
pub async fn own(
    queue: &impl Parade,
    actor: &str,
    max: u32,
    names: &[&str],
    duration: Option<Duration>,
) -> anyhow::Result<Vec<OwnedTask>> {
    Ok(queue
        .own_tasks(&ActorId::from(actor), max, &actions(names), duration)
        .await?)
}

/// Owns exactly one task and returns it.
pub async fn own_one(
    queue: &impl Parade,
    actor: &str,
    names: &[&str],
    duration: Option<Duration>,
) -> anyhow::Result<OwnedTask> {
    let mut owned = own(queue, actor, 1, names, duration).await?;
    anyhow::ensure!(
        owned.len() == 1,
        "expected one task of {names:?}, got {owned:?}"
    );
    Ok(owned.remove(0))
}

pub async fn finish(
    queue: &impl Parade,
    task: &OwnedTask,
    code: TaskStatusCode,
) -> anyhow::Result<()> {
    Ok(queue
        .return_task(&task.id, task.token, code.as_str(), code)
        .await?)
}

/// The stored row of `id` (which must exist).
pub async fn row(queue: &impl Parade, id: &str) -> anyhow::Result<TaskData> {
    queue
        .get_task(&TaskId::from(id))
        .await?
        .ok_or_else(|| anyhow::anyhow!("task {id} is missing"))
}

pub fn owned_ids(owned: &[OwnedTask]) -> Vec<String> {
    let mut ids: Vec<String> = owned.iter().map(|t| t.id.0.clone()).collect();
    ids.sort();
    ids
}

pub const MINUTE: Option<Duration> = Some(Duration::from_secs(60));
