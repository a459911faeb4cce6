//! The ActionManager: a node's engine that owns tasks, runs them, and returns their results.
//!
//! An [`Actor`] says which actions it performs and performs one task at a time; the runtime
//! of WebAssembly components is one such actor, a native Rust type is another (most simply a
//! [`SimpleActor`], which sees a task's action and body only). The manager drives it
//! against any [`Parade`]:
//!
//! - a *fetch loop* owns batches of runnable tasks for the actor's actions (no pause after a
//!   batch, `err_wait_time` after an error; after an empty answer, until the earliest due
//!   task of its actions but at most `wait_time`: the wake timer, `wake.rs`; a new-task hint
//!   from the queue cuts a pause short) and queues them, never owning more than the queue of
//!   waiting tasks can hold, nor more than the workers will start well within the tasks'
//!   ownership (`pace.rs`). It passes each action's backoff ([`Actor::backoff`]) to `own`,
//!   so an ownership that lapses waits that long past its deadline (`retry.rs`). Actions in
//!   a group with concurrency limits ([`Actor::concurrency`]) are owned by a request of
//!   their own, within the group's room on this node and its limit in the store
//!   (`limits.rs`);
//! - `workers` tasks run handlers, each in its own tokio task so a panic is caught, and extend
//!   the running task's deadline every `heartbeat` so long handlers keep their tasks; a task
//!   that waited in the queue past its ownership is handed back unstarted, and one that waited
//!   longer than a heartbeat has its deadline extended before it starts;
//! - a *returner* sends finished results back in batches, retrying with backoff while the
//!   store is unreachable, until the tasks' ownership expires.
//!
//! A handler that fails or panics returns its task `pending` with a status that says why, so
//! the task's `max_tries` decides whether it runs again. A pending result waits its action's
//! backoff for that try before the next (or the `retry_after` it asked for), and its status
//! says when the next try comes (`retry.rs`). A result the store refuses (a status with a NUL
//! character, the code in-progress) returns its task `aborted` with the reason.
//! [`ActionManager::close`] stops owning, lets running handlers finish within
//! `shutdown_grace`, and hands every other owned task back at once with `release_tasks`.

mod batch;
mod limits;
mod pace;
mod properties;
mod retry;
mod returner;
mod stats;
mod wake;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::queue::{
    ActorId, Backoff, Error, OnCompletion, OwnRequest, OwnedTask, Parade, PerformanceToken,
    TaskHints, TaskId, TaskLease, TaskStatusCode,
};

pub use limits::{ActionGroup, ConcurrencyLimits};
pub use properties::ManagerProperties;
pub use retry::MAX_RETRY_DELAY;
use stats::Counters;
pub use stats::{ActionStats, Histogram, ManagerStats, HISTOGRAM_BOUNDS};

/// The result of performing one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorResult {
    /// Free text stored with the task (and shown to waiters).
    pub status: String,
    /// `Completed` or `Aborted` end the task; `Pending` tries it again (within `max_tries`),
    /// after the action's backoff ([`Actor::backoff`]).
    pub status_code: TaskStatusCode,
    /// For a `Pending` result: offer the task again no sooner than this long from now (a
    /// snooze, at most [`MAX_RETRY_DELAY`]) instead of after the action's backoff; say in the
    /// status when, since the manager adds nothing to it then. `None`: the backoff decides.
    /// Ignored for the other codes.
    pub retry_after: Option<Duration>,
}

impl ActorResult {
    /// The task succeeded.
    pub fn completed(status: impl Into<String>) -> Self {
        Self::with(status, TaskStatusCode::Completed)
    }

    /// The task failed for good.
    pub fn aborted(status: impl Into<String>) -> Self {
        Self::with(status, TaskStatusCode::Aborted)
    }

    /// The task should be tried again later, once the action's backoff for this try has
    /// passed (aborted instead once `max_tries` is used up).
    pub fn retry(status: impl Into<String>) -> Self {
        Self::with(status, TaskStatusCode::Pending)
    }

    /// The task should be tried again, no sooner than `delay` from now (a snooze).
    pub fn retry_after(status: impl Into<String>, delay: Duration) -> Self {
        ActorResult {
            retry_after: Some(delay),
            ..Self::retry(status)
        }
    }

    fn with(status: impl Into<String>, status_code: TaskStatusCode) -> Self {
        ActorResult {
            status: status.into(),
            status_code,
            retry_after: None,
        }
    }
}

/// An actor's answer for a task of an action it no longer performs (its plugin was removed
/// after the task was owned). The manager hands the task back without using up a try.
#[derive(Debug, thiserror::Error)]
#[error("no longer performs action {action:?}")]
pub struct Declined {
    pub action: String,
}

/// Performs tasks of some actions: what the manager drives.
///
/// [`Actor::perform`] gets the whole owned task, for actors that need its id or token (to
/// extend its deadline or enqueue follow-ups), as the component runtime does. An actor that
/// needs only a task's action, body and signalled failures implements [`SimpleActor`]
/// instead, and is an `Actor` through it.
#[async_trait]
pub trait Actor: Send + Sync + 'static {
    /// The actions this actor performs. Read before every own, so an actor whose set
    /// changes (the component runtime, on reload) is followed within one pause.
    fn actions(&self) -> Vec<String>;

    /// The owner recorded on tasks this actor performs.
    fn actor_id(&self) -> ActorId;

    /// How long a task of `action` waits before its next try: after a `Pending` result
    /// without a `retry_after` of its own, `backoff.delay(try)` from its return; after an
    /// ownership that lapsed, as long past its deadline. Read when the set of actions
    /// changes and otherwise about once a second, not for every own. Default
    /// [`Backoff::default`] (1 s, doubling, at most 10 minutes, with jitter);
    /// [`Backoff::IMMEDIATE`] offers the task again at once, as the seed did.
    fn backoff(&self, action: &str) -> Backoff {
        let _ = action;
        Backoff::default()
    }

    /// The group of actions `action` shares concurrency limits with, and the limits
    /// (`limits.rs`); `None` (the default) for an action without limits. Read with
    /// [`Actor::backoff`]: when the set of actions changes and otherwise about once a second.
    fn concurrency(&self, action: &str) -> Option<ActionGroup> {
        let _ = action;
        None
    }

    /// Performs one owned task. An error that is a [`Declined`] hands the task back
    /// untried; any other returns it pending with the error as its status.
    async fn perform(&self, task: &OwnedTask) -> anyhow::Result<ActorResult>;
}

/// An [`Actor`] that needs only a task's action, body and signalled failures: every
/// `SimpleActor` is an `Actor` whose [`Actor::perform`] calls [`SimpleActor::handle`].
#[async_trait]
pub trait SimpleActor: Send + Sync + 'static {
    /// The actions this actor performs (see [`Actor::actions`]).
    fn actions(&self) -> Vec<String>;

    /// The owner recorded on tasks this actor performs.
    fn actor_id(&self) -> ActorId;

    /// The retry policy of `action` (see [`Actor::backoff`]); default [`Backoff::default`].
    fn backoff(&self, action: &str) -> Backoff {
        let _ = action;
        Backoff::default()
    }

    /// The concurrency group of `action` (see [`Actor::concurrency`]); default none.
    fn concurrency(&self, action: &str) -> Option<ActionGroup> {
        let _ = action;
        None
    }

    /// Performs one task of `action`; `signalled_failures` counts predecessors that ended
    /// aborted. Errors mean what they mean for [`Actor::perform`].
    async fn handle(
        &self,
        action: &str,
        body: Option<&str>,
        signalled_failures: i32,
    ) -> anyhow::Result<ActorResult>;
}

#[async_trait]
impl<T: SimpleActor> Actor for T {
    fn actions(&self) -> Vec<String> {
        SimpleActor::actions(self)
    }

    fn actor_id(&self) -> ActorId {
        SimpleActor::actor_id(self)
    }

    fn backoff(&self, action: &str) -> Backoff {
        SimpleActor::backoff(self, action)
    }

    fn concurrency(&self, action: &str) -> Option<ActionGroup> {
        SimpleActor::concurrency(self, action)
    }

    async fn perform(&self, task: &OwnedTask) -> anyhow::Result<ActorResult> {
        self.handle(
            &task.action,
            task.body.as_deref(),
            task.num_signalled_failures,
        )
        .await
    }
}

/// What the fetch loop, workers and returner share.
struct Shared {
    actor: Arc<dyn Actor>,
    queue: Arc<dyn Parade>,
    props: ManagerProperties,
    actor_id: ActorId,
    counters: Counters,
    /// True while this node has nothing to do: see [`ActionManager::wait_idle`].
    idle: watch::Sender<bool>,
    /// Signalled whenever owned tasks are settled (returned, dropped or handed back).
    settled: tokio::sync::Notify,
    /// Tasks a worker has started and not yet handed to the returner.
    in_flight: StdMutex<HashMap<TaskId, PerformanceToken>>,
    /// How long handlers take, to own no more than the workers start soon.
    pace: pace::Pace,
    /// Signalled whenever a worker is done with a task and free for the next.
    worker_free: tokio::sync::Notify,
    /// When the latest retry this node returned with a delay becomes due: until then the
    /// node is not idle (see [`ActionManager::wait_idle`]).
    retry_wait: StdMutex<Option<Instant>>,
    /// Running tasks the store announced as cancelled; their workers stop them. Bumping
    /// `cancel_epoch` wakes every worker to look.
    cancelled: StdMutex<HashSet<TaskId>>,
    cancel_epoch: watch::Sender<u64>,
    /// Tasks announced as cancelled while none of this node's workers ran them, with when
    /// they were heard: one this node owns may still wait in the workers' queue, and its
    /// worker asks the store before starting it (see [`Shared::take_cancelled_unstarted`]).
    cancelled_unstarted: StdMutex<HashMap<TaskId, Instant>>,
    /// Signalled when results that try their tasks again were stored: the fetch loop owns
    /// again (at once, or by the wake timer once the retry is due). The store's hints do not
    /// cover them on every backend.
    retry_returned: tokio::sync::Notify,
    /// The node's `[retention]`, once [`ActionManager::follow_retention`] gave it: a
    /// completed retention of zero makes the returner delete completed tasks as it returns
    /// them ([`OnCompletion::Delete`]).
    retention: std::sync::OnceLock<watch::Receiver<crate::queue::Retention>>,
    /// The size of the next own, and what follows it: the waiting bound, the return batch.
    batch: batch::BatchSize,
}

impl Shared {
    /// What returning a completed task does with its row, by the retention of now.
    fn on_completion(&self) -> OnCompletion {
        self.retention
            .get()
            .map_or(OnCompletion::Keep, |retention| {
                OnCompletion::for_retention(&retention.borrow())
            })
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, PerformanceToken>> {
        // The map stays consistent even if a holder panicked.
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A retry this node returned is due at `due`.
    fn retry_due_at(&self, due: Instant) {
        let mut wait = self.retry_wait.lock().unwrap_or_else(|e| e.into_inner());
        if wait.is_none_or(|latest| latest < due) {
            *wait = Some(due);
        }
    }

    /// How long until every retry this node returned is due, if one was not due yet when an
    /// own began at `own_began`: that own may have come too early for it, even if the retry
    /// is due by now (`Some(ZERO)`: own again at once).
    fn retry_wait_left(&self, own_began: Instant) -> Option<Duration> {
        let mut wait = self.retry_wait.lock().unwrap_or_else(|e| e.into_inner());
        match *wait {
            Some(due) if due > own_began => Some(due.saturating_duration_since(Instant::now())),
            _ => {
                *wait = None;
                None
            }
        }
    }
}

/// An owned task waiting for a worker.
struct Queued {
    task: OwnedTask,
    /// Taken just before the own, so the store's deadline is no earlier than
    /// this plus `max_duration`.
    owned_at: Instant,
}

/// A worker's result on its way to the returner.
struct Finished {
    result: crate::queue::TaskReturn,
    action: String,
    /// When the task's ownership lapses (at the earliest), unless it is extended: the
    /// returner retries no longer than this.
    deadline: Instant,
}

struct Running {
    fetch: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    returner: JoinHandle<()>,
    queued: Arc<Mutex<mpsc::Receiver<Queued>>>,
}

/// Owns, runs and returns the tasks of one [`Actor`] until closed.
pub struct ActionManager {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    running: Mutex<Option<Running>>,
}

impl ActionManager {
    /// Starts owning and performing tasks at once (inside a tokio runtime).
    pub fn start(actor: Arc<dyn Actor>, queue: Arc<dyn Parade>, props: ManagerProperties) -> Self {
        let props = props.with_defaults();
        let shared = Arc::new(Shared {
            actor_id: actor.actor_id(),
            actor,
            idle: watch::channel(false).0,
            settled: tokio::sync::Notify::new(),
            queue,
            counters: Counters::default(),
            in_flight: StdMutex::default(),
            pace: pace::Pace::default(),
            worker_free: tokio::sync::Notify::new(),
            retry_wait: StdMutex::default(),
            retry_returned: tokio::sync::Notify::new(),
            retention: std::sync::OnceLock::new(),
            batch: batch::BatchSize::new(&props),
            cancelled: StdMutex::default(),
            cancel_epoch: watch::channel(0).0,
            cancelled_unstarted: StdMutex::default(),
            props,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(watch_cancellations(shared.clone(), stopped.clone()));
        let (queue_tx, queue_rx) = mpsc::channel(shared.batch.channel_capacity(&shared.props));
        let queued = Arc::new(Mutex::new(queue_rx));
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let workers = (0..shared.props.workers)
            .map(|_| {
                tokio::spawn(worker::run(
                    shared.clone(),
                    queued.clone(),
                    results_tx.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        let running = Running {
            fetch: tokio::spawn(fetch_loop(shared.clone(), queue_tx, stopped.clone())),
            workers,
            returner: tokio::spawn(returner::run(shared.clone(), results_rx, stopped)),
            queued,
        };
        ActionManager {
            shared,
            stop,
            running: Mutex::new(Some(running)),
        }
    }

    /// Follows the node's `[retention]` (as the pruner's control publishes it, reloads
    /// included): while completed tasks are kept for zero, the manager's returns delete them.
    /// Without it, completed tasks are kept. Only the first call counts.
    pub fn follow_retention(&self, retention: watch::Receiver<crate::queue::Retention>) {
        let _ = self.shared.retention.set(retention);
    }

    /// What the manager has done so far.
    pub fn stats(&self) -> ManagerStats {
        self.shared.counters.snapshot()
    }

    /// The results stored so far, per action.
    pub fn stats_by_action(&self) -> std::collections::BTreeMap<String, ActionStats> {
        self.shared.counters.by_action()
    }

    /// Waits until this node is idle: every task it owned is settled (its result stored or
    /// the task handed back), every retry it returned with a delay (a backoff or a snooze)
    /// is due, and an own made after that found nothing runnable for its actions. Tasks that
    /// other nodes still run, or delayed tasks not due yet, may make more runnable later.
    pub async fn wait_idle(&self) {
        let mut idle = self.shared.idle.subscribe();
        let _ = idle.wait_for(|idle| *idle).await;
    }

    /// Stops owning tasks, lets running handlers finish (within `shutdown_grace`), returns
    /// their results, and hands every other owned task back to the queue at once. Safe to
    /// call more than once; later calls wait for the first to finish.
    pub async fn close(&self) {
        let mut running = self.running.lock().await;
        let Some(Running {
            fetch,
            workers,
            returner,
            queued,
        }) = running.take()
        else {
            return;
        };
        self.stop.send_replace(true);
        let _ = fetch.await;

        let aborts: Vec<_> = workers.iter().map(JoinHandle::abort_handle).collect();
        let finished = tokio::time::timeout(
            self.shared.props.shutdown_grace,
            futures_util::future::join_all(workers),
        )
        .await;
        if finished.is_err() {
            tracing::warn!(
                grace = ?self.shared.props.shutdown_grace,
                "handlers still running after the shutdown grace period; handing their tasks back"
            );
            for abort in &aborts {
                abort.abort();
            }
        }

        let mut unstarted = Vec::new();
        {
            let mut queued = queued.lock().await;
            queued.close();
            while let Ok(queued) = queued.try_recv() {
                unstarted.push(queued.task.lease());
            }
        }
        unstarted.extend(
            self.shared
                .in_flight()
                .drain()
                .map(|(id, token)| TaskLease { id, token }),
        );
        if !unstarted.is_empty() {
            match self.shared.queue.release_tasks(&unstarted).await {
                Ok(released) => Counters::add(&self.shared.counters.released, released),
                Err(e) => tracing::error!(
                    error = %e,
                    tasks = unstarted.len(),
                    "could not hand tasks back; they will be offered again after their deadline"
                ),
            }
        }
        // Every worker (and so every results sender) is gone: the returner flushes and ends.
        let _ = returner.await;
        self.shared.counters.clear_held();
    }
}

impl Drop for ActionManager {
    fn drop(&mut self) {
        // Without close(), stop at once; owned tasks return to the queue at their deadline.
        self.stop.send_replace(true);
    }
}

/// Waits for the next hint; forever if there are none.
async fn next_hint(hints: &mut Option<TaskHints>) {
    match hints {
        Some(h) => {
            if !h.changed().await {
                *hints = None;
            }
        }
        None => std::future::pending().await,
    }
}

/// True once the manager is told to stop (or was dropped).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Hears which running tasks the store cancelled and tells their workers, which stop the
/// component at once (dropping its call). A node that misses an announcement finds out at
/// the task's next heartbeat, when extending its deadline fails.
async fn watch_cancellations(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut cancellations = match shared.queue.task_cancellations().await {
        Ok(Some(cancellations)) => cancellations,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hear of cancelled tasks; a cancelled task stops at its next heartbeat");
            return;
        }
    };
    loop {
        let id = tokio::select! {
            id = cancellations.next() => id,
            _ = stopped.changed() => return,
        };
        let Some(id) = id else { return };
        if !shared.in_flight().contains_key(&id) {
            shared.heard_cancelled_unstarted(id);
            continue;
        }
        shared
            .cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        shared.cancel_epoch.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Shared {
    /// Remembers a cancel of a task no worker here runs: it may be one this node owns that
    /// still waits to start. A task waits no longer than its ownership lasts (it is handed
    /// back unstarted then), so older entries are dropped; the rest are mostly other nodes'
    /// tasks, and the map is kept small by dropping them too once it is large.
    fn heard_cancelled_unstarted(&self, id: TaskId) {
        const KEPT: usize = 4096;
        let mut heard = self
            .cancelled_unstarted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if heard.len() >= KEPT {
            let max_wait = self.props.max_duration;
            heard.retain(|_, at| at.elapsed() < max_wait);
            if heard.len() >= KEPT {
                heard.clear();
            }
        }
        heard.insert(id, Instant::now());
    }

    /// True (once) if task `id` was announced as cancelled while it waited to start. The
    /// announcement may be of an earlier try (cancelled, retried and owned again), so the
    /// worker confirms with the store before dropping the task.
    fn take_cancelled_unstarted(&self, id: &TaskId) -> bool {
        let mut heard = self
            .cancelled_unstarted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        !heard.is_empty() && heard.remove(id).is_some()
    }

    /// True (once) if running task `id` was cancelled in the store.
    fn take_cancelled(&self, id: &TaskId) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }
}

async fn fetch_loop(
    shared: Arc<Shared>,
    queue_tx: mpsc::Sender<Queued>,
    mut stopped: watch::Receiver<bool>,
) {
    let props = &shared.props;
    let mut hints = match shared.queue.new_task_hints().await {
        Ok(hints) => hints,
        Err(e) => {
            tracing::warn!(error = %e, "no new-task hints; polling every {:?}", props.wait_time);
            None
        }
    };
    let mut pause = Duration::ZERO;
    let mut policies = retry::ActionPolicies::default();
    let mut wake = wake::WakeTimer::default();
    let mut held_back = false;
    loop {
        if !pause.is_zero() {
            tokio::select! {
                _ = stop_requested(&mut stopped) => return,
                _ = tokio::time::sleep(pause) => {}
                _ = next_hint(&mut hints) => {}
                _ = shared.retry_returned.notified() => {}
                // A group a limit held back has room again once one of its tasks settles.
                _ = shared.settled.notified(), if held_back => {}
            }
        }
        // Hold no more unsettled tasks (owned, and not yet returned or handed back) than the
        // queue of waiting tasks, the workers and one batch of results on its way back: a
        // slow store then slows owning instead of piling up finished results, which a crash
        // would make run again. Without the batch's room, a busy node's queue ran dry
        // whenever a return was in flight, and its workers waited for the return and then
        // for the next own (about 10% fewer no-op tasks/s on PostgreSQL).
        // (The waiting queue and the return batch follow an adaptive batch: `batch.rs`.)
        let waiting_bound = shared.batch.waiting_bound(props);
        let limit = (waiting_bound + props.workers + shared.batch.return_batch(props)) as u64;
        // Only this loop owns, so `owned` cannot grow before the own below, and
        // settling only shrinks `unsettled`: zero here still holds when owning.
        let unsettled = {
            let stats = shared.counters.snapshot();
            stats.owned.saturating_sub(stats.settled())
        };
        if unsettled >= limit {
            tokio::select! {
                _ = stop_requested(&mut stopped) => return,
                _ = shared.settled.notified() => {}
            }
            pause = Duration::ZERO;
            continue;
        }
        // Own no more than the queue of waiting tasks has room for, so every owned task is
        // queued at once.
        let room = tokio::select! {
            biased;
            _ = stop_requested(&mut stopped) => return,
            permit = queue_tx.reserve() => match permit {
                Ok(permit) => {
                    drop(permit);
                    queue_tx.capacity()
                }
                Err(_) => return,
            },
        };
        // And no more than the workers will start soon: idle workers take theirs at once, and
        // busy ones start the waiting tasks at the handlers' pace. Without this, tasks at the
        // back of a long queue of slow tasks waited out their ownership there and ran twice.
        let waiting = queue_tx.max_capacity() - queue_tx.capacity();
        let idle_workers = props.workers.saturating_sub(shared.in_flight().len());
        let start_soon = (idle_workers.saturating_add(shared.pace.waiting_allowed(props)))
            .saturating_sub(waiting)
            // Within the waiting bound too: the channel is made for the largest one.
            .min(waiting_bound.saturating_sub(waiting));
        if start_soon == 0 {
            tokio::select! {
                _ = stop_requested(&mut stopped) => return,
                _ = shared.worker_free.notified() => {}
            }
            pause = Duration::ZERO;
            continue;
        }
        let room = room
            .min(usize::try_from(limit - unsettled).unwrap_or(usize::MAX))
            .min(start_soon);
        let max_tasks = shared
            .batch
            .current()
            .min(u32::try_from(room).unwrap_or(u32::MAX))
            .max(1);
        let actions = shared.actor.actions();
        // If everything owned so far was settled, the successors its results made runnable
        // are visible to this own.
        let settled_before = unsettled == 0;
        if actions.is_empty() {
            shared
                .idle
                .send_if_modified(|was| std::mem::replace(was, settled_before) != settled_before);
            pause = props.wait_time;
            continue;
        }
        let (actions, expiry_backoff, groups) = policies.current(shared.actor.as_ref(), actions);
        let owned_at = Instant::now();
        let (owned, failure) = if groups.limited.is_empty() {
            held_back = false;
            let owned = shared
                .queue
                .own(&OwnRequest {
                    actor: &shared.actor_id,
                    max_tasks,
                    actions,
                    max_duration: Some(props.max_duration),
                    expiry_backoff,
                    max_in_progress: None,
                })
                .await;
            match owned {
                Ok(owned) => (owned, None),
                Err(e) => (Vec::new(), Some(e)),
            }
        } else {
            let round = own_groups(&shared, groups, max_tasks).await;
            held_back = round.held_back;
            (round.owned, round.failure)
        };
        let found_none = failure.is_none() && owned.is_empty();
        if failure.is_none() {
            let mean = shared.pace.mean();
            shared
                .batch
                .observe(max_tasks, owned.len(), waiting, props.workers, mean);
        }
        // Read only after an empty own: the busy path takes no lock for it.
        let retry_wait = if found_none {
            shared.retry_wait_left(owned_at)
        } else {
            None
        };
        let idle = settled_before && found_none && retry_wait.is_none();
        shared
            .idle
            .send_if_modified(|was| std::mem::replace(was, idle) != idle);
        if !owned.is_empty() {
            wake.reset();
            shared.counters.count_owned(&owned);
            let mut overflow = Vec::new();
            for task in owned {
                if let Err(e) = queue_tx.try_send(Queued { task, owned_at }) {
                    let queued = match e {
                        mpsc::error::TrySendError::Full(q)
                        | mpsc::error::TrySendError::Closed(q) => q,
                    };
                    overflow.push(queued.task);
                }
            }
            if !overflow.is_empty() {
                // Only this loop sends, so there was room; release anything that wasn't.
                let leases: Vec<TaskLease> = overflow.iter().map(OwnedTask::lease).collect();
                let _ = shared.queue.release_tasks(&leases).await;
                for task in &overflow {
                    shared
                        .counters
                        .count_settled(&task.action, &shared.counters.released);
                }
            }
        }
        pause = match failure {
            Some(e @ Error::NotMigrated { .. }) => {
                tracing::debug!(error = %e, "queue unavailable");
                props.err_wait_time
            }
            Some(e) => {
                tracing::error!(error = %e, "owning tasks failed; retrying in {:?}", props.err_wait_time);
                props.err_wait_time
            }
            None if found_none => {
                let due = match shared.queue.next_due(actions, expiry_backoff).await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::debug!(error = %e, "no due time from the queue; polling every {:?}", props.wait_time);
                        None
                    }
                };
                let until_due = wake.pause(due, chrono::Utc::now(), props.wait_time);
                // Wake when this node's own retries are due too, to find itself idle then
                // even if another node took them.
                retry_wait.map_or(until_due, |left| left.min(until_due))
            }
            None => Duration::ZERO,
        };
    }
}

/// What one round of owning by groups found.
struct GroupRound {
    owned: Vec<OwnedTask>,
    /// The first failure; the round stops there.
    failure: Option<Error>,
    /// A limit held back a group of which this node holds tasks: when one of them settles,
    /// the group may have room again.
    held_back: bool,
}

/// Owns up to `max_tasks` for the actor's groups (`limits.rs`): each limited group within
/// its node room (a group with none is not asked) and, in the store, its global limit; then
/// every unlimited action together, with what room is left.
async fn own_groups(shared: &Shared, groups: &limits::OwnGroups, max_tasks: u32) -> GroupRound {
    let mut round = GroupRound {
        owned: Vec::new(),
        failure: None,
        held_back: false,
    };
    let mut remaining = max_tasks;
    let request = |max_tasks, actions, expiry_backoff, max_in_progress| OwnRequest {
        actor: &shared.actor_id,
        max_tasks,
        actions,
        max_duration: Some(shared.props.max_duration),
        expiry_backoff,
        max_in_progress,
    };
    for group in &groups.limited {
        if remaining == 0 {
            return round;
        }
        let held = shared.counters.held_of(&group.actions);
        let ask = group
            .node_room(held)
            .map_or(remaining, |room| room.min(remaining));
        if ask > 0 {
            let global = group.limits.global.map(std::num::NonZeroU32::get);
            let request = request(ask, &group.actions, &group.backoff, global);
            match shared.queue.own(&request).await {
                Ok(owned) => {
                    let got = u32::try_from(owned.len()).unwrap_or(u32::MAX);
                    round.held_back |= held > 0 && got < remaining;
                    remaining = remaining.saturating_sub(got);
                    round.owned.extend(owned);
                }
                Err(e) => {
                    round.failure = Some(e);
                    return round;
                }
            }
        } else {
            round.held_back = true;
        }
    }
    if remaining > 0 && !groups.unlimited_actions.is_empty() {
        let request = request(
            remaining,
            &groups.unlimited_actions,
            &groups.unlimited_backoff,
            None,
        );
        match shared.queue.own(&request).await {
            Ok(owned) => round.owned.extend(owned),
            Err(e) => round.failure = Some(e),
        }
    }
    round
}

#[cfg(test)]
mod tests;
