//! The quick start: a node on the embedded default store (`./parade.db`) running the example
//! plugins over a small set of sample tasks, including a DAG, until nothing is left to do.
//! Run it through `scripts/quickstart.sh`, which builds the plugins first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parade_host::manager::{ActionManager, ManagerProperties};
use parade_host::queue::{self, ActorId, TaskData, TaskFilter};
use parade_host::runtime::{ComponentActor, PluginLimits, Runtime};

const PLUGINS: [&str; 4] = ["echo", "json_transform", "fan_out", "flaky"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let queue = queue::open(queue::DEFAULT_DATABASE_URL).await?;
    let runtime = Runtime::new(Some(".parade-cache".into()))?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release");
    let mut plugins = Vec::new();
    for name in PLUGINS {
        let path = dir.join(format!("{name}.wasm"));
        let plugin = runtime
            .load_file(&path, PluginLimits::default())
            .await
            .context("build the plugins first: scripts/build-plugins.sh")?;
        println!(
            "loaded {:<16} serving {}",
            plugin.name,
            plugin.actions.join(", ")
        );
        plugins.push(Arc::new(plugin));
    }

    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let id = |name: &str| format!("{run}-{name}");
    let sample = |name: &str, action: &str, body: &str| TaskData {
        body: Some(body.into()),
        ..TaskData::new(id(name), action)
    };
    queue
        .insert_tasks(&[
            sample("hello", "echo", "hello, parade"),
            sample(
                "count",
                "word-count",
                r#"{"text": "the quick brown fox jumps over the lazy dog the end"}"#,
            ),
            TaskData {
                max_tries: Some(4),
                ..sample("flaky", "flaky", r#"{"failures": 2}"#)
            },
            sample("dag", "fan-out", r#"{"children": 3}"#),
        ])
        .await?;

    let props = ManagerProperties {
        wait_time: Duration::from_millis(50),
        ..ManagerProperties::default()
    };
    let actor = ComponentActor::new(
        runtime,
        plugins,
        queue.clone(),
        ActorId::from("quickstart"),
        props.max_duration,
    )?;
    let manager = ActionManager::start(Arc::new(actor), queue.clone(), props);
    let filter = TaskFilter {
        id_prefix: Some(run.clone()),
        ..TaskFilter::default()
    };
    let tasks = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let tasks = queue.list_tasks(&filter).await?;
        if tasks.iter().all(|t| t.status_code.is_final()) {
            break tasks;
        }
    };
    manager.close().await;

    println!(
        "\n{:<18} {:<11} {:<10} {:>5}  STATUS",
        "TASK", "ACTION", "CODE", "TRIES"
    );
    for task in &tasks {
        println!(
            "{:<18} {:<11} {:<10} {:>5}  {}",
            task.id,
            task.action,
            task.status_code,
            task.num_tries,
            task.status.as_deref().unwrap_or("")
        );
    }
    let stats = manager.stats();
    println!(
        "\n{} tasks done ({} completed, {} aborted, {} retried) in ./parade.db; see them with `parade task list`",
        tasks.len(),
        stats.completed,
        stats.aborted,
        stats.retried
    );
    Ok(())
}
