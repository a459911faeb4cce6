//! Soak: a node processing no-op tasks continuously with retention on, per backend. Prints
//! one line a minute with the figures that must stay flat, then the ratio of the last
//! minute's throughput to the first's:
//!
//! - `soak_minute`: tasks/s in that minute, the rows in the store at its end and the most
//!   seen in it (sampled every second), the tasks pruned, and the store's size: on SQLite
//!   the database file, its WAL and the pages on its free list; on PostgreSQL
//!   `pg_total_relation_size('tasks')`, dead tuples and autovacuums of `tasks`;
//! - `soak_throughput_ratio`: the last minute's tasks/s over the first's (target 0.9-1.1).
//!
//! The node is the one `parade run` wires together: an ActionManager running the `noop`
//! component (scripts/build-plugins.sh) with its workers, and the node's
//! [`Pruner`](parade_host::retention::Pruner). A producer keeps about 5,000 tasks pending or
//! running. Run through `scripts/bench.sh soak`, which starts the durable PostgreSQL cluster
//! (or set PARADE_BENCH_DATABASE_URL to a cluster's admin URL).
//!
//! cargo bench -p parade-host --bench soak -- [--backend postgres|sqlite|all]
//!     [--minutes N] [--retention DURATION] [--workers N] [--quick]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parade_host::manager::{ActionManager, ManagerProperties};
use parade_host::queue::{ActorId, Parade, PgParade, Retention, SqliteParade, TaskData};
use parade_host::retention::Pruner;
use parade_host::runtime::{ComponentActor, PluginLimits, Runtime};
use sqlx::Connection;
use tokio::sync::watch;

/// Tasks the producer keeps pending or running.
const BACKLOG: u64 = 5_000;
/// Tasks per insert.
const INSERT_BATCH: usize = 500;

struct Args {
    backends: Vec<String>,
    minutes: u32,
    retention: Duration,
    workers: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec!["postgres".into(), "sqlite".into()],
        minutes: 5,
        retention: Duration::from_secs(10),
        workers: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => {
                let value = it.next().context("--backend needs a value")?;
                args.backends = match value.as_str() {
                    "all" => vec!["postgres".into(), "sqlite".into()],
                    "postgres" | "sqlite" => vec![value],
                    other => anyhow::bail!("unknown backend {other:?}"),
                };
            }
            "--minutes" => args.minutes = it.next().context("--minutes needs a value")?.parse()?,
            "--retention" => {
                args.retention =
                    humantime::parse_duration(&it.next().context("--retention needs a value")?)?
            }
            "--workers" => args.workers = it.next().context("--workers needs a value")?.parse()?,
            "--quick" => args.minutes = 2,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(
        args.minutes >= 2,
        "--minutes: at least 2 (a first and a last)"
    );
    Ok(args)
}

/// The benchmark cluster's admin URL.
fn admin_url() -> anyhow::Result<String> {
    std::env::var("PARADE_BENCH_DATABASE_URL")
        .context("set PARADE_BENCH_DATABASE_URL or run scripts/bench.sh soak")
}

async fn admin_execute(statement: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(&admin_url()?).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    Ok(())
}

/// Where a backend's size is read.
enum Measured {
    Sqlite(std::path::PathBuf),
    Postgres { name: String, url: String },
}

impl Measured {
    /// The store's size, as one line's worth of `key=value` figures.
    async fn size(&self) -> anyhow::Result<String> {
        match self {
            Measured::Sqlite(path) => {
                let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let wal = path.with_file_name(format!(
                    "{}-wal",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ));
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(format!(
                    "file={:.1}MiB wal={:.1}MiB free_pages={free}",
                    mib(len(path)),
                    mib(len(&wal))
                ))
            }
            Measured::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                let (total, dead, autovacuums): (i64, i64, i64) = sqlx::query_as(
                    "SELECT pg_total_relation_size('tasks'), n_dead_tup, autovacuum_count \
                     FROM pg_stat_user_tables WHERE relname = 'tasks'",
                )
                .fetch_one(&mut conn)
                .await?;
                conn.close().await?;
                Ok(format!(
                    "tasks_total_relation_size={:.1}MiB dead_tuples={dead} autovacuums={autovacuums}",
                    mib(total as u64)
                ))
            }
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

async fn fresh_store(
    backend: &str,
    dir: &tempfile::TempDir,
) -> anyhow::Result<(Arc<dyn Parade>, Measured)> {
    if backend == "sqlite" {
        let path = dir
            .path()
            .join(format!("soak_{}.db", uuid::Uuid::new_v4().simple()));
        let store = SqliteParade::open(&format!("sqlite://{}", path.display())).await?;
        return Ok((Arc::new(store), Measured::Sqlite(path)));
    }
    let name = format!("soak_{}", uuid::Uuid::new_v4().simple());
    admin_execute(&format!("CREATE DATABASE {name}")).await?;
    let url = admin_url()?.replacen("/postgres?", &format!("/{name}?"), 1);
    let store = PgParade::connect(&url).await?;
    store.migrate().await?;
    Ok((Arc::new(store), Measured::Postgres { name, url }))
}

async fn soak(backend: &str, args: &Args, dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let (store, measured) = fresh_store(backend, dir).await?;
    let runtime = Runtime::new(None)?;
    let component = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/noop.wasm");
    let plugin = runtime
        .load_file(&component, PluginLimits::default())
        .await
        .context("run scripts/build-plugins.sh first")?;
    let props = ManagerProperties {
        workers: args.workers,
        ..ManagerProperties::default()
    };
    let actor = Arc::new(ComponentActor::new(
        runtime,
        vec![Arc::new(plugin)],
        store.clone(),
        ActorId::from("soak"),
        props.max_duration,
    )?);
    let manager = Arc::new(ActionManager::start(actor, store.clone(), props));
    let (stop, stopping) = watch::channel(false);
    let retention = Retention {
        completed: Some(args.retention),
        aborted: Some(args.retention),
    };
    let (_control, pruned, pruner) = Pruner::spawn(store.clone(), retention, stopping);

    // The producer tops the queue up to BACKLOG open tasks, counting from the manager's
    // results rather than asking the store.
    let inserted = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = tokio::spawn({
        let (store, manager, inserted, producing) = (
            store.clone(),
            manager.clone(),
            inserted.clone(),
            producing.clone(),
        );
        async move {
            let mut next = 0u64;
            while producing.load(Ordering::Relaxed) {
                let open = next - manager.stats().completed.min(next);
                if open >= BACKLOG {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let batch: Vec<TaskData> = (next..next + INSERT_BATCH as u64)
                    .map(|i| TaskData::new(format!("soak-{i}"), "noop"))
                    .collect();
                store.insert_tasks(&batch).await?;
                next += INSERT_BATCH as u64;
                inserted.store(next, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }
    });

    let rows = |store: Arc<dyn Parade>| async move {
        anyhow::Ok(
            store
                .summary()
                .await?
                .counts
                .iter()
                .map(|c| c.count)
                .sum::<u64>(),
        )
    };
    let mut rates = Vec::new();
    let mut completed_before = 0;
    let mut pruned_before = 0;
    for minute in 1..=args.minutes {
        let started = Instant::now();
        let mut most_rows = 0;
        while started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            most_rows = most_rows.max(rows(store.clone()).await?);
        }
        let completed = manager.stats().completed;
        let rate = (completed - completed_before) as f64 / started.elapsed().as_secs_f64();
        let pruned_now = pruned.pruned.load(Ordering::Relaxed);
        println!(
            "soak_minute: {backend} minute={minute} tasks_per_s={rate:.0} rows={} rows_max={most_rows} pruned={} {} (no-op component, {} workers, retention {})",
            rows(store.clone()).await?,
            pruned_now - pruned_before,
            measured.size().await?,
            args.workers,
            humantime::format_duration(args.retention),
        );
        rates.push(rate);
        (completed_before, pruned_before) = (completed, pruned_now);
    }
    producing.store(false, Ordering::Relaxed);
    producer.await??;
    let _ = stop.send(true);
    let _ = pruner.await;
    manager.close().await;
    let (first, last) = (rates[0], rates[rates.len() - 1]);
    println!(
        "soak_throughput_ratio: {:.2} ({backend}, last minute {last:.0} / first minute {first:.0} tasks/s over {} minutes, {} tasks inserted; target within 0.9-1.1)",
        last / first,
        args.minutes,
        inserted.load(Ordering::Relaxed),
    );
    drop(store);
    if let Measured::Postgres { name, .. } = measured {
        admin_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    for backend in &args.backends {
        soak(backend, &args, &dir).await?;
    }
    Ok(())
}
