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
//! [`log`]) act on the task being performed. Inside a node they are the node's; compiled
//! for anything but wasm32 (as `cargo test` does) they are a test double, [`testing`],
//! that records log lines, deadline extensions and enqueued tasks, and whose task id and
//! try number a test sets. So an actor's `handle` is unit-tested on the machine:
//!
//! ```
//! use parade_guest::{enqueue, export_actor, log, testing, Actor, NewTask, Outcome};
//!
//! struct Greet;
//!
//! impl Actor for Greet {
//!     fn actions() -> Vec<String> {
//!         vec!["greet".into()]
//!     }
//!
//!     fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
//!         let name = body.unwrap_or("world");
//!         log::info(&format!("greeting {name} (task {}, try {})",
//!             parade_guest::task_id(), parade_guest::try_number()));
//!         if parade_guest::try_number() == 1 {
//!             if let Err(e) = enqueue(&[NewTask::new("follow-up").body(name)]) {
//!                 return Outcome::Retry(format!("enqueue failed: {e}"));
//!             }
//!         }
//!         Outcome::Completed(format!("hello, {name}"))
//!     }
//! }
//!
//! export_actor!(Greet);
//!
//! // The test: the double starts as task "test-task", try 1, with nothing recorded.
//! testing::set_task_id("t-7");
//! assert_eq!(Greet::handle("greet", Some("ada"), 0), Outcome::Completed("hello, ada".into()));
//! assert_eq!(testing::log_lines(), ["greeting ada (task t-7, try 1)"]);
//! let enqueued = testing::enqueued();
//! assert_eq!(enqueued.len(), 1);
//! assert_eq!((enqueued[0].action.as_str(), enqueued[0].body.as_deref()), ("follow-up", Some("ada")));
//!
//! // A retry enqueues nothing more; a refused enqueue is the node's error text.
//! testing::set_try_number(2);
//! Greet::handle("greet", None, 0);
//! assert_eq!(testing::enqueued().len(), 1);
//! testing::set_try_number(1);
//! testing::refuse_enqueue("the store is down");
//! assert_eq!(
//!     Greet::handle("greet", None, 0),
//!     Outcome::Retry("enqueue failed: the store is down".into())
//! );
//! ```
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

/// Where the host functions go: the node's imports inside a component, the test double
/// everywhere else (the imports exist only in a WebAssembly instance).
#[cfg(target_arch = "wasm32")]
use host as imports;
#[cfg(not(target_arch = "wasm32"))]
use testing::double as imports;

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
    imports::task_id()
}

/// Which try this is: 1 the first time, 2 on the first retry, ...
pub fn try_number() -> u32 {
    imports::try_number()
}

/// Keeps ownership of the task for `seconds` more (the node also does this on its own);
/// at most the task's time limit is granted, and 0 is an error.
pub fn extend_deadline(seconds: u32) -> Result<(), String> {
    imports::extend_deadline(seconds)
}

/// Adds tasks to the queue, all or none; returns their ids. An error about one task names
/// it by its index in `tasks`.
pub fn enqueue(tasks: &[NewTask]) -> Result<Vec<String>, String> {
    imports::enqueue(tasks)
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
    /// The severity of a log line.
    pub use super::host::Level;
    use super::imports as host;

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

/// The test double of the host functions, compiled for anything but wasm32: what an
/// actor's `handle` did, for its unit tests to check, and the task it runs as.
///
/// Its state is per thread (each `#[test]` runs on a thread of its own, so tests do not see
/// each other's lines), and starts as task `"test-task"`, try 1, with nothing recorded.
/// [`enqueue`](crate::enqueue) records the tasks and returns their ids (a task's own, or
/// `enqueued-N`) unless [`refuse_enqueue`] was called; [`extend_deadline`](crate::extend_deadline)
/// refuses 0 seconds, as a node does. The double does not check the batch as a node's store
/// does (ids used twice, unknown successors): `parade plugin call` runs the built component
/// against those rules.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;

    use super::host::{Level, NewTask};

    /// One line the actor logged.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LogLine {
        pub level: Level,
        pub message: String,
    }

    struct HostDouble {
        task_id: String,
        try_number: u32,
        logs: Vec<LogLine>,
        enqueued: Vec<NewTask>,
        extensions: Vec<u32>,
        refusal: Option<String>,
    }

    impl Default for HostDouble {
        fn default() -> Self {
            HostDouble {
                task_id: "test-task".into(),
                try_number: 1,
                logs: Vec::new(),
                enqueued: Vec::new(),
                extensions: Vec::new(),
                refusal: None,
            }
        }
    }

    thread_local! {
        static HOST: RefCell<HostDouble> = RefCell::new(HostDouble::default());
    }

    fn with<T>(f: impl FnOnce(&mut HostDouble) -> T) -> T {
        HOST.with(|host| f(&mut host.borrow_mut()))
    }

    /// The id [`task_id`](crate::task_id) returns from now on.
    pub fn set_task_id(id: impl Into<String>) {
        with(|h| h.task_id = id.into());
    }

    /// The number [`try_number`](crate::try_number) returns from now on (1 is the first try).
    pub fn set_try_number(number: u32) {
        with(|h| h.try_number = number);
    }

    /// Makes every later [`enqueue`](crate::enqueue) fail with `reason`, as a node's refusal
    /// would.
    pub fn refuse_enqueue(reason: impl Into<String>) {
        with(|h| h.refusal = Some(reason.into()));
    }

    /// The messages logged so far, in order.
    pub fn log_lines() -> Vec<String> {
        with(|h| h.logs.iter().map(|l| l.message.clone()).collect())
    }

    /// The lines logged so far, with their levels.
    pub fn logs() -> Vec<LogLine> {
        with(|h| h.logs.clone())
    }

    /// The tasks enqueued so far, over every call, in order.
    pub fn enqueued() -> Vec<NewTask> {
        with(|h| h.enqueued.clone())
    }

    /// The seconds of each [`extend_deadline`](crate::extend_deadline) call granted so far.
    pub fn deadline_extensions() -> Vec<u32> {
        with(|h| h.extensions.clone())
    }

    /// Back to the start: task `"test-task"`, try 1, nothing recorded, enqueue accepted.
    pub fn reset() {
        with(|h| *h = HostDouble::default());
    }

    /// The host functions' stand-ins, with the imports' signatures.
    pub(crate) mod double {
        use super::{with, Level, LogLine, NewTask};

        pub fn task_id() -> String {
            with(|h| h.task_id.clone())
        }

        pub fn try_number() -> u32 {
            with(|h| h.try_number)
        }

        pub fn extend_deadline(seconds: u32) -> Result<(), String> {
            if seconds == 0 {
                return Err("extend-deadline takes at least 1 second".into());
            }
            with(|h| h.extensions.push(seconds));
            Ok(())
        }

        pub fn enqueue(tasks: &[NewTask]) -> Result<Vec<String>, String> {
            with(|h| {
                if let Some(reason) = &h.refusal {
                    return Err(reason.clone());
                }
                let mut ids = Vec::with_capacity(tasks.len());
                for task in tasks {
                    h.enqueued.push(task.clone());
                    ids.push(
                        task.id
                            .clone()
                            .unwrap_or_else(|| format!("enqueued-{}", h.enqueued.len())),
                    );
                }
                Ok(ids)
            })
        }

        pub fn log(level: Level, message: &str) {
            with(|h| {
                h.logs.push(LogLine {
                    level,
                    message: message.to_owned(),
                })
            });
        }
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
