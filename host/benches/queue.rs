//! Queue benchmark: insert, own and return rates, and how own latency grows with queue depth.
//! Prints one figure per line with its conditions. Run through `scripts/bench.sh`, which
//! starts a throwaway PostgreSQL cluster; or set PARADE_BENCH_DATABASE_URL to a cluster's
//! admin URL (`.../postgres?...`), where the benchmark creates its own databases.
//!
//! cargo bench -p parade-host --bench queue -- [--backend postgres|sqlite|all] [--tasks N] [--quick]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parade_host::queue::{ActorId, Parade, PgParade, SqliteParade, TaskData, TaskStatusCode};
use sqlx::Connection;

const BATCH: usize = 100_000;
const OWN_BATCH: u32 = 100;
const SAMPLES: usize = 40;

struct Args {
    backends: Vec<String>,
    tasks: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec!["postgres".into(), "sqlite".into()],
        tasks: 1_000_000,
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
            "--tasks" => args.tasks = it.next().context("--tasks needs a value")?.parse()?,
            "--quick" => args.tasks = 50_000,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

/// A fresh, migrated store of `backend`, and a way to refresh its planner statistics.
async fn fresh_store(
    backend: &str,
    dir: &tempfile::TempDir,
) -> anyhow::Result<(Arc<dyn Parade>, Analyze)> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    if backend == "sqlite" {
        let path = dir.path().join(format!("{name}.db"));
        let store = SqliteParade::open(&format!("sqlite://{}", path.display())).await?;
        let analyze = Analyze::Sqlite(store.pool().clone());
        return Ok((Arc::new(store), analyze));
    }
    let admin = std::env::var("PARADE_BENCH_DATABASE_URL")
        .context("set PARADE_BENCH_DATABASE_URL or run scripts/bench.sh")?;
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let store = PgParade::connect(&admin.replacen("/postgres?", &format!("/{name}?"), 1)).await?;
    store.migrate().await?;
    let analyze = Analyze::Postgres(store.pool().clone());
    Ok((Arc::new(store), analyze))
}

/// Refreshes planner statistics after a bulk load, as autovacuum (or SQLite's
/// `PRAGMA optimize`) would soon do on a live system.
enum Analyze {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Analyze {
    async fn run(&self) -> anyhow::Result<()> {
        match self {
            Analyze::Postgres(pool) => {
                sqlx::query("VACUUM ANALYZE tasks").execute(pool).await?;
            }
            Analyze::Sqlite(pool) => {
                sqlx::query("ANALYZE").execute(pool).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn insert(store: &Arc<dyn Parade>, count: usize, prefix: &str) -> anyhow::Result<Duration> {
    let mut elapsed = Duration::ZERO;
    for start in (0..count).step_by(BATCH) {
        let tasks: Vec<TaskData> = (start..(start + BATCH).min(count))
            .map(|i| TaskData {
                body: Some(format!("{{\"n\":{i}}}")),
                ..TaskData::new(format!("{prefix}-{i}"), "work")
            })
            .collect();
        let started = Instant::now();
        store.insert_tasks(&tasks).await?;
        elapsed += started.elapsed();
    }
    Ok(elapsed)
}

/// Median latency of own_tasks(100) at constant depth (tasks are handed back as pending).
async fn own_latency(store: &Arc<dyn Parade>) -> anyhow::Result<Duration> {
    let actor = ActorId::from("bench");
    let actions = vec!["work".to_string()];
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let owned = store
            .own_tasks(&actor, OWN_BATCH, &actions, Some(Duration::from_secs(600)))
            .await?;
        samples.push(started.elapsed());
        anyhow::ensure!(
            owned.len() == OWN_BATCH as usize,
            "own returned {}",
            owned.len()
        );
        for t in owned {
            store
                .return_task(&t.id, t.token, "again", TaskStatusCode::Pending)
                .await?;
        }
    }
    samples.sort();
    Ok(samples[SAMPLES / 2])
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn bench_backend(backend: &str, tasks: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;

    let (shallow, analyze) = fresh_store(backend, &dir).await?;
    insert(&shallow, 1_000, "s").await?;
    analyze.run().await?;
    let at_1k = own_latency(&shallow).await?;
    println!(
        "own_latency_p50: {:.3} ms ({backend}, 1000 pending, own {OWN_BATCH})",
        at_1k.as_secs_f64() * 1e3
    );

    let (deep, analyze) = fresh_store(backend, &dir).await?;
    let insert_time = insert(&deep, tasks, "d").await?;
    analyze.run().await?;
    println!(
        "insert_rate: {:.0} tasks/s ({backend}, {tasks} tasks, batches of {BATCH})",
        rate(tasks, insert_time)
    );
    let at_depth = own_latency(&deep).await?;
    println!(
        "own_latency_p50: {:.3} ms ({backend}, {tasks} pending, own {OWN_BATCH})",
        at_depth.as_secs_f64() * 1e3
    );
    println!(
        "own_latency_ratio: {:.2} ({backend}, {tasks} vs 1000 pending; target <= 1.5)",
        at_depth.as_secs_f64() / at_1k.as_secs_f64()
    );

    // Own and return throughput: complete 20,000 tasks in batches of 100.
    let actor = ActorId::from("bench");
    let actions = vec!["work".to_string()];
    let (mut own_time, mut return_time, mut done) = (Duration::ZERO, Duration::ZERO, 0);
    while done < 20_000 {
        let started = Instant::now();
        let owned = deep
            .own_tasks(&actor, OWN_BATCH, &actions, Some(Duration::from_secs(600)))
            .await?;
        own_time += started.elapsed();
        let started = Instant::now();
        for t in &owned {
            deep.return_task(&t.id, t.token, "ok", TaskStatusCode::Completed)
                .await?;
        }
        return_time += started.elapsed();
        done += owned.len();
    }
    println!(
        "own_rate: {:.0} tasks/s ({backend}, batches of {OWN_BATCH}, {tasks} deep)",
        rate(done, own_time)
    );
    println!(
        "return_rate: {:.0} tasks/s ({backend}, one at a time, sequential)",
        rate(done, return_time)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    for backend in &args.backends {
        bench_backend(backend, args.tasks).await?;
    }
    Ok(())
}
