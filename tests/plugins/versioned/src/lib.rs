//! Test actor for live reload: completes every `versioned` task with the status
//! `VERSION`. The reload tests make "a new version" of this component by rewriting the
//! marker's bytes in the built file (same length, so the component stays valid).

use parade_guest::{export_actor, Actor, Outcome};

/// Rewritten by tests; keep it unique in the binary and 16 bytes long.
const VERSION: &str = "parade-version-1";

struct Versioned;

impl Actor for Versioned {
    fn actions() -> Vec<String> {
        vec!["versioned".into()]
    }

    fn handle(_action: &str, _body: Option<&str>, _signalled_failures: u32) -> Outcome {
        Outcome::Completed(VERSION.into())
    }
}

export_actor!(Versioned);
