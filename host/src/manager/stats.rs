//! Counters of what an ActionManager did, for logs now and a metrics endpoint later.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Owned tasks handed back unstarted at shutdown.
    pub released: u64,
    /// Results that could not be returned even after retries (the deadline re-offers them).
    pub return_failures: u64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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
        }
    }
}
