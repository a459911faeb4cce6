//! Example actor: `flaky` reads `{"failures": K}`, asks to be retried on its first K tries,
//! and completes on the next one. Give the task `max_tries` above K.
//!
//! Between tries it snoozes (a pending result with a retry delay): the task waits in the
//! queue for `"retry_after_ms"` (default 1000), and its status says when the next try comes,
//! which is what `parade task list` shows meanwhile. With `"retry_after_ms": 0` each retry
//! comes as soon as the node's retry policy allows.

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
            return Outcome::Retry(format!(
                "{failing}; next try as soon as the node's retry policy allows"
            ));
        }
        let wait = Duration::from_millis(input.retry_after_ms);
        Outcome::retry_after(
            format!(
                "{failing}; next try in {} (at {})",
                human(wait),
                utc_time_after(wait)
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
    if ms < 60_000 && ms % 1000 != 0 {
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

/// The time of day `wait` from now, as `HH:MM:SS UTC` (by the wall clock WASI gives the
/// guest, which is the node's).
fn utc_time_after(wait: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = (now + wait).as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

export_actor!(Flaky);
