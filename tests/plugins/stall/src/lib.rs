//! Test-only actor: its `actions()` sleeps for an hour in a host call, where no epoch
//! interruption reaches it. A node must refuse it at load rather than wait.

use parade_guest::{export_actor, Actor, Outcome};

struct Stall;

impl Actor for Stall {
    fn actions() -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        vec!["stall".into()]
    }

    fn handle(_action: &str, _body: Option<&str>, _signalled_failures: u32) -> Outcome {
        Outcome::Completed(String::new())
    }
}

export_actor!(Stall);
