//! The task lifecycle with `parade run` as real processes: a running task cancelled from the
//! CLI, concurrency limits across nodes, and retention keeping the store small under load.

#[path = "../support/mod.rs"]
mod support;

mod cancel;
mod limits;
mod retention;
