//! The last hour of this node, for the overview's charts and `GET /api/history`: a ring of
//! samples of the node's own counters (per action: tasks completed and aborted, the
//! histogram of handler durations) and of the queue's depth by status, one every
//! [`HISTORY_INTERVAL`], at most [`HISTORY_SAMPLES`] of them (an hour), so the memory it
//! takes is bounded by the actions with a label of their own ([`metrics`](super::metrics)
//! caps those) whatever the node runs.
//!
//! A chart's point is the difference between two consecutive samples: tasks completed in
//! that interval (drawn per second), and the p50/p95 of the durations observed in it,
//! interpolated within the histogram's buckets as Prometheus' `histogram_quantile` does.
//! The counts of every point together, plus those since the last sample (`since_last`),
//! are exactly the node's counters while the ring has not wrapped: the ring starts with a
//! zero sample at the node's start.
//!
//! A background task of the listener ([`sample_every_interval`]) takes the samples; the
//! queue's depth comes from the shared [`SummaryCache`](super::SummaryCache), so sampling
//! adds at most one summary per interval to the store's load. For the hour before the node
//! started, the same task asks the store once which tasks finished in each minute
//! ([`Parade::finished_by_minute`](crate::queue::Parade::finished_by_minute): every node's,
//! as far as retention kept them; the store keeps no durations, so those minutes have no
//! percentiles).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::AdminState;
use crate::manager::{ActionStats, Histogram, HISTOGRAM_BOUNDS};
use crate::queue::{FinishedMinute, QueueSummary, TaskStatusCode};

/// How often the node's counters are sampled.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(10);

/// How many samples are kept: an hour of [`HISTORY_INTERVAL`]s.
pub const HISTORY_SAMPLES: usize = 360;

/// How far back the overview's longer chart reaches, from the store's finished tasks (as far
/// as retention keeps them).
pub const DAY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A read of the store's last day answers for at least this long, and for [`DAY_SPACING`]
/// times as long as it took: it reads every finished task (no index orders them by finish
/// time; 70-100 ms at a million tasks, BENCHMARKS.md), so the store spends under 2% of its
/// time on it however many tabs are open.
pub const DAY_TTL: Duration = Duration::from_secs(5);
pub const DAY_SPACING: u32 = 60;

/// The store's finished tasks by minute over the last [`DAY_WINDOW`], shared by every poll.
#[derive(Debug)]
pub(super) struct DayCache(super::summary::Cached<StoreDay>);

impl Default for DayCache {
    fn default() -> Self {
        DayCache(super::summary::Cached::answering_for(DAY_TTL, DAY_SPACING))
    }
}

/// The store's day is counted in bins of this many minutes.
pub const DAY_BIN_MINUTES: i64 = 10;

/// Most actions the day counts on their own (those with most finished tasks); the others'
/// tasks are counted together under [`DAY_OTHER_ACTIONS`], so the chart and `/api/history`
/// stay small however many actions the store has seen.
pub const DAY_ACTIONS: usize = 8;

/// The name the day gives the actions beyond [`DAY_ACTIONS`]. (An action of that very name,
/// if one had most tasks, would share its line with them.)
pub const DAY_OTHER_ACTIONS: &str = "(other actions)";

/// What the store said of its last day, and when it was asked.
#[derive(Debug, Clone, Serialize)]
pub struct StoreDay {
    /// When the read began: the last bin ends here.
    pub read_at: DateTime<Utc>,
    /// The window's start ([`DAY_WINDOW`] before `read_at`): the first bin starts here.
    pub since: DateTime<Utc>,
    pub bin_minutes: i64,
    /// Tasks of every node that finished in each bin, oldest first, by action and code:
    /// only those with a task in the window.
    pub series: Vec<DaySeries>,
}

/// One action's tasks that ended with one code, per bin of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaySeries {
    pub action: String,
    pub status_code: TaskStatusCode,
    /// One count per bin, oldest first.
    pub counts: Vec<u64>,
}

impl StoreDay {
    /// The store's `minutes` (from `since`, which is [`DAY_WINDOW`] before `read_at`) in
    /// bins of [`DAY_BIN_MINUTES`], by action and code, the actions beyond the
    /// [`DAY_ACTIONS`] with most tasks counted together.
    pub fn binned(read_at: DateTime<Utc>, minutes: &[FinishedMinute]) -> Self {
        let since = read_at - DAY_WINDOW;
        let bin_seconds = DAY_BIN_MINUTES * 60;
        let bins = usize::try_from(DAY_WINDOW.num_minutes() / DAY_BIN_MINUTES).unwrap_or(1);
        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for m in minutes {
            *totals.entry(m.action.as_str()).or_default() += m.count;
        }
        let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let own: std::collections::HashSet<&str> =
            ranked.iter().take(DAY_ACTIONS).map(|(a, _)| *a).collect();
        let mut counts: BTreeMap<(&str, &str), (TaskStatusCode, Vec<u64>)> = BTreeMap::new();
        for m in minutes {
            let action = if own.contains(m.action.as_str()) {
                m.action.as_str()
            } else {
                DAY_OTHER_ACTIONS
            };
            // A minute counts in the bin its end falls in; the read's first minute, which
            // began before the window, in the first.
            let end = (m.minute + chrono::TimeDelta::seconds(60) - since).num_seconds();
            let bin = usize::try_from(end.max(0) / bin_seconds).unwrap_or(0);
            counts
                .entry((action, m.status_code.as_str()))
                .or_insert_with(|| (m.status_code, vec![0; bins]))
                .1[bin.min(bins - 1)] += m.count;
        }
        StoreDay {
            read_at,
            since,
            bin_minutes: DAY_BIN_MINUTES,
            series: counts
                .into_iter()
                .map(|((action, _), (status_code, counts))| DaySeries {
                    action: action.to_owned(),
                    status_code,
                    counts,
                })
                .collect(),
        }
    }
}

/// The queue's depth in one sample: tasks by status code across the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub pending: u64,
    #[serde(rename = "in-progress")]
    pub in_progress: u64,
    pub completed: u64,
    pub aborted: u64,
}

impl Depth {
    fn of(summary: &QueueSummary) -> Self {
        let mut depth = Depth::default();
        for count in &summary.counts {
            *match count.status_code {
                TaskStatusCode::Pending => &mut depth.pending,
                TaskStatusCode::InProgress => &mut depth.in_progress,
                TaskStatusCode::Completed => &mut depth.completed,
                TaskStatusCode::Aborted => &mut depth.aborted,
            } += count.count;
        }
        depth
    }
}

/// The node's counters at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at: DateTime<Utc>,
    /// Cumulative, by action label.
    by_action: BTreeMap<String, ActionStats>,
    /// `None` when the store did not answer.
    depth: Option<Depth>,
}

/// The ring of samples; the first is the baseline the next one is measured from.
#[derive(Debug)]
pub struct NodeHistory {
    /// When the history started, from zero counters.
    origin: DateTime<Utc>,
    samples: Mutex<VecDeque<Sample>>,
    /// The store's finished tasks by minute in the hour before `origin`, once read.
    before_start: std::sync::OnceLock<Vec<FinishedMinute>>,
}

impl Default for NodeHistory {
    /// A history that starts now, from zero counters.
    fn default() -> Self {
        NodeHistory::starting_at(Utc::now())
    }
}

/// One action in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActionPoint {
    /// Tasks this node returned completed in the interval.
    pub completed: u64,
    /// Tasks this node returned aborted in the interval.
    pub aborted: u64,
    /// Durations of the handlers that ended in the interval (`None`: none ended).
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

/// One interval: from the previous point's `at` (or the node's start) to `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub at: DateTime<Utc>,
    /// The interval's length.
    pub seconds: f64,
    /// Actions with a task completed or aborted in the interval.
    pub actions: BTreeMap<String, ActionPoint>,
    /// The queue at `at` (`None`: the store did not answer).
    pub depth: Option<Depth>,
}

/// What `GET /api/history` answers, and what the charts draw.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// When the node started: its counters' zero, the baseline of the first point.
    pub started_at: DateTime<Utc>,
    pub interval_seconds: u64,
    /// The sampled intervals, oldest first: at most [`HISTORY_SAMPLES`].
    pub points: Vec<Point>,
    /// From the last sample to now (not drawn: it is still filling).
    pub since_last: Point,
    /// Whether `points` reach back to the node's start (else the oldest were dropped).
    pub since_start: bool,
    /// From the store, the whole minutes of the hour before the node started: tasks of
    /// every node that finished in each, by action and code (empty until read).
    pub before_start: Vec<FinishedMinute>,
    /// From the store, its last [`DAY_WINDOW`] (`None` until the first read has ended, or
    /// when the store could not answer).
    pub day: Option<StoreDay>,
}

impl NodeHistory {
    /// A history whose baseline is zero counters at `at`.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        let baseline = Sample {
            at,
            by_action: BTreeMap::new(),
            depth: None,
        };
        NodeHistory {
            origin: at,
            samples: Mutex::new(VecDeque::from([baseline])),
            before_start: std::sync::OnceLock::new(),
        }
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, sample: Sample) {
        let mut samples = self.samples();
        samples.push_back(sample);
        // The baseline plus HISTORY_SAMPLES intervals.
        while samples.len() > HISTORY_SAMPLES + 1 {
            samples.pop_front();
        }
    }

    /// The intervals between the samples, and from the last one to `now`.
    fn view(&self, now: Sample) -> HistoryView {
        let samples = self.samples();
        let points = samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(from, to)| point(from, to))
            .collect();
        let since_last = point(samples.back().expect("the baseline is never dropped"), &now);
        let since_start = samples.front().is_some_and(|s| s.at == self.origin);
        HistoryView {
            started_at: self.origin,
            interval_seconds: HISTORY_INTERVAL.as_secs(),
            points,
            since_last,
            since_start,
            before_start: self.before_start.get().cloned().unwrap_or_default(),
            day: None,
        }
    }
}

/// The interval from `from` to `to`.
fn point(from: &Sample, to: &Sample) -> Point {
    let mut actions = BTreeMap::new();
    for (action, now) in &to.by_action {
        let before = from.by_action.get(action).copied().unwrap_or_default();
        let completed = now.completed.saturating_sub(before.completed);
        let aborted = now.aborted.saturating_sub(before.aborted);
        let durations = difference(&now.durations, &before.durations);
        if completed == 0 && aborted == 0 && durations.count == 0 {
            continue;
        }
        actions.insert(
            action.clone(),
            ActionPoint {
                completed,
                aborted,
                p50_seconds: quantile(&durations, 0.5),
                p95_seconds: quantile(&durations, 0.95),
            },
        );
    }
    Point {
        at: to.at,
        seconds: (to.at - from.at).num_milliseconds().max(0) as f64 / 1000.0,
        actions,
        depth: to.depth,
    }
}

/// The observations of `now` that `before` did not have.
fn difference(now: &Histogram, before: &Histogram) -> Histogram {
    let mut out = Histogram::default();
    for (i, bucket) in out.buckets.iter_mut().enumerate() {
        *bucket = now.buckets[i].saturating_sub(before.buckets[i]);
    }
    out.count = now.count.saturating_sub(before.count);
    out.sum_seconds = (now.sum_seconds - before.sum_seconds).max(0.0);
    out
}

/// The `q` quantile of `histogram`, linear within the bucket it falls in (the last bucket,
/// above every bound, answers the highest bound); `None` without observations.
pub fn quantile(histogram: &Histogram, q: f64) -> Option<f64> {
    if histogram.count == 0 {
        return None;
    }
    let rank = q * histogram.count as f64;
    let mut below = 0u64;
    for (i, &n) in histogram.buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = HISTOGRAM_BOUNDS.get(i) else {
                return HISTOGRAM_BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { HISTOGRAM_BOUNDS[i - 1] };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    HISTOGRAM_BOUNDS.last().copied()
}

/// The node's counters now, by action label, and the queue's depth from the shared summary
/// (for a poll, as polls read it: without waiting for a slow store).
async fn sample_now(state: &AdminState, for_poll: bool) -> Sample {
    let summary = if for_poll {
        state.summary.get_for_poll(&state.queue).await
    } else {
        state.summary.get(state.queue.as_ref()).await
    };
    Sample {
        at: Utc::now(),
        by_action: super::metrics::node_stats_by_label(state),
        depth: summary.ok().map(|s| Depth::of(&s)),
    }
}

/// The history so far, ending now, with the store's last day as last read.
pub(super) async fn view(state: &AdminState) -> HistoryView {
    let now = sample_now(state, true).await;
    let mut view = state.dashboard.history.view(now);
    let queue = state.queue.clone();
    view.day = state
        .dashboard
        .day
        .0
        .latest_refreshing(move || async move {
            let read_at = Utc::now();
            // Logged once per read (at most every DAY_TTL), not once per poll.
            let minutes = queue
                .finished_by_minute(read_at - DAY_WINDOW)
                .await
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot read the store's last day for the dashboard's charts");
                })?;
            Ok(StoreDay::binned(read_at, &minutes))
        })
        .and_then(|read| read.ok())
        .map(|day| day.as_ref().clone());
    view
}

/// Samples `state`'s counters every [`HISTORY_INTERVAL`] until `stop` turns true.
pub(super) async fn sample_every_interval(state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    read_before_start(&state).await;
    let mut ticks = tokio::time::interval(HISTORY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the baseline already stands for the start.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        let sample = sample_now(&state, false).await;
        state.dashboard.history.record(sample);
    }
}

/// Reads the store's finished tasks of the hour before the node started, once (a store that
/// fails leaves that hour out of the charts: it is not asked again).
async fn read_before_start(state: &AdminState) {
    let history = &state.dashboard.history;
    let since = minute_of(history.origin) - chrono::TimeDelta::hours(1);
    let minutes = match state.queue.finished_by_minute(since).await {
        Ok(minutes) => minutes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the tasks finished before the node started; the dashboard's charts leave that hour out");
            Vec::new()
        }
    };
    let _ = history
        .before_start
        .set(whole_minutes_before(minutes, history.origin));
}

/// The store's `minutes` that ended before the minute `origin` falls in: that minute is the
/// node's own (partly), and the store's count of it may hold the node's first tasks.
fn whole_minutes_before(
    minutes: Vec<FinishedMinute>,
    origin: DateTime<Utc>,
) -> Vec<FinishedMinute> {
    let start_minute = minute_of(origin);
    minutes
        .into_iter()
        .filter(|m| m.minute < start_minute)
        .collect()
}

/// The start of the minute `at` falls in (what the store's minutes are keyed by).
fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(chrono::TimeDelta::minutes(1))
        .unwrap_or(at)
}

#[cfg(test)]
impl NodeHistory {
    /// The view with one sample of zero counters recorded at `at`.
    pub(super) fn view_for_test(&self, at: DateTime<Utc>) -> HistoryView {
        let empty = Sample {
            at,
            by_action: BTreeMap::new(),
            depth: None,
        };
        self.record(empty.clone());
        self.view(empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_the_node_started_in_is_not_before_its_start() {
        let minute = |text: &str| FinishedMinute {
            minute: text.parse().unwrap(),
            action: "a".into(),
            status_code: TaskStatusCode::Completed,
            count: 1,
        };
        // A start with a fraction of a second: the store's minutes are whole.
        let origin: DateTime<Utc> = "2026-12-02T15:04:30.123456Z".parse().unwrap();
        let kept = whole_minutes_before(
            vec![
                minute("2026-12-02T15:03:00Z"),
                minute("2026-12-02T15:04:00Z"),
                minute("2026-12-02T15:05:00Z"),
            ],
            origin,
        );
        assert_eq!(kept, vec![minute("2026-12-02T15:03:00Z")]);
        assert_eq!(
            minute_of(origin),
            "2026-12-02T15:04:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    fn sample(at_seconds: i64, completed: u64, durations: &[f64]) -> Sample {
        let mut stats = ActionStats {
            completed,
            ..ActionStats::default()
        };
        for d in durations {
            stats.durations.observe(Duration::from_secs_f64(*d));
        }
        Sample {
            at: DateTime::from_timestamp(at_seconds, 0).unwrap(),
            by_action: BTreeMap::from([("echo".to_owned(), stats)]),
            depth: None,
        }
    }

    #[test]
    fn points_are_the_differences_between_samples_and_add_up_to_the_counters() {
        let history = NodeHistory::starting_at(DateTime::from_timestamp(0, 0).unwrap());
        history.record(sample(10, 4, &[0.002; 4]));
        history.record(sample(20, 4, &[0.002; 4]));
        history.record(sample(30, 9, &[0.002; 9]));
        let view = history.view(sample(35, 10, &[0.002; 10]));
        let completed: Vec<u64> = view
            .points
            .iter()
            .map(|p| p.actions.get("echo").map_or(0, |a| a.completed))
            .collect();
        assert_eq!(completed, [4, 0, 5]);
        assert_eq!(view.since_last.actions["echo"].completed, 1);
        assert_eq!(view.points[2].seconds, 10.0);
        assert!(view.since_start);
        // 2 ms falls in the bucket (1 ms, 2.5 ms].
        let p50 = view.points[2].actions["echo"].p50_seconds.unwrap();
        assert!((0.001..=0.0025).contains(&p50), "{p50}");
    }

    #[test]
    fn the_ring_keeps_an_hour() {
        let history = NodeHistory::starting_at(DateTime::from_timestamp(0, 0).unwrap());
        for i in 1..=(HISTORY_SAMPLES as i64 + 5) {
            history.record(sample(i * 10, i as u64, &[]));
        }
        let view = history.view(sample(10_000, 0, &[]));
        assert_eq!(view.points.len(), HISTORY_SAMPLES);
        assert!(!view.since_start);
        assert!(view.points.iter().all(|p| p.actions["echo"].completed == 1));
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = Histogram::default();
        assert_eq!(quantile(&h, 0.5), None);
        for _ in 0..10 {
            h.observe(Duration::from_millis(30)); // (10 ms, 50 ms]
        }
        let p50 = quantile(&h, 0.5).unwrap();
        assert!((p50 - 0.03).abs() < 1e-9, "{p50}");
        h.observe(Duration::from_secs(100)); // above every bound
        assert_eq!(quantile(&h, 1.0), Some(60.0));
    }
}
