//! Periodic tasks: the `[[schedule]]` entries of `parade.toml`, each enqueueing one task per
//! slot of its `cron` expression or `every` period.
//!
//! [`config`](crate::config) reads the entries into [`ScheduleSpec`](crate::config::ScheduleSpec)s,
//! whose [`Timing`] says when slots fall (`slots.rs`: slot arithmetic, the first slot of a
//! schedule a node starts, and the one slot a node enqueues after missing several). The
//! [`Scheduler`] (`scheduler.rs`) is a background task of `parade run` beside the
//! ActionManager: it sleeps until the earliest next slot of all schedules, then inserts
//! that slot's task with [`Parade::insert_tasks_if_absent`](crate::queue::Parade::insert_tasks_if_absent)
//! under an id derived from the schedule's name and the slot — so however many nodes share
//! the store, each slot is one task. [`reload`](crate::reload) hands it the new set of
//! schedules whenever a reload is applied.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use parade_host::schedule::{slot_task_id, Timing};
//!
//! let every_15m = Timing::Every { seconds: 15 * 60 };
//! let now: DateTime<Utc> = "2026-12-01T20:21:07Z".parse().unwrap();
//! let next = every_15m.next_after(now).unwrap();
//! assert_eq!(slot_task_id("report", next).as_str(), "schedule:report:2026-12-01T20:30:00Z");
//! ```

mod scheduler;
mod slots;

pub use scheduler::{run_now_task, Scheduler, Schedules};
pub use slots::{
    due_slot, first_slot, parse_cron, parse_timezone, slot_task_id, slot_text, task_id_prefix, Due,
    Timing, MIN_EVERY,
};

#[cfg(test)]
mod tests;
