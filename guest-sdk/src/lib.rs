//! Write Parade actors in Rust.
//!
//! Parade is a durable task queue whose nodes run their actors as WebAssembly components;
//! its repository's README ("Writing an actor in Rust") walks through building one with
//! this crate, `docs/guests.md` there covers other languages, and `wit/actor.wit` is the
//! `parade:actor` world both sides implement.
//!
//! An actor is a WebAssembly component that performs tasks of some actions. Implement
//! [`Actor`] and export it with [`export_actor!`]; build the crate as a `cdylib` for the
//! `wasm32-wasip2` target and drop the `.wasm` into a node's plugins folder.
//!
//! ```no_run
//! use parade_guest::{export_actor, log, Actor, Outcome};
//!
//! struct Echo;
//!
//! impl Actor for Echo {
//!     fn actions() -> Vec<String> {
//!         vec!["echo".into()]
//!     }
//!
//!     fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
//!         log::info(&format!("echoing task {}", parade_guest::task_id()));
//!         Outcome::Completed(body.unwrap_or_default().to_owned())
//!     }
//! }
//!
//! export_actor!(Echo);
//! ```
//!
//! The host functions ([`task_id`], [`try_number`], [`extend_deadline`], [`enqueue`],
//! [`log`]) act on the task being performed; they exist only inside a Parade node.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "parade:actor/actor",
        pub_export_macro: true,
        export_macro_name: "__export_actor_world",
        default_bindings_module: "parade_guest::bindings",
    });
}

use bindings::parade::actor::host;
use bindings::parade::actor::types::{ActorResult, StatusCode};

pub use host::NewTask;

/// How a task ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: successors are signalled and waiters woken.
    Completed(String),
    /// Failed for good: successors are signalled with a failure.
    Aborted(String),
    /// Try again later (aborted instead once the task's `max_tries` are used up).
    Retry(String),
}

impl From<Outcome> for ActorResult {
    fn from(outcome: Outcome) -> Self {
        let (status, code) = match outcome {
            Outcome::Completed(s) => (s, StatusCode::Completed),
            Outcome::Aborted(s) => (s, StatusCode::Aborted),
            Outcome::Retry(s) => (s, StatusCode::Pending),
        };
        ActorResult { status, code }
    }
}

/// An actor: the actions it serves and how it performs one task.
pub trait Actor {
    /// The actions this actor performs.
    fn actions() -> Vec<String>;

    /// Performs one task. `signalled_failures` counts predecessors that ended aborted.
    fn handle(action: &str, body: Option<&str>, signalled_failures: u32) -> Outcome;
}

/// Exports an [`Actor`] as the component's `parade:actor/actor` world.
#[macro_export]
macro_rules! export_actor {
    ($actor:ty) => {
        const _: () = {
            struct ParadeExport;

            impl $crate::bindings::Guest for ParadeExport {
                fn actions() -> ::std::vec::Vec<::std::string::String> {
                    <$actor as $crate::Actor>::actions()
                }

                fn handle(
                    action: ::std::string::String,
                    body: ::std::option::Option<::std::string::String>,
                    signalled_failures: u32,
                ) -> $crate::bindings::parade::actor::types::ActorResult {
                    <$actor as $crate::Actor>::handle(&action, body.as_deref(), signalled_failures)
                        .into()
                }
            }

    $crate::bindings::__export_actor_world!(ParadeExport with_types_in $crate::bindings);
        };
    };
}

/// The id of the task being performed.
pub fn task_id() -> String {
    host::task_id()
}

/// Which try this is: 1 the first time, 2 on the first retry, ...
pub fn try_number() -> u32 {
    host::try_number()
}

/// Keeps ownership of the task for `seconds` more (the node also does this on its own);
/// at most the task's time limit is granted, and 0 is an error.
pub fn extend_deadline(seconds: u32) -> Result<(), String> {
    host::extend_deadline(seconds)
}

/// Adds tasks to the queue, all or none; returns their ids.
pub fn enqueue(tasks: &[NewTask]) -> Result<Vec<String>, String> {
    host::enqueue(tasks)
}

impl NewTask {
    /// A task of `action` with every other field at its default.
    pub fn new(action: impl Into<String>) -> Self {
        NewTask {
            id: None,
            action: action.into(),
            body: None,
            max_tries: None,
            signal_after: Vec::new(),
            total_dependencies: None,
            notify_channel: None,
        }
    }
}

/// Logging to the node's log, tagged with the plugin, action and task id.
pub mod log {
    use super::host::{self, Level};

    pub fn trace(message: &str) {
        host::log(Level::Trace, message);
    }
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        host::log(Level::Error, message);
    }
}

/// Helpers for JSON task bodies.
#[cfg(feature = "json")]
pub mod json {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// Parses a body as JSON, or says why it is not the expected shape.
    pub fn parse<T: DeserializeOwned>(body: Option<&str>) -> Result<T, String> {
        let body = body.ok_or("the task has no body")?;
        serde_json::from_str(body).map_err(|e| format!("body is not the expected JSON: {e}"))
    }

    /// Renders a value as a JSON body or status.
    pub fn render<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
