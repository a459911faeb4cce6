//! Pacing owning to the workers: how many owned tasks may wait for a worker, so that none
//! waits out its ownership in the queue.
//!
//! A task owned now waits for roughly (tasks ahead of it × mean handler time ÷ workers). The
//! fetch loop owns for the idle workers, plus as many tasks as the workers will start within
//! the *start window* (half of `max_duration`, or the heartbeat if that is shorter) at the
//! handlers' recent mean duration; before any handler has finished, it owns for idle workers
//! only. No-op handlers (tens of µs) leave the waiting queue's size (`channel_size`) the only
//! bound; handlers of seconds or minutes shrink it to what the workers start soon. The
//! estimate bounds what is owned, it promises nothing: each worker still checks a task's age
//! before it starts it (`worker.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::ManagerProperties;

/// The weight of each new handler duration in the running mean: the last few dozen tasks.
const NEW_SAMPLE_WEIGHT: u64 = 8;

/// A running mean of how long handlers take.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Nanoseconds; 0 while no handler has finished.
    mean_nanos: AtomicU64,
}

impl Pace {
    /// Takes one handler's duration into the mean.
    pub(super) fn observe(&self, duration: Duration) {
        let sample = u64::try_from(duration.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self
            .mean_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
                Some(if mean == 0 {
                    sample
                } else if sample >= mean {
                    mean + (sample - mean) / NEW_SAMPLE_WEIGHT
                } else {
                    mean - (mean - sample) / NEW_SAMPLE_WEIGHT
                })
            });
    }

    /// The mean so far, if any handler has finished.
    pub(super) fn mean(&self) -> Option<Duration> {
        match self.mean_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// How many owned tasks may wait for a busy worker: those `props.workers` start within
    /// [`start_window`] at the mean handler duration (none while it is unknown).
    pub(super) fn waiting_allowed(&self, props: &ManagerProperties) -> usize {
        let Some(mean) = self.mean() else {
            return 0;
        };
        let startable = start_window(props).as_nanos() * props.workers as u128 / mean.as_nanos();
        usize::try_from(startable).unwrap_or(usize::MAX)
    }
}

/// How soon after being owned a task should start: half of `max_duration`, or the heartbeat
/// if that is shorter (a task that waits no longer needs no extension before it starts).
pub(super) fn start_window(props: &ManagerProperties) -> Duration {
    props.heartbeat.min(props.max_duration / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(workers: usize, max_duration: Duration) -> ManagerProperties {
        ManagerProperties {
            workers,
            max_duration,
            heartbeat: Duration::ZERO,
            ..ManagerProperties::default()
        }
        .with_defaults()
    }

    #[test]
    fn nothing_waits_until_a_handler_has_finished() {
        let pace = Pace::default();
        assert_eq!(pace.waiting_allowed(&props(5, Duration::from_secs(60))), 0);
    }

    #[test]
    fn the_workers_start_what_waits_within_the_window() {
        let pace = Pace::default();
        pace.observe(Duration::from_secs(2));
        // Heartbeat 20 s (a third of 60 s) is shorter than half: 5 workers × 20 s ÷ 2 s.
        assert_eq!(pace.waiting_allowed(&props(5, Duration::from_secs(60))), 50);
        pace.observe(Duration::from_micros(20));
        assert!(pace.mean() < Some(Duration::from_secs(2)));
        let fast = Pace::default();
        fast.observe(Duration::from_micros(20));
        assert!(fast.waiting_allowed(&props(5, Duration::from_secs(1800))) > 1_000_000);
    }

    #[test]
    fn slow_handlers_leave_nothing_waiting() {
        let pace = Pace::default();
        pace.observe(Duration::from_millis(300));
        assert_eq!(
            pace.waiting_allowed(&ManagerProperties {
                heartbeat: Duration::from_millis(250),
                ..props(1, Duration::from_secs(1))
            }),
            0
        );
    }
}
