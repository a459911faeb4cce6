//! Example actor: `fan-out` reads `{"children": N}` and enqueues a small DAG: N `echo`
//! children that each signal one `echo` join task, which runs after all of them.

use parade_guest::{enqueue, export_actor, json, log, task_id, Actor, NewTask, Outcome};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    children: u32,
}

struct FanOut;

impl Actor for FanOut {
    fn actions() -> Vec<String> {
        vec!["fan-out".into()]
    }

    fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let input: Input = match json::parse(body) {
            Ok(input) => input,
            Err(e) => return Outcome::Aborted(e),
        };
        let parent = task_id();
        let join = format!("{parent}.join");
        let mut tasks: Vec<NewTask> = (0..input.children)
            .map(|i| NewTask {
                id: Some(format!("{parent}.child-{i}")),
                body: Some(format!("child {i} of {parent}")),
                signal_after: vec![join.clone()],
                ..NewTask::new("echo")
            })
            .collect();
        tasks.push(NewTask {
            id: Some(join.clone()),
            body: Some(format!("joined {} children of {parent}", input.children)),
            total_dependencies: Some(input.children),
            notify_channel: Some(format!("{parent}.done")),
            ..NewTask::new("echo")
        });
        match enqueue(&tasks) {
            Ok(ids) => {
                log::info(&format!("enqueued {} tasks", ids.len()));
                Outcome::Completed(format!("spawned {} children and {join}", input.children))
            }
            // Perhaps a transient store error: try again.
            Err(e) => Outcome::Retry(format!("enqueue failed: {e}")),
        }
    }
}

export_actor!(FanOut);
