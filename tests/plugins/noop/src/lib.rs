//! Test and benchmark actor: completes every `noop` task at once, touching nothing.

use parade_guest::{export_actor, Actor, Outcome};

struct NoOp;

impl Actor for NoOp {
    fn actions() -> Vec<String> {
        vec!["noop".into()]
    }

    fn handle(_action: &str, _body: Option<&str>, _signalled_failures: u32) -> Outcome {
        Outcome::Completed(String::new())
    }
}

export_actor!(NoOp);
