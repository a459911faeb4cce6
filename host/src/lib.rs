//! Parade: a durable task queue with a WebAssembly worker host.
//!
//! - [`queue`]: tasks, the [`queue::Parade`] trait and its PostgreSQL backend — the durable
//!   part, with the semantics of the Go package `parade`.
//! - [`manager`]: the ActionManager, which owns tasks for an [`manager::Actor`], runs them
//!   with heartbeats, and returns their results in batches.
//! - [`runtime`]: the WebAssembly runtime; [`runtime::ComponentActor`] performs tasks in
//!   sandboxed components of the `parade:actor` world (`wit/actor.wit`).
//! - [`cli`]: the `parade` command line (`parade migrate`, `parade task ...`).

pub mod admin;
pub mod cli;
pub mod config;
pub mod manager;
pub mod queue;
pub mod reload;
pub mod runtime;
