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
//!
//! Follow-up tasks are [`NewTask`]s, built from [`NewTask::new`]; a task can wait before it
//! runs, and a retry can wait before its next try:
//!
//! ```no_run
//! use std::time::Duration;
//! use parade_guest::{enqueue, NewTask, Outcome};
//!
//! # fn handle() -> Outcome {
//! // A reminder in an hour, ahead of other due tasks.
//! let reminder = NewTask::new("remind")
//!     .body(r#"{"to": "ops"}"#)
//!     .delay(Duration::from_secs(3600))
//!     .priority(10);
//! if let Err(e) = enqueue(&[reminder]) {
//!     // Say in the status when the next try comes: it is what `parade task list` shows.
//!     let status = format!("enqueue failed ({e}); next try in 30s");
//!     return Outcome::retry_after(status, Duration::from_secs(30));
//! }
//! Outcome::Completed("reminder set".into())
//! # }
//! ```
//!
//! This version of the crate implements `parade:actor@0.2.0`. Components built with the
//! 0.1 crate (`parade:actor@0.1.0`) keep running on newer nodes unchanged; code written for
//! it builds with this one, except that a `NewTask` written out field by field needs the
//! new fields too (write `..NewTask::new(action)` after the fields you set).

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

use std::time::Duration;

use bindings::parade::actor::host;
use bindings::parade::actor::types::{ActorResult, StatusCode};

/// A task for [`enqueue`] to add: build one with [`NewTask::new`] and its builder methods
/// (or set its public fields, as in `wit/actor.wit`'s `new-task`).
pub use host::NewTask;

/// The version of the `parade:actor` contract this crate builds components for.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// How a task ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: successors are signalled and waiters woken.
    Completed(String),
    /// Failed for good: successors are signalled with a failure.
    Aborted(String),
    /// Try again later (aborted instead once the task's `max_tries` are used up), as soon
    /// as the node's retry policy allows.
    Retry(String),
    /// Try again no sooner than this long from now (a "snooze"; aborted instead once the
    /// task's `max_tries` are used up). The task waits in the queue without taking a worker;
    /// its status is what waiters see meanwhile, so say there when the next try comes. At
    /// millisecond precision, and at most 30 days (a node cuts a longer wait to 30 days).
    RetryAfter(String, Duration),
}

impl Outcome {
    /// [`Outcome::RetryAfter`]: try again no sooner than `delay` from now.
    pub fn retry_after(status: impl Into<String>, delay: Duration) -> Self {
        Outcome::RetryAfter(status.into(), delay)
    }
}

/// Whole milliseconds of `duration`, rounded up (so a wait is never shorter than asked), at
/// most `u64::MAX`.
fn millis(duration: Duration) -> u64 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl From<Outcome> for ActorResult {
    fn from(outcome: Outcome) -> Self {
        let (status, code, retry_after_ms) = match outcome {
            Outcome::Completed(s) => (s, StatusCode::Completed, None),
            Outcome::Aborted(s) => (s, StatusCode::Aborted, None),
            Outcome::Retry(s) => (s, StatusCode::Pending, None),
            Outcome::RetryAfter(s, delay) => (s, StatusCode::Pending, Some(millis(delay))),
        };
        ActorResult {
            status,
            code,
            retry_after_ms,
        }
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

/// Adds tasks to the queue, all or none; returns their ids. An error about one task names
/// it by its index in `tasks`.
pub fn enqueue(tasks: &[NewTask]) -> Result<Vec<String>, String> {
    host::enqueue(tasks)
}

impl NewTask {
    /// A task of `action` with every other field at its default: a generated id, no body,
    /// unlimited tries, no successors or dependencies, due at once, priority 0.
    pub fn new(action: impl Into<String>) -> Self {
        NewTask {
            id: None,
            action: action.into(),
            body: None,
            max_tries: None,
            signal_after: Vec::new(),
            total_dependencies: None,
            notify_channel: None,
            delay_ms: None,
            priority: None,
        }
    }

    /// With this id (by default the node generates one).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// With this body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Aborted after this many tries.
    pub fn max_tries(mut self, tries: u32) -> Self {
        self.max_tries = Some(tries);
        self
    }

    /// Signals the task `id` when it ends (a task of the same `enqueue` call, or one this
    /// run enqueued earlier).
    pub fn signal_after(mut self, id: impl Into<String>) -> Self {
        self.signal_after.push(id.into());
        self
    }

    /// Waits for this many signals before it may run.
    pub fn total_dependencies(mut self, signals: u32) -> Self {
        self.total_dependencies = Some(signals);
        self
    }

    /// Notifies this channel when it ends.
    pub fn notify_channel(mut self, channel: impl Into<String>) -> Self {
        self.notify_channel = Some(channel.into());
        self
    }

    /// Runs no sooner than `delay` from now (at millisecond precision; at most 365 days,
    /// or `enqueue` refuses it).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(millis(delay));
        self
    }

    /// Offered before due tasks of lower priority (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
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
