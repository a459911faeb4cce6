//! Example actor: `flaky` reads `{"failures": K}`, asks to be retried on its first K tries,
//! and completes on the next one. Give the task `max_tries` above K.

use parade_guest::{export_actor, json, try_number, Actor, Outcome};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    failures: u32,
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
        if attempt <= input.failures {
            Outcome::Retry(format!(
                "failing on purpose, try {attempt} of {}",
                input.failures + 1
            ))
        } else {
            Outcome::Completed(format!("succeeded on try {attempt}"))
        }
    }
}

export_actor!(Flaky);
