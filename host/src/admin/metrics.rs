//! `/metrics`: the node's counters in the Prometheus text format (version 0.0.4).
//!
//! Per action (label `action`): `parade_tasks_owned_total`, `parade_tasks_completed_total`,
//! `parade_tasks_aborted_total`, `parade_tasks_retried_total` and the histogram
//! `parade_task_duration_seconds` of this node; `parade_queue_tasks` (label `status` too) of
//! the whole store. Per node: `parade_heartbeats_total`, `parade_tasks_lost_total`,
//! `parade_tasks_released_total`, `parade_reloads_total`, `parade_reload_failures_total`,
//! `parade_pruned_tasks_total` (finished tasks this node's pruner deleted),
//! `parade_prune_failures_total`, `parade_plugins_loaded`, `parade_store_up`, per plugin with
//! a concurrency limit `parade_plugin_concurrency_limit` and `parade_plugin_concurrency_in_use`
//! (labels `plugin`, `scope`: `store` or `node`), the histogram
//! `parade_wasm_instantiate_seconds`, and `parade_wasm_failures_total` by `kind` (timeout,
//! stack_overflow, out_of_memory, out_of_fuel, unreachable, trap, invalid_utf8, other).
//!
//! Action names come from whoever adds tasks (and guests add tasks), so they are not label
//! values as they are: an action gets its own `action` label only if a loaded plugin serves
//! it (the first [`MAX_ACTION_LABELS`] of those, by name), and every other action's samples
//! are summed under `action="other"`. A scrape's size follows the plugins, not the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::AdminState;
use crate::manager::{ActionStats, Histogram, HISTOGRAM_BOUNDS};
use crate::queue::QueueSummary;

/// Each loaded plugin's concurrency limits (labels `plugin` and `scope`: `store` or `node`)
/// and how much of each is in use: its tasks in progress in the store (from `summary`, if
/// the store answered) and those this node holds.
fn concurrency(out: &mut Metrics, state: &AdminState, summary: Option<&QueueSummary>) {
    let plugins = state.actor.plugins();
    let limited: Vec<_> = plugins
        .iter()
        .filter(|p| !p.limits.concurrency.is_unlimited())
        .collect();
    if limited.is_empty() {
        return;
    }
    let held = state.manager.stats_by_action();
    out.family(
        "parade_plugin_concurrency_limit",
        "A plugin's concurrency limit: across the store (concurrency) or on this node \
         (node_concurrency).",
        "gauge",
    );
    for p in &limited {
        for (scope, limit) in [
            ("store", p.limits.concurrency.global),
            ("node", p.limits.concurrency.node),
        ] {
            if let Some(limit) = limit {
                out.sample(
                    "parade_plugin_concurrency_limit",
                    &[("plugin", &p.name), ("scope", scope)],
                    f64::from(limit.get()),
                );
            }
        }
    }
    out.family(
        "parade_plugin_concurrency_in_use",
        "A limited plugin's tasks in progress that its limit counts in the store, or held by this node.",
        "gauge",
    );
    for p in &limited {
        if let (Some(summary), Some(_)) = (summary, p.limits.concurrency.global) {
            out.sample(
                "parade_plugin_concurrency_in_use",
                &[("plugin", &p.name), ("scope", "store")],
                summary.within_limit(&p.actions) as f64,
            );
        }
        if p.limits.concurrency.node.is_some() {
            let node_held: u64 = p
                .actions
                .iter()
                .filter_map(|a| held.get(a))
                .map(|s| s.held)
                .sum();
            out.sample(
                "parade_plugin_concurrency_in_use",
                &[("plugin", &p.name), ("scope", "node")],
                node_held as f64,
            );
        }
    }
}

/// Most actions with a label of their own.
pub const MAX_ACTION_LABELS: usize = 100;

/// The label shared by every action without one of its own.
pub const OTHER_ACTIONS: &str = "other";

/// The text of one scrape; `summary` is `None` when the store did not answer.
pub(super) fn render(state: &AdminState, summary: Option<&QueueSummary>) -> String {
    let mut out = Metrics::default();
    let labels = ActionLabels::of(state);
    let by_action = labels.node_stats(state.manager.stats_by_action());
    type Field = fn(&crate::manager::ActionStats) -> u64;
    let per_action: [(&str, &str, Field); 4] = [
        ("parade_tasks_owned_total", "Tasks this node owned.", |s| {
            s.owned
        }),
        (
            "parade_tasks_completed_total",
            "Tasks this node returned completed.",
            |s| s.completed,
        ),
        (
            "parade_tasks_aborted_total",
            "Tasks this node returned aborted.",
            |s| s.aborted,
        ),
        (
            "parade_tasks_retried_total",
            "Tasks this node returned pending, to be tried again.",
            |s| s.retried,
        ),
    ];
    for (name, help, field) in per_action {
        out.family(name, help, "counter");
        for (action, stats) in &by_action {
            out.sample(name, &[("action", action)], field(stats) as f64);
        }
    }
    out.family(
        "parade_task_duration_seconds",
        "How long this node's handlers ran.",
        "histogram",
    );
    for (action, stats) in &by_action {
        out.histogram(
            "parade_task_duration_seconds",
            &[("action", action)],
            &stats.durations,
        );
    }

    out.family(
        "parade_store_up",
        "1 if the store answered this scrape.",
        "gauge",
    );
    out.sample(
        "parade_store_up",
        &[],
        f64::from(u8::from(summary.is_some())),
    );
    if let Some(summary) = summary {
        out.family(
            "parade_queue_tasks",
            "Tasks in the store, by action and status.",
            "gauge",
        );
        let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for count in &summary.counts {
            let key = (labels.of_action(&count.action), count.status_code.as_str());
            *counts.entry(key).or_default() += count.count;
        }
        for ((action, status), count) in counts {
            out.sample(
                "parade_queue_tasks",
                &[("action", action), ("status", status)],
                count as f64,
            );
        }
    }

    concurrency(&mut out, state, summary);

    let stats = state.manager.stats();
    for (name, help, value) in [
        (
            "parade_heartbeats_total",
            "Deadlines extended for running tasks.",
            stats.heartbeats,
        ),
        (
            "parade_tasks_lost_total",
            "Results dropped because the task's ownership was lost.",
            stats.lost,
        ),
        (
            "parade_tasks_released_total",
            "Owned tasks handed back untried.",
            stats.released,
        ),
        (
            "parade_reloads_total",
            "Reloads that swapped in a new set of plugins.",
            state.reloads.applied.load(Ordering::Relaxed),
        ),
        (
            "parade_reload_failures_total",
            "Reloads refused because something was invalid.",
            state.reloads.rejected.load(Ordering::Relaxed),
        ),
        (
            "parade_pruned_tasks_total",
            "Finished tasks this node's pruner deleted once their retention had passed.",
            state.pruned.pruned.load(Ordering::Relaxed),
        ),
        (
            "parade_prune_failures_total",
            "Pruning batches that failed and were retried later.",
            state.pruned.failures.load(Ordering::Relaxed),
        ),
    ] {
        out.family(name, help, "counter");
        out.sample(name, &[], value as f64);
    }
    out.family(
        "parade_plugins_loaded",
        "Plugins this node serves.",
        "gauge",
    );
    out.sample(
        "parade_plugins_loaded",
        &[],
        state.actor.plugins().len() as f64,
    );

    out.family(
        "parade_wasm_instantiate_seconds",
        "Time to create a task's store and component instance.",
        "histogram",
    );
    out.histogram(
        "parade_wasm_instantiate_seconds",
        &[],
        &state.runtime.stats.instantiate_times(),
    );
    out.family(
        "parade_wasm_failures_total",
        "Component instances that failed (trapped, timed out, ran out of memory...).",
        "counter",
    );
    for (kind, count) in state.runtime.stats.failures() {
        out.sample(
            "parade_wasm_failures_total",
            &[("kind", kind)],
            count as f64,
        );
    }
    out.text
}

/// This node's stats by action label, as the metrics count them: the actions its plugins
/// serve, the rest summed under [`OTHER_ACTIONS`]. The history samples these.
pub(super) fn node_stats_by_label(state: &AdminState) -> BTreeMap<String, ActionStats> {
    ActionLabels::of(state).node_stats(state.manager.stats_by_action())
}

/// Which actions have a label of their own.
struct ActionLabels {
    own: BTreeSet<String>,
}

impl ActionLabels {
    /// The actions the node's plugins serve now, the first [`MAX_ACTION_LABELS`] by name.
    fn of(state: &AdminState) -> Self {
        let served: BTreeSet<String> = state
            .actor
            .plugins()
            .iter()
            .flat_map(|p| p.actions.iter().cloned())
            .collect();
        ActionLabels {
            own: served.into_iter().take(MAX_ACTION_LABELS).collect(),
        }
    }

    /// The label of `action`'s samples.
    fn of_action<'a>(&self, action: &'a str) -> &'a str {
        if self.own.contains(action) {
            action
        } else {
            OTHER_ACTIONS
        }
    }

    /// This node's stats by label: actions no plugin serves any more (since a reload) are
    /// summed under `other`.
    fn node_stats(
        &self,
        by_action: BTreeMap<String, ActionStats>,
    ) -> BTreeMap<String, ActionStats> {
        let mut labelled: BTreeMap<String, ActionStats> = BTreeMap::new();
        for (action, stats) in by_action {
            let sum = labelled
                .entry(self.of_action(&action).to_owned())
                .or_default();
            sum.owned += stats.owned;
            sum.completed += stats.completed;
            sum.aborted += stats.aborted;
            sum.retried += stats.retried;
            let (into, from) = (&mut sum.durations, &stats.durations);
            for (bucket, n) in into.buckets.iter_mut().zip(from.buckets) {
                *bucket += n;
            }
            into.count += from.count;
            into.sum_seconds += from.sum_seconds;
        }
        labelled
    }
}

#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// Cumulative buckets, then `_sum` and `_count`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in HISTOGRAM_BOUNDS.iter().enumerate() {
            cumulative += histogram.buckets[i];
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, histogram.count as f64);
        self.sample(&format!("{name}_sum"), labels, histogram.sum_seconds);
        self.sample(&format!("{name}_count"), labels, histogram.count as f64);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
