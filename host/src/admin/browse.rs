//! The task browser: `GET /tasks` (a page) and `GET /api/tasks` (JSON), the store's tasks
//! newest first, a page at a time, filtered by action, state, id prefix and enqueue time.
//!
//! Both read [`Parade::list_task_page`](crate::queue::Parade::list_task_page): a page
//! continues from the position of the last one's oldest task (`after`), never from an
//! offset, so the thousandth page costs what the first does. Parameters (all optional):
//! `action`, `state` (`waiting`, `delayed`, `pending`, `in-progress`, `completed`,
//! `aborted`), `id` (a prefix), `from` and `to` (enqueued at or after / before; RFC 3339, or
//! `YYYY-MM-DDTHH:MM[:SS]` in UTC as a browser's date field sends it), `after` (the `next`
//! of the previous page) and `limit` (tasks per page, default 50, at most 500). An unknown
//! parameter or a value that does not parse is refused with 400, naming it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::Json;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::pages::{escape, page, task_link, url_value};
use super::{AdminState, Problem};
use crate::cli::due::timestamp;
use crate::queue::{ListedTask, TaskCursor, TaskFilter, TaskId, TaskState, TaskStatusCode};

/// Tasks per page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;
/// The most tasks one page holds.
const MAX_PAGE: u32 = 500;
/// Characters of a status shown in the table (the task's page shows all of it).
const STATUS_CHARS: usize = 120;

/// The browser's parameters, as given (for links to other pages) and as a filter.
#[derive(Debug, Default)]
struct Browse {
    action: String,
    state: Option<TaskState>,
    id_prefix: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<TaskCursor>,
    limit: u32,
}

fn bad(problem: String) -> Problem {
    Problem(StatusCode::BAD_REQUEST, problem)
}

/// A time parameter: RFC 3339, or a date field's `YYYY-MM-DDTHH:MM[:SS]` read as UTC.
fn time(key: &str, value: &str) -> Result<DateTime<Utc>, Problem> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|at| at.and_utc())
        .ok_or_else(|| {
            bad(format!(
                "{key}={value:?} is not a time: use RFC 3339 (2026-12-24T18:00:00Z) or \
                 YYYY-MM-DDTHH:MM[:SS] in UTC"
            ))
        })
}

impl Browse {
    fn parse(params: &[(String, String)]) -> Result<Browse, Problem> {
        let mut browse = Browse {
            limit: DEFAULT_PAGE,
            ..Browse::default()
        };
        for (key, value) in params {
            // A form sends its empty fields too: an empty value filters nothing.
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "action" => browse.action = value.clone(),
                "state" => {
                    browse.state = Some(
                        value
                            .parse()
                            .map_err(|e: crate::queue::Error| bad(format!("state: {e}")))?,
                    )
                }
                "id" => browse.id_prefix = value.clone(),
                "from" => browse.from = Some(time(key, value)?),
                "to" => browse.to = Some(time(key, value)?),
                "after" => {
                    browse.after = Some(
                        value
                            .parse()
                            .map_err(|e: crate::queue::Error| bad(format!("after: {e}")))?,
                    )
                }
                "limit" => {
                    browse.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "limit={value:?}: give a number from 1 to {MAX_PAGE}"
                            ))
                        })?
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter {key:?}: the task browser takes action, state, id, \
                         from, to, after and limit"
                    )))
                }
            }
        }
        Ok(browse)
    }

    fn filter(&self) -> TaskFilter {
        TaskFilter {
            action: (!self.action.is_empty()).then(|| self.action.clone()),
            state: self.state,
            id_prefix: (!self.id_prefix.is_empty()).then(|| self.id_prefix.clone()),
            enqueued_from: self.from,
            enqueued_before: self.to,
            after: self.after,
            limit: Some(self.limit),
            newest_first: true,
            ..TaskFilter::default()
        }
    }

    /// The query string of these filters, starting after `after` (`None`: the first page).
    fn query(&self, after: Option<TaskCursor>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !self.action.is_empty() {
            pairs.push(("action", self.action.clone()));
        }
        if let Some(state) = self.state {
            pairs.push(("state", state.to_string()));
        }
        if !self.id_prefix.is_empty() {
            pairs.push(("id", self.id_prefix.clone()));
        }
        for (key, at) in [("from", self.from), ("to", self.to)] {
            if let Some(at) = at {
                pairs.push((key, at.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
            }
        }
        if self.limit != DEFAULT_PAGE {
            pairs.push(("limit", self.limit.to_string()));
        }
        if let Some(after) = after {
            pairs.push(("after", after.to_string()));
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", url_value(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A task as the browser lists it: no body and no performance token.
#[derive(Debug, Serialize)]
pub(super) struct BrowsedTask {
    id: TaskId,
    action: String,
    state: TaskState,
    status_code: TaskStatusCode,
    status: Option<String>,
    num_tries: i32,
    max_tries: Option<i32>,
    priority: i32,
    enqueued_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    run_after: Option<DateTime<Utc>>,
    cursor: TaskCursor,
}

impl BrowsedTask {
    fn new(listed: ListedTask, now: DateTime<Utc>) -> Self {
        let task = listed.task;
        BrowsedTask {
            state: TaskState::of(&task, now),
            id: task.id,
            action: task.action,
            status_code: task.status_code,
            status: task.status,
            num_tries: task.num_tries,
            max_tries: task.max_tries,
            priority: task.priority,
            enqueued_at: listed.enqueued_at,
            finished_at: listed.finished_at,
            run_after: task.run_after,
            cursor: listed.cursor,
        }
    }
}

/// One page of the browser: its tasks, and the `after` of the next page (`None`: the last).
#[derive(Debug, Serialize)]
pub(super) struct BrowsePage {
    tasks: Vec<BrowsedTask>,
    next: Option<TaskCursor>,
}

async fn read(state: &AdminState, browse: &Browse) -> Result<BrowsePage, Problem> {
    let page = state.queue.list_task_page(&browse.filter()).await?;
    let now = Utc::now();
    Ok(BrowsePage {
        tasks: page
            .tasks
            .into_iter()
            .map(|t| BrowsedTask::new(t, now))
            .collect(),
        next: page.next,
    })
}

/// `GET /api/tasks`.
pub(super) async fn tasks_json(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<BrowsePage>, Problem> {
    let browse = Browse::parse(&params)?;
    Ok(Json(read(&state, &browse).await?))
}

/// `GET /tasks`.
pub(super) async fn tasks_page(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Html<String>, Problem> {
    let browse = Browse::parse(&params)?;
    let listed = read(&state, &browse).await?;
    // The actions to offer: this node's. (The store's would take its summary, a read of
    // every task, which the page would wait for once a second.)
    let actions: BTreeSet<String> = state
        .actor
        .plugins()
        .iter()
        .flat_map(|p| p.actions.iter().cloned())
        .collect();
    Ok(Html(render(&browse, &listed, &actions)))
}

/// A date field's value: `YYYY-MM-DDTHH:MM:SS` in UTC.
fn field_time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn render(browse: &Browse, listed: &BrowsePage, actions: &BTreeSet<String>) -> String {
    let mut body = String::from(
        "<p><a href=\"/\">← overview</a></p><h1>Tasks</h1>\
         <form id=\"filters\" method=\"get\" action=\"/tasks\">",
    );
    let _ = write!(
        body,
        "<label>action <input name=\"action\" list=\"actions\" value=\"{}\"></label> \
         <datalist id=\"actions\">",
        escape(&browse.action)
    );
    for action in actions {
        let _ = write!(body, "<option value=\"{}\">", escape(action));
    }
    body.push_str(
        "</datalist> <label>state <select name=\"state\"><option value=\"\">any</option>",
    );
    for state in TaskState::ALL {
        let _ = write!(
            body,
            "<option{}>{state}</option>",
            if browse.state == Some(state) {
                " selected"
            } else {
                ""
            }
        );
    }
    let _ = write!(
        body,
        "</select></label> <label>id starts with <input name=\"id\" value=\"{}\"></label> \
         <label>enqueued from <input type=\"datetime-local\" step=\"1\" name=\"from\" \
         value=\"{}\"></label> <label>to <input type=\"datetime-local\" step=\"1\" name=\"to\" \
         value=\"{}\"></label> <span class=\"muted\">(UTC)</span> \
         <button type=\"submit\" id=\"filter\">filter</button> <a href=\"/tasks\">clear</a>",
        escape(&browse.id_prefix),
        field_time(browse.from),
        field_time(browse.to)
    );
    if browse.limit != DEFAULT_PAGE {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"limit\" value=\"{}\">",
            browse.limit
        );
    }
    body.push_str(
        "</form><table id=\"tasks\"><thead><tr><th>task</th><th>action</th><th>state</th>\
         <th>tries</th><th>enqueued (UTC)</th><th>finished (UTC)</th><th>status</th></tr>\
         </thead><tbody>",
    );
    for task in &listed.tasks {
        let mut status: String = task
            .status
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(STATUS_CHARS)
            .collect();
        if task
            .status
            .as_deref()
            .is_some_and(|s| s.chars().count() > STATUS_CHARS)
        {
            status.push('…');
        }
        let _ = write!(
            body,
            "<tr data-id=\"{}\" data-state=\"{state}\"><td>{}</td><td>{}</td>\
             <td class=\"{state}\">{state}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(task.id.as_str()),
            task_link(task.id.as_str()),
            escape(&task.action),
            match task.max_tries {
                Some(max) => format!("{} of {max}", task.num_tries),
                None => task.num_tries.to_string(),
            },
            timestamp(task.enqueued_at),
            task.finished_at.map(timestamp).unwrap_or_default(),
            escape(&status),
            state = task.state,
        );
    }
    if listed.tasks.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">no tasks match</td></tr>");
    }
    body.push_str("</tbody></table><p id=\"paging\">");
    if browse.after.is_some() {
        let _ = write!(
            body,
            "<a id=\"newest\" href=\"/tasks?{}\">← newest</a> ",
            escape(&browse.query(None))
        );
    }
    if let Some(next) = listed.next {
        let _ = write!(
            body,
            "<a id=\"older\" rel=\"next\" href=\"/tasks?{}\">older →</a>",
            escape(&browse.query(Some(next)))
        );
    } else {
        body.push_str("<span class=\"muted\" id=\"end\">no older tasks</span>");
    }
    let _ = write!(
        body,
        "</p><p class=\"muted\">Newest first, {} a page. <a href=\"/api/tasks?{}\">JSON</a></p>",
        browse.limit,
        escape(&browse.query(browse.after))
    );
    page("tasks", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(String, String)]) -> Browse {
        match Browse::parse(pairs) {
            Ok(browse) => browse,
            Err(Problem(_, problem)) => panic!("{pairs:?}: {problem}"),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_parse_into_a_filter_and_back_into_a_query() {
        let browse = parse(&params(&[
            ("action", "mail"),
            ("state", "delayed"),
            ("id", "a b"),
            ("from", "2026-12-24T18:00"),
            ("to", "2026-12-24T19:00:00+01:00"),
            ("after", "42"),
            ("limit", "10"),
        ]));
        let filter = browse.filter();
        assert_eq!(filter.action.as_deref(), Some("mail"));
        assert_eq!(filter.state, Some(TaskState::Delayed));
        assert_eq!(filter.id_prefix.as_deref(), Some("a b"));
        assert_eq!(filter.enqueued_from, "2026-12-24T18:00:00Z".parse().ok());
        assert_eq!(filter.enqueued_before, filter.enqueued_from);
        assert_eq!(filter.after, Some(TaskCursor(42)));
        assert_eq!(filter.limit, Some(10));
        assert!(filter.newest_first);
        assert_eq!(
            browse.query(Some(TaskCursor(7))),
            "action=mail&state=delayed&id=a%20b&from=2026-12-24T18%3A00%3A00Z\
             &to=2026-12-24T18%3A00%3A00Z&limit=10&after=7"
        );
        // Empty form fields filter nothing.
        let empty = parse(&params(&[("action", ""), ("state", "")]));
        assert_eq!(empty.query(None), "");
    }

    #[test]
    fn bad_parameters_are_refused_naming_them() {
        for (pairs, named) in [
            (params(&[("state", "stuck")]), "state"),
            (params(&[("from", "yesterday")]), "from=\"yesterday\""),
            (params(&[("after", "x")]), "after"),
            (params(&[("limit", "0")]), "limit=\"0\""),
            (params(&[("limit", "501")]), "limit=\"501\""),
            (params(&[("colour", "red")]), "\"colour\""),
        ] {
            let Err(Problem(status, problem)) = Browse::parse(&pairs) else {
                panic!("{pairs:?} accepted");
            };
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(problem.contains(named), "{problem}");
        }
    }
}
