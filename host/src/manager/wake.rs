//! The wake timer: how long an idle fetch loop pauses before it owns again.
//!
//! After an own that found nothing, the fetch loop asks the queue when a task of its actions
//! next becomes runnable by the clock alone ([`Parade::next_due`](crate::queue::Parade::next_due):
//! a delayed task's `run_after`, a retry waiting out its backoff, an expired ownership's
//! deadline plus its backoff) and pauses until then if that comes before `wait_time`. So a
//! due task starts within milliseconds of its time on an idle node, however long
//! `wait_time` is. New-task hints still cut any pause short (an insert, a return that makes
//! tasks runnable, which also brings a fresh due time), and so do this node's own returns of
//! tasks for another try (PostgreSQL sends no hint for those): the fetch loop owns again, at
//! once or, for a retry that waits, by the timer. `wait_time` stays the longest pause, so a
//! store without hints is still polled. Only an empty own asks for the due time: a busy node
//! never pays the round trip.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The first pause when the due time has already passed but the own found nothing.
const OVERDUE_FIRST: Duration = Duration::from_millis(1);

/// Follows how often in a row the due time was already past, to back off from it.
#[derive(Debug, Default)]
pub(super) struct WakeTimer {
    overdue: u32,
}

impl WakeTimer {
    /// The pause after an own that found nothing, at `now`, when the earliest due time of the
    /// node's actions is `due` (`None`: no task waits for a time): until `due`, at most
    /// `wait_time`.
    pub(super) fn pause(
        &mut self,
        due: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        wait_time: Duration,
    ) -> Duration {
        let until = due.and_then(|due| (due - now).to_std().ok());
        match (due, until) {
            (None, _) => {
                self.overdue = 0;
                wait_time
            }
            (Some(_), Some(until)) if !until.is_zero() => {
                self.overdue = 0;
                until.min(wait_time)
            }
            // Due already, and yet the own found nothing: the store's clock is a little
            // behind this node's, or another node took the task in between. Own again soon,
            // but 1, 2, 4 ms... apart, so a due time that stays in the past never makes a
            // busy loop.
            (Some(_), _) => {
                let pause = OVERDUE_FIRST.saturating_mul(1 << self.overdue.min(16));
                self.overdue = self.overdue.saturating_add(1);
                pause.min(wait_time)
            }
        }
    }

    /// An own found tasks: the next due time in the past is a first one again.
    pub(super) fn reset(&mut self) {
        self.overdue = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64) -> DateTime<Utc> {
        let base: DateTime<Utc> = "2026-12-01T20:15:00Z".parse().unwrap();
        base + chrono::TimeDelta::microseconds((seconds * 1e6) as i64)
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn an_idle_node_sleeps_until_the_earliest_due_task() {
        let mut timer = WakeTimer::default();
        assert_eq!(
            timer.pause(Some(at(2.5)), at(0.0), WAIT),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn wait_time_stays_the_longest_pause() {
        let mut timer = WakeTimer::default();
        assert_eq!(timer.pause(None, at(0.0), WAIT), WAIT);
        assert_eq!(timer.pause(Some(at(3600.0)), at(0.0), WAIT), WAIT);
    }

    #[test]
    fn a_due_time_that_stays_past_backs_off_up_to_wait_time() {
        let mut timer = WakeTimer::default();
        let pauses: Vec<u128> = (0..5)
            .map(|_| timer.pause(Some(at(-1.0)), at(0.0), WAIT).as_millis())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16]);
        for _ in 0..40 {
            assert!(timer.pause(Some(at(0.0)), at(0.0), WAIT) <= WAIT);
        }
        timer.reset();
        assert_eq!(
            timer.pause(Some(at(-1.0)), at(0.0), WAIT),
            Duration::from_millis(1)
        );
    }
}
