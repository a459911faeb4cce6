//! Example actor: completes each `echo` task with its body as status.

use parade_guest::{export_actor, log, Actor, Outcome};

struct Echo;

impl Actor for Echo {
    fn actions() -> Vec<String> {
        vec!["echo".into()]
    }

    fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        log::debug(&format!("echoing task {}", parade_guest::task_id()));
        Outcome::Completed(body.unwrap_or_default().to_owned())
    }
}

export_actor!(Echo);
