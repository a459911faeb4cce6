//! The overview's warnings: what a person glancing at the tables would miss.
//!
//! - **unserved**: an action has pending tasks that could run now, and nothing runs them:
//!   no plugin of this node serves it (or it is paused here), and the store shows no live
//!   ownership of any of its tasks — none in progress with its deadline still ahead. The
//!   store keeps no list of nodes, only who owns what until when; a node that serves an
//!   action owns its runnable tasks within moments (or holds some, at its limit), so
//!   runnable tasks with no live ownership for [`UNSERVED_GRACE`] mean no live node serves
//!   the action. (Delayed tasks, tasks waiting on dependencies and tasks without tries
//!   left are not runnable and never warn.)
//! - **past-deadline**: tasks in progress whose ownership deadline has passed: their owner
//!   stopped extending it (it crashed, or lost the store). The queue offers them again once
//!   their expiry backoff has passed, or aborts those without tries left.
//! - **reload-rejected**: the latest reload of the plugins and configuration was refused,
//!   with its reason; the node still runs what it ran before.
//! - **at-limit**: a plugin's tasks in progress reach its `concurrency` (across the store)
//!   or `node_concurrency` (on this node).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::PluginView;
use crate::queue::{QueueSummary, TaskStatusCode};
use crate::reload::ReloadRejection;

/// How long an action's runnable tasks must go unowned before it is called unserved: longer
/// than a serving node takes to own them (its poll or wake-up), so a burst just inserted does
/// not flash a warning.
pub const UNSERVED_GRACE: Duration = Duration::from_secs(5);

/// One warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `unserved`, `past-deadline`, `reload-rejected` or `at-limit`.
    pub kind: &'static str,
    /// What it is about: an action, a plugin, or the node's files.
    pub subject: String,
    /// The count it is about (tasks), if any.
    pub count: Option<u64>,
    /// What a person should know, in a sentence.
    pub text: String,
}

/// Since when each action has looked unserved, across polls.
#[derive(Debug, Default)]
pub struct UnservedSince {
    since: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl UnservedSince {
    /// Of `candidates` (actions that look unserved now), those that have looked so for at
    /// least [`UNSERVED_GRACE`]; forgets every other action.
    fn long_enough<'a>(&self, candidates: &[&'a str], now: DateTime<Utc>) -> Vec<&'a str> {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        since.retain(|action, _| candidates.contains(&action.as_str()));
        let grace = chrono::TimeDelta::from_std(UNSERVED_GRACE).unwrap_or_default();
        candidates
            .iter()
            .copied()
            .filter(|action| {
                let first = *since.entry((*action).to_owned()).or_insert(now);
                now - first >= grace
            })
            .collect()
    }
}

/// Everything the warnings are drawn from.
pub(super) struct Inputs<'a> {
    pub summary: &'a QueueSummary,
    pub plugins: &'a [PluginView],
    /// Actions paused on this node.
    pub paused: &'a [String],
    pub rejection: Option<ReloadRejection>,
    pub unserved: &'a UnservedSince,
    pub now: DateTime<Utc>,
}

/// The warnings, in the order of the module's list.
pub(super) fn warnings(inputs: &Inputs<'_>) -> Vec<Warning> {
    let mut out = Vec::new();
    let served_here = |action: &str| {
        inputs
            .plugins
            .iter()
            .any(|p| p.actions.iter().any(|a| a == action))
            && !inputs.paused.iter().any(|p| p == action)
    };
    let in_progress = |action: &str| -> u64 {
        inputs
            .summary
            .counts
            .iter()
            .filter(|c| c.action == action && c.status_code == TaskStatusCode::InProgress)
            .map(|c| c.count)
            .sum()
    };
    let candidates: Vec<&str> = inputs
        .summary
        .attention
        .iter()
        .filter(|a| a.runnable > 0)
        .filter(|a| !served_here(&a.action))
        .filter(|a| in_progress(&a.action) <= a.past_deadline)
        .map(|a| a.action.as_str())
        .collect();
    for action in inputs.unserved.long_enough(&candidates, inputs.now) {
        let Some(attention) = inputs.summary.attention.iter().find(|a| a.action == action) else {
            continue;
        };
        let here = if inputs
            .plugins
            .iter()
            .any(|p| p.actions.iter().any(|a| a == action))
        {
            "it is paused on this node"
        } else {
            "no plugin of this node serves it"
        };
        out.push(Warning {
            kind: "unserved",
            subject: action.to_owned(),
            count: Some(attention.runnable),
            text: format!(
                "{} runnable tasks of {action} wait and no live node serves it: {here}, and \
                 no node holds a live ownership of its tasks",
                attention.runnable
            ),
        });
    }
    for attention in inputs
        .summary
        .attention
        .iter()
        .filter(|a| a.past_deadline > 0)
    {
        out.push(Warning {
            kind: "past-deadline",
            subject: attention.action.clone(),
            count: Some(attention.past_deadline),
            text: format!(
                "{} tasks of {} are in progress past their deadline: their owner stopped \
                 extending it; they are offered again after their expiry backoff (or end \
                 aborted without tries left)",
                attention.past_deadline, attention.action
            ),
        });
    }
    if let Some(rejection) = &inputs.rejection {
        out.push(Warning {
            kind: "reload-rejected",
            subject: "reload".into(),
            count: None,
            text: format!(
                "the reload at {} was rejected, the previous plugins and schedules stay: {}",
                rejection.at.format("%Y-%m-%dT%H:%M:%SZ"),
                rejection.reason
            ),
        });
    }
    for plugin in inputs.plugins {
        let c = &plugin.concurrency;
        if let Some(limit) = c.limit.filter(|l| c.in_progress >= u64::from(*l)) {
            out.push(Warning {
                kind: "at-limit",
                subject: plugin.name.clone(),
                count: Some(c.in_progress),
                text: format!(
                    "plugin {} is at its concurrency limit: {} of {limit} in progress in the \
                     store; its other tasks wait",
                    plugin.name, c.in_progress
                ),
            });
        }
        if let Some(limit) = c.node_limit.filter(|l| c.node_held >= u64::from(*l)) {
            out.push(Warning {
                kind: "at-limit",
                subject: plugin.name.clone(),
                count: Some(c.node_held),
                text: format!(
                    "plugin {} is at its node concurrency limit: {} of {limit} held on this \
                     node",
                    plugin.name, c.node_held
                ),
            });
        }
    }
    out
}
