//! Parade: a durable task queue with a WebAssembly worker host.
//!
//! A node's work flows through five modules, in this order:
//!
//! 1. [`config`] reads `parade.toml` and the plugin manifests into a [`config::NodeConfig`]:
//!    the database, the manager's settings, and the plugins to load.
//! 2. [`reload`] loads those plugins into the registry of a [`runtime::ComponentActor`]
//!    (which plugin serves each action), and rebuilds it live when the files change.
//! 3. [`manager`], the ActionManager, owns runnable tasks of the registry's actions for an
//!    [`manager::Actor`], runs them on its workers with heartbeats, and returns their
//!    results in batches.
//! 4. [`runtime`] performs each task in a fresh, sandboxed instance of the component that
//!    serves its action, a component of the `parade:actor` world (`wit/actor.wit`).
//! 5. [`queue`] is where tasks wait and results land: the [`queue::Parade`] trait and its
//!    two backends, embedded SQLite (the default, `sqlite://parade.db`, for one node) and
//!    PostgreSQL (for several nodes sharing one database). `docs/queue-semantics.md`
//!    states the queue's rules.
//!
//! Around them, [`cli`] is the `parade` command line (`parade run` wires the five together
//! into a node; `migrate`, `task`, `plugin check` and `schedule list` are the tools beside
//! it), [`admin`] is a running node's HTTP listener: health, metrics, a dashboard and
//! operator actions, [`schedule`] enqueues the periodic tasks of `[[schedule]]` entries
//! (one task per slot, however many nodes share the store), and [`retention`] deletes
//! finished tasks once `[retention]` has kept them long enough.

pub mod admin;
pub mod cli;
pub mod config;
pub mod manager;
pub mod queue;
pub mod reload;
pub mod retention;
pub mod runtime;
pub mod schedule;
