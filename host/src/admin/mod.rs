//! The admin listener of `parade run`: health, Prometheus metrics, a read-only dashboard,
//! and a few operator actions guarded by a token.
//!
//! - `GET /healthz` — 200 when the store answers and plugins are loaded, else 503;
//! - `GET /readyz` — 200 while the node is owning tasks, 503 once it is shutting down;
//! - `GET /metrics` — Prometheus text format (see [`metrics`]);
//! - `GET /` and `GET /task?id=ID` — the dashboard, and one task's page (its fields as its
//!   state has them, its tries, its body, and its DAG drawn by [`graph`]);
//! - `GET /tasks` — the task browser ([`browse`]): every task newest first, a keyset page
//!   at a time, filtered by action, state, id prefix and enqueue time;
//! - `GET /api/overview`, `GET /api/task?id=ID`, `GET /api/tasks?...` — the same data as
//!   JSON;
//! - `GET /api/history` — the node's last hour, as the overview's charts draw it
//!   ([`history`]); `GET /overview/panels` — the overview's charts, warnings, schedules,
//!   limits and actions as an HTML fragment, which the overview re-reads to stay current;
//! - `POST /api/task/retry?id=ID`, `POST /api/task/delete?id=ID`,
//!   `POST /api/task/cancel?id=ID[&id=ID...][&reason=TEXT][&cascade=true]`,
//!   `POST /api/action/pause?action=A`, `POST /api/action/resume?action=A`,
//!   `POST /api/schedule/run?name=NAME` — operator
//!   actions, refused unless the request carries `Authorization: Bearer TOKEN` with the
//!   configured `[admin] token` (and refused outright when none is configured). Once the
//!   operator has entered the token, which a page keeps in the tab's `sessionStorage` and
//!   sends only as that header (`operator.js`), the overview offers pause/resume for each
//!   action and "run now" for each schedule, and a task's page its buttons.
//!
//! It listens on loopback by default; everything it serves comes from the binary. Because a
//! browser on the operator's machine can be made to reach it, it answers only requests
//! whose `Host` names it ([`hosts`]: its address, `localhost`, `[admin] hosts`), never shows
//! a task's performance token, and bounds what slow or numerous clients can hold
//! ([`AdminLimits`]: a connection cap, header and request timeouts). Counts come from one
//! queue summary per second however many clients poll ([`summary`]), and so does every
//! other store read of the overview (recent failures, the schedules' last slots); the
//! overview's warnings are [`warnings`], its charts [`charts`] of the node's [`history`].

mod browse;
mod charts;
mod graph;
mod history;
mod hosts;
mod listener;
mod metrics;
mod pages;
mod summary;
mod warnings;

pub use history::{
    NodeHistory, DAY_SPACING, DAY_TTL, DAY_WINDOW, HISTORY_INTERVAL, HISTORY_SAMPLES,
};
pub use listener::AdminLimits;
pub use summary::{SummaryCache, READ_SPACING, SLOW_READ, SUMMARY_TTL};
pub use warnings::UNSERVED_GRACE;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Serialize, Serializer};
use tokio::sync::watch;

use crate::cli::cancel::CancelAnswer;
use crate::manager::{ActionManager, ManagerStats};
use crate::queue::{
    Error, Parade, QueueSummary, TaskData, TaskFilter, TaskGraph, TaskId, TaskState, TaskStatusCode,
};
use crate::reload::ReloadStats;
use crate::retention::PruneStats;
use crate::runtime::{ComponentActor, FailurePolicy, Runtime};
use crate::schedule::{run_now_task, slot_task_id, slot_text, Schedules};

/// How many recent failures the dashboard lists.
const RECENT_FAILURES: u32 = 20;

/// Everything the admin listener reads and acts on.
pub struct AdminState {
    pub queue: Arc<dyn Parade>,
    pub manager: Arc<ActionManager>,
    pub actor: Arc<ComponentActor>,
    pub runtime: Arc<Runtime>,
    pub reloads: Arc<ReloadStats>,
    /// What the node's pruner deleted.
    pub pruned: Arc<PruneStats>,
    /// `[admin] token`: what operator actions must present.
    pub token: Option<String>,
    /// The owner recorded on this node's tasks.
    pub actor_id: String,
    /// The store, without credentials.
    pub database: String,
    pub started: Instant,
    /// Cleared when the node starts shutting down.
    pub ready: AtomicBool,
    /// `[admin] hosts`: names the listener answers to besides its own address.
    pub hosts: Vec<String>,
    /// What slow and numerous clients may hold.
    pub limits: AdminLimits,
    /// The queue summary every scrape and dashboard poll shares.
    pub summary: SummaryCache,
    /// The node's scheduler, if it runs one: the overview lists its schedules, and an
    /// operator can run one now.
    pub schedules: Option<Schedules>,
    /// What the overview keeps between polls.
    pub dashboard: Dashboard,
}

/// What the overview keeps between polls: the node's history for the charts, since when
/// actions look unserved, and its other store reads, shared as the summary is.
#[derive(Debug, Default)]
pub struct Dashboard {
    history: NodeHistory,
    /// The store's last day, for the longer chart.
    day: history::DayCache,
    unserved: warnings::UnservedSince,
    reads: summary::Cached<StoreReads>,
}

impl Dashboard {
    /// A dashboard whose charts start from zero counters at `started`: the moment before the
    /// node's manager could finish its first task, so that the store's minutes before it (the
    /// charts' hour before the start) hold none of this node's tasks.
    pub fn starting_at(started: chrono::DateTime<chrono::Utc>) -> Self {
        Dashboard {
            history: NodeHistory::starting_at(started),
            ..Dashboard::default()
        }
    }
}

/// The overview's store reads besides the summary.
#[derive(Debug)]
struct StoreReads {
    recent_failures: Vec<TaskData>,
    /// Each schedule's latest slot at or before the read, and its task if the store has it.
    last_slots: Vec<(String, chrono::DateTime<chrono::Utc>, Option<TaskData>)>,
}

/// Serves the admin endpoints on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let allowed = hosts::AllowedHosts::new(listener.local_addr()?, &state.hosts);
    let limits = state.limits;
    tokio::spawn(history::sample_every_interval(state.clone(), stop.clone()));
    let router = Router::new()
        .route("/", get(overview_page))
        .route("/task", get(task_page))
        .route("/tasks", get(browse::tasks_page))
        .route("/api/tasks", get(browse::tasks_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/overview", get(overview_json))
        .route("/api/history", get(history_json))
        .route("/overview/panels", get(overview_panels))
        .route("/api/schedule/run", post(run_schedule))
        .route("/api/task", get(task_json))
        .route("/api/task/retry", post(retry_task))
        .route("/api/task/delete", post(delete_task))
        .route("/api/task/cancel", post(cancel_tasks))
        .route("/api/action/pause", post(pause_action))
        .route("/api/action/resume", post(resume_action))
        .with_state(state)
        .layer(from_fn_with_state(
            limits.request_timeout,
            listener::time_limit,
        ))
        // Outermost: a request for another host gets nothing else.
        .layer(from_fn_with_state(allowed, hosts::refuse_other_hosts));
    listener::serve(listener, router, limits, stop).await
}

/// Binds `address`; the address actually bound (with port 0, the port chosen).
pub async fn bind(address: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// An error answer: a status and a one-line reason.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::from(&e)
    }
}

impl From<&Error> for Problem {
    fn from(e: &Error) -> Self {
        let status = match e {
            Error::TaskNotFound { .. } => StatusCode::NOT_FOUND,
            Error::InvalidTask { .. } | Error::BadStatus(_) => StatusCode::CONFLICT,
            Error::NotMigrated { .. } | Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem(status, e.to_string())
    }
}

async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    let plugins = state.actor.plugins().len();
    match state.queue.ping().await {
        Ok(()) => Json(serde_json::json!({ "store": "ok", "plugins": plugins })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "store": e.to_string(), "plugins": plugins })),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let summary = state.summary.get(state.queue.as_ref()).await;
    let text = metrics::render(&state, summary.as_deref().ok());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A loaded plugin, as the dashboard shows it.
#[derive(Debug, Serialize)]
struct PluginView {
    name: String,
    file: String,
    hash: String,
    actions: Vec<String>,
    memory_mib: usize,
    timeout: String,
    fuel: Option<u64>,
    on_failure: &'static str,
    /// Hosts it may send HTTP requests to.
    allowed_hosts: Vec<String>,
    concurrency: ConcurrencyView,
}

/// A plugin's concurrency limits and how much of each is in use.
#[derive(Debug, Serialize)]
struct ConcurrencyView {
    /// `concurrency`: most of its tasks in progress across the store (`None`: no limit).
    limit: Option<u32>,
    /// Its tasks in progress in the store that the limit counts, from the summary: owned
    /// within a limit, the ownership not lapsed (a task owned by a node without the limit,
    /// or whose owner stopped extending it, is in progress but not counted).
    in_progress: u64,
    /// `node_concurrency`: most on this node.
    node_limit: Option<u32>,
    /// Its tasks this node holds: owned and not yet settled.
    node_held: u64,
}

/// The node, its plugins and the queue at a glance.
#[derive(Debug, Serialize)]
struct Overview {
    actor_id: String,
    database: String,
    uptime_seconds: u64,
    paused: Vec<String>,
    manager: ManagerView,
    summary: QueueSummary,
    plugins: Vec<PluginView>,
    recent_failures: Vec<ShownTask>,
    /// What a person would otherwise miss ([`warnings`]).
    warnings: Vec<warnings::Warning>,
    schedules: Vec<ScheduleView>,
    /// Each concurrency limit of the node's plugins, with its use.
    limits: Vec<LimitView>,
    /// The actions this node's plugins serve, and whether each is paused here.
    actions: Vec<ActionView>,
    /// Whether operator actions are on (`[admin] token` is set).
    operator: bool,
}

/// A schedule with its next slot and its latest.
#[derive(Debug, Serialize)]
struct ScheduleView {
    name: String,
    timing: String,
    action: String,
    /// The next slot (`None`: it never falls due again).
    next: Option<String>,
    /// The latest slot at or before now, and what the store holds for it.
    last: Option<LastSlot>,
}

/// A schedule's latest slot: its task, if the store has it (a slot is missed when no node
/// ran the schedule then, or when retention has pruned its task).
#[derive(Debug, Serialize)]
struct LastSlot {
    slot: String,
    task_id: String,
    /// The task's status code, `None` if the store does not hold it.
    status_code: Option<TaskStatusCode>,
}

/// One concurrency limit and its use.
#[derive(Debug, Serialize)]
struct LimitView {
    plugin: String,
    /// `store` (`concurrency`) or `node` (`node_concurrency`).
    scope: &'static str,
    limit: u32,
    /// Tasks of the plugin's actions in progress in the store, or held by this node.
    in_use: u64,
}

/// An action this node serves.
#[derive(Debug, Serialize)]
struct ActionView {
    action: String,
    plugin: String,
    paused: bool,
}

/// A task row as the admin listener shows it: without its performance token, the secret
/// with which whoever owns the task extends and returns it.
#[derive(Debug)]
struct ShownTask(TaskData);

impl ShownTask {
    fn new(mut task: TaskData) -> Self {
        task.performance_token = None;
        ShownTask(task)
    }

    fn all(tasks: Vec<TaskData>) -> Vec<ShownTask> {
        tasks.into_iter().map(ShownTask::new).collect()
    }
}

impl Deref for ShownTask {
    type Target = TaskData;
    fn deref(&self) -> &TaskData {
        &self.0
    }
}

impl Serialize for ShownTask {
    /// The row's JSON without the `performance_token` key.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut row = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        if let Some(columns) = row.as_object_mut() {
            columns.remove("performance_token");
        }
        row.serialize(serializer)
    }
}

#[derive(Debug, Serialize)]
struct ManagerView {
    owned: u64,
    completed: u64,
    aborted: u64,
    retried: u64,
    lost: u64,
    released: u64,
}

impl From<ManagerStats> for ManagerView {
    fn from(s: ManagerStats) -> Self {
        ManagerView {
            owned: s.owned,
            completed: s.completed,
            aborted: s.aborted,
            retried: s.retried,
            lost: s.lost,
            released: s.released,
        }
    }
}

async fn overview(state: &AdminState) -> Result<Overview, Problem> {
    let summary = state
        .summary
        .get_for_poll(&state.queue)
        .await
        .map_err(|e| Problem::from(&*e))?;
    let schedules = state
        .schedules
        .as_ref()
        .map(Schedules::current)
        .unwrap_or_default();
    let reads = {
        let (queue, schedules) = (state.queue.clone(), schedules.clone());
        state
            .dashboard
            .reads
            .get_for_poll(move || async move { store_reads(queue.as_ref(), &schedules).await })
            .await
            .map_err(|e| Problem::from(&*e))?
    };
    let held = state.manager.stats_by_action();
    let plugins = state
        .actor
        .plugins()
        .iter()
        .map(|p| PluginView {
            name: p.name.clone(),
            file: p.origin(),
            hash: p.hash.clone(),
            actions: p.actions.clone(),
            memory_mib: p.limits.memory >> 20,
            timeout: humantime::format_duration(p.limits.timeout).to_string(),
            fuel: p.limits.fuel,
            on_failure: match p.limits.on_failure {
                FailurePolicy::Retry => "retry",
                FailurePolicy::Abort => "abort",
            },
            allowed_hosts: p.grants.allowed_host_names(),
            concurrency: ConcurrencyView {
                limit: p.limits.concurrency.global.map(NonZeroU32::get),
                in_progress: summary.within_limit(&p.actions),
                node_limit: p.limits.concurrency.node.map(NonZeroU32::get),
                node_held: p
                    .actions
                    .iter()
                    .filter_map(|a| held.get(a))
                    .map(|s| s.held)
                    .sum(),
            },
        })
        .collect::<Vec<PluginView>>();
    let paused = state.actor.paused();
    let now = chrono::Utc::now();
    let warnings = warnings::warnings(&warnings::Inputs {
        summary: &summary,
        plugins: &plugins,
        paused: &paused,
        rejection: state.reloads.last_rejection(),
        unserved: &state.dashboard.unserved,
        now,
    });
    let limits = plugins
        .iter()
        .flat_map(|p| {
            let c = &p.concurrency;
            [
                c.limit.map(|limit| ("store", limit, c.in_progress)),
                c.node_limit.map(|limit| ("node", limit, c.node_held)),
            ]
            .into_iter()
            .flatten()
            .map(|(scope, limit, in_use)| LimitView {
                plugin: p.name.clone(),
                scope,
                limit,
                in_use,
            })
        })
        .collect();
    let actions = plugins
        .iter()
        .flat_map(|p| {
            p.actions.iter().map(|a| ActionView {
                action: a.clone(),
                plugin: p.name.clone(),
                paused: paused.contains(a),
            })
        })
        .collect();
    let schedules = schedules
        .iter()
        .map(|spec| {
            let last = reads
                .last_slots
                .iter()
                .find(|(name, ..)| *name == spec.name)
                .map(|(_, slot, task)| LastSlot {
                    slot: slot_text(*slot),
                    task_id: slot_task_id(&spec.name, *slot).to_string(),
                    status_code: task.as_ref().map(|t| t.status_code),
                });
            ScheduleView {
                name: spec.name.clone(),
                timing: spec.timing.to_string(),
                action: spec.action.clone(),
                next: spec.timing.next_after(now).map(slot_text),
                last,
            }
        })
        .collect();
    Ok(Overview {
        actor_id: state.actor_id.clone(),
        database: state.database.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
        paused,
        manager: state.manager.stats().into(),
        summary: QueueSummary::clone(&summary),
        plugins,
        recent_failures: ShownTask::all(reads.recent_failures.clone()),
        warnings,
        schedules,
        limits,
        actions,
        operator: state.token.is_some(),
    })
}

/// The overview's store reads besides the summary: the recent failures (newest first,
/// through `tasks_aborted_seq_idx`), and each schedule's latest slot's task, by its id.
async fn store_reads(
    queue: &dyn Parade,
    schedules: &[crate::config::ScheduleSpec],
) -> Result<StoreReads, Error> {
    let recent_failures = queue
        .list_tasks(&TaskFilter {
            status_code: Some(TaskStatusCode::Aborted),
            newest_first: true,
            limit: Some(RECENT_FAILURES),
            ..TaskFilter::default()
        })
        .await?;
    let now = chrono::Utc::now();
    let mut last_slots = Vec::new();
    for spec in schedules {
        if let Some(slot) = spec.timing.latest_at_or_before(now) {
            let task = queue.get_task(&slot_task_id(&spec.name, slot)).await?;
            last_slots.push((spec.name.clone(), slot, task));
        }
    }
    Ok(StoreReads {
        recent_failures,
        last_slots,
    })
}

async fn history_json(State(state): State<Arc<AdminState>>) -> Json<history::HistoryView> {
    Json(history::view(&state).await)
}

async fn overview_panels(State(state): State<Arc<AdminState>>) -> Result<Html<String>, Problem> {
    let overview = overview(&state).await?;
    let history = history::view(&state).await;
    Ok(Html(pages::overview_panels(&overview, &history)))
}

async fn overview_json(State(state): State<Arc<AdminState>>) -> Result<Json<Overview>, Problem> {
    Ok(Json(overview(&state).await?))
}

async fn overview_page(State(state): State<Arc<AdminState>>) -> Result<Html<String>, Problem> {
    let overview = overview(&state).await?;
    let history = history::view(&state).await;
    Ok(Html(pages::overview(&overview, &history)))
}

/// The most tasks a task's page draws of its DAG.
const GRAPH_NODES: u32 = 300;

/// One task, what the store keeps about it besides its row, and its DAG.
#[derive(Debug, Serialize)]
struct TaskView {
    task: ShownTask,
    /// Its state now (pending split into waiting, delayed and pending).
    state: TaskState,
    /// When it was inserted.
    enqueued_at: chrono::DateTime<chrono::Utc>,
    /// When it ended, if it has.
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Tasks that signal it.
    predecessors: Vec<ShownTask>,
    /// Tasks it signals (missing ones are left out).
    successors: Vec<ShownTask>,
    /// Every ancestor and descendant, up to [`GRAPH_NODES`].
    graph: TaskGraph,
}

fn id_param(params: &HashMap<String, String>, key: &str) -> Result<String, Problem> {
    params
        .get(key)
        .cloned()
        .ok_or_else(|| Problem(StatusCode::BAD_REQUEST, format!("missing ?{key}=")))
}

async fn task_view(state: &AdminState, id: &str) -> Result<TaskView, Problem> {
    let id = TaskId::from(id);
    let not_found = || {
        Problem::from(Error::TaskNotFound {
            task_id: id.clone(),
        })
    };
    let listed = state
        .queue
        .list_task_page(&TaskFilter {
            id: Some(id.clone()),
            limit: Some(1),
            ..TaskFilter::default()
        })
        .await?
        .tasks
        .pop()
        .ok_or_else(not_found)?;
    let graph = state
        .queue
        .task_graph(&id, GRAPH_NODES)
        .await?
        .ok_or_else(not_found)?;
    // The direct neighbours are the graph's first level on each side: whole rows for them
    // (to say when each is due) by primary key, rather than another search for predecessors.
    let mut predecessors = Vec::new();
    let mut successors = Vec::new();
    for (from, to) in graph.edges.iter().take(1000) {
        let (list, neighbour) = match (from == &id, to == &id) {
            (false, true) => (&mut predecessors, from),
            (true, false) => (&mut successors, to),
            _ => continue,
        };
        if list.len() < 100 {
            if let Some(t) = state.queue.get_task(neighbour).await? {
                list.push(t);
            }
        }
    }
    let order = |tasks: &mut Vec<TaskData>, ids: &[TaskId]| {
        tasks.sort_by_key(|t| ids.iter().position(|i| *i == t.id).unwrap_or(usize::MAX))
    };
    order(&mut successors, &listed.task.to_signal_after);
    Ok(TaskView {
        state: TaskState::of(&listed.task, chrono::Utc::now()),
        enqueued_at: listed.enqueued_at,
        finished_at: listed.finished_at,
        task: ShownTask::new(listed.task),
        predecessors: ShownTask::all(predecessors),
        successors: ShownTask::all(successors),
        graph,
    })
}

async fn task_json(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<TaskView>, Problem> {
    Ok(Json(task_view(&state, &id_param(&params, "id")?).await?))
}

async fn task_page(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, Problem> {
    let view = task_view(&state, &id_param(&params, "id")?).await?;
    Ok(Html(pages::task(&view, state.token.is_some())))
}

/// Refuses unless the request carries the configured token.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(token) = &state.token else {
        return Err(Problem(
            StatusCode::FORBIDDEN,
            "operator actions are off: set [admin] token in parade.toml".into(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(presented.as_bytes(), token.as_bytes()) {
        return Err(Problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer TOKEN".into(),
        ));
    }
    Ok(())
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the token, reads the request's `key` parameter, and runs `act` on it; `act` says
/// what it did, which is logged and answered.
async fn operator<Act, Done>(
    state: &AdminState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    key: &str,
    act: Act,
) -> Result<Json<serde_json::Value>, Problem>
where
    Act: FnOnce(String) -> Done,
    Done: std::future::Future<Output = Result<String, Problem>>,
{
    authorize(state, headers)?;
    let what = act(id_param(params, key)?).await?;
    tracing::info!("admin: {what}");
    Ok(Json(serde_json::json!({ "ok": what })))
}

async fn retry_task(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let target = state.clone();
    operator(&state, &headers, &params, "id", |id| async move {
        target.queue.retry_task(&TaskId::from(id.as_str())).await?;
        Ok(format!("task {id} is pending again"))
    })
    .await
}

async fn delete_task(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let target = state.clone();
    operator(&state, &headers, &params, "id", |id| async move {
        let task = TaskId::from(id.as_str());
        if target.queue.get_task(&task).await?.is_none() {
            return Err(Error::TaskNotFound { task_id: task }.into());
        }
        target.queue.delete_tasks(&[task]).await?;
        Ok(format!("task {id} deleted"))
    })
    .await
}

/// `POST /api/task/cancel?id=ID[&id=ID...][&reason=TEXT][&cascade=true|false]`: cancels the
/// tasks (see [`Parade::cancel_tasks`]) and answers 200 with one answer per task, the listed
/// ids first, then those the cascade reached:
/// `{"ok": "SUMMARY", "tasks": [{"id", "outcome", "status_code"?, "cascade"}]}`, where
/// `outcome` is `cancelled`, `already-ended` (with the code it ended with) or `not-found`.
async fn cancel_tasks(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, Problem> {
    authorize(&state, &headers)?;
    let bad = |problem: String| Problem(StatusCode::BAD_REQUEST, problem);
    let (mut ids, mut reason, mut cascade) = (Vec::new(), String::new(), false);
    for (key, value) in params {
        match key.as_str() {
            "id" => ids.push(TaskId::from(value)),
            "reason" if value.contains('\0') => {
                return Err(bad("the reason contains a NUL character".into()))
            }
            "reason" => reason = value,
            "cascade" => {
                cascade = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("cascade is true or false, not {value:?}"))),
                }
            }
            _ => {
                return Err(bad(format!(
                    "unknown parameter {key:?}: cancel takes id (repeatable), reason and \
                     cascade"
                )))
            }
        }
    }
    if ids.is_empty() {
        return Err(bad(
            "missing ?id= (repeat it to cancel several tasks)".into()
        ));
    }
    let answers = CancelAnswer::all(
        &ids,
        state.queue.cancel_tasks(&ids, &reason, cascade).await?,
    );
    let count = |outcome: &str| answers.iter().filter(|a| a.outcome == outcome).count();
    let mut summary = format!(
        "{} cancelled, {} already ended, {} not found",
        count("cancelled"),
        count("already-ended"),
        count("not-found")
    );
    let by_cascade = answers.iter().filter(|a| a.cascade).count();
    if by_cascade > 0 {
        summary.push_str(&format!(" ({by_cascade} reached by the cascade)"));
    }
    let listed: Vec<&str> = ids.iter().take(10).map(TaskId::as_str).collect();
    let more = ids.len().saturating_sub(listed.len());
    tracing::info!(
        "admin: cancel {}{} (reason {reason:?}, cascade {cascade}): {summary}",
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Ok(Json(serde_json::json!({ "ok": summary, "tasks": answers })))
}

async fn pause_action(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let target = state.clone();
    operator(&state, &headers, &params, "action", |action| async move {
        if !target.actor.pause(&action) {
            return Err(Problem(
                StatusCode::NOT_FOUND,
                format!("no plugin of this node serves action {action:?}"),
            ));
        }
        Ok(format!("action {action} paused on this node"))
    })
    .await
}

async fn resume_action(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let target = state.clone();
    operator(&state, &headers, &params, "action", |action| async move {
        if !target.actor.resume(&action) {
            return Err(Problem(
                StatusCode::CONFLICT,
                format!("action {action:?} is not paused"),
            ));
        }
        Ok(format!("action {action} resumed on this node"))
    })
    .await
}

/// `POST /api/schedule/run?name=NAME`: enqueues schedule NAME's task now, outside its slots,
/// under an id no slot can have ([`run_now_task`]); its slots go on as before.
async fn run_schedule(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let target = state.clone();
    operator(&state, &headers, &params, "name", |name| async move {
        let schedules = target
            .schedules
            .as_ref()
            .map(Schedules::current)
            .unwrap_or_default();
        let Some(spec) = schedules.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
            return Err(Problem(
                StatusCode::NOT_FOUND,
                format!(
                    "no schedule {name:?} on this node (its schedules: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let task = run_now_task(spec, chrono::Utc::now());
        target
            .queue
            .insert_tasks(std::slice::from_ref(&task))
            .await?;
        Ok(format!(
            "schedule {name}: task {} of action {} enqueued now",
            task.id, task.action
        ))
    })
    .await
}
