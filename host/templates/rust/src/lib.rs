//! {{name}}: a Parade actor. `parade plugin build` builds it into `{{name}}.wasm`;
//! `cargo test` runs the tests below on this machine, with the SDK's test double standing in
//! for the node.

use parade_guest::{export_actor, log, task_id, try_number, Actor, Outcome};

pub struct {{type}};

impl Actor for {{type}} {
    fn actions() -> Vec<String> {
        vec!["{{name}}".into()]
    }

    fn handle(action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let body = body.unwrap_or_default();
        log::info(&format!(
            "{action}: task {} (try {}), {} bytes of body",
            task_id(),
            try_number(),
            body.len()
        ));
        Outcome::Completed(format!("{action} done: {body}"))
    }
}

export_actor!({{type}});

#[cfg(test)]
mod tests {
    use parade_guest::testing;

    use super::*;

    #[test]
    fn completes_with_the_body_and_logs_the_task() {
        testing::set_task_id("t-1");
        let outcome = {{type}}::handle("{{name}}", Some("{\"w\":64}"), 0);
        assert_eq!(outcome, Outcome::Completed("{{name}} done: {\"w\":64}".into()));
        assert_eq!(
            testing::log_lines(),
            ["{{name}}: task t-1 (try 1), 8 bytes of body"]
        );
    }
}
