//! [`ManagerProperties`]: the ActionManager's knobs, with the seed's defaults.

use std::time::Duration;

/// How an [`ActionManager`](super::ActionManager) owns and runs tasks. A zero field means
/// its default (the seed's, where the seed had the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerProperties {
    /// Tasks run at once. Default 5.
    pub workers: usize,
    /// Most owned tasks waiting for a worker. Default 1000. Fewer wait while handlers are
    /// slow: no more than the workers will start within half of `max_duration` (or the
    /// heartbeat, if shorter).
    pub channel_size: usize,
    /// Tasks owned per `own_tasks` call. Default 0: adaptive, from 500 up to 10,000 while
    /// the backlog is deep and the workers drain each batch, back down when it is shallow
    /// (`batch.rs`); the waiting queue and the return batch follow it.
    pub max_tasks: u32,
    /// Longest pause after an own that found nothing: shorter when a task of the actions
    /// is due sooner (the wake timer), and cut short by new-task hints. Default 300 ms.
    pub wait_time: Duration,
    /// Pause after an `own_tasks` call that failed. Default 3 s.
    pub err_wait_time: Duration,
    /// Ownership lasts this long past each heartbeat. Default 30 min.
    pub max_duration: Duration,
    /// How often a running task's deadline is extended. Default a third of `max_duration`.
    pub heartbeat: Duration,
    /// How long `close` lets running handlers finish before handing their tasks back.
    /// Default 30 s.
    pub shutdown_grace: Duration,
    /// Most results returned in one round trip. Default 500, the least adaptive batch: the
    /// returner never waits to fill a batch, so this only bounds how much it
    /// sends at once when results pile up. At 100, a busy node's returns settled 100 tasks
    /// each, so its owns found room for only 100 more, and both paid a transaction per 100
    /// tasks; 500 measured about 15% more no-op tasks/s on PostgreSQL, 15-45% on SQLite.
    pub return_batch: usize,
}

impl Default for ManagerProperties {
    fn default() -> Self {
        ManagerProperties {
            workers: 5,
            channel_size: 1000,
            max_tasks: 0,
            wait_time: Duration::from_millis(300),
            err_wait_time: Duration::from_secs(3),
            max_duration: Duration::from_secs(30 * 60),
            heartbeat: Duration::from_secs(10 * 60),
            shutdown_grace: Duration::from_secs(30),
            return_batch: 500,
        }
    }
}

impl ManagerProperties {
    /// These properties with every zero replaced by its default.
    pub fn with_defaults(self) -> Self {
        let defaults = ManagerProperties::default();
        let or = |value: Duration, default: Duration| if value.is_zero() { default } else { value };
        let max_duration = or(self.max_duration, defaults.max_duration);
        ManagerProperties {
            workers: if self.workers == 0 {
                defaults.workers
            } else {
                self.workers
            },
            channel_size: if self.channel_size == 0 {
                defaults.channel_size
            } else {
                self.channel_size
            },
            // 0 stays: the adaptive batch.
            max_tasks: self.max_tasks,
            wait_time: or(self.wait_time, defaults.wait_time),
            err_wait_time: or(self.err_wait_time, defaults.err_wait_time),
            max_duration,
            heartbeat: or(self.heartbeat, max_duration / 3),
            shutdown_grace: or(self.shutdown_grace, defaults.shutdown_grace),
            return_batch: if self.return_batch == 0 {
                defaults.return_batch
            } else {
                self.return_batch
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_default_and_heartbeat_follows_max_duration() {
        let zero = ManagerProperties {
            workers: 0,
            channel_size: 0,
            max_tasks: 0,
            wait_time: Duration::ZERO,
            err_wait_time: Duration::ZERO,
            max_duration: Duration::from_secs(90),
            heartbeat: Duration::ZERO,
            shutdown_grace: Duration::ZERO,
            return_batch: 0,
        }
        .with_defaults();
        assert_eq!(zero.workers, 5);
        assert_eq!(zero.channel_size, 1000);
        assert_eq!(zero.max_tasks, 0, "adaptive");
        assert_eq!(zero.wait_time, Duration::from_millis(300));
        assert_eq!(zero.err_wait_time, Duration::from_secs(3));
        assert_eq!(zero.heartbeat, Duration::from_secs(30));
        assert_eq!(
            ManagerProperties::default().with_defaults(),
            ManagerProperties::default()
        );
    }
}
