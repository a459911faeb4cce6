//! The state of one task's store, and the host side of the `parade:actor/host` interface
//! (of the current contract; `contract.rs` adapts the older ones onto it).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::contract::v0_2::parade::actor::{host, types};
use crate::queue::{OwnedTask, Parade, TaskData, TaskId};

/// Longest log line a guest can write; longer ones are cut.
const MAX_LOG_LINE: usize = 8 * 1024;
/// Most tasks one `enqueue` call may add.
const MAX_ENQUEUE: usize = 10_000;
/// Most tasks one run of a task may add, over all its `enqueue` calls: ten full calls.
const MAX_ENQUEUE_PER_RUN: usize = 10 * MAX_ENQUEUE;
/// Longest part of a refused id an `enqueue` error quotes.
const MAX_QUOTED_ID: usize = 200;
/// Longest `delay-ms` a task may be enqueued with.
pub(super) const MAX_ENQUEUE_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The task a store performs, and the queue it came from.
pub(super) struct TaskContext {
    pub task: OwnedTask,
    pub queue: Arc<dyn Parade>,
    /// How long the task may run: the longest `extend-deadline` grants.
    pub time_limit: Duration,
    /// What this run has added through `enqueue`.
    pub enqueued: Enqueued,
}

/// The tasks one run of a task has added through `enqueue`: how many (against
/// [`MAX_ENQUEUE_PER_RUN`]), and which, as the only existing tasks it may name in a later
/// call's `signal-after`. Ids are kept as their SHA-256, so a guest's long ids cost the
/// node 32 bytes each.
#[derive(Debug, Default)]
pub(super) struct Enqueued {
    count: usize,
    ids: std::collections::HashSet<[u8; 32]>,
}

impl Enqueued {
    fn key(id: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(id.as_bytes()).into()
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(&Self::key(id))
    }

    fn record<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            self.count += 1;
            self.ids.insert(Self::key(id));
        }
    }
}

/// Refuses a batch whose `signal-after` names a task that is neither in the batch (by its
/// explicit id) nor added earlier by this run: a guest may signal only tasks it created,
/// never make an unrelated task run early (or, signalled with a failure, differently).
fn check_successors(tasks: &[host::NewTask], enqueued: &Enqueued) -> Result<(), String> {
    let batch: std::collections::HashSet<&str> =
        tasks.iter().filter_map(|t| t.id.as_deref()).collect();
    for (index, task) in tasks.iter().enumerate() {
        if let Some(stranger) = task
            .signal_after
            .iter()
            .find(|id| !batch.contains(id.as_str()) && !enqueued.contains(id))
        {
            return Err(format!(
                "task {index} of this enqueue call lists {:?} in signal-after, but a task may \
                 signal only tasks of the same enqueue call or tasks it enqueued earlier in \
                 this run",
                super::cut_to(stranger.clone(), MAX_QUOTED_ID)
            ));
        }
    }
    Ok(())
}

/// The row `enqueue` stores for `task`, asked for at `now`; or why it is refused.
fn task_data(task: host::NewTask, now: chrono::DateTime<chrono::Utc>) -> Result<TaskData, String> {
    let to_count = |n: Option<u32>, field: &str| -> Result<Option<i32>, String> {
        n.map(|n| i32::try_from(n).map_err(|_| format!("{field} {n} is more than {}", i32::MAX)))
            .transpose()
    };
    let max_tries = to_count(task.max_tries, "max-tries")?;
    let total_dependencies = to_count(task.total_dependencies, "total-dependencies")?;
    let run_after = match task.delay_ms {
        None | Some(0) => None,
        Some(ms) => {
            let delay = Duration::from_millis(ms);
            if delay > MAX_ENQUEUE_DELAY {
                return Err(format!(
                    "delay-ms {ms} is more than 365 days ({} ms): enqueue a task that \
                     re-enqueues itself to wait longer",
                    MAX_ENQUEUE_DELAY.as_millis()
                ));
            }
            // Within a year, so neither conversion nor the sum can fail.
            chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| now.checked_add_signed(delay))
        }
    };
    let id = task
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    Ok(TaskData {
        body: task.body,
        max_tries,
        total_dependencies,
        to_signal_after: task.signal_after.into_iter().map(TaskId).collect(),
        notify_channel_after: task.notify_channel,
        priority: task.priority.unwrap_or(0),
        run_after,
        ..TaskData::new(id, task.action)
    })
}

/// Everything one instance may touch: its WASI context (granting nothing by default), its
/// resource limits, and the task it performs (none while the node asks for its actions).
pub(super) struct TaskState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: super::limits::InstanceLimits,
    /// Lines the task may still log (shared with its captured stdout and stderr).
    pub log_budget: Arc<super::output::LogBudget>,
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
        let (task, action) = match &self.context {
            Some(c) => (c.task.id.as_str(), c.task.action.as_str()),
            None => ("", ""),
        };
        let plugin = &*self.plugin;
        if !self.log_budget.admit(plugin, action, task) {
            return Ok(());
        }
        let message = super::cut_to(message, MAX_LOG_LINE);
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

    /// The try number of this ownership, as `own_tasks` handed it over: no store round
    /// trip, and it stays this run's number even if another node took the task over since.
    async fn try_number(&mut self) -> wasmtime::Result<u32> {
        Ok(self
            .context
            .as_ref()
            .map_or(0, |c| u32::try_from(c.task.num_tries).unwrap_or(0)))
    }

    /// Refuses 0 (the task would be offered again while it runs) and grants at most the
    /// task's time limit: it cannot run longer, and a crash must not strand it for longer.
    async fn extend_deadline(&mut self, seconds: u32) -> wasmtime::Result<Result<(), String>> {
        let context = match self.context() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if seconds == 0 {
            return Ok(Err(
                "extend-deadline takes at least 1 second: with 0 the running task would be \
                 offered to another node at once"
                    .to_owned(),
            ));
        }
        let extension = Duration::from_secs(u64::from(seconds)).min(context.time_limit);
        let extended = context
            .queue
            .extend_task_deadline(&context.task.id, context.task.token, extension)
            .await;
        Ok(extended.map_err(|e| e.to_string()))
    }

    async fn enqueue(
        &mut self,
        tasks: Vec<host::NewTask>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        let Some(context) = self.context.as_mut() else {
            return Ok(Err(self.context().err().unwrap_or_default()));
        };
        if tasks.len() > MAX_ENQUEUE {
            return Ok(Err(format!(
                "enqueue takes at most {MAX_ENQUEUE} tasks per call, got {}",
                tasks.len()
            )));
        }
        if context.enqueued.count + tasks.len() > MAX_ENQUEUE_PER_RUN {
            return Ok(Err(format!(
                "enqueue takes at most {MAX_ENQUEUE_PER_RUN} tasks per task run; this run has \
                 enqueued {} and asked for {} more",
                context.enqueued.count,
                tasks.len()
            )));
        }
        if let Err(e) = check_successors(&tasks, &context.enqueued) {
            return Ok(Err(e));
        }
        let now = chrono::Utc::now();
        let mut data = Vec::with_capacity(tasks.len());
        for (index, task) in tasks.into_iter().enumerate() {
            match task_data(task, now) {
                Ok(task) => data.push(task),
                Err(e) => return Ok(Err(format!("task {index} of this enqueue call: {e}"))),
            }
        }
        if let Err(e) = context.queue.insert_tasks(&data).await {
            return Ok(Err(e.to_string()));
        }
        context.enqueued.record(data.iter().map(|t| t.id.as_str()));
        Ok(Ok(data.into_iter().map(|t| t.id.0).collect()))
    }
}

/// The host side of every `parade:actor/host` import, fed arbitrary arguments: strings of
/// any size and content (NUL, multi-byte, up to 64 KiB), lists up to past the enqueue
/// limit, counts across the whole u32 range. No call traps or panics; `enqueue` stores all
/// of a batch or none of it. (Invalid UTF-8 cannot reach these functions: wasmtime checks
/// every string it lifts from a guest, and `tests/runtime.rs` checks that a guest passing
/// one fails only its own task.)
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use wasmtime::component::ResourceTable;

    use super::*;
    use crate::queue::{ActorId, SqliteParade, TaskFilter};

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\\PC{0,12}",
            1 => any::<String>(),
            1 => (0usize..65_536, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n / c.len_utf8().max(1))),
            1 => Just(String::new()),
            1 => Just("a\0b".to_owned()),
        ]
    }

    prop_compose! {
        /// A task to enqueue whose successors may be `known` ids or any text.
        fn new_task(known: Vec<String>)(
            id in proptest::option::of(text()),
            action in text(),
            body in proptest::option::of(text()),
            max_tries in proptest::option::of(any::<u32>()),
            signal_after in proptest::collection::vec(
                prop_oneof![text(), prop::sample::select(known)],
                0..3,
            ),
            total_dependencies in proptest::option::of(any::<u32>()),
            notify_channel in proptest::option::of(text()),
            delay_ms in proptest::option::of(prop_oneof![
                3 => 0..=MAX_ENQUEUE_DELAY.as_millis() as u64,
                1 => any::<u64>(),
            ]),
            priority in proptest::option::of(any::<i32>()),
        ) -> host::NewTask {
            host::NewTask {
                id,
                action,
                body,
                max_tries,
                signal_after,
                total_dependencies,
                notify_channel,
                delay_ms,
                priority,
            }
        }
    }

    fn level() -> impl Strategy<Value = host::Level> {
        prop::sample::select(vec![
            host::Level::Trace,
            host::Level::Debug,
            host::Level::Info,
            host::Level::Warn,
            host::Level::Error,
        ])
    }

    /// A store's state performing a fresh task `parent` of a fresh in-memory queue.
    async fn performing() -> (TaskState, Arc<dyn Parade>) {
        let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await.unwrap());
        queue
            .insert_tasks(&[TaskData::new("parent", "fuzz")])
            .await
            .unwrap();
        let task = queue
            .own_tasks(&ActorId::from("fuzz"), 1, &["fuzz".to_owned()], None)
            .await
            .unwrap()
            .pop()
            .unwrap();
        let state = TaskState {
            wasi: wasmtime_wasi::WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: super::super::limits::InstanceLimits::new(usize::MAX),
            log_budget: super::super::output::LogBudget::new(),
            plugin: "fuzz".into(),
            context: Some(TaskContext {
                task,
                queue: queue.clone(),
                time_limit: Duration::from_secs(60),
                enqueued: Enqueued::default(),
            }),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_gate: super::super::http::HttpGate {
                allowed: Arc::new([]),
                plugin: "fuzz".into(),
                task: "parent".into(),
            },
        };
        (state, queue)
    }

    async fn stored(queue: &Arc<dyn Parade>) -> Vec<TaskData> {
        queue
            .list_tasks(&TaskFilter {
                limit: Some(1_000_000),
                ..TaskFilter::default()
            })
            .await
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn every_import_answers_any_arguments(
            tasks in prop::collection::vec(new_task(vec!["parent".into(), "gone".into()]), 0..6),
            many in prop::sample::select(vec![0usize, 1, 10_000, 10_001]),
            log in (level(), text()),
            seconds in any::<u32>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (mut state, queue) = performing().await;
                host::Host::log(&mut state, log.0, log.1).await.unwrap();
                prop_assert_eq!(host::Host::task_id(&mut state).await.unwrap(), "parent");
                prop_assert_eq!(host::Host::try_number(&mut state).await.unwrap(), 1);
                let _ = host::Host::extend_deadline(&mut state, seconds).await.unwrap();

                let before = stored(&queue).await.len();
                let batch = tasks.clone();
                let asked = chrono::Utc::now();
                match host::Host::enqueue(&mut state, batch).await.unwrap() {
                    Ok(ids) => {
                        prop_assert_eq!(ids.len(), tasks.len());
                        let all = stored(&queue).await;
                        prop_assert_eq!(all.len(), before + tasks.len());
                        for (id, task) in ids.iter().zip(&tasks) {
                            let row = all.iter().find(|t| t.id.as_str() == id).unwrap();
                            prop_assert_eq!(&row.action, &task.action);
                            prop_assert_eq!(&row.body, &task.body);
                            prop_assert_eq!(row.priority, task.priority.unwrap_or(0));
                            match task.delay_ms.filter(|&ms| ms > 0) {
                                None => prop_assert_eq!(row.run_after, None),
                                Some(ms) => {
                                    prop_assert!(ms <= MAX_ENQUEUE_DELAY.as_millis() as u64);
                                    let delay = row.run_after.unwrap() - asked;
                                    // Stores may round the time to the millisecond.
                                    let ms = ms as i64;
                                    prop_assert!(
                                        (ms - 1..ms + 60_000).contains(&delay.num_milliseconds()),
                                        "delay-ms {} stored as {}", ms, delay
                                    );
                                }
                            }
                        }
                    }
                    Err(message) => {
                        prop_assert!(!message.is_empty());
                        prop_assert_eq!(stored(&queue).await.len(), before, "{}", message);
                    }
                }

                // A huge list: refused past the limit, all or nothing below it.
                let before = stored(&queue).await.len();
                let flood: Vec<host::NewTask> = (0..many)
                    .map(|i| host::NewTask {
                        id: Some(format!("flood-{i}")),
                        action: "fuzz".into(),
                        body: None,
                        max_tries: None,
                        signal_after: Vec::new(),
                        total_dependencies: None,
                        notify_channel: None,
                        delay_ms: None,
                        priority: None,
                    })
                    .collect();
                let added = host::Host::enqueue(&mut state, flood).await.unwrap();
                let after = stored(&queue).await.len();
                match added {
                    Ok(ids) => prop_assert_eq!(after, before + ids.len()),
                    Err(_) => {
                        prop_assert!(many > MAX_ENQUEUE);
                        prop_assert_eq!(after, before);
                    }
                }
                Ok(())
            })?;
        }
    }
}
