//! End-to-end ActionManager benchmark with a no-op actor, native or a WebAssembly component
//! (`noop`, built by scripts/build-plugins.sh): tasks per second from insert to completion,
//! the WebAssembly/native ratio, and idle insert-to-start latency (wake-ups, not polling). Prints one
//! figure per line with its conditions. Run through `scripts/bench.sh manager`, which starts
//! a throwaway PostgreSQL cluster (or set PARADE_BENCH_DATABASE_URL to a cluster's admin URL).
//!
//! cargo bench -p parade-host --bench manager -- [--backend postgres|sqlite|all]
//!     [--tasks N] [--workers N] [--actor native|wasm|both] [--quick]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use parade_host::manager::{ActionManager, Actor, ActorResult, ManagerProperties};
use parade_host::queue::{ActorId, Parade, PgParade, SqliteParade, TaskData};
use parade_host::runtime::{ComponentActor, PluginLimits, Runtime};
use sqlx::Connection;
use tokio::sync::mpsc;

const LATENCY_SAMPLES: usize = 200;

struct Args {
    backends: Vec<String>,
    tasks: usize,
    workers: usize,
    actors: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec!["postgres".into(), "sqlite".into()],
        tasks: 100_000,
        workers: 8,
        actors: vec!["native".into(), "wasm".into()],
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
            "--workers" => args.workers = it.next().context("--workers needs a value")?.parse()?,
            "--actor" => {
                let value = it.next().context("--actor needs a value")?;
                args.actors = match value.as_str() {
                    "both" => vec!["native".into(), "wasm".into()],
                    "native" | "wasm" => vec![value],
                    other => anyhow::bail!("unknown actor {other:?}"),
                };
            }
            "--quick" => args.tasks = 10_000,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

async fn fresh_store(backend: &str, dir: &tempfile::TempDir) -> anyhow::Result<Arc<dyn Parade>> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    if backend == "sqlite" {
        let path = dir.path().join(format!("{name}.db"));
        return Ok(Arc::new(
            SqliteParade::open(&format!("sqlite://{}", path.display())).await?,
        ));
    }
    let admin = std::env::var("PARADE_BENCH_DATABASE_URL")
        .context("set PARADE_BENCH_DATABASE_URL or run scripts/bench.sh")?;
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let store = PgParade::connect(&admin.replacen("/postgres?", &format!("/{name}?"), 1)).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// Completes every task at once; optionally reports when each started.
struct NoOpActor {
    started: Option<mpsc::UnboundedSender<Instant>>,
}

#[async_trait]
impl Actor for NoOpActor {
    fn actions(&self) -> Vec<String> {
        vec!["noop".into()]
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("bench")
    }

    async fn handle(&self, _: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        if let Some(started) = &self.started {
            let _ = started.send(Instant::now());
        }
        Ok(ActorResult::completed(""))
    }
}

/// The no-op actor of kind `actor`, performing tasks of `store`.
async fn noop_actor(actor: &str, store: &Arc<dyn Parade>) -> anyhow::Result<Arc<dyn Actor>> {
    if actor == "native" {
        return Ok(Arc::new(NoOpActor { started: None }));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/noop.wasm");
    let runtime = Runtime::new(None)?;
    let plugin = runtime
        .load_file(&path, PluginLimits::default())
        .await
        .context("run scripts/build-plugins.sh first")?;
    Ok(Arc::new(ComponentActor::new(
        runtime,
        vec![Arc::new(plugin)],
        store.clone(),
        ActorId::from("bench"),
        ManagerProperties::default().max_duration,
    )?))
}

/// Tasks per second from the first insert to the last return.
async fn throughput(
    backend: &str,
    actor: &str,
    args: &Args,
    dir: &tempfile::TempDir,
) -> anyhow::Result<f64> {
    let store = fresh_store(backend, dir).await?;
    let performer = noop_actor(actor, &store).await?;
    let tasks: Vec<TaskData> = (0..args.tasks)
        .map(|i| TaskData::new(format!("t{i}"), "noop"))
        .collect();
    let started = Instant::now();
    for batch in tasks.chunks(100_000) {
        store.insert_tasks(batch).await?;
    }
    let manager = ActionManager::start(
        performer,
        store,
        ManagerProperties {
            workers: args.workers,
            ..ManagerProperties::default()
        },
    );
    while manager.stats().completed < args.tasks as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    manager.close().await;
    let rate = args.tasks as f64 / elapsed.as_secs_f64();
    println!(
        "end_to_end_rate: {rate:.0} tasks/s ({backend}, {} no-op tasks, {} workers, {actor} actor, insert to last return)",
        args.tasks, args.workers
    );
    Ok(rate)
}

/// Median cost of one task in a fresh instance of the no-op component, through
/// `ComponentActor::perform` (store, WASI context, instantiation, call).
async fn instantiate_and_call(dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let store = fresh_store("sqlite", dir).await?;
    let actor = noop_actor("wasm", &store).await?;
    let task = parade_host::queue::OwnedTask {
        id: "bench".into(),
        token: parade_host::queue::PerformanceToken(uuid::Uuid::new_v4()),
        num_signalled_failures: 0,
        action: "noop".into(),
        body: None,
    };
    let mut samples = Vec::with_capacity(5000);
    for _ in 0..5000 {
        let started = Instant::now();
        actor.perform(&task).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "instantiate_and_call_p50: {:.1} us (no-op component, fresh store and instance per task, 5000 calls)",
        samples[samples.len() / 2].as_secs_f64() * 1e6
    );
    Ok(())
}

async fn wake_latency(backend: &str, dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let store = fresh_store(backend, dir).await?;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let manager = ActionManager::start(
        Arc::new(NoOpActor {
            started: Some(started_tx),
        }),
        store.clone(),
        ManagerProperties {
            // Polling would take a minute: every start below is a wake-up.
            wait_time: Duration::from_secs(60),
            ..ManagerProperties::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let before = Instant::now();
        store
            .insert_tasks(&[TaskData::new(format!("w{i}"), "noop")])
            .await?;
        let start = tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
            .await
            .context("no wake-up within 10 s")?
            .context("actor gone")?;
        samples.push(start.duration_since(before));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.close().await;
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "insert_to_start_latency: p50 {:.2} ms, p99 {:.2} ms ({backend}, idle node, {LATENCY_SAMPLES} single inserts, from before the insert call)",
        at(0.5),
        at(0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    if args.actors.iter().any(|a| a == "wasm") {
        instantiate_and_call(&dir).await?;
    }
    for backend in &args.backends {
        let mut rates = std::collections::HashMap::new();
        for actor in &args.actors {
            rates.insert(
                actor.as_str(),
                throughput(backend, actor, &args, &dir).await?,
            );
        }
        if let (Some(wasm), Some(native)) = (rates.get("wasm"), rates.get("native")) {
            println!(
                "wasm_vs_native_ratio: {:.2} ({backend}, same run, {} workers; target >= 0.9)",
                wasm / native,
                args.workers
            );
        }
        wake_latency(backend, &dir).await?;
    }
    Ok(())
}
