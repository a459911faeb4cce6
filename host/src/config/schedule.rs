//! `[[schedule]]` entries: periodic tasks, checked into [`ScheduleSpec`]s.
//!
//! Each value is checked where it is read (`raw.rs` calls the `parse_*` functions here), so
//! a bad `cron`, `every`, `timezone` or name is reported at its own line and key; then
//! [`schedules`] checks each entry as a whole: `name` and `action` present, exactly one of
//! `cron` and `every`, `timezone` only with `cron`, a cron expression that falls due at
//! all, and no name used twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use toml::Spanned;

use super::raw::{self, Lines};
use super::{ConfigError, Location};
use crate::queue::MAX_ACTION_BYTES;
use crate::schedule::{Timing, MIN_EVERY};

/// The longest schedule name, in bytes.
pub const MAX_SCHEDULE_NAME_BYTES: usize = 100;

/// One `[[schedule]]` entry: a task of `action` enqueued at each slot of `timing`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// Unique among the schedules; part of each task id (`schedule:NAME:SLOT`).
    pub name: String,
    pub timing: Timing,
    /// The tasks' action, body, `max_tries` (`None`: unlimited) and priority.
    pub action: String,
    pub body: Option<String>,
    pub max_tries: Option<i32>,
    pub priority: i32,
    /// Where its `name` is written.
    pub origin: Location,
}

impl ScheduleSpec {
    /// Everything that decides what the schedule enqueues and when (not where it was
    /// declared).
    pub fn same_settings(&self, other: &ScheduleSpec) -> bool {
        (
            &self.name,
            &self.timing,
            &self.action,
            &self.body,
            self.max_tries,
            self.priority,
        ) == (
            &other.name,
            &other.timing,
            &other.action,
            &other.body,
            other.max_tries,
            other.priority,
        )
    }
}

/// Checks the `[[schedule]]` entries of `file`.
pub(super) fn schedules(
    file: &Path,
    entries: Vec<Spanned<raw::Schedule>>,
    lines: &Lines<'_>,
) -> Result<Vec<ScheduleSpec>, ConfigError> {
    let mut names: HashMap<String, Location> = HashMap::new();
    let mut specs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let key = |field: &str| format!("schedule[{index}].{field}");
        let entry_location = lines.span_location(entry.span(), format!("schedule[{index}]"));
        let entry = entry.into_inner();
        let refuse = |problem: &str, at: &Location| ConfigError::new(file, problem).at(at);

        let Some(name) = entry.name else {
            return Err(refuse(
                "a [[schedule]] entry needs `name`, unique among the schedules (it names \
                 the tasks: schedule:NAME:TIME)",
                &entry_location,
            ));
        };
        let origin = lines.span_location(name.span(), key("name"));
        let name = name.into_inner().0;
        if let Some(earlier) = names.get(&name) {
            return Err(refuse(
                &format!("schedule {name:?} is declared twice (first at {earlier})"),
                &origin,
            ));
        }
        let Some(action) = entry.action else {
            return Err(refuse(
                "a [[schedule]] entry needs `action`, the action of the tasks it enqueues",
                &entry_location,
            ));
        };

        let timing = match (entry.cron, entry.every) {
            (Some(_), Some(every)) => {
                return Err(refuse(
                    "a schedule has either `cron` or `every`, not both; remove one",
                    &lines.span_location(every.span(), key("every")),
                ))
            }
            (None, None) => {
                return Err(refuse(
                    "a [[schedule]] entry needs `cron` (e.g. \"0 3 * * *\") or `every` \
                     (e.g. \"30s\")",
                    &entry_location,
                ))
            }
            (Some(cron), None) => {
                let at = lines.span_location(cron.span(), key("cron"));
                let (expression, cron) = cron.into_inner().0;
                let timezone = entry.timezone.map_or(Tz::UTC, |t| t.into_inner().0);
                let timing = Timing::Cron {
                    expression,
                    cron: Box::new(cron),
                    timezone,
                };
                if timing.next_after(Utc::now()).is_none() {
                    return Err(refuse(
                        "the cron expression never falls due (a date that does not exist, \
                         such as February 30?)",
                        &at,
                    ));
                }
                timing
            }
            (None, Some(every)) => {
                if let Some(timezone) = &entry.timezone {
                    return Err(refuse(
                        "`timezone` applies to `cron` schedules only: `every` counts whole \
                         periods from 1970-01-01T00:00:00Z; use `cron` for times of day in a \
                         time zone",
                        &lines.span_location(timezone.span(), key("timezone")),
                    ));
                }
                Timing::Every {
                    seconds: every.into_inner().0,
                }
            }
        };
        names.insert(name.clone(), origin.clone());
        specs.push(ScheduleSpec {
            name,
            timing,
            action: action.into_inner().0,
            body: entry.body.map(|b| b.0),
            max_tries: entry.max_tries.map(|t| t.0),
            priority: entry.priority.unwrap_or(0),
            origin,
        });
    }
    Ok(specs)
}

/// A schedule name: 1 to [`MAX_SCHEDULE_NAME_BYTES`] letters, digits, `-`, `_` or `.`.
pub(super) fn parse_name(text: &str) -> Result<String, String> {
    let safe = !text.is_empty()
        && text.len() <= MAX_SCHEDULE_NAME_BYTES
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if safe {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid schedule name {text:?}: use 1 to {MAX_SCHEDULE_NAME_BYTES} letters, \
             digits, '-', '_' or '.' (the name is part of task ids: schedule:NAME:TIME)"
        ))
    }
}

pub(super) fn parse_cron(text: &str) -> Result<(String, croner::Cron), String> {
    crate::schedule::parse_cron(text).map(|cron| (text.to_owned(), cron))
}

/// An `every` period: "30s", "5m", "1h 30m"; whole seconds, at least [`MIN_EVERY`].
pub(super) fn parse_every(text: &str) -> Result<i64, String> {
    let period = super::parse_duration(text)?;
    if period < MIN_EVERY || period.subsec_nanos() != 0 {
        return Err(format!(
            "invalid period {text:?}: `every` is a whole number of seconds, at least {} \
             (e.g. \"30s\", \"5m\", \"1h\")",
            humantime::format_duration(MIN_EVERY)
        ));
    }
    i64::try_from(period.as_secs())
        .ok()
        .filter(|s| Duration::from_secs(s.unsigned_abs()) == period)
        .ok_or_else(|| format!("invalid period {text:?}: too long"))
}

/// The action of a schedule's tasks: not empty, at most [`MAX_ACTION_BYTES`], no NUL.
pub(super) fn parse_action(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the action cannot be empty".into());
    }
    if text.len() > MAX_ACTION_BYTES {
        return Err(format!(
            "the action is {} bytes long; the queue holds at most {MAX_ACTION_BYTES}",
            text.len()
        ));
    }
    parse_body(text)
}

/// A task body: any text the queue can hold (no NUL character).
pub(super) fn parse_body(text: &str) -> Result<String, String> {
    if text.contains('\0') {
        return Err("the queue cannot hold a NUL character (\\u0000)".into());
    }
    Ok(text.to_owned())
}
