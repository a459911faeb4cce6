//! Example actor: `flaky` reads `{"failures": K}`, asks to be retried on its first K tries,
//! and completes on the next one. Give the task `max_tries` above K.
//!
//! Between tries it snoozes (a pending result with a retry delay): the task waits in the
//! queue for `"retry_after_ms"` (default 1000), and its status says when the next try comes,
//! which is what `parade task list` shows meanwhile. With `"retry_after_ms": 0` it leaves
//! the wait to the plugin's retry policy (a backoff by default), whose note in the status
//! says when the next try comes.

use std::time::Duration;

use parade_guest::{export_actor, json, try_number, Actor, Outcome};
use serde::Deserialize;

/// How long a retry waits unless the body says otherwise.
const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

#[derive(Deserialize)]
struct Input {
    failures: u32,
    #[serde(default = "default_retry_after_ms")]
    retry_after_ms: u64,
}

fn default_retry_after_ms() -> u64 {
    DEFAULT_RETRY_AFTER_MS
}

struct Flaky;

impl Actor for Flaky {
    fn actions() -> Vec<String> {
        vec!["flaky".into()]
    }

    fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let input: Input = match json::parse(body) {
            Ok(input) => input,
            Err(e) => return Outcome::Aborted(e),
        };
        let attempt = try_number();
        if attempt > input.failures {
            return Outcome::Completed(format!("succeeded on try {attempt}"));
        }
        let failing = format!(
            "failing on purpose, try {attempt} of {}",
            input.failures + 1
        );
        if input.retry_after_ms == 0 {
            // The node's retry policy decides, and its note in the status says when.
            return Outcome::Retry(failing);
        }
        let wait = Duration::from_millis(input.retry_after_ms);
        Outcome::retry_after(
            format!(
                "{failing}; next try in {}, at {}",
                human(wait),
                utc_after(wait)
            ),
            wait,
        )
    }
}

/// `wait` as people write it: "250ms", "1.5s", "2m 5s".
fn human(wait: Duration) -> String {
    let ms = wait.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 && !ms.is_multiple_of(1000) {
        return format!("{:.1}s", wait.as_secs_f64());
    }
    let secs = wait.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The time `wait` from now, as RFC 3339 in UTC to the second (`2026-12-01T20:15:04Z`),
/// by the wall clock WASI gives the guest, which is the node's.
fn utc_after(wait: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = (now + wait).as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

export_actor!(Flaky);
