//! The state of one task's store, and the host side of the `parade:actor/host` interface.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::parade::actor::{host, types};
use crate::queue::{OwnedTask, Parade, TaskData, TaskId};

/// Longest log line a guest can write; longer ones are cut.
const MAX_LOG_LINE: usize = 8 * 1024;
/// Most tasks one `enqueue` call may add.
const MAX_ENQUEUE: usize = 10_000;

/// The task a store performs, and the queue it came from.
pub(super) struct TaskContext {
    pub task: OwnedTask,
    pub queue: Arc<dyn Parade>,
}

/// Everything one instance may touch: its WASI context (granting nothing by default), its
/// resource limits, and the task it performs (none while the node asks for its actions).
pub(super) struct TaskState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub plugin: Arc<str>,
    pub context: Option<TaskContext>,
    pub http: wasmtime_wasi_http::WasiHttpCtx,
    pub http_gate: super::http::HttpGate,
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for TaskState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_gate,
        }
    }
}

impl types::Host for TaskState {}

impl TaskState {
    fn context(&self) -> Result<&TaskContext, String> {
        self.context
            .as_ref()
            .ok_or_else(|| "no task is being performed (called while listing actions)".to_owned())
    }
}

impl host::Host for TaskState {
    async fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [cut]");
        }
        let (task, action) = match &self.context {
            Some(c) => (c.task.id.as_str(), c.task.action.as_str()),
            None => ("", ""),
        };
        let plugin = &*self.plugin;
        match level {
            host::Level::Trace => tracing::trace!(plugin, action, task, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, action, task, "{message}"),
            host::Level::Info => tracing::info!(plugin, action, task, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, action, task, "{message}"),
            host::Level::Error => tracing::error!(plugin, action, task, "{message}"),
        }
        Ok(())
    }

    async fn task_id(&mut self) -> wasmtime::Result<String> {
        Ok(self
            .context
            .as_ref()
            .map(|c| c.task.id.0.clone())
            .unwrap_or_default())
    }

    async fn try_number(&mut self) -> wasmtime::Result<u32> {
        let Ok(context) = self.context() else {
            return Ok(0);
        };
        let stored = context
            .queue
            .get_task(&context.task.id)
            .await
            .ok()
            .flatten();
        Ok(stored.map_or(0, |t| u32::try_from(t.num_tries).unwrap_or(0)))
    }

    async fn extend_deadline(&mut self, seconds: u32) -> wasmtime::Result<Result<(), String>> {
        let context = match self.context() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let extended = context
            .queue
            .extend_task_deadline(
                &context.task.id,
                context.task.token,
                Duration::from_secs(u64::from(seconds)),
            )
            .await;
        Ok(extended.map_err(|e| e.to_string()))
    }

    async fn enqueue(
        &mut self,
        tasks: Vec<host::NewTask>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        let context = match self.context() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if tasks.len() > MAX_ENQUEUE {
            return Ok(Err(format!(
                "enqueue takes at most {MAX_ENQUEUE} tasks per call, got {}",
                tasks.len()
            )));
        }
        let to_count = |n: Option<u32>, field: &str| -> Result<Option<i32>, String> {
            n.map(|n| i32::try_from(n).map_err(|_| format!("{field} {n} is too large")))
                .transpose()
        };
        let mut data = Vec::with_capacity(tasks.len());
        for task in tasks {
            let max_tries = match to_count(task.max_tries, "max-tries") {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let total_dependencies = match to_count(task.total_dependencies, "total-dependencies") {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let id = task
                .id
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            data.push(TaskData {
                body: task.body,
                max_tries,
                total_dependencies,
                to_signal_after: task.signal_after.into_iter().map(TaskId).collect(),
                notify_channel_after: task.notify_channel,
                ..TaskData::new(id, task.action)
            });
        }
        let inserted = context.queue.insert_tasks(&data).await;
        Ok(inserted
            .map(|()| data.into_iter().map(|t| t.id.0).collect())
            .map_err(|e| e.to_string()))
    }
}
