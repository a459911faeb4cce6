//! Counters of what an ActionManager did, for its summary and the metrics endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::queue::TaskStatusCode;

/// Live counters, shared by the manager's tasks.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub owned: AtomicU64,
    pub completed: AtomicU64,
    pub aborted: AtomicU64,
    pub retried: AtomicU64,
    pub handler_failures: AtomicU64,
    pub lost: AtomicU64,
    pub released: AtomicU64,
    pub return_failures: AtomicU64,
    pub refused: AtomicU64,
    pub cancelled: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Per action.
    pub by_action: Mutex<BTreeMap<String, ActionStats>>,
}

/// What an ActionManager did with one action's tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActionStats {
    /// Tasks owned.
    pub owned: u64,
    /// Tasks returned completed.
    pub completed: u64,
    /// Tasks returned aborted.
    pub aborted: u64,
    /// Tasks returned pending, to be tried again.
    pub retried: u64,
    /// Tasks held now: owned and not yet settled (waiting for a worker, running, or being
    /// returned). What the node's concurrency limits count.
    pub held: u64,
    /// How long handlers ran.
    pub durations: Histogram,
}

/// Upper bounds, in seconds, of [`Histogram`]'s buckets (a last one holds everything above).
pub const HISTOGRAM_BOUNDS: [f64; 14] = [
    0.000_05, 0.0001, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0,
];

/// A distribution of durations in fixed buckets, as Prometheus histograms count them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`HISTOGRAM_BOUNDS`] (not cumulative); the last counts
    /// those above every bound.
    pub buckets: [u64; HISTOGRAM_BOUNDS.len() + 1],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&mut self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = HISTOGRAM_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(HISTOGRAM_BOUNDS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

/// A snapshot of an ActionManager's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManagerStats {
    /// Tasks owned.
    pub owned: u64,
    /// Tasks returned completed.
    pub completed: u64,
    /// Tasks returned aborted.
    pub aborted: u64,
    /// Tasks returned pending, to be tried again.
    pub retried: u64,
    /// Handlers that failed or panicked (their tasks were returned pending).
    pub handler_failures: u64,
    /// Tasks whose ownership was lost (token rejected); their results were dropped.
    pub lost: u64,
    /// Owned tasks handed back unstarted: at shutdown, declined by the actor, or found to
    /// have waited in the queue past their ownership.
    pub released: u64,
    /// Results not returned because the store stayed unreachable until their tasks'
    /// ownership expired (or the manager closed); the deadline re-offers those tasks.
    pub return_failures: u64,
    /// Results the store refused (a status with a NUL character, the code in-progress); their
    /// tasks were returned aborted with the reason instead (and counted in `aborted`).
    pub refused: u64,
    /// Running tasks stopped because they were cancelled in the store (their results, had
    /// they finished, would have been refused).
    pub cancelled: u64,
    /// Deadlines extended for running tasks.
    pub heartbeats: u64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn per_action(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ActionStats>> {
        // The counts stay usable even if a holder panicked.
        self.by_action.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes `action`'s stats.
    pub(super) fn for_action(&self, action: &str, change: impl FnOnce(&mut ActionStats)) {
        change(stats_of(&mut self.per_action(), action));
    }

    /// Counts a batch of owned tasks, in the total and per action (one lock per batch).
    pub(super) fn count_owned(&self, owned: &[crate::queue::OwnedTask]) {
        Self::add(&self.owned, owned.len() as u64);
        let mut by_action = self.per_action();
        for task in owned {
            let stats = stats_of(&mut by_action, &task.action);
            stats.owned += 1;
            stats.held += 1;
        }
    }

    /// Counts a task of `action` settled without a stored result (lost, handed back, given
    /// up, cancelled) in `counter`: it is no longer held.
    pub(super) fn count_settled(&self, action: &str, counter: &AtomicU64) {
        Self::add(counter, 1);
        let mut by_action = self.per_action();
        let stats = stats_of(&mut by_action, action);
        stats.held = stats.held.saturating_sub(1);
    }

    /// Tasks held now of each of `actions`, together.
    pub(super) fn held_of(&self, actions: &[String]) -> u64 {
        let by_action = self.per_action();
        actions
            .iter()
            .filter_map(|a| by_action.get(a))
            .map(|s| s.held)
            .sum()
    }

    /// Forgets every holding: once the manager has closed, it holds nothing.
    pub(super) fn clear_held(&self) {
        for stats in self.per_action().values_mut() {
            stats.held = 0;
        }
    }

    /// Counts one stored result of `action`, in the totals and per action.
    pub(super) fn count_result(&self, action: &str, code: TaskStatusCode) {
        let mut by_action = self.per_action();
        let per_action = stats_of(&mut by_action, action);
        let (total, per_action) = match code {
            TaskStatusCode::Completed => (&self.completed, &mut per_action.completed),
            TaskStatusCode::Aborted => (&self.aborted, &mut per_action.aborted),
            _ => (&self.retried, &mut per_action.retried),
        };
        Self::add(total, 1);
        *per_action += 1;
        let stats = stats_of(&mut by_action, action);
        stats.held = stats.held.saturating_sub(1);
    }

    pub(super) fn by_action(&self) -> BTreeMap<String, ActionStats> {
        self.per_action().clone()
    }

    pub(super) fn snapshot(&self) -> ManagerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ManagerStats {
            owned: get(&self.owned),
            completed: get(&self.completed),
            aborted: get(&self.aborted),
            retried: get(&self.retried),
            handler_failures: get(&self.handler_failures),
            lost: get(&self.lost),
            released: get(&self.released),
            return_failures: get(&self.return_failures),
            refused: get(&self.refused),
            cancelled: get(&self.cancelled),
            heartbeats: get(&self.heartbeats),
        }
    }
}

/// `action`'s entry, without allocating its name when it is already there.
fn stats_of<'a>(
    by_action: &'a mut BTreeMap<String, ActionStats>,
    action: &str,
) -> &'a mut ActionStats {
    if !by_action.contains_key(action) {
        by_action.insert(action.to_owned(), ActionStats::default());
    }
    by_action.get_mut(action).expect("inserted above")
}

impl ManagerStats {
    /// Owned tasks whose result is stored, dropped or handed back, or that were stopped by a
    /// cancel: none is left in this node.
    pub fn settled(&self) -> u64 {
        self.completed
            + self.aborted
            + self.retried
            + self.lost
            + self.released
            + self.return_failures
            + self.cancelled
    }
}
