//! What an actor's language costs: for the Rust echo component and the Python, JavaScript
//! and C examples, one line each per figure:
//!
//! - `size`: the component's bytes;
//! - `first_load`: compiling it (no cache) and asking it for its actions, as a node's first
//!   start does;
//! - `cached_load`: the same with the compiled code already in the on-disk cache, as every
//!   later start and reload of that version does;
//! - `instantiate`: mean time to create a task's store and instance (pooling allocator);
//! - `task_p50`: one whole task through `ComponentActor::perform` (instantiate, call, the
//!   guest's work on a small body), median.
//!
//! Components come from scripts/build-plugins.sh and scripts/build-guests.sh.
//!
//! cargo bench -p parade-host --bench guests -- [--tasks N] [--quick]
//!     [--language rust|c|python|javascript]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parade_host::manager::Actor;
use parade_host::queue::{ActorId, OwnedTask, Parade, PerformanceToken, SqliteParade};
use parade_host::runtime::{ComponentActor, PluginLimits, Runtime};

struct Guest {
    language: &'static str,
    file: PathBuf,
    action: &'static str,
    body: &'static str,
}

fn guests() -> Vec<Guest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target");
    let rust = root.join("wasm32-wasip2/release");
    let other = root.join("guests");
    vec![
        Guest {
            language: "rust",
            file: rust.join("echo.wasm"),
            action: "echo",
            body: "hello",
        },
        Guest {
            language: "c",
            file: other.join("checksum.wasm"),
            action: "checksum",
            body: "123456789",
        },
        Guest {
            language: "python",
            file: other.join("csv-summary.wasm"),
            action: "csv-summary",
            body: r#"{"csv": "city,temp\nOslo,3.5\nRome,18\nLima,22.5\n"}"#,
        },
        Guest {
            language: "javascript",
            file: other.join("http-get.wasm"),
            action: "http-get",
            // Refused before any request (not a URL): instantiate and call only.
            body: r#"{"url": "not a url"}"#,
        },
    ]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut tasks = 200usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tasks" => tasks = args.next().context("--tasks needs a value")?.parse()?,
            "--quick" => tasks = 50,
            "--language" => only = Some(args.next().context("--language needs a value")?),
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Parade> = Arc::new(
        SqliteParade::open(&format!("sqlite://{}", dir.path().join("q.db").display())).await?,
    );
    for guest in guests()
        .into_iter()
        .filter(|g| only.as_deref().is_none_or(|l| l == g.language))
    {
        let size = std::fs::metadata(&guest.file)
            .with_context(|| {
                format!(
                    "{} is missing: run scripts/build-plugins.sh and scripts/build-guests.sh",
                    guest.file.display()
                )
            })?
            .len();
        let lang = guest.language;
        println!(
            "{lang}_size: {:.2} MiB ({})",
            size as f64 / (1 << 20) as f64,
            guest.file.display()
        );

        let started = Instant::now();
        Runtime::new(None)?
            .load_file(&guest.file, PluginLimits::default())
            .await?;
        println!(
            "{lang}_first_load: {:.0} ms (compile without cache, then instantiate and call actions())",
            ms(started.elapsed())
        );

        let cache = dir.path().join(format!("cache-{lang}"));
        Runtime::new(Some(cache.clone()))?
            .load_file(&guest.file, PluginLimits::default())
            .await?;
        let runtime = Runtime::new(Some(cache))?;
        let started = Instant::now();
        let plugin = runtime
            .load_file(&guest.file, PluginLimits::default())
            .await?;
        println!(
            "{lang}_cached_load: {:.1} ms (compiled code from the on-disk cache, then actions())",
            ms(started.elapsed())
        );

        let actor = ComponentActor::new(
            runtime.clone(),
            vec![Arc::new(plugin)],
            store.clone(),
            ActorId::from("bench"),
            Duration::from_secs(60),
        )?;
        let task = OwnedTask {
            id: "bench".into(),
            token: PerformanceToken(uuid::Uuid::new_v4()),
            num_signalled_failures: 0,
            action: guest.action.into(),
            body: Some(guest.body.into()),
            num_tries: 1,
        };
        // Warm the pool's slots and the allocator first.
        for _ in 0..10 {
            actor.perform(&task).await?;
        }
        let before = runtime.stats.instantiate_times();
        let mut samples = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let started = Instant::now();
            actor.perform(&task).await?;
            samples.push(started.elapsed());
        }
        let after = runtime.stats.instantiate_times();
        let instantiate =
            (after.sum_seconds - before.sum_seconds) / (after.count - before.count) as f64;
        samples.sort();
        println!(
            "{lang}_instantiate: {:.1} us (mean over {tasks} tasks, pooling allocator)",
            instantiate * 1e6
        );
        println!(
            "{lang}_task_p50: {:.1} us (fresh instance, call, the guest's work; {tasks} tasks)",
            samples[samples.len() / 2].as_secs_f64() * 1e6
        );
    }
    Ok(())
}
