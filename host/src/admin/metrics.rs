//! `/metrics`: the node's counters in the Prometheus text format (version 0.0.4).
//!
//! Per action (label `action`): `parade_tasks_owned_total`, `parade_tasks_completed_total`,
//! `parade_tasks_aborted_total`, `parade_tasks_retried_total` and the histogram
//! `parade_task_duration_seconds` of this node; `parade_queue_tasks` (label `status` too) of
//! the whole store. Per node: `parade_heartbeats_total`, `parade_tasks_lost_total`,
//! `parade_tasks_released_total`, `parade_reloads_total`, `parade_reload_failures_total`,
//! `parade_plugins_loaded`, `parade_store_up`, the histogram
//! `parade_wasm_instantiate_seconds`, and `parade_wasm_failures_total` by `kind` (timeout,
//! stack_overflow, out_of_memory, out_of_fuel, unreachable, trap, invalid_utf8, other).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::AdminState;
use crate::manager::{Histogram, HISTOGRAM_BOUNDS};
use crate::queue::QueueSummary;

/// The text of one scrape; `summary` is `None` when the store did not answer.
pub(super) fn render(state: &AdminState, summary: Option<&QueueSummary>) -> String {
    let mut out = Metrics::default();
    let by_action = state.manager.stats_by_action();
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
        for count in &summary.counts {
            out.sample(
                "parade_queue_tasks",
                &[
                    ("action", &count.action),
                    ("status", count.status_code.as_str()),
                ],
                count.count as f64,
            );
        }
    }

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
