//! [`Prefixed`]: a namespace over any [`Parade`], as the seed's `ParadePrefix`.
//!
//! Task ids (including `to_signal_after` entries) and action names get `PREFIX.` on the way in
//! and lose it on the way out, so several tenants or tests share one store without seeing
//! each other's work. Actor ids passed to `own_tasks`, bodies, statuses and notify channels
//! are not prefixed. Unlike the seed, returned action names are stripped too, and so are the
//! task ids that errors name.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ActorId, Backoff, Cancellation, Error, OnCompletion, OwnRequest, OwnedTask, Parade,
    PerformanceToken, QueueSummary, Result, Retention, TaskCancellations, TaskData, TaskFilter,
    TaskHints, TaskId, TaskLease, TaskReturn, TaskStatusCode, Waiter,
};
use super::{FinishedMinute, TaskGraph, TaskPage};

/// Namespaces every task id and action of `base` under `prefix`.
#[derive(Debug, Clone)]
pub struct Prefixed<P> {
    base: P,
    prefix: String,
}

impl<P: Parade> Prefixed<P> {
    /// Wraps `base`; names are stored as `prefix.name`.
    pub fn new(base: P, prefix: impl Into<String>) -> Self {
        Prefixed {
            base,
            prefix: prefix.into(),
        }
    }

    /// The wrapped queue.
    pub fn base(&self) -> &P {
        &self.base
    }

    /// `prefix.s`
    pub fn add_prefix(&self, s: &str) -> String {
        format!("{}.{}", self.prefix, s)
    }

    /// `s` without a leading `prefix.`, or `s` unchanged.
    pub fn strip_prefix<'a>(&self, s: &'a str) -> &'a str {
        s.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(s)
    }

    fn add_prefix_task(&self, id: &TaskId) -> TaskId {
        TaskId(self.add_prefix(id.as_str()))
    }

    fn strip_prefix_task(&self, id: &TaskId) -> TaskId {
        TaskId(self.strip_prefix(id.as_str()).to_owned())
    }

    /// `tasks` as stored in this namespace.
    fn prefix_tasks(&self, tasks: &[TaskData]) -> Vec<TaskData> {
        tasks
            .iter()
            .map(|task| TaskData {
                id: self.add_prefix_task(&task.id),
                action: self.add_prefix(&task.action),
                actor_id: task
                    .actor_id
                    .as_ref()
                    .map(|a| ActorId(self.add_prefix(a.as_str()))),
                to_signal_after: task
                    .to_signal_after
                    .iter()
                    .map(|s| self.add_prefix_task(s))
                    .collect(),
                ..task.clone()
            })
            .collect()
    }

    /// `e` naming this namespace's tasks as its callers do.
    fn strip_error(&self, e: Error) -> Error {
        e.rename_tasks(|id| self.strip_prefix_task(&id))
    }

    /// `filter` in the base's names: only this namespace's tasks, its action and ids
    /// prefixed.
    fn add_prefix_filter(&self, filter: &TaskFilter) -> TaskFilter {
        TaskFilter {
            action: filter.action.as_deref().map(|a| self.add_prefix(a)),
            id: filter.id.as_ref().map(|id| self.add_prefix_task(id)),
            id_prefix: Some(self.add_prefix(filter.id_prefix.as_deref().unwrap_or(""))),
            predecessors_of: filter
                .predecessors_of
                .as_ref()
                .map(|id| self.add_prefix_task(id)),
            ..filter.clone()
        }
    }

    fn strip_task(&self, mut task: TaskData) -> TaskData {
        task.id = self.strip_prefix_task(&task.id);
        task.action = self.strip_prefix(&task.action).to_owned();
        task.actor_id = task
            .actor_id
            .map(|a| ActorId(self.strip_prefix(a.as_str()).to_owned()));
        task.to_signal_after = task
            .to_signal_after
            .iter()
            .map(|s| self.strip_prefix_task(s))
            .collect();
        task
    }
}

#[async_trait]
impl<P: Parade> Parade for Prefixed<P> {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()> {
        let prefixed = self.prefix_tasks(tasks);
        self.base
            .insert_tasks(&prefixed)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> Result<Vec<TaskId>> {
        let stored = self
            .base
            .insert_tasks_if_absent(&self.prefix_tasks(tasks))
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(stored.iter().map(|id| self.strip_prefix_task(id)).collect())
    }

    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[Backoff],
    ) -> Result<Option<DateTime<Utc>>> {
        let actions: Vec<String> = actions.iter().map(|a| self.add_prefix(a)).collect();
        self.base.next_due(&actions, expiry_backoff).await
    }

    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>> {
        let actions: Vec<String> = request.actions.iter().map(|a| self.add_prefix(a)).collect();
        let mut owned = self
            .base
            .own(&OwnRequest {
                actions: &actions,
                ..*request
            })
            .await
            .map_err(|e| self.strip_error(e))?;
        for task in &mut owned {
            task.id = self.strip_prefix_task(&task.id);
            task.action = self.strip_prefix(&task.action).to_owned();
        }
        Ok(owned)
    }

    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()> {
        self.base
            .extend_task_deadline(&self.add_prefix_task(id), token, duration)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()> {
        self.base
            .return_task(&self.add_prefix_task(id), token, status, code)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        self.return_tasks_with(returns, OnCompletion::Keep).await
    }

    async fn return_tasks_with(
        &self,
        returns: &[TaskReturn],
        on_completion: OnCompletion,
    ) -> Result<Vec<Result<()>>> {
        let returns: Vec<TaskReturn> = returns
            .iter()
            .map(|r| TaskReturn {
                id: self.add_prefix_task(&r.id),
                ..r.clone()
            })
            .collect();
        let results = self
            .base
            .return_tasks_with(&returns, on_completion)
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(|e| self.strip_error(e)))
            .collect())
    }

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        let tasks: Vec<TaskLease> = tasks
            .iter()
            .map(|lease| TaskLease {
                id: self.add_prefix_task(&lease.id),
                token: lease.token,
            })
            .collect();
        self.base
            .release_tasks(&tasks)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        self.base
            .new_task_hints()
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter> {
        self.base
            .new_waiter(&self.add_prefix_task(id))
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn delete_tasks(&self, ids: &[TaskId]) -> Result<()> {
        let ids: Vec<TaskId> = ids.iter().map(|id| self.add_prefix_task(id)).collect();
        self.base
            .delete_tasks(&ids)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskData>> {
        let task = self
            .base
            .get_task(&self.add_prefix_task(id))
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(task.map(|t| self.strip_task(t)))
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        let tasks = self
            .base
            .list_tasks(&self.add_prefix_filter(filter))
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(tasks.into_iter().map(|t| self.strip_task(t)).collect())
    }

    async fn list_task_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        let mut page = self
            .base
            .list_task_page(&self.add_prefix_filter(filter))
            .await
            .map_err(|e| self.strip_error(e))?;
        for listed in &mut page.tasks {
            listed.task = self.strip_task(std::mem::take(&mut listed.task));
        }
        Ok(page)
    }

    async fn task_graph(&self, id: &TaskId, max_nodes: u32) -> Result<Option<TaskGraph>> {
        let graph = self
            .base
            .task_graph(&self.add_prefix_task(id), max_nodes)
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(graph.map(|mut graph| {
            graph.root = self.strip_prefix_task(&graph.root);
            for node in &mut graph.nodes {
                node.id = self.strip_prefix_task(&node.id);
                node.action = self.strip_prefix(&node.action).to_owned();
            }
            for (from, to) in &mut graph.edges {
                *from = self.strip_prefix_task(from);
                *to = self.strip_prefix_task(to);
            }
            graph
        }))
    }

    /// Counts of this namespace's actions only; the owners are those of the whole store.
    async fn summary(&self) -> Result<QueueSummary> {
        let mut summary = self.base.summary().await.map_err(|e| self.strip_error(e))?;
        let mine = format!("{}.", self.prefix);
        summary.counts.retain(|c| c.action.starts_with(&mine));
        for count in &mut summary.counts {
            count.action = self.strip_prefix(&count.action).to_owned();
        }
        summary.attention.retain(|a| a.action.starts_with(&mine));
        for attention in &mut summary.attention {
            attention.action = self.strip_prefix(&attention.action).to_owned();
        }
        Ok(summary)
    }

    async fn retry_task(&self, id: &TaskId) -> Result<()> {
        self.base
            .retry_task(&self.add_prefix_task(id))
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn cancel_tasks(
        &self,
        ids: &[TaskId],
        reason: &str,
        cascade: bool,
    ) -> Result<Vec<Cancellation>> {
        let ids: Vec<TaskId> = ids.iter().map(|id| self.add_prefix_task(id)).collect();
        let answers = self
            .base
            .cancel_tasks(&ids, reason, cascade)
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(answers
            .into_iter()
            .map(|c| Cancellation {
                id: self.strip_prefix_task(&c.id),
                ..c
            })
            .collect())
    }

    /// Prunes the whole store: retention is a property of the store, not of a namespace.
    async fn prune_finished(&self, retention: &Retention, max_rows: u32) -> Result<u64> {
        self.base.prune_finished(retention, max_rows).await
    }

    async fn task_cancellations(&self) -> Result<Option<TaskCancellations>> {
        let cancels = self.base.task_cancellations().await?;
        Ok(cancels.map(|c| c.within(format!("{}.", self.prefix))))
    }

    async fn finished_by_minute(&self, since: DateTime<Utc>) -> Result<Vec<FinishedMinute>> {
        let mut minutes = self
            .base
            .finished_by_minute(since)
            .await
            .map_err(|e| self.strip_error(e))?;
        let mine = format!("{}.", self.prefix);
        minutes.retain(|m| m.action.starts_with(&mine));
        for minute in &mut minutes {
            minute.action = self.strip_prefix(&minute.action).to_owned();
        }
        Ok(minutes)
    }

    async fn ping(&self) -> Result<()> {
        self.base.ping().await.map_err(|e| self.strip_error(e))
    }
}

/// A shared queue is a queue: lets `Prefixed<Arc<dyn Parade>>` and friends work.
#[async_trait]
impl<P: Parade + ?Sized> Parade for Arc<P> {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()> {
        (**self).insert_tasks(tasks).await
    }

    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> Result<Vec<TaskId>> {
        (**self).insert_tasks_if_absent(tasks).await
    }

    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[Backoff],
    ) -> Result<Option<DateTime<Utc>>> {
        (**self).next_due(actions, expiry_backoff).await
    }

    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>> {
        (**self).own(request).await
    }

    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()> {
        (**self).extend_task_deadline(id, token, duration).await
    }

    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()> {
        (**self).return_task(id, token, status, code).await
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        (**self).return_tasks(returns).await
    }

    async fn return_tasks_with(
        &self,
        returns: &[TaskReturn],
        on_completion: OnCompletion,
    ) -> Result<Vec<Result<()>>> {
        (**self).return_tasks_with(returns, on_completion).await
    }

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        (**self).release_tasks(tasks).await
    }

    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        (**self).new_task_hints().await
    }

    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter> {
        (**self).new_waiter(id).await
    }

    async fn delete_tasks(&self, ids: &[TaskId]) -> Result<()> {
        (**self).delete_tasks(ids).await
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskData>> {
        (**self).get_task(id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        (**self).list_tasks(filter).await
    }

    async fn list_task_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        (**self).list_task_page(filter).await
    }

    async fn task_graph(&self, id: &TaskId, max_nodes: u32) -> Result<Option<TaskGraph>> {
        (**self).task_graph(id, max_nodes).await
    }

    async fn summary(&self) -> Result<QueueSummary> {
        (**self).summary().await
    }

    async fn retry_task(&self, id: &TaskId) -> Result<()> {
        (**self).retry_task(id).await
    }

    async fn cancel_tasks(
        &self,
        ids: &[TaskId],
        reason: &str,
        cascade: bool,
    ) -> Result<Vec<Cancellation>> {
        (**self).cancel_tasks(ids, reason, cascade).await
    }

    async fn task_cancellations(&self) -> Result<Option<TaskCancellations>> {
        (**self).task_cancellations().await
    }

    async fn prune_finished(&self, retention: &Retention, max_rows: u32) -> Result<u64> {
        (**self).prune_finished(retention, max_rows).await
    }

    async fn finished_by_minute(&self, since: DateTime<Utc>) -> Result<Vec<FinishedMinute>> {
        (**self).finished_by_minute(since).await
    }

    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
}
