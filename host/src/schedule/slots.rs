//! When a schedule falls due: its slots, the slot a node enqueues after missing some, and
//! the task id that makes each slot one task however many nodes enqueue it.
//!
//! A slot is an instant in UTC. A `cron` schedule's slots are the times its expression
//! matches on the wall clock of its time zone (croner follows Vixie cron across daylight
//! saving changes: a time skipped by the clock runs at the first instant after the gap, a
//! time the clock passes twice runs once). An `every` schedule's slots are the multiples of
//! its period counted from the Unix epoch, so every node computes the same ones: `"15m"`
//! falls at :00, :15, :30 and :45 of each hour (UTC), `"1d"` at midnight UTC.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::queue::TaskId;

/// The shortest `every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// How a schedule's slots are spaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// The times a cron expression matches, read in `timezone`.
    Cron {
        /// The expression as written.
        expression: String,
        cron: Box<Cron>,
        timezone: Tz,
    },
    /// Multiples of a whole number of seconds since the Unix epoch.
    Every { seconds: i64 },
}

impl Timing {
    /// The time zone slots are shown in (and a cron expression is read in): UTC for `every`.
    pub fn timezone(&self) -> Tz {
        match self {
            Timing::Cron { timezone, .. } => *timezone,
            Timing::Every { .. } => Tz::UTC,
        }
    }

    /// The latest slot at or before `t`; `None` if there is none the calendar can express.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron { cron, timezone, .. } => {
                // Slots fall on whole seconds; searching from one keeps `t` itself a match.
                let from = t.trunc_subsecs(0).with_timezone(timezone);
                cron.find_previous_occurrence(&from, true)
                    .ok()
                    .map(|slot| slot.with_timezone(&Utc))
            }
            Timing::Every { seconds } => {
                let slot = t.timestamp().div_euclid(*seconds).checked_mul(*seconds)?;
                DateTime::from_timestamp(slot, 0)
            }
        }
    }

    /// The first slot strictly after `t`; `None` if the schedule never falls due again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron { cron, timezone, .. } => {
                // From the whole second at or before `t`, exclusive: a slot later in the same
                // second as `t` cannot exist, and the next one is after `t`.
                let from = t.trunc_subsecs(0).with_timezone(timezone);
                cron.find_next_occurrence(&from, false)
                    .ok()
                    .map(|slot| slot.with_timezone(&Utc))
            }
            Timing::Every { seconds } => {
                let latest = self.latest_at_or_before(t)?;
                latest.checked_add_signed(chrono::TimeDelta::seconds(*seconds))
            }
        }
    }
}

impl fmt::Display for Timing {
    /// `every 30s`, `cron "0 3 * * *"` or `cron "0 3 * * *" in Europe/Paris`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::Cron {
                expression,
                timezone,
                ..
            } => {
                write!(f, "cron {expression:?}")?;
                if *timezone != Tz::UTC {
                    write!(f, " in {}", timezone.name())?;
                }
                Ok(())
            }
            Timing::Every { seconds } => {
                let period = Duration::from_secs(seconds.unsigned_abs());
                write!(f, "every {}", humantime::format_duration(period))
            }
        }
    }
}

/// Parses a cron expression: 5 fields (minute, hour, day of month, month, day of week), or
/// 6 with seconds first; names (`MON`, `JAN`) and nicknames (`@daily`) are accepted.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "invalid cron expression {text:?} ({e}); write 5 fields, minute hour \
                 day-of-month month day-of-week (e.g. \"0 3 * * *\"), or 6 with seconds first"
            )
        })
}

/// Parses an IANA time zone name ("Europe/Paris", "UTC").
pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone {text:?}: write an IANA name such as \"Europe/Paris\", \
             \"America/New_York\" or \"UTC\""
        )
    })
}

/// The id of the task a schedule enqueues for `slot`: `schedule:NAME:2026-12-01T20:15:00Z`.
/// Every node derives the same id for the same slot, so the store keeps one task per slot.
pub fn slot_task_id(name: &str, slot: DateTime<Utc>) -> TaskId {
    TaskId::from(format!("{}{}", task_id_prefix(name), slot_text(slot)))
}

/// The start of every task id of schedule `name`: `schedule:NAME:`.
pub fn task_id_prefix(name: &str) -> String {
    format!("schedule:{name}:")
}

/// A slot as task ids and listings write it: `2026-12-01T20:15:00Z`.
pub fn slot_text(slot: DateTime<Utc>) -> String {
    slot.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where a schedule starts when a node starts it (at start-up, or when a reload adds it).
///
/// If the store holds a task of the schedule (`ran_before`), a node ran it before, and this
/// node may have been down across some of its slots: the first slot is the latest one at
/// or before `now` (less than one period old by definition; enqueued only if absent), so a
/// node coming back catches up that one slot, never a burst. A schedule no node ran yet
/// starts with the next slot after `now`: adding a nightly job at noon does not run it
/// at once.
pub fn first_slot(timing: &Timing, ran_before: bool, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if ran_before {
        timing
            .latest_at_or_before(now)
            .or_else(|| timing.next_after(now))
    } else {
        timing.next_after(now)
    }
}

/// The slot to enqueue when a schedule waiting for `next` wakes at `now`, if it is due:
/// the latest slot at or before `now`. When that is later than `next`, the slots between
/// (from `next` on) were missed — the node was suspended, busy, or could not reach the
/// store — and are skipped: only the latest is enqueued.
pub fn due_slot(timing: &Timing, next: DateTime<Utc>, now: DateTime<Utc>) -> Option<Due> {
    if next > now {
        return None;
    }
    let slot = timing.latest_at_or_before(now).unwrap_or(next).max(next);
    Some(Due {
        slot,
        missed_from: (slot > next).then_some(next),
    })
}

/// A slot to enqueue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub slot: DateTime<Utc>,
    /// The first of the slots skipped before `slot`, if any were.
    pub missed_from: Option<DateTime<Utc>>,
}
