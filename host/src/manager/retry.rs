//! Retry policy: when a task's next try comes, and how its status says so.
//!
//! Each action has a [`Backoff`], its actor's [`Actor::backoff`] (for the component runtime,
//! the plugin's `retry` key). A `Pending` result that leaves the task tries waits
//! `backoff.delay(try)` before it is offered again: a result the actor returned pending, a
//! handler's error or panic, and the runtime's trap, timeout and out-of-memory results under
//! `on_failure = "retry"` alike. [`task_return`] decides that delay, and only it appends to
//! the status when the next try comes — `(try 2; next try in 4s, at 2026-12-01T20:15:04Z)` —
//! so the queue's row says what the node decided. A result with a `retry_after` of its own
//! (a *snooze*) waits that long instead, at most [`MAX_RETRY_DELAY`], and its status stays as
//! the actor wrote it: the actor chose the time and says so itself.
//!
//! The same backoff is the *expiry backoff* the fetch loop passes to `own` ([`ActionPolicies`]):
//! a try that ends because its ownership lapsed (a crashed node, a lost connection) waits as
//! long past its deadline as a failed try waits past its return.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;

use super::limits::OwnGroups;
use super::{Actor, ActorResult};
use crate::queue::{Backoff, OwnedTask, TaskReturn, TaskStatusCode};

/// Longest a task waits for its next try: a longer snooze is cut to this, and a plugin's
/// `retry` policy may not set a longer `max`. (The component runtime cuts a guest's
/// `retry-after-ms` to the same 30 days.)
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest status the manager's note about the next try leaves: the runtime's cap on a
/// guest's status. A status that would grow past it with the note is cut first.
const MAX_STATUS_BYTES: usize = 64 * 1024;

/// What marks a cut status (as the runtime marks one).
const CUT_MARK: &str = " [cut]";

/// How often the fetch loop reads the actor's backoff policies again while the set of
/// actions stays the same (a reload may change a plugin's `retry` and nothing else).
const POLICY_REFRESH: Duration = Duration::from_secs(1);

/// The return of `task` for `result`, performed at `now`: a `Pending` result gets its retry
/// delay (the snooze, or the action's backoff for this try) and, for a backoff, a note in its
/// status saying when the next try comes.
pub(super) fn task_return(
    actor: &dyn Actor,
    task: OwnedTask,
    result: ActorResult,
    now: DateTime<Utc>,
) -> TaskReturn {
    let ActorResult {
        mut status,
        status_code,
        retry_after,
    } = result;
    let retry_after = match status_code {
        TaskStatusCode::Pending => match retry_after {
            Some(snooze) => Some(snooze.min(MAX_RETRY_DELAY)),
            None => {
                let try_number = u32::try_from(task.num_tries).unwrap_or(1).max(1);
                let delay = actor
                    .backoff(&task.action)
                    .delay(try_number)
                    .min(MAX_RETRY_DELAY);
                if !delay.is_zero() {
                    status = with_note(status, &next_try_note(try_number, delay, now));
                }
                Some(delay)
            }
        },
        _ => None,
    }
    .filter(|delay| !delay.is_zero());
    TaskReturn {
        id: task.id,
        token: task.token,
        status,
        code: status_code,
        retry_after,
    }
}

/// `(try 2; next try in 4s, at 2026-12-01T20:15:04Z)`.
fn next_try_note(try_number: u32, delay: Duration, now: DateTime<Utc>) -> String {
    let at = chrono::TimeDelta::from_std(delay)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(now);
    format!(
        "(try {try_number}; next try in {}, at {})",
        human_wait(delay),
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// `status` and `note`, one space apart, within [`MAX_STATUS_BYTES`]: a status that would
/// not leave room for the note is cut at a character boundary and marked.
fn with_note(mut status: String, note: &str) -> String {
    let room = MAX_STATUS_BYTES.saturating_sub(note.len() + 1);
    if status.len() > room {
        let mut end = room.saturating_sub(CUT_MARK.len());
        while !status.is_char_boundary(end) {
            end -= 1;
        }
        status.truncate(end);
        status.push_str(CUT_MARK);
    }
    if !status.is_empty() {
        status.push(' ');
    }
    status.push_str(note);
    status
}

/// A wait as people say it: `350ms`, `1.5s`, `42s`, `2m 5s`, `1h 30m`, `3d 4h`.
fn human_wait(wait: Duration) -> String {
    let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 != 0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 10_000 {
        let tenths = (ms + 50) / 100;
        return if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = (ms + 500) / 1000;
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let pair = |big: u128, big_unit: &str, small: u128, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit} {small}{small_unit}")
        }
    };
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => pair(m, "m", seconds, "s"),
        (0, h, m) => pair(h, "h", m, "m"),
        (d, h, _) => pair(d, "d", h, "h"),
    }
}

/// The actions the fetch loop owns and each one's expiry backoff, in parallel lists for
/// [`OwnRequest`](crate::queue::OwnRequest), and their concurrency groups: built again when
/// the actor's set of actions changes, and otherwise at most every [`POLICY_REFRESH`], not
/// for every own (so a reloaded plugin's `retry` or limits apply within a second).
#[derive(Default)]
pub(super) struct ActionPolicies {
    actions: Vec<String>,
    backoff: Vec<Backoff>,
    groups: OwnGroups,
    built: Option<Instant>,
}

impl ActionPolicies {
    /// The lists for `actions` (the actor's current set) and their groups, reading the
    /// actor's policies again
    /// only if the set changed or the last read is older than [`POLICY_REFRESH`].
    pub(super) fn current(
        &mut self,
        actor: &dyn Actor,
        actions: Vec<String>,
    ) -> (&[String], &[Backoff], &OwnGroups) {
        let fresh = self
            .built
            .is_some_and(|built| built.elapsed() < POLICY_REFRESH);
        if !fresh || actions != self.actions {
            self.backoff = actions.iter().map(|a| actor.backoff(a)).collect();
            self.groups = OwnGroups::new(actor, &actions, &self.backoff);
            self.actions = actions;
            self.built = Some(Instant::now());
        }
        (&self.actions, &self.backoff, &self.groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{ActorId, PerformanceToken};

    /// An actor whose every action backs off 200 ms, doubling, at most 400 ms, without
    /// jitter; "now" backs off not at all.
    struct Fixed;

    #[async_trait::async_trait]
    impl Actor for Fixed {
        fn actions(&self) -> Vec<String> {
            vec!["work".into(), "now".into()]
        }

        fn actor_id(&self) -> ActorId {
            ActorId::from("fixed")
        }

        fn backoff(&self, action: &str) -> Backoff {
            if action == "now" {
                return Backoff::IMMEDIATE;
            }
            Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_millis(400),
                multiplier: 2.0,
                jitter: false,
            }
        }

        async fn perform(&self, _: &OwnedTask) -> anyhow::Result<ActorResult> {
            Ok(ActorResult::completed(""))
        }
    }

    fn owned(action: &str, try_number: i32) -> OwnedTask {
        OwnedTask {
            id: "t".into(),
            token: PerformanceToken(uuid::Uuid::new_v4()),
            num_signalled_failures: 0,
            action: action.into(),
            body: None,
            num_tries: try_number,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T20:15:00Z".parse().unwrap()
    }

    #[test]
    fn a_pending_result_backs_off_per_try_and_says_when_it_comes_next() {
        let first = task_return(&Fixed, owned("work", 1), ActorResult::retry("busy"), now());
        assert_eq!(first.retry_after, Some(Duration::from_millis(200)));
        assert_eq!(
            first.status,
            "busy (try 1; next try in 200ms, at 2026-12-01T20:15:00Z)"
        );
        let later = [2, 3, 9].map(|t| {
            task_return(&Fixed, owned("work", t), ActorResult::retry(""), now()).retry_after
        });
        assert_eq!(later, [Some(Duration::from_millis(400)); 3]);
    }

    #[test]
    fn a_snooze_keeps_its_time_and_its_status() {
        let snoozed = task_return(
            &Fixed,
            owned("work", 1),
            ActorResult::retry_after("rate limited; back in 90s", Duration::from_secs(90)),
            now(),
        );
        assert_eq!(snoozed.retry_after, Some(Duration::from_secs(90)));
        assert_eq!(snoozed.status, "rate limited; back in 90s");
        let forever = task_return(
            &Fixed,
            owned("now", 1),
            ActorResult::retry_after("", Duration::MAX),
            now(),
        );
        assert_eq!(forever.retry_after, Some(MAX_RETRY_DELAY));
    }

    #[test]
    fn immediate_and_final_results_carry_no_delay_and_no_note() {
        let at_once = task_return(&Fixed, owned("now", 4), ActorResult::retry("again"), now());
        assert_eq!(
            (at_once.retry_after, at_once.status.as_str()),
            (None, "again")
        );
        for result in [ActorResult::completed("done"), ActorResult::aborted("no")] {
            let status = result.status.clone();
            let returned = task_return(&Fixed, owned("work", 1), result, now());
            assert_eq!((returned.retry_after, returned.status), (None, status));
        }
    }

    #[test]
    fn the_note_fits_within_the_status_cap() {
        let long = "é".repeat(MAX_STATUS_BYTES);
        let returned = task_return(&Fixed, owned("work", 2), ActorResult::retry(long), now());
        assert!(returned.status.len() <= MAX_STATUS_BYTES);
        assert!(
            returned
                .status
                .ends_with(" [cut] (try 2; next try in 400ms, at 2026-12-01T20:15:00Z)"),
            "a status of {} bytes",
            returned.status.len()
        );
    }

    #[test]
    fn waits_read_as_people_say_them() {
        let cases = [
            (Duration::from_micros(1), "1ms"),
            (Duration::from_millis(350), "350ms"),
            (Duration::from_millis(1000), "1s"),
            (Duration::from_millis(1530), "1.5s"),
            (Duration::from_millis(4000), "4s"),
            (Duration::from_millis(42_400), "42s"),
            (Duration::from_secs(125), "2m 5s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(5400), "1h 30m"),
            (Duration::from_secs(3 * 86_400 + 4 * 3600 + 59), "3d 4h"),
        ];
        for (wait, said) in cases {
            assert_eq!(human_wait(wait), said, "{wait:?}");
        }
    }

    #[test]
    fn policies_are_read_again_when_the_actions_change() {
        let mut policies = ActionPolicies::default();
        let (actions, backoff, _) = policies.current(&Fixed, vec!["work".into()]);
        assert_eq!(
            (actions.len(), backoff[0].initial),
            (1, Duration::from_millis(200))
        );
        let (_, backoff, _) = policies.current(&Fixed, vec!["work".into(), "now".into()]);
        assert_eq!(backoff[1], Backoff::IMMEDIATE);
    }
}
