//! Queue benchmark: bulk insert rate, own latency at 1,000, 20,000 and N (default 1,000,000)
//! pending tasks and at N pending of which nine in ten are not due yet, own latency within a
//! concurrency limit (at the limit, and with room) vs unlimited, own and return rates (one worker and four), and, on PostgreSQL, whether
//! own_tasks finds pending work through `tasks_runnable_idx` and updates it through the primary
//! key. Prints one figure per line with its conditions.
//!
//! Run through `scripts/bench.sh`, which starts a throwaway PostgreSQL cluster; or set
//! PARADE_BENCH_DATABASE_URL to a cluster's admin URL (`.../postgres?...`), in which the
//! benchmark creates (and finally drops) its own `bench_<uuid>` databases.
//!
//! cargo bench -p parade-host --bench queue -- [--backend postgres|sqlite|all] [--tasks N] [--quick]
//!
//! Method. Each depth gets a fresh database, loaded in batches of 100,000 (the load of the
//! deepest is timed: the insert figure) and then `VACUUM ANALYZE tasks` (SQLite: `ANALYZE`), as
//! autovacuum would soon do on a live system. Own latency is the median of one own_tasks(100)
//! call per cycle; each cycle then returns the 100 tasks completed with return_task and inserts
//! 100 new ones (both untimed), so the depth stays constant. Cycles at the different depths
//! are interleaved, so background load shifts them alike, and the first cycles only warm up.
//! The rate figures then drain the deep queue. --quick: 20,000 tasks, 20 samples, 5,000
//! tasks per rate figure.

#[path = "../../tests/support/own_plan.rs"]
mod own_plan;

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{
    ActorId, OwnRequest, OwnedTask, Parade, PgParade, SqliteParade, TaskData, TaskReturn,
    TaskStatusCode,
};
use sqlx::{Connection, Row};

/// Tasks per insert_tasks call.
const INSERT_BATCH: usize = 100_000;
/// Tasks per own_tasks call.
const OWN_BATCH: u32 = 100;
/// The shallow queue the deep one is compared with.
const SHALLOW: usize = 1_000;
/// A middle depth, measured too when --tasks is larger: below about 30,000 rows PostgreSQL
/// prices some joins differently than for a deep queue.
const MIDDLE: usize = 20_000;
/// Own cycles run before latency samples are taken.
const WARMUP: usize = 5;
/// Workers of the concurrent own/return figure.
const WORKERS: usize = 4;
const ACTION: &str = "work";
const LEASE: Duration = Duration::from_secs(30 * 60);

/// The SELECT of own_tasks step 2 (pending work, migrations/postgres/0009_delayed_tasks.sql) for
/// one action and 100 tasks. PL/pgSQL does not let EXPLAIN see inside a function, so the
/// benchmark explains this copy. `$ACTIONS` and `$LIMIT` are filled in per plan kind.
const OWN_STEP2: &str = "\
SELECT c.id
FROM unnest($ACTIONS) AS w(name)
CROSS JOIN LATERAL (
    SELECT p.id, p.priority, p.seq FROM tasks p
    WHERE p.action = w.name
      AND p.status_code = 'pending'
      AND p.run_after IS NULL
      AND (p.total_dependencies IS NULL OR p.num_signals = p.total_dependencies)
      AND (p.max_tries IS NULL OR p.num_tries < p.max_tries)
    ORDER BY p.priority DESC, p.seq
    LIMIT $LIMIT
    FOR UPDATE SKIP LOCKED
) c
ORDER BY c.priority DESC, c.seq
LIMIT $LIMIT";

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
    /// Depth of the deep queue, and the size of the timed bulk insert.
    tasks: usize,
    /// Own latency samples per depth.
    samples: usize,
    /// Tasks per rate figure.
    rate_tasks: usize,
    quick: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        backends: vec![Backend::Postgres, Backend::Sqlite],
        tasks: 1_000_000,
        samples: 50,
        rate_tasks: 20_000,
        quick: false,
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
            "--quick" => args.quick = true,
            // cargo bench passes --bench to every benchmark binary.
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    if args.quick {
        args.tasks = 20_000;
        args.samples = 20;
        args.rate_tasks = 5_000;
    }
    if let Some(tasks) = tasks {
        args.tasks = tasks;
    }
    ensure!(args.tasks >= SHALLOW, "--tasks must be at least {SHALLOW}");
    // The three rate figures drain the deep queue; leave a quarter of it.
    args.rate_tasks = args.rate_tasks.min(args.tasks / 4);
    Ok(args)
}

/// A fresh, migrated store and raw SQL access to it.
struct Store {
    parade: Arc<dyn Parade>,
    raw: Raw,
}

enum Raw {
    Postgres {
        pool: sqlx::PgPool,
        admin_url: String,
        database: String,
    },
    Sqlite(sqlx::SqlitePool),
}

impl Store {
    async fn fresh(backend: Backend, dir: &tempfile::TempDir) -> anyhow::Result<Store> {
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join(format!("{name}.db"));
                let store = SqliteParade::open(&format!("sqlite://{}", path.display())).await?;
                let raw = Raw::Sqlite(store.pool().clone());
                Ok(Store {
                    parade: Arc::new(store),
                    raw,
                })
            }
            Backend::Postgres => {
                let admin_url = std::env::var("PARADE_BENCH_DATABASE_URL").context(
                    "set PARADE_BENCH_DATABASE_URL to a cluster's admin URL \
                     (postgres://...@.../postgres?...) or run scripts/bench.sh",
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
                let raw = Raw::Postgres {
                    pool: store.pool().clone(),
                    admin_url,
                    database: name,
                };
                Ok(Store {
                    parade: Arc::new(store),
                    raw,
                })
            }
        }
    }

    /// Refreshes planner statistics and the visibility map after a bulk load.
    async fn analyze(&self) -> anyhow::Result<()> {
        match &self.raw {
            Raw::Postgres { pool, .. } => {
                sqlx::query("VACUUM ANALYZE tasks").execute(pool).await?;
            }
            Raw::Sqlite(pool) => {
                sqlx::query("ANALYZE").execute(pool).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes the store; a PostgreSQL database is dropped (the cluster may outlive the run).
    async fn close(self) -> anyhow::Result<()> {
        drop(self.parade);
        match self.raw {
            Raw::Postgres {
                pool,
                admin_url,
                database,
            } => {
                pool.close().await;
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
            }
            Raw::Sqlite(pool) => pool.close().await,
        }
        Ok(())
    }
}

fn tasks(prefix: &str, range: std::ops::Range<usize>) -> Vec<TaskData> {
    range
        .map(|i| TaskData {
            body: Some(format!("{{\"n\":{i}}}")),
            ..TaskData::new(format!("{prefix}-{i}"), ACTION)
        })
        .collect()
}

/// Inserts `count` tasks of which nine in ten are due a day from now, in batches of
/// [`INSERT_BATCH`]: a queue deep in delayed work (retries backing off, scheduled tasks).
async fn insert_mostly_future(parade: &dyn Parade, count: usize) -> anyhow::Result<()> {
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    for start in (0..count).step_by(INSERT_BATCH) {
        let mut batch = tasks("f", start..(start + INSERT_BATCH).min(count));
        for (i, task) in batch.iter_mut().enumerate() {
            if (start + i) % 10 != 0 {
                task.run_after = Some(tomorrow);
            }
        }
        parade.insert_tasks(&batch).await?;
    }
    Ok(())
}

/// Inserts `count` tasks in batches of [`INSERT_BATCH`]; returns the time spent in
/// insert_tasks (building the batches is not counted).
async fn insert(parade: &dyn Parade, prefix: &str, count: usize) -> anyhow::Result<Duration> {
    let mut elapsed = Duration::ZERO;
    for start in (0..count).step_by(INSERT_BATCH) {
        let batch = tasks(prefix, start..(start + INSERT_BATCH).min(count));
        let started = Instant::now();
        parade.insert_tasks(&batch).await?;
        elapsed += started.elapsed();
    }
    Ok(elapsed)
}

async fn own(parade: &dyn Parade, actor: &ActorId) -> anyhow::Result<Vec<OwnedTask>> {
    Ok(parade
        .own_tasks(actor, OWN_BATCH, &[ACTION.to_owned()], Some(LEASE))
        .await?)
}

async fn complete(parade: &dyn Parade, owned: &[OwnedTask]) -> anyhow::Result<()> {
    for task in owned {
        parade
            .return_task(&task.id, task.token, "ok", TaskStatusCode::Completed)
            .await?;
    }
    Ok(())
}

struct Latency {
    median: Duration,
    p90: Duration,
}

impl Latency {
    fn of(mut times: Vec<Duration>) -> Latency {
        times.sort();
        Latency {
            median: times[times.len() / 2],
            p90: times[times.len() * 9 / 10],
        }
    }
}

/// One latency cycle: own 100 (timed), return them completed one by one and insert 100 new
/// tasks (untimed), so the depth stays constant.
async fn own_cycle(parade: &dyn Parade, cycle: usize) -> anyhow::Result<Duration> {
    let actor = ActorId::from("bench-latency");
    let started = Instant::now();
    let owned = own(parade, &actor).await?;
    let elapsed = started.elapsed();
    ensure!(
        owned.len() == OWN_BATCH as usize,
        "own_tasks returned {} tasks, expected {OWN_BATCH}",
        owned.len()
    );
    complete(parade, &owned).await?;
    let refill = cycle * OWN_BATCH as usize;
    parade
        .insert_tasks(&tasks("refill", refill..refill + OWN_BATCH as usize))
        .await?;
    Ok(elapsed)
}

/// Own latency of each store. Their cycles are interleaved, and which goes first rotates, so
/// a change in background load affects every depth alike.
async fn own_latencies(stores: &[&dyn Parade], samples: usize) -> anyhow::Result<Vec<Latency>> {
    let mut times = vec![Vec::with_capacity(samples); stores.len()];
    for cycle in 0..WARMUP + samples {
        for turn in 0..stores.len() {
            let i = (cycle + turn) % stores.len();
            let elapsed = own_cycle(stores[i], cycle).await?;
            if cycle >= WARMUP {
                times[i].push(elapsed);
            }
        }
    }
    Ok(times.into_iter().map(Latency::of).collect())
}

/// One worker: own 100, return each completed with return_task, until `count` tasks are done.
/// Returns (tasks, time in own_tasks, time in return_task).
async fn own_return_sequential(
    parade: &dyn Parade,
    count: usize,
) -> anyhow::Result<(usize, Duration, Duration)> {
    let actor = ActorId::from("bench-sequential");
    let (mut done, mut own_time, mut return_time) = (0, Duration::ZERO, Duration::ZERO);
    while done < count {
        let started = Instant::now();
        let owned = own(parade, &actor).await?;
        own_time += started.elapsed();
        ensure!(!owned.is_empty(), "the queue ran dry after {done} tasks");
        let started = Instant::now();
        complete(parade, &owned).await?;
        return_time += started.elapsed();
        done += owned.len();
    }
    Ok((done, own_time, return_time))
}

/// One worker: own 100, return them in one return_tasks call. Returns (tasks, elapsed).
async fn own_return_batched(
    parade: &dyn Parade,
    count: usize,
) -> anyhow::Result<(usize, Duration)> {
    let actor = ActorId::from("bench-batched");
    let mut done = 0;
    let started = Instant::now();
    while done < count {
        let owned = own(parade, &actor).await?;
        ensure!(!owned.is_empty(), "the queue ran dry after {done} tasks");
        let returns: Vec<TaskReturn> = owned
            .iter()
            .map(|t| TaskReturn {
                id: t.id.clone(),
                token: t.token,
                status: "ok".into(),
                code: TaskStatusCode::Completed,
                retry_after: None,
            })
            .collect();
        for result in parade.return_tasks(&returns).await? {
            result?;
        }
        done += owned.len();
    }
    Ok((done, started.elapsed()))
}

/// [`WORKERS`] tokio tasks, each owning 100 and returning them one by one with return_task,
/// until `count` tasks are done between them. Returns (tasks, elapsed).
async fn own_return_concurrent(
    parade: &Arc<dyn Parade>,
    count: usize,
) -> anyhow::Result<(usize, Duration)> {
    let budget = Arc::new(AtomicIsize::new(isize::try_from(count)?));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(WORKERS);
    for worker in 0..WORKERS {
        let (parade, budget, done) = (parade.clone(), budget.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let actor = ActorId::from(format!("bench-worker-{worker}"));
            while budget.fetch_sub(OWN_BATCH as isize, Ordering::Relaxed) > 0 {
                let owned = own(&*parade, &actor).await?;
                ensure!(!owned.is_empty(), "the queue ran dry");
                complete(&*parade, &owned).await?;
                done.fetch_add(owned.len(), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok((done.load(Ordering::Relaxed), started.elapsed()))
}

/// What EXPLAIN (ANALYZE, BUFFERS) says about one plan of [`OWN_STEP2`].
struct PlanCheck {
    uses_index: bool,
    summary: String,
    plan: Vec<String>,
}

fn check_plan(kind: &str, plan: Vec<String>) -> PlanCheck {
    let has = |needle: &str| plan.iter().any(|line| line.contains(needle));
    let index = has("using tasks_runnable_idx on tasks");
    // A sequential or bitmap scan of tasks reads (and must sort) every pending row.
    let full_scan = has("Seq Scan on tasks") || has("Bitmap Heap Scan on tasks");
    let uses_index = index && !full_scan;
    let first_number = |prefix: &str| {
        plan.iter().find_map(|line| {
            let rest = &line[line.find(prefix)? + prefix.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        })
    };
    let buffers = first_number("Buffers: shared hit=").unwrap_or_else(|| "?".into());
    let time = first_number("Execution Time: ").unwrap_or_else(|| "?".into());
    let jit = if has("JIT:") { ", JIT" } else { "" };
    let scan = match (index, full_scan) {
        (true, false) => "index scan",
        (_, true) => "FULL SCAN",
        (false, false) => "other access path",
    };
    PlanCheck {
        uses_index,
        summary: format!("{kind} plan: {scan}, {time} ms, {buffers} buffers{jit}"),
        plan,
    }
}

/// Explains [`OWN_STEP2`] as a custom plan (literal action array and limit, as own_tasks'
/// PL/pgSQL gets for each call) and as a generic plan (parameters, as a cached plan would
/// have). Runs in a transaction that is rolled back, so no row stays locked.
async fn explain_own(pool: &sqlx::PgPool) -> anyhow::Result<Vec<PlanCheck>> {
    let lines = |rows: Vec<sqlx::postgres::PgRow>| -> anyhow::Result<Vec<String>> {
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect()
    };
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let custom = OWN_STEP2
        .replace("$ACTIONS", &format!("ARRAY['{ACTION}']::varchar[]"))
        .replace("$LIMIT", &OWN_BATCH.to_string());
    let custom = sqlx::query(&format!("EXPLAIN (ANALYZE, BUFFERS) {custom}"))
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await?;
    let generic = OWN_STEP2.replace("$ACTIONS", "$1").replace("$LIMIT", "$2");
    sqlx::query(&format!(
        "PREPARE bench_own_step2(varchar[], integer) AS {generic}"
    ))
    .execute(&mut *tx)
    .await?;
    let generic = sqlx::query(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_own_step2(ARRAY['{ACTION}'], {OWN_BATCH})"
    ))
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DEALLOCATE bench_own_step2")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(vec![
        check_plan("custom", lines(custom)?),
        check_plan("generic", lines(generic)?),
    ])
}

/// Explains the statement own_tasks runs for pending work (its last RETURN QUERY), read from
/// the installed function with its variables replaced by this benchmark's values, so the
/// check follows the migrations. The rows it chose should be reached by their address (a TID
/// scan, migration 0005); a sequential scan of tasks reads every row, pending or finished, on
/// every own. Rolled back.
async fn explain_own_update(pool: &sqlx::PgPool) -> anyhow::Result<(bool, String)> {
    let plan = own_plan::explain_own_pending(pool, ACTION, OWN_BATCH, LEASE).await?;
    let time = plan
        .iter()
        .find_map(|line| line.strip_prefix("Execution Time: "))
        .unwrap_or("?");
    // "->  Seq Scan on tasks t  (cost=...) (actual time=... rows=20000 loops=1)"
    let seq_scan = plan.iter().find_map(|line| {
        let node = &line[line.find("Seq Scan on tasks")?..];
        let rows = node.rfind("rows=").map_or("?", |at| {
            node[at + 5..].split_whitespace().next().unwrap_or("?")
        });
        Some(format!(
            "{} reads all {rows} rows",
            node.split("  (").next().unwrap_or(node)
        ))
    });
    Ok(match seq_scan {
        None if plan.iter().any(|line| line.contains("Tid Scan on tasks")) => {
            (true, format!("TID scan, {time}"))
        }
        None => (false, format!("no TID scan, {time}")),
        Some(scan) => (false, format!("{scan}, {time}")),
    })
}

/// "1k", "20k", "1m", or the number itself.
fn depth_label(n: usize) -> String {
    if n % 1_000_000 == 0 {
        format!("{}m", n / 1_000_000)
    } else if n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn bench_backend(backend: Backend, args: &Args) -> anyhow::Result<()> {
    let name = backend.name();
    let dir = tempfile::tempdir()?;
    let (n, samples) = (args.tasks, args.samples);

    // The shallow queue, a middle one (where small-table plans still apply) and the deep one,
    // each in its own database. Only the deep load is timed.
    let mut depths = vec![SHALLOW];
    if n > MIDDLE {
        depths.push(MIDDLE);
    }
    let mut stores = Vec::new();
    for &depth in &depths {
        let store = Store::fresh(backend, &dir).await?;
        insert(&*store.parade, "s", depth).await?;
        store.analyze().await?;
        stores.push(store);
    }
    let deep = Store::fresh(backend, &dir).await?;
    let insert_time = insert(&*deep.parade, "d", n).await?;
    let insert_name = match backend {
        Backend::Postgres => "insert_copy",
        Backend::Sqlite => "insert_batch",
    };
    println!(
        "{insert_name}: {:.0} tasks/s ({name}, {n} tasks, batch {INSERT_BATCH}; target >= 100000)",
        rate(n, insert_time)
    );
    let started = Instant::now();
    deep.analyze().await?;
    let analyze = format!(
        "{} {:.1} s",
        match backend {
            Backend::Postgres => "VACUUM ANALYZE",
            Backend::Sqlite => "ANALYZE",
        },
        started.elapsed().as_secs_f64()
    );
    depths.push(n);
    stores.push(deep);
    // The same depth, nine in ten of it not due yet: owning must skip those by the index.
    let future = Store::fresh(backend, &dir).await?;
    insert_mostly_future(&*future.parade, n).await?;
    future.analyze().await?;
    stores.push(future);

    if let Raw::Postgres { pool, .. } = &stores.last().expect("deep store").raw {
        let checks = explain_own(pool).await?;
        let uses_index = checks.iter().all(|c| c.uses_index);
        let summaries: Vec<&str> = checks.iter().map(|c| c.summary.as_str()).collect();
        println!(
            "own_plan_uses_index: {} ({name}, {n} pending, own_tasks step 2 SELECT ... FOR UPDATE \
             SKIP LOCKED, {OWN_BATCH} of 1 action; {})",
            if uses_index { "yes" } else { "no" },
            summaries.join("; ")
        );
        for check in checks.iter().filter(|c| !c.uses_index) {
            for line in &check.plan {
                println!("    {line}");
            }
        }
    }
    for (&depth, store) in depths.iter().zip(&stores).skip(1) {
        if let Raw::Postgres { pool, .. } = &store.raw {
            let (by_address, summary) = explain_own_update(pool).await?;
            println!(
                "own_update_by_address: {} ({name}, {depth} pending, own_tasks step 2 UPDATE of \
                 {OWN_BATCH} rows as installed; {summary})",
                if by_address { "yes" } else { "no" }
            );
        }
    }

    let parades: Vec<&dyn Parade> = stores.iter().map(|s| &*s.parade).collect();
    let mut latencies = own_latencies(&parades, samples).await?;
    let future_latency = latencies.pop().expect("the mostly-future store's latency");
    let conditions = format!(
        "own {OWN_BATCH}, median of {samples} interleaved across depths, returned completed one \
         by one and refilled"
    );
    for (&depth, latency) in depths.iter().zip(&latencies) {
        let after = if depth == n {
            format!("; after {analyze}")
        } else {
            String::new()
        };
        println!(
            "own_latency_{}: {:.3} ms ({name}, {depth} pending, {conditions}; p90 {:.3} ms{after})",
            depth_label(depth),
            ms(latency.median),
            ms(latency.p90)
        );
    }
    for (&depth, latency) in depths.iter().zip(&latencies).skip(1) {
        println!(
            "own_latency_ratio_{}_vs_{}: {:.2} ({name}, median at {depth} vs {SHALLOW} pending; \
             target <= 1.5)",
            depth_label(depth),
            depth_label(SHALLOW),
            latency.median.as_secs_f64() / latencies[0].median.as_secs_f64()
        );
    }
    println!(
        "own_latency_{}_mostly_future: {:.3} ms ({name}, {n} pending of which {} due a day from \
         now, {conditions}; p90 {:.3} ms)",
        depth_label(n),
        ms(future_latency.median),
        n / 10 * 9,
        ms(future_latency.p90)
    );
    println!(
        "own_latency_ratio_{}_mostly_future_vs_{}: {:.2} ({name}, median at {n} pending, 90% \
         not yet due, vs {SHALLOW} pending; target <= 1.5)",
        depth_label(n),
        depth_label(SHALLOW),
        future_latency.median.as_secs_f64() / latencies[0].median.as_secs_f64()
    );
    stores
        .pop()
        .expect("the mostly-future store")
        .close()
        .await?;
    let deep = stores.pop().expect("deep store");
    for store in stores {
        store.close().await?;
    }

    let count = args.rate_tasks;
    let (done, own_time, return_time) = own_return_sequential(&*deep.parade, count).await?;
    println!(
        "own_rate: {:.0} tasks/s ({name}, own_tasks of {OWN_BATCH}, 1 worker, {done} tasks, ~{n} pending)",
        rate(done, own_time)
    );
    println!(
        "return_rate: {:.0} tasks/s ({name}, return_task one at a time, completed, 1 worker, {done} tasks)",
        rate(done, return_time)
    );
    println!(
        "own_return_rate: {:.0} tasks/s ({name}, own {OWN_BATCH} + return_task each, 1 worker, {done} tasks)",
        rate(done, own_time + return_time)
    );
    let (done, elapsed) = own_return_batched(&*deep.parade, count).await?;
    println!(
        "own_return_batch_rate: {:.0} tasks/s ({name}, own {OWN_BATCH} + one return_tasks of {OWN_BATCH}, \
         1 worker, {done} tasks)",
        rate(done, elapsed)
    );
    let (done, elapsed) = own_return_concurrent(&deep.parade, count).await?;
    println!(
        "own_return_rate_{WORKERS}_workers: {:.0} tasks/s ({name}, {WORKERS} tokio tasks each owning \
         {OWN_BATCH} + return_task each, {done} tasks)",
        rate(done, elapsed)
    );
    deep.close().await?;
    Ok(())
}

/// Pending tasks of the concurrency-limit figures' store.
const LIMITED_DEPTH: usize = 20_000;
/// Tasks it keeps in progress (for half an hour), which a limited own counts.
const LIMITED_IN_PROGRESS: u32 = 900;

/// One own of up to [`OWN_BATCH`] within `limit` (`None`: unlimited), timed; the tasks are
/// then returned completed and as many new ones inserted (untimed), so the depth and the
/// tasks in progress stay as they were. Returns the time and how many it owned.
async fn limited_cycle(
    parade: &dyn Parade,
    limit: Option<u32>,
    refill: usize,
) -> anyhow::Result<(Duration, usize)> {
    let actor = ActorId::from("bench-limited");
    let actions = [ACTION.to_owned()];
    let started = Instant::now();
    let owned = parade
        .own(&OwnRequest {
            actor: &actor,
            max_tasks: OWN_BATCH,
            actions: &actions,
            max_duration: Some(LEASE),
            expiry_backoff: &[],
            max_in_progress: limit,
        })
        .await?;
    let elapsed = started.elapsed();
    complete(parade, &owned).await?;
    parade
        .insert_tasks(&tasks("limited", refill..refill + owned.len()))
        .await?;
    Ok((elapsed, owned.len()))
}

/// Own latency within a concurrency limit vs without one, on one store of
/// [`LIMITED_DEPTH`] pending tasks with [`LIMITED_IN_PROGRESS`] in progress: an own at the
/// limit (it counts, finds no room and owns nothing), one with room for the whole batch
/// (limit 1,000: it counts 900 and owns 100), and an unlimited own of 100, interleaved.
async fn bench_limits(backend: Backend, args: &Args) -> anyhow::Result<()> {
    let name = backend.name();
    let dir = tempfile::tempdir()?;
    let store = Store::fresh(backend, &dir).await?;
    insert(
        &*store.parade,
        "s",
        LIMITED_DEPTH + LIMITED_IN_PROGRESS as usize,
    )
    .await?;
    let held = store
        .parade
        .own_tasks(
            &ActorId::from("bench-holder"),
            LIMITED_IN_PROGRESS,
            &[ACTION.to_owned()],
            Some(LEASE),
        )
        .await?;
    ensure!(held.len() == LIMITED_IN_PROGRESS as usize);
    store.analyze().await?;
    let kinds: [(&str, Option<u32>, usize); 3] = [
        ("unlimited", None, OWN_BATCH as usize),
        (
            "with_room",
            Some(LIMITED_IN_PROGRESS + OWN_BATCH),
            OWN_BATCH as usize,
        ),
        ("at_limit", Some(LIMITED_IN_PROGRESS), 0),
    ];
    let mut times = vec![Vec::with_capacity(args.samples); kinds.len()];
    let mut refill = 0;
    for cycle in 0..WARMUP + args.samples {
        for turn in 0..kinds.len() {
            let i = (cycle + turn) % kinds.len();
            let (kind, limit, expected) = kinds[i];
            let (elapsed, owned) = limited_cycle(&*store.parade, limit, refill).await?;
            ensure!(
                owned == expected,
                "{kind}: owned {owned}, expected {expected}"
            );
            refill += owned;
            if cycle >= WARMUP {
                times[i].push(elapsed);
            }
        }
    }
    let latencies: Vec<Latency> = times.into_iter().map(Latency::of).collect();
    let conditions = format!(
        "{LIMITED_DEPTH} pending, {LIMITED_IN_PROGRESS} in progress, own {OWN_BATCH}, median of \
         {} interleaved",
        args.samples
    );
    for ((kind, limit, _), latency) in kinds.iter().zip(&latencies) {
        let limit = limit.map_or("no limit".to_owned(), |l| format!("limit {l}"));
        println!(
            "own_latency_limited_{kind}: {:.3} ms ({name}, {limit}, {conditions}; p90 {:.3} ms)",
            ms(latency.median),
            ms(latency.p90)
        );
    }
    for ((kind, _, _), latency) in kinds.iter().zip(&latencies).skip(1) {
        println!(
            "own_latency_ratio_limited_{kind}_vs_unlimited: {:.2} ({name}, median; target <= 1.5)",
            latency.median.as_secs_f64() / latencies[0].median.as_secs_f64()
        );
    }
    store.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    for &backend in &args.backends {
        bench_backend(backend, &args)
            .await
            .with_context(|| format!("{} benchmark", backend.name()))?;
        bench_limits(backend, &args)
            .await
            .with_context(|| format!("{} concurrency-limit benchmark", backend.name()))?;
    }
    println!(
        "queue_bench_total: {:.1} s ({} tasks{})",
        started.elapsed().as_secs_f64(),
        args.tasks,
        if args.quick { ", --quick" } else { "" }
    );
    Ok(())
}
