//! Dashboard benchmark: how fast a node's admin listener answers the dashboard with N tasks
//! in the store (default 1,000,000). Prints one figure per line with its conditions.
//!
//! Run through `scripts/bench.sh dashboard`, which starts a throwaway PostgreSQL cluster; or
//! set PARADE_BENCH_DATABASE_URL to a cluster's admin URL (`.../postgres?...`), in which the
//! benchmark creates (and finally drops) its own `bench_<uuid>` database.
//!
//! cargo bench -p parade-host --bench dashboard -- [--backend postgres|sqlite|all] [--tasks N] [--quick] [--only overview|browser]
//!
//! Method. Each backend gets a fresh store loaded in batches of 100,000 tasks over ten
//! actions — half completed, a quarter pending, an eighth aborted, an eighth delayed a day,
//! and 100 in progress — then `VACUUM ANALYZE tasks` (SQLite: `ANALYZE`). An admin listener
//! runs in this process on it (no plugins), and a client on loopback times whole HTTP
//! requests (connect to last byte).
//!
//! The overview (`GET /`, `GET /api/overview`, `GET /overview/panels`, `GET /api/history`)
//! reads the store through caches that answer every poll for a second ([`SUMMARY_TTL`]), or
//! four times as long as the read took: *warm* is a poll while the cache holds (what nearly
//! every poll of every tab is: the store is not asked), *cold* a poll that finds it expired.
//! A cold poll waits for the store's summary (a `GROUP BY` over every task) and the recent
//! failures while those are quick; once a read took longer than
//! [`SLOW_READ`](parade_host::admin::SLOW_READ) it is answered with the expired value and
//! the read refreshes it in the background, so only a node's first poll waits for a slow
//! store (as long as the summary query alone, timed first: the median of 5 calls of
//! `Parade::summary`). Warm: the median and p95 of 50 polls; cold: the median and worst of
//! 7 polls, each after the cache expired.
//! The task browser (`bench_browser`): a DAG of 302 tasks is added (1 → 150 → 1 → 150),
//! then each of the browser's queries — `list_task_page` for a page of 50 newest first,
//! unfiltered, from a cursor, by each state, action, id prefix, enqueue time and a task's
//! predecessors — is timed over 21 calls (median and worst), as are `GET /api/tasks` and
//! `GET /tasks` over HTTP and `task_graph` of three tasks of the DAG (bound 300).
//! `--only overview|browser` runs one half. --quick: 20,000 tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::admin::{self, AdminState, SUMMARY_TTL};
use parade_host::manager::{ActionManager, ManagerProperties};
use parade_host::queue::{ActorId, Parade, PgParade, SqliteParade, TaskData, TaskStatusCode};
use parade_host::runtime::{ComponentActor, Runtime};
use sqlx::Connection;

/// Tasks per insert_tasks call.
const INSERT_BATCH: usize = 100_000;
/// The actions the tasks are spread over.
const ACTIONS: usize = 10;
const WARM_POLLS: usize = 50;
const COLD_POLLS: usize = 7;
const SUMMARY_CALLS: usize = 5;
/// The overview's paths, each timed warm and cold.
const OVERVIEW_PATHS: [&str; 4] = ["/", "/api/overview", "/overview/panels", "/api/history"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

struct Args {
    backends: Vec<Backend>,
    tasks: usize,
    /// `--only overview` or `--only browser`: one half of the figures.
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec![Backend::Postgres, Backend::Sqlite],
        tasks: 1_000_000,
        only: None,
    };
    let mut tasks = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => {
                let value = it.next().context("--backend needs a value")?;
                args.backends = match value.as_str() {
                    "all" => vec![Backend::Postgres, Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    "sqlite" => vec![Backend::Sqlite],
                    other => anyhow::bail!("unknown backend {other:?}"),
                };
            }
            "--tasks" => {
                let value = it.next().context("--tasks needs a value")?;
                tasks = Some(value.parse().with_context(|| format!("--tasks {value}"))?);
            }
            "--quick" => args.tasks = 20_000,
            "--only" => {
                let value = it.next().context("--only needs overview or browser")?;
                ensure!(
                    value == "overview" || value == "browser",
                    "--only takes overview or browser, not {value:?}"
                );
                args.only = Some(value);
            }
            // cargo bench passes --bench to every benchmark binary.
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    if let Some(tasks) = tasks {
        args.tasks = tasks;
    }
    ensure!(args.tasks >= 1_000, "--tasks must be at least 1000");
    Ok(args)
}

/// A fresh, migrated store; for PostgreSQL, what dropping its database takes.
struct Store {
    parade: Arc<dyn Parade>,
    postgres: Option<(sqlx::PgPool, String, String)>,
    sqlite: Option<sqlx::SqlitePool>,
}

impl Store {
    async fn fresh(backend: Backend, dir: &tempfile::TempDir) -> anyhow::Result<Store> {
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join(format!("{name}.db"));
                let store = SqliteParade::open(&format!("sqlite://{}", path.display())).await?;
                let pool = store.pool().clone();
                Ok(Store {
                    parade: Arc::new(store),
                    postgres: None,
                    sqlite: Some(pool),
                })
            }
            Backend::Postgres => {
                let admin_url = std::env::var("PARADE_BENCH_DATABASE_URL").context(
                    "set PARADE_BENCH_DATABASE_URL to a cluster's admin URL \
                     (postgres://...@.../postgres?...) or run scripts/bench.sh dashboard",
                )?;
                ensure!(
                    admin_url.contains("/postgres?") || admin_url.ends_with("/postgres"),
                    "PARADE_BENCH_DATABASE_URL must name the database postgres: {admin_url}"
                );
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let url = if admin_url.contains("/postgres?") {
                    admin_url.replacen("/postgres?", &format!("/{name}?"), 1)
                } else {
                    format!("{}/{name}", admin_url.trim_end_matches("/postgres"))
                };
                let store = PgParade::connect(&url).await?;
                store.migrate().await?;
                let pool = store.pool().clone();
                Ok(Store {
                    parade: Arc::new(store),
                    postgres: Some((pool, admin_url, name)),
                    sqlite: None,
                })
            }
        }
    }

    /// Refreshes planner statistics and the visibility map after the bulk load.
    async fn analyze(&self) -> anyhow::Result<()> {
        if let Some((pool, ..)) = &self.postgres {
            sqlx::query("VACUUM ANALYZE tasks").execute(pool).await?;
        }
        if let Some(pool) = &self.sqlite {
            sqlx::query("ANALYZE").execute(pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        drop(self.parade);
        if let Some((pool, admin_url, database)) = self.postgres {
            pool.close().await;
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
            admin.close().await?;
        }
        if let Some(pool) = self.sqlite {
            pool.close().await;
        }
        Ok(())
    }
}

/// Loads `count` tasks over [`ACTIONS`] actions: half completed, a quarter pending, an eighth
/// aborted, an eighth delayed a day; then owns 100 so some are in progress.
async fn load(parade: &dyn Parade, count: usize) -> anyhow::Result<()> {
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    for start in (0..count).step_by(INSERT_BATCH) {
        let batch: Vec<TaskData> = (start..(start + INSERT_BATCH).min(count))
            .map(|i| {
                let mut task = TaskData {
                    body: Some(format!("{{\"n\":{i}}}")),
                    ..TaskData::new(format!("t-{i}"), format!("action-{}", i % ACTIONS))
                };
                match (i / ACTIONS) % 8 {
                    0..=3 => task.status_code = TaskStatusCode::Completed,
                    4 => {
                        task.status_code = TaskStatusCode::Aborted;
                        task.status = Some("failed".into());
                    }
                    5 => task.run_after = Some(tomorrow),
                    _ => {}
                }
                task
            })
            .collect();
        parade.insert_tasks(&batch).await?;
    }
    let actions: Vec<String> = (0..ACTIONS).map(|a| format!("action-{a}")).collect();
    parade
        .own_tasks(
            &ActorId::from("bench-owner"),
            100,
            &actions,
            Some(Duration::from_secs(3600)),
        )
        .await?;
    Ok(())
}

/// An admin listener in this process on `queue`, serving no plugins: its address, and the
/// sender that stops it.
async fn admin_in_process(
    queue: Arc<dyn Parade>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::watch::Sender<bool>)> {
    let runtime = Runtime::new(None)?;
    let actor = Arc::new(ComponentActor::new(
        runtime.clone(),
        Vec::new(),
        queue.clone(),
        ActorId::from("bench"),
        Duration::from_secs(60),
    )?);
    let manager = Arc::new(ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties::default(),
    ));
    let state = Arc::new(AdminState {
        queue,
        manager,
        actor,
        runtime,
        reloads: Arc::default(),
        pruned: Arc::default(),
        token: None,
        actor_id: "bench".into(),
        database: "bench".into(),
        started: Instant::now(),
        ready: std::sync::atomic::AtomicBool::new(true),
        hosts: Vec::new(),
        limits: admin::AdminLimits::default(),
        summary: admin::SummaryCache::default(),
        schedules: None,
        dashboard: admin::Dashboard::default(),
    });
    let (listener, bound) = admin::bind("127.0.0.1:0".parse()?).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(admin::serve(listener, state, stopped));
    Ok((bound, stop))
}

/// One `GET path` to `address`, timed from connecting to the last byte; fails unless 200.
async fn timed_get(address: std::net::SocketAddr, path: &str) -> anyhow::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(took)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn p95(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 95 / 100).min(samples.len() - 1)]
}

/// The overview's figures on `store`.
async fn bench_overview(backend: Backend, store: &Store, tasks: usize) -> anyhow::Result<()> {
    let name = backend.name();
    let mut summaries = Vec::new();
    for _ in 0..SUMMARY_CALLS {
        let started = Instant::now();
        store.parade.summary().await?;
        summaries.push(started.elapsed());
    }
    let summary_median = median(&mut summaries);
    println!(
        "dashboard summary query: {name}, {tasks} tasks: median {:.1} ms",
        millis(summary_median)
    );
    // The longer chart's read: every finished task of the last day, by minute.
    let mut days = Vec::new();
    for _ in 0..SUMMARY_CALLS {
        let started = Instant::now();
        store
            .parade
            .finished_by_minute(chrono::Utc::now() - admin::DAY_WINDOW)
            .await?;
        days.push(started.elapsed());
    }
    let day_median = median(&mut days);
    println!(
        "dashboard day query (finished_by_minute of 24 h): {name}, {tasks} tasks: median {:.1} ms, \
         so read at most every {:.1} s",
        millis(day_median),
        admin::DAY_TTL
            .max(day_median * admin::DAY_SPACING)
            .as_secs_f64()
    );
    // Past the caches' time: a second, or four times as long as a read takes.
    let expiry = SUMMARY_TTL.max(summary_median * admin::READ_SPACING) + Duration::from_millis(200);
    let (address, stop) = admin_in_process(store.parade.clone()).await?;
    for path in OVERVIEW_PATHS {
        // Cold: each poll after the caches expired.
        let mut cold = Vec::new();
        for _ in 0..COLD_POLLS {
            tokio::time::sleep(expiry).await;
            cold.push(timed_get(address, path).await?);
        }
        // Warm: polls within a second of a cold one.
        let mut warm = Vec::new();
        while warm.len() < WARM_POLLS {
            tokio::time::sleep(expiry).await;
            timed_get(address, path).await?;
            let filled = Instant::now();
            while warm.len() < WARM_POLLS && filled.elapsed() < SUMMARY_TTL / 2 {
                warm.push(timed_get(address, path).await?);
            }
        }
        println!(
            "dashboard GET {path}: {name}, {tasks} tasks: warm median {:.2} ms, p95 {:.2} ms \
             ({WARM_POLLS} polls); cold median {:.1} ms, worst {:.1} ms ({COLD_POLLS} polls)",
            millis(median(&mut warm)),
            millis(p95(&mut warm)),
            millis(median(&mut cold)),
            millis(*cold.iter().max().context("no cold polls")?),
        );
    }
    let _ = stop.send(true);
    Ok(())
}

/// Calls of each browser query timed.
const BROWSE_CALLS: usize = 21;
/// Tasks per browser page, as the page shows them.
const BROWSE_PAGE: u32 = 50;

/// The median and the worst of [`BROWSE_CALLS`] runs of `call`, and how many tasks it
/// returned.
async fn time_calls<F, Fut, T>(mut call: F) -> anyhow::Result<(Duration, Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..BROWSE_CALLS {
        let started = Instant::now();
        last = Some(call().await?);
        samples.push(started.elapsed());
    }
    let worst = *samples.iter().max().context("no samples")?;
    Ok((median(&mut samples), worst, last.context("no calls")?))
}

/// The task browser's figures on `store`: `list_task_page` for each filter the page offers
/// (a page of 50, newest first), `GET /api/tasks` over HTTP, and `task_graph` of a task in a
/// DAG of 302 tasks (1 → 150 → 1 → 150) added to the store for it.
async fn bench_browser(backend: Backend, store: &Store, tasks: usize) -> anyhow::Result<()> {
    use parade_host::queue::{TaskCursor, TaskFilter, TaskId, TaskState};
    let name = backend.name();
    let parade = store.parade.clone();
    // A fan-out/fan-in of 302 tasks, waiting on its root: the graph's bound is 300.
    let mut dag = vec![TaskData {
        to_signal_after: (0..150)
            .map(|i| TaskId::from(format!("dag-mid-{i}")))
            .collect(),
        ..TaskData::new("dag-root", "dag")
    }];
    dag.extend((0..150).map(|i| TaskData {
        total_dependencies: Some(1),
        to_signal_after: vec![TaskId::from("dag-join")],
        ..TaskData::new(format!("dag-mid-{i}"), "dag")
    }));
    dag.push(TaskData {
        total_dependencies: Some(150),
        to_signal_after: (0..150)
            .map(|i| TaskId::from(format!("dag-leaf-{i}")))
            .collect(),
        ..TaskData::new("dag-join", "dag")
    });
    dag.extend((0..150).map(|i| TaskData {
        total_dependencies: Some(1),
        ..TaskData::new(format!("dag-leaf-{i}"), "dag")
    }));
    parade.insert_tasks(&dag).await?;
    store.analyze().await?;

    let first = |filter: TaskFilter| TaskFilter {
        newest_first: true,
        limit: Some(BROWSE_PAGE),
        ..filter
    };
    let middle = parade
        .list_task_page(&TaskFilter {
            id: Some(TaskId::from(format!("t-{}", tasks / 2))),
            ..TaskFilter::default()
        })
        .await?
        .tasks
        .first()
        .map(|t| t.cursor)
        .context("no middle task")?;
    let oldest = parade
        .list_task_page(&TaskFilter {
            limit: Some(1),
            ..TaskFilter::default()
        })
        .await?
        .tasks
        .first()
        .map(|t| t.enqueued_at)
        .context("no oldest task")?;
    let mut cases: Vec<(String, TaskFilter)> = vec![
        ("newest page".into(), first(TaskFilter::default())),
        (
            format!("page after the middle task (cursor {middle})"),
            first(TaskFilter {
                after: Some(middle),
                ..TaskFilter::default()
            }),
        ),
        (
            "page after the oldest but one".into(),
            first(TaskFilter {
                after: Some(TaskCursor(2)),
                newest_first: false,
                ..TaskFilter::default()
            }),
        ),
    ];
    for state in TaskState::ALL {
        cases.push((
            format!("state {state}"),
            first(TaskFilter {
                state: Some(state),
                ..TaskFilter::default()
            }),
        ));
    }
    cases.extend([
        (
            "action action-3".into(),
            first(TaskFilter {
                action: Some("action-3".into()),
                ..TaskFilter::default()
            }),
        ),
        (
            "action action-3, state aborted".into(),
            first(TaskFilter {
                action: Some("action-3".into()),
                state: Some(TaskState::Aborted),
                ..TaskFilter::default()
            }),
        ),
        (
            format!(
                "id prefix t-{} (the newest tasks, and one a tenth of the way in)",
                tasks / 10 - 1
            ),
            first(TaskFilter {
                id_prefix: Some(format!("t-{}", tasks / 10 - 1)),
                ..TaskFilter::default()
            }),
        ),
        (
            format!(
                "id prefix t-{} (tasks spread over the oldest tenth)",
                tasks / 1000
            ),
            first(TaskFilter {
                id_prefix: Some(format!("t-{}", tasks / 1000)),
                ..TaskFilter::default()
            }),
        ),
        (
            "enqueued in the last hour".into(),
            first(TaskFilter {
                enqueued_from: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
                ..TaskFilter::default()
            }),
        ),
        (
            "enqueued with the oldest batch (the first 100,000)".into(),
            first(TaskFilter {
                enqueued_from: Some(oldest),
                enqueued_before: Some(oldest + chrono::Duration::microseconds(1)),
                ..TaskFilter::default()
            }),
        ),
        (
            "predecessors of dag-join (the DAG's 150 middle tasks)".into(),
            first(TaskFilter {
                predecessors_of: Some(TaskId::from("dag-join")),
                ..TaskFilter::default()
            }),
        ),
    ]);
    for (what, filter) in &cases {
        let (median, worst, page) = time_calls(|| {
            let parade = parade.clone();
            let filter = filter.clone();
            async move { Ok(parade.list_task_page(&filter).await?) }
        })
        .await?;
        println!(
            "dashboard browse {what}: {name}, {tasks} tasks: median {:.2} ms, worst {:.2} ms \
             ({BROWSE_CALLS} calls, {} tasks returned)",
            millis(median),
            millis(worst),
            page.tasks.len()
        );
    }

    let (address, stop) = admin_in_process(parade.clone()).await?;
    for path in [
        "/api/tasks",
        "/tasks",
        "/api/tasks?state=aborted&action=action-3",
    ] {
        let (median, worst, _) = time_calls(|| timed_get(address, path)).await?;
        println!(
            "dashboard GET {path}: {name}, {tasks} tasks: median {:.2} ms, worst {:.2} ms \
             ({BROWSE_CALLS} requests)",
            millis(median),
            millis(worst)
        );
    }
    let _ = stop.send(true);

    for root in ["dag-root", "dag-join", "dag-leaf-7"] {
        let (median, worst, graph) = time_calls(|| {
            let parade = parade.clone();
            async move {
                parade
                    .task_graph(&TaskId::from(root), 300)
                    .await?
                    .context("no graph")
            }
        })
        .await?;
        println!(
            "dashboard task_graph of {root}: {name}, {tasks} tasks: median {:.1} ms, worst \
             {:.1} ms ({BROWSE_CALLS} calls, {} nodes, truncated {})",
            millis(median),
            millis(worst),
            graph.nodes.len(),
            graph.truncated
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    for &backend in &args.backends {
        let store = Store::fresh(backend, &dir).await?;
        let started = Instant::now();
        load(store.parade.as_ref(), args.tasks).await?;
        store.analyze().await?;
        println!(
            "dashboard load: {}, {} tasks over {ACTIONS} actions in {:.1} s",
            backend.name(),
            args.tasks,
            started.elapsed().as_secs_f64()
        );
        if args.only.as_deref() != Some("browser") {
            bench_overview(backend, &store, args.tasks).await?;
        }
        if args.only.as_deref() != Some("overview") {
            bench_browser(backend, &store, args.tasks).await?;
        }
        store.close().await?;
    }
    Ok(())
}
