//! The dashboard's pages: plain HTML rendered on the server, with a few lines of script on
//! the overview that refresh its counts from `/api/overview` and its panels (charts,
//! warnings, schedules, limits, actions) from `/overview/panels` every two seconds
//! (`live.js`), and the operator's buttons (`operator.js`): on the overview pause/resume an
//! action and run a schedule now, on a task's page Cancel, Retry and Delete as they apply
//! (`task.js` shows what each answer changed). A task shows the fields that apply to its
//! state: when it is due only while it waits for its `run_after`, its owner and deadline only
//! while it runs, when it finished once it has ended. The task browser's page is
//! [`browse`](super::browse), the task's DAG [`graph`](super::graph).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::history::HistoryView;
use super::{Overview, ShownTask, TaskView};
use crate::cli::due::{due_text, timestamp, until, waits_until};
use crate::queue::{TaskState, TaskStatusCode};

/// The status columns of the counts table, in lifecycle order.
const STATUSES: [TaskStatusCode; 4] = [
    TaskStatusCode::Pending,
    TaskStatusCode::InProgress,
    TaskStatusCode::Completed,
    TaskStatusCode::Aborted,
];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}code,pre{font:12px ui-monospace,monospace}\
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;max-width:60em}\
.graph{display:flex;gap:2em;align-items:center}.graph ul{list-style:none;padding:0}\
.graph li,.node{border:1px solid #bbb;border-radius:4px;padding:.2em .6em;margin:.3em 0}\
.node{border-width:2px;font-weight:bold}.muted{color:#777}\
.aborted{color:#b00}.completed{color:#070}#operator{margin-top:1.6em}\
.charts{display:flex;flex-wrap:wrap;gap:1em}figure.chart{margin:0}figcaption,.legend{font-size:12px}\
.legend{margin:.2em 0 0;max-width:560px}#warnings td.kind{font-weight:bold;color:#b00}\
button.op{display:none}body.operator button.op{display:inline}.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #999;margin:0 .25em 0 .6em;vertical-align:middle}.dag{overflow:auto;max-width:100%;max-height:80vh}#filters label{margin-right:.6em}#filters{margin:1em 0}";

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value.
pub(super) fn url_value(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

pub(super) fn task_link(id: &str) -> String {
    format!("<a href=\"/task?id={}\">{}</a>", url_value(id), escape(id))
}

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · Parade</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// A plugin's limits and their use: "3 of 3 in the store, 1 of 2 on this node", or "no
/// limit" (live.js writes the same words).
fn concurrency_text(c: &super::ConcurrencyView) -> String {
    let mut parts = Vec::new();
    if let Some(limit) = c.limit {
        parts.push(format!("{} of {limit} in the store", c.in_progress));
    }
    if let Some(limit) = c.node_limit {
        parts.push(format!("{} of {limit} on this node", c.node_held));
    }
    if parts.is_empty() {
        "no limit".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The counts table's rows: action → count per status column.
fn count_rows(overview: &Overview) -> BTreeMap<&str, [u64; 4]> {
    let mut rows: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for count in &overview.summary.counts {
        if let Some(column) = STATUSES.iter().position(|s| *s == count.status_code) {
            rows.entry(&count.action).or_default()[column] += count.count;
        }
    }
    rows
}

/// The overview's panels: warnings, charts, schedules, limits and this node's actions, as
/// the page first shows them and as `/overview/panels` serves them to `live.js`.
pub(super) fn overview_panels(overview: &Overview, history: &HistoryView) -> String {
    let mut body = String::new();
    body.push_str("<h2>Warnings</h2><table id=\"warnings\"><tbody>");
    for w in &overview.warnings {
        let _ = write!(
            body,
            "<tr data-kind=\"{}\" data-subject=\"{}\"{}><td class=\"kind\">{}</td><td>{}</td></tr>",
            w.kind,
            escape(&w.subject),
            w.count
                .map(|n| format!(" data-count=\"{n}\""))
                .unwrap_or_default(),
            w.kind,
            escape(&w.text)
        );
    }
    if overview.warnings.is_empty() {
        body.push_str("<tr><td class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str(&super::charts::charts(history));

    body.push_str(
        "<h2>Schedules</h2><table id=\"schedules\"><thead><tr><th>schedule</th><th>timing</th>\
         <th>action</th><th>next (UTC)</th><th>last slot</th><th></th></tr></thead><tbody>",
    );
    for schedule in &overview.schedules {
        let last = match &schedule.last {
            Some(last) => match last.status_code {
                Some(code) => format!(
                    "{} <span class=\"{code}\">{code}</span>",
                    task_link(&last.task_id)
                ),
                None => format!(
                    "{} <span class=\"muted\">not in the store</span>",
                    escape(&last.slot)
                ),
            },
            None => "<span class=\"muted\">none</span>".into(),
        };
        let _ = write!(
            body,
            "<tr data-schedule=\"{name}\"><td>{name}</td><td>{}</td><td>{}</td>\
             <td class=\"next\">{}</td><td class=\"last\">{last}</td><td>{}</td></tr>",
            escape(&schedule.timing),
            escape(&schedule.action),
            schedule.next.as_deref().map_or("never".into(), escape),
            operator_button(
                overview,
                &format!("/api/schedule/run?name={}", url_value(&schedule.name)),
                &format!(
                    "Run schedule {} now? Its task of action {} is enqueued at once; its \
                     slots go on as before.",
                    schedule.name, schedule.action
                ),
                "run now",
            ),
            name = escape(&schedule.name),
        );
    }
    if overview.schedules.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str(
        "<h2>Limits</h2><table id=\"limits\"><thead><tr><th>plugin</th><th>scope</th>\
         <th>in use</th><th>limit</th></tr></thead><tbody>",
    );
    for limit in &overview.limits {
        let _ = write!(
            body,
            "<tr data-plugin=\"{plugin}\" data-scope=\"{scope}\"><td>{plugin}</td><td>{}</td>\
             <td class=\"n in-use\">{}</td><td class=\"n limit\">{}</td></tr>",
            if limit.scope == "store" {
                "across the store"
            } else {
                "on this node"
            },
            limit.in_use,
            limit.limit,
            plugin = escape(&limit.plugin),
            scope = limit.scope,
        );
    }
    if overview.limits.is_empty() {
        body.push_str("<tr><td colspan=\"4\" class=\"muted\">no plugin has a limit</td></tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str(
        "<h2>This node's actions</h2><table id=\"actions\"><thead><tr><th>action</th>\
         <th>plugin</th><th>here</th><th></th></tr></thead><tbody>",
    );
    for action in &overview.actions {
        let (verb, path) = if action.paused {
            ("resume", "/api/action/resume")
        } else {
            ("pause", "/api/action/pause")
        };
        let _ = write!(
            body,
            "<tr data-action=\"{name}\"><td>{name}</td><td>{}</td><td class=\"state\">{}</td>\
             <td>{}</td></tr>",
            escape(&action.plugin),
            if action.paused { "paused" } else { "running" },
            operator_button(
                overview,
                &format!("{path}?action={}", url_value(&action.action)),
                &if action.paused {
                    format!("Resume action {} on this node?", action.action)
                } else {
                    format!(
                        "Pause action {} on this node? It owns none of its tasks until resumed \
                         (tasks it runs now finish).",
                        action.action
                    )
                },
                verb,
            ),
            name = escape(&action.action),
        );
    }
    if overview.actions.is_empty() {
        body.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");
    body
}

/// An operator's button (shown by `operator.js` once a token is entered): it confirms with
/// `confirm`, then POSTs to `path` with the token. Empty when operator actions are off.
fn operator_button(overview: &Overview, path: &str, confirm: &str, label: &str) -> String {
    if !overview.operator {
        return String::new();
    }
    format!(
        "<button type=\"button\" class=\"op\" data-post=\"{}\" data-confirm=\"{}\">{}</button>",
        escape(path),
        escape(confirm),
        escape(label)
    )
}

pub(super) fn overview(overview: &Overview, history: &HistoryView) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Parade</h1><p>node <code id=\"actor\">{}</code> on <code>{}</code>, up {} s{} · \
         <a href=\"/tasks\" id=\"browse\">browse tasks</a></p>",
        escape(&overview.actor_id),
        escape(&overview.database),
        overview.uptime_seconds,
        if overview.paused.is_empty() {
            String::new()
        } else {
            format!("; paused: {}", escape(&overview.paused.join(", ")))
        }
    );

    if overview.operator {
        body.push_str(OVERVIEW_OPERATOR);
    }
    let _ = write!(
        body,
        "<div id=\"panels\">{}</div>",
        overview_panels(overview, history)
    );
    body.push_str(
        "<h2>Tasks by action and status</h2><table id=\"counts\"><thead><tr><th>action</th>",
    );
    for status in STATUSES {
        let _ = write!(body, "<th>{status}</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for (action, counts) in count_rows(overview) {
        let _ = write!(body, "<tr><td>{}</td>", escape(action));
        for (status, count) in STATUSES.iter().zip(counts) {
            let _ = write!(
                body,
                "<td class=\"n\" data-action=\"{}\" data-status=\"{status}\">{count}</td>",
                escape(action)
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Nodes owning work</h2><table id=\"owners\"><thead><tr><th>actor</th><th>in progress</th></tr></thead><tbody>");
    for owner in &overview.summary.owners {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(owner.actor_id.as_str()),
            owner.in_progress
        );
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Plugins</h2><table id=\"plugins\"><thead><tr><th>plugin</th><th>actions</th><th>concurrency</th><th>file</th><th>sha256</th><th>memory</th><th>timeout</th><th>fuel</th><th>on failure</th><th>outbound HTTP</th></tr></thead><tbody>");
    for p in &overview.plugins {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"concurrency\" data-plugin=\"{}\">{}</td>\
             <td><code>{}</code></td><td><code title=\"{}\">{}</code></td>\
             <td class=\"n\">{} MiB</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.actions.join(", ")),
            escape(&p.name),
            concurrency_text(&p.concurrency),
            escape(&p.file),
            escape(&p.hash),
            escape(&p.hash[..p.hash.len().min(12)]),
            p.memory_mib,
            escape(&p.timeout),
            p.fuel.map_or("none".to_owned(), |f| f.to_string()),
            p.on_failure,
            if p.allowed_hosts.is_empty() {
                "none".to_owned()
            } else {
                escape(&p.allowed_hosts.join(", "))
            }
        );
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Recent failures</h2><table id=\"failures\"><thead><tr><th>task</th><th>action</th><th>tries</th><th>status</th></tr></thead><tbody>");
    for task in &overview.recent_failures {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"aborted\">{}</td></tr>",
            task_link(task.id.as_str()),
            escape(&task.action),
            task.num_tries,
            escape(task.status.as_deref().unwrap_or(""))
        );
    }
    if overview.recent_failures.is_empty() {
        body.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    body.push_str("</tbody></table>");
    let _ = write!(
        body,
        "<p class=\"muted\">This node: {} owned, {} completed, {} aborted, {} retried. \
         <a href=\"/metrics\">metrics</a> · <a href=\"/api/overview\">JSON</a></p>",
        overview.manager.owned,
        overview.manager.completed,
        overview.manager.aborted,
        overview.manager.retried
    );
    body.push_str(LIVE_COUNTS);
    if overview.operator {
        let _ = write!(body, "<script>{}</script>", include_str!("operator.js"));
    }
    page("Parade", &body)
}

/// Refreshes the counts and owners tables in place.
const LIVE_COUNTS: &str = concat!("<script>", include_str!("live.js"), "</script>");

/// When a waiting task is due, as a `<time>` element: "in 4m 10s", the time itself in its
/// `datetime` and title.
fn due_element(task: &ShownTask, now: DateTime<Utc>) -> Option<String> {
    let at = waits_until(task, now)?;
    Some(format!(
        "<time class=\"due\" datetime=\"{at}\" title=\"{at}\">in {}</time> ({at})",
        until(at, now),
        at = timestamp(at)
    ))
}

fn neighbours(title: &str, tasks: &[ShownTask], id: &str, now: DateTime<Utc>) -> String {
    let mut out = format!("<div><div class=\"muted\">{title}</div><ul id=\"{id}\">");
    for task in tasks {
        let _ = write!(
            out,
            "<li>{} <span class=\"{}\">{}</span>{}</li>",
            task_link(task.id.as_str()),
            task.status_code,
            task.status_code,
            due_element(task, now)
                .map(|due| format!(" <span class=\"muted\">due {due}</span>"))
                .unwrap_or_default()
        );
    }
    if tasks.is_empty() {
        out.push_str("<li class=\"muted\">none</li>");
    }
    out.push_str("</ul></div>");
    out
}

/// A task's page; `operator`: the node takes operator actions (`[admin] token` is set), so
/// the page gets the token entry and, once a token is entered, the buttons that apply: Cancel
/// while the task has not ended, Retry once it has aborted, Delete always.
pub(super) fn task(view: &TaskView, operator: bool) -> String {
    let task = &view.task;
    let now = Utc::now();
    let state = view.state;
    let mut body = format!(
        "<p><a href=\"/\">← overview</a> · <a href=\"/tasks\">tasks</a></p>\
         <h1>Task <code id=\"task-id\">{}</code></h1>",
        escape(task.id.as_str())
    );
    body.push_str("<table id=\"task\">");
    // Only what applies to the task's state: an ended task has no owner, deadline or due
    // time; a task without dependencies no dependency counts.
    let mut fields: Vec<(&str, String)> = vec![
        ("action", task.action.clone()),
        ("state", state.to_string()),
        ("status code", task.status_code.to_string()),
        ("status", task.status.clone().unwrap_or_default()),
    ];
    if let Some(due) = due_text(task, now) {
        fields.push(("due", due));
    }
    fields.push((
        "tries",
        match task.max_tries {
            Some(max) => format!("{} of {max}", task.num_tries),
            None => task.num_tries.to_string(),
        },
    ));
    if let Some(total) = task.total_dependencies {
        fields.push((
            "dependencies",
            format!("{} of {total} signalled", task.num_signals),
        ));
    }
    if task.total_dependencies.is_some() || task.num_failures > 0 {
        fields.push(("failed predecessors", task.num_failures.to_string()));
    }
    if task.status_code == TaskStatusCode::InProgress {
        fields.push((
            "owner",
            task.actor_id
                .as_ref()
                .map_or(String::new(), |a| a.as_str().to_owned()),
        ));
        if let Some(deadline) = task.action_deadline {
            fields.push((
                "deadline",
                format!("{} ({})", timestamp(deadline), relative(deadline, now)),
            ));
        }
    }
    fields.push((
        "enqueued",
        format!(
            "{} ({})",
            timestamp(view.enqueued_at),
            relative(view.enqueued_at, now)
        ),
    ));
    if let Some(finished) = view.finished_at {
        fields.push((
            "finished",
            format!("{} ({})", timestamp(finished), relative(finished, now)),
        ));
    }
    fields.push(("priority", task.priority.to_string()));
    if let Some(channel) = &task.notify_channel_after {
        fields.push(("notify channel", channel.clone()));
    }
    if !task.to_signal_after.is_empty() {
        fields.push((
            "signals",
            task.to_signal_after
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    for (name, value) in fields {
        let _ = write!(
            body,
            "<tr><th>{name}</th><td data-field=\"{name}\">{}</td></tr>",
            escape(&value)
        );
    }
    body.push_str("</table>");
    if operator {
        body.push_str(&operator_controls(view));
    }

    let _ = write!(
        body,
        "<h2>Tries</h2><p id=\"tries\">{}</p>",
        escape(&tries_text(view, now))
    );

    body.push_str("<h2>Body</h2>");
    match task.body.as_deref() {
        None | Some("") => body.push_str("<p id=\"body\" class=\"muted\">none</p>"),
        Some(stored) => {
            let (text, format) = shown_body(stored);
            let _ = write!(
                body,
                "<pre id=\"body\" data-format=\"{format}\">{}</pre>",
                escape(&text)
            );
        }
    }

    body.push_str("<h2>Dependencies</h2><div class=\"graph\">");
    body.push_str(&neighbours(
        "signalled by",
        &view.predecessors,
        "predecessors",
        now,
    ));
    body.push_str("<div>→</div>");
    let _ = write!(
        body,
        "<div class=\"node {}\">{}</div>",
        task.status_code,
        escape(task.id.as_str())
    );
    body.push_str("<div>→</div>");
    body.push_str(&neighbours("signals", &view.successors, "successors", now));
    body.push_str("</div>");

    let graph = &view.graph;
    let ancestors = graph.nodes.iter().filter(|n| n.depth < 0).count();
    let descendants = graph.nodes.iter().filter(|n| n.depth > 0).count();
    let _ = write!(
        body,
        "<h2>DAG</h2><p class=\"muted\" id=\"dag-count\">{ancestors} ancestors, {descendants} \
         descendants</p>{}<div class=\"dag\">{}</div>",
        super::graph::legend(),
        super::graph::svg(graph)
    );
    if graph.truncated {
        let _ = write!(
            body,
            "<p id=\"dag-more\">More: the graph stops at {} tasks, nearest first; tasks marked \
             + have neighbours it leaves out (open their pages to see them).</p>",
            graph.nodes.len()
        );
    }
    if operator {
        let _ = write!(
            body,
            "<script>{}</script><script>{}</script>",
            include_str!("operator.js"),
            include_str!("task.js")
        );
    }
    page(&format!("task {}", task.id), &body)
}

/// The retry history as far as the store keeps it, in words.
fn tries_text(view: &TaskView, now: DateTime<Utc>) -> String {
    let task = &view.task;
    let mut text = match (task.num_tries, task.max_tries) {
        (0, _) => "Not tried yet.".to_owned(),
        (n, Some(max)) => format!("Tried {n} of at most {max} times."),
        (n, None) => format!("Tried {n} times."),
    };
    match view.state {
        TaskState::Delayed if task.num_tries > 0 => {
            if let Some(at) = waits_until(task, now) {
                let _ = write!(
                    text,
                    " Try {} waits out its backoff until {} (in {}).",
                    task.num_tries + 1,
                    timestamp(at),
                    until(at, now)
                );
            }
        }
        TaskState::InProgress => {
            let _ = write!(text, " Try {} is running.", task.num_tries);
        }
        _ => {}
    }
    if let Some(status) = task.status.as_deref().filter(|s| !s.is_empty()) {
        let _ = write!(text, " The last try returned: {status}");
    }
    text.push_str(
        " (The store keeps the count of tries, the status of the last return and, while a \
         retry waits out its backoff, when it is due: not each try's outcome or time. The \
         node's log and metrics have those.)",
    );
    text
}

/// The body as shown: pretty-printed when it is a JSON object or array (`json`), else as
/// stored (`text`).
fn shown_body(body: &str) -> (String, &'static str) {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(value) if value.is_object() || value.is_array() => (
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_owned()),
            "json",
        ),
        _ => (body.to_owned(), "text"),
    }
}

/// The operator's controls: the token entry, shown until a token is entered, then the
/// buttons that apply. No `<form>`, and the token field has no name: it can never be sent in
/// a URL. Retry and Delete are `operator.js`'s confirmed `data-post` buttons; `task.js`
/// re-reads the task after each answer.
fn operator_controls(view: &TaskView) -> String {
    let task = &view.task;
    let id = escape(task.id.as_str());
    let query = url_value(task.id.as_str());
    let mut out = format!(
        "<div id=\"operator\" data-task=\"{id}\"><p id=\"token-entry\" hidden>Operator token \
         <input id=\"token\" type=\"password\" autocomplete=\"off\" aria-label=\"operator \
         token\"> <button type=\"button\" id=\"token-use\">use</button> <span class=\"muted\">\
         kept in this tab only</span></p><p id=\"token-held\" hidden>"
    );
    if !task.status_code.is_final() {
        out.push_str(
            "<span id=\"cancel-box\" hidden><input id=\"cancel-reason\" placeholder=\"reason \
             (optional)\" aria-label=\"reason\"> <label><input type=\"checkbox\" \
             id=\"cancel-cascade\"> and the tasks waiting on it</label> <button type=\"button\" \
             id=\"cancel\">Cancel task</button></span> ",
        );
    }
    let _ = write!(
        out,
        "<span id=\"retry-box\"{hidden}><button type=\"button\" class=\"op\" id=\"retry\" \
         data-post=\"/api/task/retry?id={query}\" data-confirm=\"Retry task {id}? It becomes \
         pending again with no tries used.\">Retry</button></span> \
         <button type=\"button\" class=\"op\" id=\"delete\" \
         data-post=\"/api/task/delete?id={query}\" data-confirm=\"Delete task {id}? Its row is \
         removed; successors stop waiting on it, and those left with nothing to wait for are \
         deleted too.\">Delete</button> \
         <button type=\"button\" id=\"token-forget\">forget token</button></p>\
         <p id=\"answer\" role=\"status\"></p></div>",
        hidden = if view.state == TaskState::Aborted {
            ""
        } else {
            " hidden"
        },
    );
    out
}

/// "in 4m" or "4m ago".
fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at > now {
        format!("in {}", until(at, now))
    } else {
        format!("{} ago", until(now, at))
    }
}

/// The overview's operator controls: the token entry (until a token is entered), then the
/// buttons in the panels, and the answer of the last one pressed (`operator.js`).
const OVERVIEW_OPERATOR: &str = "<div id=\"operator\">\
<p id=\"token-entry\" hidden>Operator token <input id=\"token\" type=\"password\" \
autocomplete=\"off\" aria-label=\"operator token\"> <button type=\"button\" id=\"token-use\">\
use</button> <span class=\"muted\">kept in this tab only</span></p>\
<p id=\"token-held\" hidden>Operator actions on. <button type=\"button\" id=\"token-forget\">\
forget token</button></p><p id=\"answer\" role=\"status\"></p></div>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_pretty_printed_and_others_shown_as_stored() {
        assert_eq!(
            shown_body(r#"{"a":[1,2]}"#),
            ("{\n  \"a\": [\n    1,\n    2\n  ]\n}".to_owned(), "json")
        );
        // A bare number or string is JSON too, but nothing to lay out.
        assert_eq!(shown_body("42"), ("42".to_owned(), "text"));
        assert_eq!(shown_body("not JSON"), ("not JSON".to_owned(), "text"));
    }

    #[test]
    fn text_and_urls_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_value("a b/ü?&"), "a%20b%2F%C3%BC%3F%26");
    }
}
