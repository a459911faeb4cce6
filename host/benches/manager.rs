//! The node's end-to-end benchmark suite. Prints one figure per line with its conditions:
//!
//! - `instantiate_and_call_p50`: one task in a fresh instance of the no-op component;
//! - `end_to_end_rate` per backend and actor (native Rust or the `noop` component), from the
//!   first insert to the last return, in `--rounds` alternating rounds, and the median
//!   `wasm_vs_native_ratio`;
//! - `cpu_per_task` after each of those: CPU microseconds per task of the node (this
//!   process) and of PostgreSQL (every `postgres` process), and the cores busy on average;
//! - `pgbench_tps` (TPC-B, scale 10, `-c 8 -j 2 -T 20`) on the same cluster, and
//!   `wasm_vs_pgbench_ratio`;
//! - `insert_to_start_latency`: an idle node's wake-up, measured from before the insert;
//! - `due_task_lateness`: how late an idle node starts a task inserted to run 50-90 ms later
//!   (its `run_after` to its handler's start), with a poll interval of a minute: the wake
//!   timer's precision;
//! - `cpu_scaling_2_vs_1_workers`: a component burning ~1 ms per task;
//! - `idle_node_rss`: a `parade run` process with 10 plugins loaded, idle.
//!
//! Components come from scripts/build-plugins.sh. Run through `scripts/bench.sh`, which
//! starts a throwaway PostgreSQL cluster (or set PARADE_BENCH_DATABASE_URL to a cluster's
//! admin URL).
//!
//! cargo bench -p parade-host --bench manager -- [--backend postgres|sqlite|all]
//!     [--tasks N] [--workers N] [--actor native|wasm|both] [--rounds N] [--quick]
//!     [--only FIGURE,...]
//!
//! `--only` runs some of the figures: `instantiate`, `throughput` (with `cpu_per_task` and
//! the ratio), `pgbench`, `wake` (insert to start), `lateness` (due tasks), `cpu_scaling`,
//! `rss`. `--only throughput --rounds 1` is one round of end-to-end rates, for comparing
//! two builds in alternating runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use parade_host::manager::{ActionManager, Actor, ActorResult, ManagerProperties, SimpleActor};
use parade_host::queue::{ActorId, Parade, PgParade, SqliteParade, TaskData};
use parade_host::runtime::{ComponentActor, PluginLimits, Runtime};
use sqlx::Connection;
use tokio::sync::mpsc;

/// Wake-ups measured per backend: enough that the p99 is the tenth-worst sample, not the second.
const LATENCY_SAMPLES: usize = 1000;
/// Due tasks timed per backend: each takes its 50-90 ms lead, so a few hundred.
const LATENESS_SAMPLES: usize = 300;

/// The figures `--only` can name.
const FIGURES: [&str; 7] = [
    "instantiate",
    "throughput",
    "pgbench",
    "wake",
    "lateness",
    "cpu_scaling",
    "rss",
];

struct Args {
    backends: Vec<String>,
    tasks: usize,
    workers: usize,
    actors: Vec<String>,
    rounds: usize,
    /// Seconds of pgbench.
    pgbench_seconds: u32,
    /// The figures to measure (all of [`FIGURES`] by default).
    only: Vec<String>,
}

impl Args {
    fn wants(&self, figure: &str) -> bool {
        self.only.iter().any(|f| f == figure)
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec!["postgres".into(), "sqlite".into()],
        tasks: 100_000,
        workers: 8,
        actors: vec!["native".into(), "wasm".into()],
        rounds: 3,
        pgbench_seconds: 20,
        only: FIGURES.map(String::from).to_vec(),
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
            "--rounds" => args.rounds = it.next().context("--rounds needs a value")?.parse()?,
            "--quick" => {
                args.tasks = 10_000;
                args.rounds = 1;
                args.pgbench_seconds = 5;
            }
            "--only" => {
                let value = it.next().context("--only needs a value")?;
                args.only = value.split(',').map(str::to_owned).collect();
                if let Some(unknown) = args.only.iter().find(|f| !FIGURES.contains(&f.as_str())) {
                    anyhow::bail!(
                        "unknown figure {unknown:?}; --only takes {}",
                        FIGURES.join(",")
                    );
                }
            }
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

/// A throwaway store; on PostgreSQL, `database` names the database [`BenchStore::finish`]
/// drops.
struct BenchStore {
    parade: Arc<dyn Parade>,
    database: Option<String>,
}

impl BenchStore {
    /// Drops the PostgreSQL database, closing its connections: a user's cluster keeps
    /// nothing of the run, and no autovacuum of a finished round runs under the next one.
    async fn finish(self) -> anyhow::Result<()> {
        drop(self.parade);
        match self.database {
            Some(name) => drop_database(&name).await,
            None => Ok(()),
        }
    }
}

/// The benchmark cluster's admin URL.
fn admin_url() -> anyhow::Result<String> {
    std::env::var("PARADE_BENCH_DATABASE_URL")
        .context("set PARADE_BENCH_DATABASE_URL or run scripts/bench.sh")
}

/// Runs one statement on the benchmark cluster's admin database.
async fn admin_execute(statement: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(&admin_url()?).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    Ok(())
}

/// Creates a database named `prefix` and a fresh suffix on the benchmark's cluster; returns
/// its name and URL.
async fn create_database(prefix: &str) -> anyhow::Result<(String, String)> {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    admin_execute(&format!("CREATE DATABASE {name}")).await?;
    let url = admin_url()?.replacen("/postgres?", &format!("/{name}?"), 1);
    Ok((name, url))
}

/// Drops a database [`create_database`] made, closing its connections.
async fn drop_database(name: &str) -> anyhow::Result<()> {
    admin_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await
}

async fn fresh_store(backend: &str, dir: &tempfile::TempDir) -> anyhow::Result<BenchStore> {
    if backend == "sqlite" {
        let path = dir
            .path()
            .join(format!("bench_{}.db", uuid::Uuid::new_v4().simple()));
        return Ok(BenchStore {
            parade: Arc::new(SqliteParade::open(&format!("sqlite://{}", path.display())).await?),
            database: None,
        });
    }
    let (name, url) = create_database("bench").await?;
    let store = PgParade::connect(&url).await?;
    store.migrate().await?;
    Ok(BenchStore {
        parade: Arc::new(store),
        database: Some(name),
    })
}

/// Completes every task at once; optionally reports when each started.
struct NoOpActor {
    started: Option<mpsc::UnboundedSender<Instant>>,
}

#[async_trait]
impl SimpleActor for NoOpActor {
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

fn component(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// The no-op actor of kind `actor`, performing tasks of `store`.
async fn noop_actor(actor: &str, store: &Arc<dyn Parade>) -> anyhow::Result<Arc<dyn Actor>> {
    if actor == "native" {
        return Ok(Arc::new(NoOpActor { started: None }));
    }
    component_actor("noop", store).await
}

/// An actor running the component `name`, performing tasks of `store`.
async fn component_actor(name: &str, store: &Arc<dyn Parade>) -> anyhow::Result<Arc<dyn Actor>> {
    let path = component(name);
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

/// Tasks per second from the first insert to the last return of `tasks` tasks run by
/// `performer` with `workers` workers.
async fn rate(
    store: Arc<dyn Parade>,
    performer: Arc<dyn Actor>,
    tasks: Vec<TaskData>,
    workers: usize,
) -> anyhow::Result<(f64, CpuPerTask)> {
    let count = tasks.len() as u64;
    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    for batch in tasks.chunks(100_000) {
        store.insert_tasks(batch).await?;
    }
    let manager = ActionManager::start(
        performer,
        store,
        ManagerProperties {
            workers,
            ..ManagerProperties::default()
        },
    );
    while manager.stats().completed < count {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let cpu = CpuTimes::now().per_task_since(&cpu_before, count, elapsed);
    manager.close().await;
    Ok((count as f64 / elapsed.as_secs_f64(), cpu))
}

/// CPU seconds used by this process (the node) and by every PostgreSQL process on the
/// machine, from /proc: what bounds the rate once both cores are busy. A backend that exits
/// is counted through the postmaster's children times once it is reaped.
struct CpuTimes {
    node: f64,
    postgres: f64,
}

/// What a run's tasks cost in CPU: microseconds per task of the node and of PostgreSQL, and
/// the cores busy on average.
struct CpuPerTask {
    node_us: f64,
    postgres_us: f64,
    cores_busy: f64,
}

impl CpuTimes {
    fn now() -> Self {
        let mut times = CpuTimes {
            node: proc_cpu_seconds("/proc/self/stat").map_or(0.0, |(own, _)| own),
            postgres: 0.0,
        };
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let is_postgres = std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "postgres");
            if let Some((own, reaped)) = is_postgres
                .then(|| proc_cpu_seconds(entry.path().join("stat")))
                .flatten()
            {
                times.postgres += own + reaped;
            }
        }
        times
    }

    /// The CPU used since `before` by `count` tasks that took `elapsed`.
    fn per_task_since(&self, before: &CpuTimes, count: u64, elapsed: Duration) -> CpuPerTask {
        let (node, postgres) = (self.node - before.node, self.postgres - before.postgres);
        CpuPerTask {
            node_us: node * 1e6 / count as f64,
            postgres_us: postgres * 1e6 / count as f64,
            cores_busy: (node + postgres) / elapsed.as_secs_f64(),
        }
    }
}

/// (utime + stime, cutime + cstime) of the process whose stat file is `path`, in seconds.
fn proc_cpu_seconds(path: impl AsRef<std::path::Path>) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    // USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) without libc).
    let hz = 100.0;
    Some((
        (ticks(14)? + ticks(15)?) / hz,
        (ticks(16)? + ticks(17)?) / hz,
    ))
}

/// End-to-end rate of no-op tasks with the `actor` kind of actor.
async fn throughput(
    backend: &str,
    actor: &str,
    args: &Args,
    dir: &tempfile::TempDir,
) -> anyhow::Result<f64> {
    let store = fresh_store(backend, dir).await?;
    let performer = noop_actor(actor, &store.parade).await?;
    let tasks: Vec<TaskData> = (0..args.tasks)
        .map(|i| TaskData::new(format!("t{i}"), "noop"))
        .collect();
    let (rate, cpu) = rate(store.parade.clone(), performer, tasks, args.workers).await?;
    store.finish().await?;
    println!(
        "end_to_end_rate: {rate:.0} tasks/s ({backend}, {} no-op tasks, {} workers, {actor} actor, insert to last return)",
        args.tasks, args.workers
    );
    println!(
        "cpu_per_task: node {:.1} us, postgres {:.1} us ({backend}, {actor} actor; CPU time of each over the run / tasks; {:.2} of {} cores busy)",
        cpu.node_us,
        cpu.postgres_us,
        cpu.cores_busy,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(rate)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A component burning about 1 ms of CPU per task: tasks/s with 2 workers over 1 worker.
async fn cpu_scaling(dir: &tempfile::TempDir) -> anyhow::Result<()> {
    // Calibrate: rounds of the burn loop in 1 ms on this machine, through the whole path.
    let store = fresh_store("sqlite", dir).await?.parade;
    let burn = component_actor("burn", &store).await?;
    let probe = parade_host::queue::OwnedTask {
        id: "calibrate".into(),
        token: parade_host::queue::PerformanceToken(uuid::Uuid::new_v4()),
        num_signalled_failures: 0,
        action: "burn".into(),
        body: Some("20000000".into()),
        num_tries: 1,
    };
    let started = Instant::now();
    burn.perform(&probe).await?;
    let rounds_per_ms = (20_000_000.0 / (started.elapsed().as_secs_f64() * 1e3)) as u64;
    let tasks = 2000;
    let mut rates = Vec::new();
    for workers in [1, 2] {
        let store = fresh_store("sqlite", dir).await?.parade;
        let burn = component_actor("burn", &store).await?;
        let batch: Vec<TaskData> = (0..tasks)
            .map(|i| TaskData {
                body: Some(rounds_per_ms.to_string()),
                ..TaskData::new(format!("b{i}"), "burn")
            })
            .collect();
        let (rate, _) = rate(store, burn, batch, workers).await?;
        println!("cpu_bound_rate: {rate:.0} tasks/s (sqlite, {tasks} tasks of ~1 ms CPU in a component, {workers} workers)");
        rates.push(rate);
    }
    println!(
        "cpu_scaling_2_vs_1_workers: {:.2} (target >= 1.8 on 2 cores)",
        rates[1] / rates[0]
    );
    Ok(())
}

/// TPC-B transactions per second of `pgbench -c 8 -j 2` on the benchmark's cluster.
async fn pgbench_tps(seconds: u32) -> anyhow::Result<f64> {
    let pgbench = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin/pgbench")))
        .find(|p| p.is_file())
        .context("pgbench not found under /usr/lib/postgresql/*/bin")?;
    let (name, url) = create_database("pgbench").await?;
    let tps = run_pgbench(&pgbench, &url, seconds).await;
    drop_database(&name).await?;
    let tps = tps?;
    println!("pgbench_tps: {tps:.0} (TPC-B, scale 10, -c 8 -j 2 -T {seconds}, same cluster)");
    Ok(tps)
}

/// Initialises TPC-B at scale 10 in the database at `url` and returns the TPS of
/// `pgbench -c 8 -j 2 -T seconds` there.
async fn run_pgbench(pgbench: &std::path::Path, url: &str, seconds: u32) -> anyhow::Result<f64> {
    let init = tokio::process::Command::new(pgbench)
        .args(["-i", "-s", "10", "-q", url])
        .output()
        .await?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let run = tokio::process::Command::new(pgbench)
        .args(["-c", "8", "-j", "2", "-T", &seconds.to_string(), url])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&run.stdout);
    anyhow::ensure!(
        run.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let tps = out
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no tps line in pgbench's output")?
        .parse()?;
    Ok(tps)
}

/// Resident memory of an idle `parade run` with 10 plugins loaded.
async fn idle_node_rss(dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let node = dir.path().join("idle-node");
    let plugins = node.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let mut loaded = 0;
    for name in [
        "echo",
        "json_transform",
        "fan_out",
        "flaky",
        "noop",
        "versioned",
        "burn",
    ] {
        std::fs::copy(component(name), plugins.join(format!("{name}.wasm")))?;
        loaded += 1;
    }
    // Three more, each serving one action of the misbehave component.
    let mut toml = String::new();
    for action in ["trap", "loop", "print"] {
        toml.push_str(&format!(
            "[[plugin]]\nname = \"misbehave-{action}\"\nfile = \"{}\"\nactions = [\"{action}\"]\n\n",
            component("misbehave").display()
        ));
        loaded += 1;
    }
    std::fs::write(node.join("parade.toml"), toml)?;
    let log = node.join("node.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parade"))
        .current_dir(&node)
        .args(["run", "--admin", "off", "--database", "sqlite://idle.db"])
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)?.contains("node started") {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node did not start: {}",
            std::fs::read_to_string(&log)?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let start-up allocations settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().context("node exited")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    println!(
        "idle_node_rss: {:.1} MiB (parade run, {loaded} plugins loaded, idle on SQLite; target < 100 MiB)",
        rss_kib / 1024.0
    );
    child.kill().await?;
    Ok(())
}

/// Median cost of one task in a fresh instance of the no-op component, through
/// `ComponentActor::perform` (store, WASI context, instantiation, call).
async fn instantiate_and_call(dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let store = fresh_store("sqlite", dir).await?.parade;
    let actor = noop_actor("wasm", &store).await?;
    let task = parade_host::queue::OwnedTask {
        id: "bench".into(),
        token: parade_host::queue::PerformanceToken(uuid::Uuid::new_v4()),
        num_signalled_failures: 0,
        action: "noop".into(),
        body: None,
        num_tries: 1,
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
    let checkpointed = checkpoint(backend).await;
    let bench_store = fresh_store(backend, dir).await?;
    let store = bench_store.parade.clone();
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
    drop((manager, store));
    bench_store.finish().await?;
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "insert_to_start_latency: p50 {:.2} ms, p99 {:.2} ms ({backend}, idle node, {LATENCY_SAMPLES} single inserts, from before the insert call{})",
        at(0.5),
        at(0.99),
        if checkpointed {
            "; after a CHECKPOINT of the earlier rounds' writes"
        } else {
            ""
        }
    );
    Ok(())
}

/// Flushes the throughput rounds' writes before a latency figure on PostgreSQL; says whether
/// it could.
async fn checkpoint(backend: &str) -> bool {
    // The throughput rounds before this leave gigabytes of WAL that PostgreSQL's checkpointer
    // flushes over the next minutes, syncing data files under every commit measured here.
    // Flush them first: the figure is an idle node's, on an idle cluster. CHECKPOINT needs a
    // superuser (or pg_checkpoint); without one, say so and go on.
    backend == "postgres"
        && match admin_execute("CHECKPOINT").await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("note: CHECKPOINT failed ({e:#}); latencies may include the cluster flushing earlier rounds' writes");
                false
            }
        }
}

/// How late an idle node starts due tasks: each sample is one task inserted to run 50-90 ms
/// later, timed from its `run_after` to its handler's start. The node polls once a minute,
/// so each start comes from its wake timer (`next_due` after the insert's hint).
async fn due_lateness(backend: &str, dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let checkpointed = checkpoint(backend).await;
    let bench_store = fresh_store(backend, dir).await?;
    let store = bench_store.parade.clone();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let manager = ActionManager::start(
        Arc::new(NoOpActor {
            started: Some(started_tx),
        }),
        store.clone(),
        ManagerProperties {
            wait_time: Duration::from_secs(60),
            ..ManagerProperties::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late_ms = Vec::with_capacity(LATENESS_SAMPLES);
    for i in 0..LATENESS_SAMPLES {
        let lead = Duration::from_millis(50 + 10 * (i % 5) as u64);
        // The same moment on both clocks: the store compares run_after with the wall clock,
        // the handler reports a monotonic instant.
        let (now, wall) = (Instant::now(), chrono::Utc::now());
        let due = now + lead;
        store
            .insert_tasks(&[TaskData {
                run_after: Some(wall + chrono::TimeDelta::from_std(lead)?),
                ..TaskData::new(format!("d{i}"), "noop")
            }])
            .await?;
        let start = tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
            .await
            .context("a due task did not start within 10 s")?
            .context("actor gone")?;
        let late = if start >= due {
            start.duration_since(due).as_secs_f64()
        } else {
            -due.duration_since(start).as_secs_f64()
        };
        late_ms.push(late * 1e3);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.close().await;
    drop((manager, store));
    bench_store.finish().await?;
    late_ms.sort_by(f64::total_cmp);
    let at = |q: f64| late_ms[((late_ms.len() - 1) as f64 * q) as usize];
    println!(
        "due_task_lateness: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({backend}, idle node, wait_time 60 s, {LATENESS_SAMPLES} single tasks each due 50-90 ms after its insert, run_after to handler start; target p99 < 100 ms{})",
        at(0.5),
        at(0.99),
        late_ms[late_ms.len() - 1],
        if checkpointed {
            "; after a CHECKPOINT of the earlier rounds' writes"
        } else {
            ""
        }
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    if args.wants("instantiate") && args.actors.iter().any(|a| a == "wasm") {
        instantiate_and_call(&dir).await?;
    }
    for backend in &args.backends {
        // Rounds alternate the actors, so a noisy neighbour hurts both alike.
        let mut rates: std::collections::HashMap<&str, Vec<f64>> = Default::default();
        let rounds = if args.wants("throughput") {
            args.rounds
        } else {
            0
        };
        for _ in 0..rounds {
            for actor in &args.actors {
                let rate = throughput(backend, actor, &args, &dir).await?;
                rates.entry(actor.as_str()).or_default().push(rate);
            }
        }
        let wasm = rates.remove("wasm").map(median);
        if let (Some(wasm), Some(native)) = (wasm, rates.remove("native").map(median)) {
            println!(
                "wasm_vs_native_ratio: {:.2} ({backend}, medians of {} alternating rounds, {} workers; target >= 0.9)",
                wasm / native,
                args.rounds,
                args.workers
            );
        }
        if backend == "postgres" && args.wants("pgbench") {
            let tps = pgbench_tps(args.pgbench_seconds).await?;
            if let Some(wasm) = wasm {
                println!(
                    "wasm_vs_pgbench_ratio: {:.2} (wasm end-to-end tasks/s over pgbench TPS, same cluster; target >= 10)",
                    wasm / tps
                );
            }
        }
        if args.wants("wake") {
            wake_latency(backend, &dir).await?;
        }
        if args.wants("lateness") {
            due_lateness(backend, &dir).await?;
        }
    }
    if args.wants("cpu_scaling") {
        cpu_scaling(&dir).await?;
    }
    if args.wants("rss") {
        idle_node_rss(&dir).await?;
    }
    Ok(())
}
