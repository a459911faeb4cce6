//! Test actor built against the first contract, `parade:actor@0.1.0` (`wit/0.1.0/`), with
//! wit-bindgen and no SDK, as a component built before 0.2.0 existed was. Nodes must keep
//! loading and running it unchanged; each action uses one part of the 0.1.0 host interface.

wit_bindgen::generate!({
    path: "../../../wit/0.1.0",
    world: "parade:actor/actor@0.1.0",
});

use parade::actor::host::{self, Level, NewTask};
use parade::actor::types::StatusCode;

struct Legacy;

fn result(status: impl Into<String>, code: StatusCode) -> ActorResult {
    ActorResult {
        status: status.into(),
        code,
    }
}

impl Guest for Legacy {
    fn actions() -> Vec<String> {
        [
            "legacy-echo",
            "legacy-retry",
            "legacy-enqueue",
            "legacy-extend",
        ]
        .map(String::from)
        .to_vec()
    }

    fn handle(action: String, body: Option<String>, _signalled_failures: u32) -> ActorResult {
        let body = body.unwrap_or_default();
        match action.as_str() {
            // Its body, the try number and the task id, after a log line.
            "legacy-echo" => {
                host::log(Level::Info, &format!("legacy echo of {body:?}"));
                result(
                    format!(
                        "{body} (try {}, task {})",
                        host::try_number(),
                        host::task_id()
                    ),
                    StatusCode::Completed,
                )
            }
            // Pending on its first try, completed on the next.
            "legacy-retry" => match host::try_number() {
                1 => result("retrying once", StatusCode::Pending),
                n => result(format!("done on try {n}"), StatusCode::Completed),
            },
            // A follow-up `legacy-echo` task of the 0.1.0 shape, with the body as its body.
            "legacy-enqueue" => {
                let child = NewTask {
                    id: Some(format!("{}.child", host::task_id())),
                    action: "legacy-echo".into(),
                    body: Some(body),
                    max_tries: Some(3),
                    signal_after: Vec::new(),
                    total_dependencies: None,
                    notify_channel: None,
                };
                match host::enqueue(&[child]) {
                    Ok(ids) => result(format!("enqueued {}", ids.join(" ")), StatusCode::Completed),
                    Err(e) => result(format!("refused: {e}"), StatusCode::Aborted),
                }
            }
            "legacy-extend" => match host::extend_deadline(body.parse().unwrap_or(0)) {
                Ok(()) => result("extended", StatusCode::Completed),
                Err(e) => result(format!("refused: {e}"), StatusCode::Aborted),
            },
            other => result(format!("unknown action {other}"), StatusCode::Aborted),
        }
    }
}

export!(Legacy);
