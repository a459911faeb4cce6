//! The scheduler: a background task of `parade run` that enqueues each schedule's slots as
//! they fall due, and follows the set of schedules through reloads.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::slots;
use crate::config::ScheduleSpec;
use crate::queue::{Parade, TaskData, TaskFilter};

/// Longest sleep between two looks at the wall clock, so a clock that was set (or a machine
/// that was suspended) delays a slot by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Longest wait before retrying a store that refused or did not answer.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The set of schedules a running [`Scheduler`] follows; [`Schedules::replace`] changes it
/// (live reload does, once the rest of a new configuration has been applied).
#[derive(Debug, Clone)]
pub struct Schedules {
    sender: watch::Sender<Vec<ScheduleSpec>>,
}

impl Schedules {
    /// Has the scheduler follow `schedules` from now on: added ones start, removed ones
    /// stop, changed ones continue as [`Scheduler`] describes.
    pub fn replace(&self, schedules: Vec<ScheduleSpec>) {
        self.sender.send_replace(schedules);
    }

    /// The schedules the scheduler follows now.
    pub fn current(&self) -> Vec<ScheduleSpec> {
        self.sender.borrow().clone()
    }
}

/// The task that runs schedule `spec` now, outside its slots (an operator's "run now"): its
/// id, `schedule:NAME:now:TIME` with the time to the microsecond, starts as the schedule's
/// slots do (a node that starts the schedule later sees that it ran) but can never be a
/// slot's id, whose time follows `NAME:` directly.
pub fn run_now_task(spec: &ScheduleSpec, now: DateTime<Utc>) -> TaskData {
    let id = format!(
        "{}now:{}",
        slots::task_id_prefix(&spec.name),
        now.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    TaskData {
        body: spec.body.clone(),
        max_tries: spec.max_tries,
        priority: spec.priority,
        ..TaskData::new(id, spec.action.clone())
    }
}

/// Enqueues the tasks of a node's schedules, one per slot: each slot's task id is derived
/// from the schedule's name and the slot ([`slots::slot_task_id`]) and inserted with
/// [`Parade::insert_tasks_if_absent`], so nodes sharing a store enqueue each slot once
/// between them. It sleeps until the earliest next slot of all schedules.
///
/// A schedule starts as [`slots::first_slot`] says. When a reload changes a schedule's
/// timing (`cron`, `every` or `timezone`), it goes on from the next slot after the change;
/// a change of what it enqueues (`action`, `body`, `max_tries`, `priority`) applies from
/// its next slot. A store that cannot be reached is retried with backoff, and when it
/// answers again only the latest slot due is enqueued.
pub struct Scheduler {
    queue: Arc<dyn Parade>,
    running: Vec<Running>,
    updates: watch::Receiver<Vec<ScheduleSpec>>,
}

/// One schedule the scheduler runs.
struct Running {
    spec: ScheduleSpec,
    state: State,
    /// When to try the store again after a failure, and how many failed in a row.
    retry_at: Option<DateTime<Utc>>,
    failures: u32,
}

enum State {
    /// Not started yet: the store is asked whether the schedule ran before, which decides
    /// its first slot; then it is logged with `announce`.
    Starting { announce: &'static str },
    /// Waiting for `next` (`None`: it never falls due again). `catching_up` while `next` is
    /// a slot from before the schedule started on this node.
    Waiting {
        next: Option<DateTime<Utc>>,
        catching_up: bool,
    },
}

impl Scheduler {
    /// Starts a scheduler of `schedules` on `queue` (the node's, prefixed if the node is)
    /// until `stop` turns true. Returns the handle that replaces its schedules, and its task.
    pub fn spawn(
        queue: Arc<dyn Parade>,
        schedules: Vec<ScheduleSpec>,
        stop: watch::Receiver<bool>,
    ) -> (Schedules, JoinHandle<()>) {
        let running = schedules
            .iter()
            .cloned()
            .map(|spec| Running::new(spec, "schedule started"))
            .collect();
        // The initial set is in `running` too: a receiver takes the channel's first value as
        // seen, so only replacements reach `apply`.
        let (sender, updates) = watch::channel(schedules.clone());
        let scheduler = Scheduler {
            queue,
            running,
            updates,
        };
        let task = tokio::spawn(scheduler.run(stop));
        (Schedules { sender }, task)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut updates_open = true;
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                // A pass may wait on the store; stopping does not wait for it.
                () = self.enqueue_due() => {}
            }
            let sleep = self.time_to_next_wake();
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                changed = self.updates.changed(), if updates_open => match changed {
                    Ok(()) => {
                        let schedules = self.updates.borrow_and_update().clone();
                        self.apply(schedules);
                    }
                    // Nothing can replace the schedules any more: keep running these.
                    Err(_) => updates_open = false,
                },
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Starts the schedules that wait to, and enqueues every slot that is due.
    async fn enqueue_due(&mut self) {
        for running in &mut self.running {
            running.advance(self.queue.as_ref()).await;
        }
    }

    /// How long until the earliest slot or retry of all schedules, at most [`MAX_SLEEP`].
    fn time_to_next_wake(&self) -> Duration {
        let now = Utc::now();
        self.running
            .iter()
            .filter_map(Running::wake_at)
            .min()
            .map_or(MAX_SLEEP, |at| {
                (at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP)
            })
    }

    /// Follows a new set of schedules, logging each one added, changed or removed.
    fn apply(&mut self, schedules: Vec<ScheduleSpec>) {
        let mut before = std::mem::take(&mut self.running);
        for was in before
            .iter()
            .filter(|r| !schedules.iter().any(|s| s.name == r.spec.name))
        {
            tracing::info!(schedule = %was.spec.name, "schedule removed");
        }
        for spec in schedules {
            let Some(at) = before.iter().position(|r| r.spec.name == spec.name) else {
                self.running.push(Running::new(spec, "schedule added"));
                continue;
            };
            let mut running = before.swap_remove(at);
            if !running.spec.same_settings(&spec) {
                if running.spec.timing != spec.timing {
                    // A new timing goes on from its next slot: the one just edited in
                    // should not fire at once for a slot of the past.
                    if let State::Waiting { .. } = running.state {
                        running.state = State::Waiting {
                            next: spec.timing.next_after(Utc::now()),
                            catching_up: false,
                        };
                    }
                }
                let next = running.next_text();
                tracing::info!(
                    schedule = %spec.name,
                    timing = %spec.timing,
                    action = %spec.action,
                    next = %next,
                    "schedule changed"
                );
            }
            running.spec = spec;
            self.running.push(running);
        }
    }
}

impl Running {
    fn new(spec: ScheduleSpec, announce: &'static str) -> Self {
        Running {
            spec,
            state: State::Starting { announce },
            retry_at: None,
            failures: 0,
        }
    }

    /// When this schedule next needs the scheduler: its next slot, or a retry.
    fn wake_at(&self) -> Option<DateTime<Utc>> {
        if self.retry_at.is_some() {
            return self.retry_at;
        }
        match self.state {
            State::Starting { .. } => Some(Utc::now()),
            State::Waiting { next, .. } => next,
        }
    }

    fn next_text(&self) -> String {
        match self.state {
            State::Waiting {
                next: Some(next), ..
            } => slots::slot_text(next),
            State::Waiting { next: None, .. } => "never".into(),
            State::Starting { .. } => "(starting)".into(),
        }
    }

    /// Starts the schedule if it waits to, then enqueues its slot if one is due.
    async fn advance(&mut self, queue: &dyn Parade) {
        let now = Utc::now();
        if self.retry_at.is_some_and(|at| at > now) {
            return;
        }
        if let State::Starting { announce } = self.state {
            match ran_before(queue, &self.spec.name).await {
                Ok(ran_before) => {
                    self.succeeded();
                    let next = slots::first_slot(&self.spec.timing, ran_before, now);
                    self.state = State::Waiting {
                        next,
                        catching_up: ran_before && next.is_some_and(|n| n <= now),
                    };
                    let next = self.next_text();
                    tracing::info!(
                        schedule = %self.spec.name,
                        timing = %self.spec.timing,
                        action = %self.spec.action,
                        next = %next,
                        "{announce}"
                    );
                }
                Err(e) => {
                    self.failed(now);
                    tracing::warn!(
                        schedule = %self.spec.name, error = %e,
                        "cannot ask the store whether this schedule ran before; retrying"
                    );
                    return;
                }
            }
        }
        let State::Waiting {
            next: Some(next),
            catching_up,
        } = self.state
        else {
            return;
        };
        let Some(due) = slots::due_slot(&self.spec.timing, next, now) else {
            return;
        };
        if let Some(missed_from) = due.missed_from {
            tracing::info!(
                schedule = %self.spec.name,
                missed_from = %slots::slot_text(missed_from),
                slot = %slots::slot_text(due.slot),
                "slots were missed (the node was suspended or the store unreachable); enqueueing only the latest"
            );
        }
        let task = slot_task(&self.spec, due.slot);
        match queue
            .insert_tasks_if_absent(std::slice::from_ref(&task))
            .await
        {
            Ok(inserted) => {
                self.succeeded();
                let slot = slots::slot_text(due.slot);
                match (inserted.is_empty(), catching_up) {
                    (false, true) => tracing::info!(
                        schedule = %self.spec.name, task = %task.id, %slot,
                        "enqueued the latest slot missed while the schedule did not run"
                    ),
                    (false, false) => tracing::debug!(
                        schedule = %self.spec.name, task = %task.id, %slot, "enqueued"
                    ),
                    (true, _) => tracing::debug!(
                        schedule = %self.spec.name, task = %task.id, %slot,
                        "already enqueued (by another node, or before a restart)"
                    ),
                }
                self.state = State::Waiting {
                    next: self.spec.timing.next_after(due.slot),
                    catching_up: false,
                };
                if let State::Waiting { next: None, .. } = self.state {
                    tracing::warn!(schedule = %self.spec.name, "the schedule never falls due again");
                }
            }
            Err(e) => {
                self.failed(now);
                tracing::warn!(
                    schedule = %self.spec.name, task = %task.id, error = %e,
                    "cannot enqueue the slot; retrying"
                );
            }
        }
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.failures = 0;
    }

    /// Backs off: 1 s after the first failure, doubling, at most [`MAX_RETRY`].
    fn failed(&mut self, now: DateTime<Utc>) {
        self.failures = self.failures.saturating_add(1);
        let delay = Duration::from_secs(1u64 << self.failures.min(6).saturating_sub(1));
        let delay = chrono::TimeDelta::from_std(delay.min(MAX_RETRY)).unwrap_or_default();
        self.retry_at = Some(now + delay);
    }
}

/// Whether the store holds any task of schedule `name`.
async fn ran_before(queue: &dyn Parade, name: &str) -> crate::queue::Result<bool> {
    let found = queue
        .list_tasks(&TaskFilter {
            id_prefix: Some(slots::task_id_prefix(name)),
            limit: Some(1),
            newest_first: true,
            ..TaskFilter::default()
        })
        .await?;
    Ok(!found.is_empty())
}

/// The task of `spec` for `slot`, not offered before the slot by the store's clock.
fn slot_task(spec: &ScheduleSpec, slot: DateTime<Utc>) -> TaskData {
    TaskData {
        body: spec.body.clone(),
        max_tries: spec.max_tries,
        priority: spec.priority,
        run_after: Some(slot),
        ..TaskData::new(slots::slot_task_id(&spec.name, slot), spec.action.clone())
    }
}
