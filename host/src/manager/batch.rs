//! The size of each own: fixed when `max_tasks` is configured, adaptive by default.
//!
//! A bigger batch costs the store less per task (one statement and one commit for more
//! rows), but a node that owns more than it runs soon hoards tasks that other nodes could
//! run, and holds more unsettled tasks that a crash would run again. So the default batch
//! follows the backlog and the workers: it starts at [`MIN_ADAPTIVE_BATCH`] (the fixed
//! default of earlier versions) and doubles, up to [`MAX_ADAPTIVE_BATCH`], after each own that
//! came back full while the workers had drained most of the previous one (the queue is deep
//! and the node is starved between owns), as long as the workers run what may then wait
//! within [`DRAIN_WINDOW`] at the handlers' mean pace (so a task owned behind it starts
//! soon: slow handlers keep the batch where it was); it halves, down to the minimum, after an own that
//! came back short (the queue is shallow: owning more would only take what others could
//! run). The waiting queue and the return batch follow it ([`BatchSize::waiting_bound`],
//! [`BatchSize::return_batch`]), never below `channel_size` and `return_batch`, so the bound
//! on unsettled tasks (waiting + running + returning) grows with the batch and shrinks with
//! it; a handler slower than no-op still limits what waits through the pace (`pace.rs`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::ManagerProperties;

/// Where the adaptive batch starts, and the least it shrinks to.
pub const MIN_ADAPTIVE_BATCH: u32 = 500;

/// The most the adaptive batch grows to: a node holds at most twice this waiting, plus its
/// workers and one return batch of this many, unsettled.
pub const MAX_ADAPTIVE_BATCH: u32 = 10_000;

/// The longest the workers may take to run what waits, for the batch to grow: a task owned
/// at the back (of a higher priority, say, or another action's) starts within about this.
pub const DRAIN_WINDOW: Duration = Duration::from_millis(250);

/// The size of the next own, shared by the fetch loop (which adapts it) and the returner.
#[derive(Debug)]
pub(super) struct BatchSize {
    /// `Some` when `max_tasks` is configured: the batch never changes.
    fixed: Option<u32>,
    current: AtomicU32,
}

impl BatchSize {
    /// Fixed at `props.max_tasks`, or adaptive if it is 0 (not configured).
    pub(super) fn new(props: &ManagerProperties) -> Self {
        let fixed = (props.max_tasks > 0).then_some(props.max_tasks);
        BatchSize {
            fixed,
            current: AtomicU32::new(fixed.unwrap_or(MIN_ADAPTIVE_BATCH)),
        }
    }

    /// The most tasks the next own asks for.
    pub(super) fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// The most the channel is created to hold: enough for the largest waiting bound.
    pub(super) fn channel_capacity(&self, props: &ManagerProperties) -> usize {
        match self.fixed {
            Some(_) => props.channel_size,
            None => props.channel_size.max(2 * MAX_ADAPTIVE_BATCH as usize),
        }
    }

    /// The most owned tasks that may wait for a worker now: `channel_size`, or for an
    /// adaptive batch twice the batch if that is more (one batch running down while the next
    /// is owned).
    pub(super) fn waiting_bound(&self, props: &ManagerProperties) -> usize {
        match self.fixed {
            Some(_) => props.channel_size,
            None => props.channel_size.max(2 * self.current() as usize),
        }
    }

    /// The most results returned in one round trip now: `return_batch`, or for an adaptive
    /// batch the batch if that is more.
    pub(super) fn return_batch(&self, props: &ManagerProperties) -> usize {
        match self.fixed {
            Some(_) => props.return_batch,
            None => props.return_batch.max(self.current() as usize),
        }
    }

    /// Adapts the batch after an own that asked for `asked` and got `owned`, when `waiting`
    /// tasks were still waiting for a worker as it was sent and `workers` ran handlers of
    /// `mean` duration (`None`: none finished yet); returns the next batch.
    pub(super) fn observe(
        &self,
        asked: u32,
        owned: usize,
        waiting: usize,
        workers: usize,
        mean: Option<Duration>,
    ) -> u32 {
        let current = self.current();
        if self.fixed.is_some() {
            return current;
        }
        let next = if owned < asked as usize {
            // Shallow: what is there fits a smaller batch, and the rest is for other nodes.
            (current / 2).max(MIN_ADAPTIVE_BATCH)
        } else if asked == current && waiting < current as usize / 2 {
            // Deep, and the workers ran most of the last batch while this one was owned.
            let grown = current.saturating_mul(2).min(MAX_ADAPTIVE_BATCH);
            // The most that may wait then, at the handlers' pace, runs within the window.
            let drains_soon = mean.is_some_and(|mean| {
                mean.saturating_mul(2 * grown) / u32::try_from(workers.max(1)).unwrap_or(u32::MAX)
                    <= DRAIN_WINDOW
            });
            if drains_soon {
                grown
            } else {
                current
            }
        } else {
            current
        };
        self.current.store(next, Ordering::Relaxed);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A no-op handler's mean: the batch may grow to the most.
    const NOOP: Option<Duration> = Some(Duration::from_micros(20));

    fn adaptive() -> (BatchSize, ManagerProperties) {
        let props = ManagerProperties::default().with_defaults();
        (BatchSize::new(&props), props)
    }

    #[test]
    fn a_configured_max_tasks_never_changes() {
        let props = ManagerProperties {
            max_tasks: 200,
            ..ManagerProperties::default()
        }
        .with_defaults();
        let batch = BatchSize::new(&props);
        assert_eq!(batch.observe(200, 200, 0, 8, NOOP), 200);
        assert_eq!(batch.observe(200, 3, 0, 8, NOOP), 200);
        assert_eq!(batch.waiting_bound(&props), props.channel_size);
        assert_eq!(batch.return_batch(&props), props.return_batch);
        assert_eq!(batch.channel_capacity(&props), props.channel_size);
    }

    #[test]
    fn the_default_batch_grows_while_full_owns_find_the_workers_drained() {
        let (batch, props) = adaptive();
        assert_eq!(batch.current(), MIN_ADAPTIVE_BATCH);
        assert_eq!(batch.observe(500, 500, 10, 8, NOOP), 1000);
        assert_eq!(batch.observe(1000, 1000, 100, 8, NOOP), 2000);
        // The workers had not caught up: big enough.
        assert_eq!(batch.observe(2000, 2000, 1500, 8, NOOP), 2000);
        for _ in 0..10 {
            batch.observe(batch.current(), batch.current() as usize, 0, 8, NOOP);
        }
        assert_eq!(batch.current(), MAX_ADAPTIVE_BATCH);
        assert_eq!(batch.waiting_bound(&props), 2 * MAX_ADAPTIVE_BATCH as usize);
        assert_eq!(batch.return_batch(&props), MAX_ADAPTIVE_BATCH as usize);
        assert_eq!(
            batch.channel_capacity(&props),
            2 * MAX_ADAPTIVE_BATCH as usize
        );
        // An own cut short by the room left is no sign of a deep queue.
        assert_eq!(batch.observe(300, 300, 0, 8, NOOP), MAX_ADAPTIVE_BATCH);
    }

    #[test]
    fn slow_handlers_or_an_unknown_pace_keep_the_default_batch() {
        let (batch, _) = adaptive();
        assert_eq!(batch.observe(500, 500, 0, 8, None), 500);
        // 20 ms on 8 workers: 1,000 waiting would take 2.5 s.
        let slow = Some(Duration::from_millis(20));
        assert_eq!(batch.observe(500, 500, 0, 8, slow), 500);
        // 100 µs: 2,000 waiting take 25 ms, and 20,000 (at the most) 250 ms.
        let fast = Some(Duration::from_micros(100));
        for _ in 0..6 {
            batch.observe(batch.current(), batch.current() as usize, 0, 8, fast);
        }
        assert_eq!(batch.current(), MAX_ADAPTIVE_BATCH);
    }

    #[test]
    fn the_default_batch_shrinks_when_owns_come_back_short() {
        let (batch, props) = adaptive();
        batch.observe(500, 500, 0, 8, NOOP);
        batch.observe(1000, 1000, 0, 8, NOOP);
        assert_eq!(batch.observe(2000, 1999, 0, 8, NOOP), 1000);
        assert_eq!(batch.observe(1000, 0, 0, 8, NOOP), 500);
        assert_eq!(batch.observe(500, 0, 0, 8, NOOP), MIN_ADAPTIVE_BATCH);
        assert_eq!(batch.waiting_bound(&props), props.channel_size);
        assert_eq!(batch.return_batch(&props), props.return_batch);
    }
}
