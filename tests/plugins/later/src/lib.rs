//! Test actor for what `parade:actor@0.2.0` added: follow-up tasks with a delay and a
//! priority, and pending results with a retry delay (a snooze).

use std::time::Duration;

use parade_guest::{enqueue, export_actor, task_id, Actor, NewTask, Outcome};

struct Later;

impl Actor for Later {
    fn actions() -> Vec<String> {
        ["enqueue-later", "snooze"].map(String::from).to_vec()
    }

    fn handle(action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let body = body.unwrap_or_default();
        match action {
            // Body "DELAY_MS PRIORITY" (either may be "-" for none): enqueues the `noop`
            // task `ID.later` with them, and says what the node answered.
            "enqueue-later" => {
                let mut words = body.split_whitespace();
                let delay_ms = words.next().and_then(|w| w.parse::<u64>().ok());
                let priority = words.next().and_then(|w| w.parse::<i32>().ok());
                // The raw field, to send any number; `NewTask::delay` takes a `Duration`.
                let mut task = NewTask::new("noop").id(format!("{}.later", task_id()));
                task.delay_ms = delay_ms;
                if let Some(priority) = priority {
                    task = task.priority(priority);
                }
                match enqueue(&[task]) {
                    Ok(ids) => Outcome::Completed(format!("enqueued {}", ids.join(" "))),
                    Err(e) => Outcome::Aborted(format!("refused: {e}")),
                }
            }
            // Body "MS": pending, to try again no sooner than MS milliseconds from now.
            "snooze" => match body.trim().parse::<u64>() {
                Ok(ms) => {
                    Outcome::retry_after(format!("snoozing for {ms} ms"), Duration::from_millis(ms))
                }
                Err(e) => Outcome::Aborted(format!("body must be milliseconds: {e}")),
            },
            other => Outcome::Aborted(format!("unknown action {other}")),
        }
    }
}

export_actor!(Later);
