//! The overview's charts, drawn on the server as inline SVG (no script, no library): the
//! node's last hour from [`history`](super::history) — tasks completed and aborted per
//! second per action, the queue's depth by status, and p50/p95 handler durations per
//! action — and the store's last day (tasks of every node completed and aborted, per
//! action, in bins of [`DAY_BIN_MINUTES`], as far as retention keeps them). Each line
//! carries its last point in `data-last-at` and `data-last` (and, for throughput, the
//! interval's count in `data-last-count`; for the day, the window's count in
//! `data-total`), which tests compare with `GET /api/history`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::history::{HistoryView, Point, StoreDay, DAY_WINDOW};
use super::pages::escape;
use crate::queue::TaskStatusCode;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 150.0;
/// Room for the axis labels.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 18.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];
/// The node's window: an hour, ending at the last sample.
const HOUR: Window = Window {
    seconds: 3600.0,
    label: "−60 min",
};

/// How much time a chart spans, ending at its `end`, and the label of its start.
struct Window {
    seconds: f64,
    label: &'static str,
}

/// A point of a line: when, and its value.
type Sampled = (DateTime<Utc>, f64);

/// One line of a chart.
struct Series {
    /// As `data-series`: `completed echo`, `pending`, `p95 echo`.
    name: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<Sampled>,
    /// For throughput: the count of the last interval.
    last_count: Option<u64>,
    /// For the store's day: the count of the whole window.
    total: Option<u64>,
}

/// The node's three charts (or a line saying no interval has been sampled yet), then the
/// store's day.
pub(super) fn charts(history: &HistoryView) -> String {
    let mut out = String::from("<section id=\"charts\"><h2>The last hour on this node</h2>");
    let Some(last) = history.points.last() else {
        let _ = write!(
            out,
            "<p class=\"muted\">No samples yet: the node samples its counters every {} s.</p>\
             </section>",
            history.interval_seconds
        );
        // The store's day does not wait for the node's first sample.
        out.push_str(&day_chart(history.day.as_ref()));
        return out;
    };
    out.push_str("<div class=\"charts\">");
    let end = last.at;
    let actions: BTreeSet<&str> = history
        .points
        .iter()
        .flat_map(|p| p.actions.keys().map(String::as_str))
        .collect();
    let colour = |i: usize| PALETTE[i % PALETTE.len()];

    let mut throughput = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        for (what, dashed) in [("completed", false), ("aborted", true)] {
            let count = |p: &Point| {
                p.actions.get(*action).map_or(0, |a| match what {
                    "completed" => a.completed,
                    _ => a.aborted,
                })
            };
            throughput.push(Series {
                name: format!("{what} {action}"),
                colour: colour(i),
                dashed,
                points: history
                    .points
                    .iter()
                    .map(|p| (p.at, per_second(count(p), p.seconds)))
                    .collect(),
                last_count: Some(count(last)),
                total: None,
            });
        }
    }
    // The store's minutes before the node started, dotted: every node's tasks.
    let mut before: std::collections::BTreeMap<(&str, &str), Vec<Sampled>> =
        std::collections::BTreeMap::new();
    for m in &history.before_start {
        before
            .entry((m.action.as_str(), m.status_code.as_str()))
            .or_default()
            .push((
                m.minute + chrono::TimeDelta::seconds(60),
                m.count as f64 / 60.0,
            ));
    }
    for ((action, code), points) in before {
        let i = actions
            .iter()
            .position(|a| *a == action)
            .unwrap_or(actions.len());
        throughput.push(Series {
            name: format!("before start {code} {action}"),
            colour: colour(i),
            dashed: true,
            points,
            last_count: None,
            total: None,
        });
    }
    out.push_str(&chart(
        "throughput",
        "Tasks per second (solid: completed, dashed: aborted; before the node started, from \
         the store, every node's, per minute)",
        "/s",
        &throughput,
        end,
        &HOUR,
    ));

    let depth: Vec<Series> = [("pending", 0), ("in-progress", 1)]
        .into_iter()
        .map(|(status, i)| Series {
            name: status.to_owned(),
            colour: colour(i + 4),
            dashed: false,
            points: history
                .points
                .iter()
                .filter_map(|p| {
                    let d = p.depth?;
                    Some((
                        p.at,
                        (if i == 0 { d.pending } else { d.in_progress }) as f64,
                    ))
                })
                .collect(),
            last_count: None,
            total: None,
        })
        .collect();
    out.push_str(&chart(
        "depth",
        "Queue depth (the whole store): pending and in progress",
        "",
        &depth,
        end,
        &HOUR,
    ));

    let mut durations = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        for (q, dashed) in [("p50", false), ("p95", true)] {
            durations.push(Series {
                name: format!("{q} {action}"),
                colour: colour(i),
                dashed,
                points: history
                    .points
                    .iter()
                    .filter_map(|p| {
                        let a = p.actions.get(*action)?;
                        let seconds = if q == "p50" {
                            a.p50_seconds
                        } else {
                            a.p95_seconds
                        }?;
                        Some((p.at, seconds * 1000.0))
                    })
                    .collect(),
                last_count: None,
                total: None,
            });
        }
    }
    out.push_str(&chart(
        "durations",
        "Handler duration, ms (solid: p50, dashed: p95)",
        " ms",
        &durations,
        end,
        &HOUR,
    ));
    out.push_str("</div></section>");
    out.push_str(&day_chart(history.day.as_ref()));
    out
}

/// The store's last day: every node's tasks completed and aborted per second, per action,
/// averaged over its bins; `None` while the first read runs.
fn day_chart(day: Option<&StoreDay>) -> String {
    let mut out = String::from("<section id=\"day\"><h2>The last 24 hours in the store</h2>");
    let Some(day) = day else {
        out.push_str(
            "<p class=\"muted\">Not read yet: the store's finished tasks are being read (or \
             the store did not answer; the node's log says why).</p></section>",
        );
        return out;
    };
    let bin = chrono::TimeDelta::minutes(day.bin_minutes);
    let actions: BTreeSet<&str> = day.series.iter().map(|s| s.action.as_str()).collect();
    let series: Vec<Series> = day
        .series
        .iter()
        .map(|s| {
            let i = actions
                .iter()
                .position(|a| *a == s.action)
                .unwrap_or_default();
            Series {
                name: format!("{} {}", s.status_code.as_str(), s.action),
                colour: PALETTE[i % PALETTE.len()],
                dashed: s.status_code != TaskStatusCode::Completed,
                points: s
                    .counts
                    .iter()
                    .enumerate()
                    .map(|(b, n)| {
                        let bin_end = day.since + bin * i32::try_from(b + 1).unwrap_or(i32::MAX);
                        (bin_end, per_second(*n, bin.num_seconds() as f64))
                    })
                    .collect(),
                last_count: s.counts.last().copied(),
                total: Some(s.counts.iter().sum()),
            }
        })
        .collect();
    out.push_str("<div class=\"charts\">");
    out.push_str(&chart(
        "day",
        &format!(
            "Tasks per second, every node's, per {} minutes (solid: completed, dashed: \
             aborted), as far as retention keeps finished tasks",
            day.bin_minutes
        ),
        "/s",
        &series,
        day.read_at,
        &Window {
            seconds: DAY_WINDOW.num_seconds() as f64,
            label: "−24 h",
        },
    ));
    out.push_str("</div></section>");
    out
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// A round number at or above `max`, for the top of the axis: 1, 2 or 5 times a power of 10.
fn axis_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * power)
}

/// A number as an axis label or a `data-` value: at most 3 decimals, no trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_owned()
    }
}

fn chart(
    id: &str,
    title: &str,
    unit: &str,
    series: &[Series],
    end: DateTime<Utc>,
    window: &Window,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let top = axis_top(max);
    let plot_width = WIDTH - LEFT;
    let plot_height = HEIGHT - BOTTOM;
    let x = |at: DateTime<Utc>| {
        let age = (end - at).num_milliseconds() as f64 / 1000.0;
        LEFT + plot_width * (1.0 - (age / window.seconds).clamp(0.0, 1.0))
    };
    let y = |value: f64| plot_height * (1.0 - (value / top).clamp(0.0, 1.0));
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg id=\"chart-{id}\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" data-end=\"{}\">",
        escape(title),
        escape(title),
        end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    // Axes and labels: the top value, zero, and the window's start and end.
    let _ = write!(
        svg,
        "<g class=\"axis\" stroke=\"#ccc\"><line x1=\"{LEFT}\" y1=\"0\" x2=\"{LEFT}\" \
         y2=\"{plot_height}\"/><line x1=\"{LEFT}\" y1=\"{plot_height}\" x2=\"{WIDTH}\" \
         y2=\"{plot_height}\"/><line x1=\"{LEFT}\" y1=\"0.5\" x2=\"{WIDTH}\" y2=\"0.5\" \
         stroke-dasharray=\"2 3\"/></g><g font-size=\"10\" fill=\"#777\">\
         <text x=\"{}\" y=\"10\" text-anchor=\"end\">{}{}</text>\
         <text x=\"{}\" y=\"{plot_height}\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{HEIGHT}\">{}</text>\
         <text x=\"{WIDTH}\" y=\"{HEIGHT}\" text-anchor=\"end\">{} UTC</text></g>",
        LEFT - 4.0,
        number(top),
        escape(unit),
        LEFT - 4.0,
        window.label,
        end.format("%H:%M:%S")
    );
    let mut legend = String::from("<p class=\"legend\">");
    for s in series {
        let Some((last_at, last)) = s.points.last() else {
            continue;
        };
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(at, v)| format!("{:.1},{:.1}", x(*at), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} points=\"{}\" \
             data-series=\"{}\" data-last-at=\"{}\" data-last=\"{}\"{}><title>{}: {}{}</title>\
             </polyline>",
            s.colour,
            if s.dashed {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            },
            points.join(" "),
            escape(&s.name),
            last_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            number(*last),
            s.last_count
                .map(|n| format!(" data-last-count=\"{n}\""))
                .unwrap_or_default()
                + &s.total
                    .map(|n| format!(" data-total=\"{n}\""))
                    .unwrap_or_default(),
            escape(&s.name),
            number(*last),
            escape(unit)
        );
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
            x(*last_at),
            y(*last),
            s.colour
        );
        let _ = write!(
            legend,
            "<span style=\"color:{}\">{} {}</span> ",
            s.colour,
            if s.dashed { "┄" } else { "━" },
            escape(&s.name)
        );
    }
    if series.iter().all(|s| s.points.is_empty()) {
        legend.push_str("<span class=\"muted\">nothing in this window</span>");
    }
    legend.push_str("</p>");
    svg.push_str("</svg>");
    svg.push_str(&legend);
    svg.push_str("</figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_minutes_before_the_start_are_drawn_per_second() {
        use crate::queue::{FinishedMinute, TaskStatusCode};
        let history = super::super::history::NodeHistory::starting_at(
            DateTime::from_timestamp(7_200, 0).unwrap(),
        );
        let mut view = history.view_for_test(DateTime::from_timestamp(7_210, 0).unwrap());
        view.before_start = vec![FinishedMinute {
            minute: DateTime::from_timestamp(7_080, 0).unwrap(),
            action: "echo".into(),
            status_code: TaskStatusCode::Completed,
            count: 120,
        }];
        let svg = charts(&view);
        assert!(
            svg.contains("data-series=\"before start completed echo\" data-last-at=\"1970-01-01T01:59:00.000Z\" data-last=\"2\""),
            "{svg}"
        );
    }

    #[test]
    fn the_stores_day_is_binned_and_totalled() {
        use super::super::history::{DAY_ACTIONS, DAY_OTHER_ACTIONS};
        use crate::queue::FinishedMinute;
        let read_at = DateTime::from_timestamp(200_000, 0).unwrap();
        let minute = |ago_minutes: i64, action: &str, count: u64, code| FinishedMinute {
            minute: read_at - chrono::TimeDelta::minutes(ago_minutes),
            action: action.into(),
            status_code: code,
            count,
        };
        let mut minutes = vec![
            // The read's first, partial minute: the first bin.
            minute(24 * 60 + 1, "echo", 7, TaskStatusCode::Completed),
            minute(30, "echo", 300, TaskStatusCode::Completed),
            minute(25, "echo", 300, TaskStatusCode::Completed),
            minute(2, "echo", 1200, TaskStatusCode::Completed),
            minute(2, "echo", 6, TaskStatusCode::Aborted),
        ];
        // More actions than have a line of their own: the two smallest share one.
        for i in 0..DAY_ACTIONS + 1 {
            minutes.push(minute(
                5,
                &format!("a{i}"),
                100 - i as u64,
                TaskStatusCode::Completed,
            ));
        }
        let day = StoreDay::binned(read_at, &minutes);
        assert_eq!(day.since, read_at - DAY_WINDOW);
        let echo = day
            .series
            .iter()
            .find(|s| s.action == "echo" && s.status_code == TaskStatusCode::Completed)
            .unwrap();
        assert_eq!(echo.counts.len(), 144);
        assert_eq!(
            (echo.counts[0], echo.counts[141], echo.counts[143]),
            (7, 600, 1200)
        );
        let others: Vec<&str> = day
            .series
            .iter()
            .filter(|s| s.action == DAY_OTHER_ACTIONS)
            .map(|s| s.action.as_str())
            .collect();
        assert_eq!(others.len(), 1, "{:?}", day.series);
        assert_eq!(
            day.series
                .iter()
                .map(|s| s.counts.iter().sum::<u64>())
                .sum::<u64>(),
            minutes.iter().map(|m| m.count).sum::<u64>()
        );
        let svg = day_chart(Some(&day));
        // The last bin (the 10 minutes before the read): 1,200 in 600 s.
        assert!(
            svg.contains("data-series=\"completed echo\" data-last-at=\"1970-01-03T07:33:20.000Z\" data-last=\"2\" data-last-count=\"1200\" data-total=\"1807\""),
            "{svg}"
        );
        assert!(svg.contains("data-series=\"aborted echo\""), "{svg}");
        assert!(day_chart(None).contains("Not read yet"));
        // Before the node's first sample too.
        let history = super::super::history::NodeHistory::starting_at(read_at);
        let mut view = history.view_for_test(read_at);
        view.points.clear();
        view.day = Some(day);
        assert!(charts(&view).contains("id=\"chart-day\""));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(0.7), 1.0);
        assert_eq!(axis_top(1.3), 2.0);
        assert_eq!(axis_top(37.0), 50.0);
        assert_eq!(axis_top(500.0), 500.0);
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.0004), "0");
    }
}
