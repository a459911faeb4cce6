//! When a waiting task is due, in words: "in 4m 10s (2026-12-24T18:00:00Z)". `task list`,
//! `task show` and the dashboard's pages (`admin/pages.rs`) print it alike, and only while
//! it applies: a pending task whose `run_after` has not passed yet. Once due (or owned, or
//! ended) there is nothing to show; the queue clears `run_after` lazily, so a passed time
//! may still be stored for a moment.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::queue::{TaskData, TaskStatusCode};

/// The time a pending `task` waits for, if it is still in the future at `now`.
pub(crate) fn waits_until(task: &TaskData, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    task.run_after
        .filter(|at| task.status_code == TaskStatusCode::Pending && *at > now)
}

/// "in 4m 10s (2026-12-24T18:00:00Z)" for a pending `task` that is not due at `now`.
pub(crate) fn due_text(task: &TaskData, now: DateTime<Utc>) -> Option<String> {
    let at = waits_until(task, now)?;
    Some(format!("in {} ({})", until(at, now), timestamp(at)))
}

/// RFC 3339 in UTC to the second: `2026-12-24T18:00:00Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long from `now` to `at`, rounded up to the second and shown in its two largest units:
/// "45s", "4m", "4m 10s", "2h 5m", "3d 4h".
pub(crate) fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let micros = (at - now).num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
    let seconds = micros.div_ceil(1_000_000);
    let units = [
        (seconds / 86_400, "d"),
        (seconds / 3_600 % 24, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
    ];
    let Some(first) = units.iter().position(|(n, _)| *n > 0) else {
        return "0s".into();
    };
    let mut text = format!("{}{}", units[first].0, units[first].1);
    if let Some((n, unit)) = units.get(first + 1).filter(|(n, _)| *n > 0) {
        text.push_str(&format!(" {n}{unit}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn durations_show_their_two_largest_units_rounded_up() {
        let now = Utc::now();
        let after = |micros: i64| until(now + Duration::microseconds(micros), now);
        assert_eq!(after(1), "1s");
        assert_eq!(after(45_000_000), "45s");
        assert_eq!(after(240_000_000), "4m");
        assert_eq!(after(250_000_001), "4m 11s");
        assert_eq!(after(7_500_000_000), "2h 5m");
        assert_eq!(
            after(3 * 86_400_000_000 + 4 * 3_600_000_000 + 59_000_000),
            "3d 4h"
        );
        assert_eq!(after(86_400_000_000 + 60_000_000), "1d");
        assert_eq!(after(-5), "0s");
    }

    #[test]
    fn only_a_pending_task_that_is_not_due_yet_has_a_due_text() {
        let now: DateTime<Utc> = "2026-12-24T17:55:50Z".parse().unwrap();
        let at: DateTime<Utc> = "2026-12-24T18:00:00Z".parse().unwrap();
        let delayed = TaskData {
            run_after: Some(at),
            ..TaskData::new("t", "a")
        };
        assert_eq!(
            due_text(&delayed, now).as_deref(),
            Some("in 4m 10s (2026-12-24T18:00:00Z)")
        );
        assert_eq!(due_text(&delayed, at), None, "due now");
        let running = TaskData {
            status_code: TaskStatusCode::InProgress,
            ..delayed.clone()
        };
        assert_eq!(due_text(&running, now), None);
        assert_eq!(due_text(&TaskData::new("t", "a"), now), None);
    }
}
