//! The admin listener of a real `parade run`: its metrics match the work done, health and
//! readiness answer, and operator actions need the configured token.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{self, Parade, TaskData, TaskFilter, TaskId, TaskStatusCode};
use support::process::{http, node_dir, Node};
use support::Backend;

fn task(id: &str, action: &str, body: &str, max_tries: Option<i32>) -> TaskData {
    TaskData {
        body: Some(body.into()),
        max_tries,
        ..TaskData::new(id, action)
    }
}

/// Waits until every task of the store has ended.
async fn until_all_final(queue: &Arc<dyn Parade>, node: &Node) -> anyhow::Result<Vec<TaskData>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = queue.list_tasks(&TaskFilter::default()).await?;
        if tasks.iter().all(|t| t.status_code.is_final()) {
            return Ok(tasks);
        }
        ensure!(
            Instant::now() < deadline,
            "tasks still open; log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The samples of a scrape: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn metrics_count_what_the_node_did(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        tasks.push(task(&format!("e{i}"), "echo", "hi", None));
    }
    for i in 0..5 {
        tasks.push(task(
            &format!("w{i}"),
            "word-count",
            r#"{"text": "a b"}"#,
            None,
        ));
    }
    for i in 0..3 {
        tasks.push(task(&format!("bad{i}"), "word-count", "not json", Some(1)));
    }
    for i in 0..2 {
        tasks.push(task(&format!("t{i}"), "trap", "", Some(1)));
    }
    queue.insert_tasks(&tasks).await?;
    let dir = node_dir(&["echo", "json_transform", "misbehave"])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    until_all_final(&queue, &node).await?;

    // Results are counted once stored; the last batch may still be on its way.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let scrape = http("GET", &format!("{admin}/metrics"), &[]).await?;
        assert_eq!(scrape.status, 200);
        let metrics = samples(&scrape.body);
        let stored = ["echo", "word-count", "trap"]
            .iter()
            .map(|a| {
                ["completed", "aborted", "retried"]
                    .iter()
                    .map(|kind| {
                        metrics
                            .get(&format!("parade_tasks_{kind}_total{{action=\"{a}\"}}"))
                            .copied()
                            .unwrap_or(0.0)
                    })
                    .sum::<f64>()
            })
            .sum::<f64>();
        if stored == 30.0 || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let get = |key: &str| {
        metrics
            .get(key)
            .copied()
            .with_context(|| format!("{key} missing from the scrape"))
    };
    assert_eq!(get(r#"parade_tasks_owned_total{action="echo"}"#)?, 20.0);
    assert_eq!(get(r#"parade_tasks_completed_total{action="echo"}"#)?, 20.0);
    assert_eq!(
        get(r#"parade_tasks_completed_total{action="word-count"}"#)?,
        5.0
    );
    assert_eq!(
        get(r#"parade_tasks_aborted_total{action="word-count"}"#)?,
        3.0
    );
    // A trapping plugin's task goes back pending (its max_tries then abort it).
    assert_eq!(get(r#"parade_tasks_retried_total{action="trap"}"#)?, 2.0);
    assert_eq!(
        get(r#"parade_wasm_failures_total{kind="unreachable"}"#)?,
        2.0
    );
    assert_eq!(
        get(r#"parade_task_duration_seconds_count{action="echo"}"#)?,
        20.0
    );
    assert_eq!(
        get(r#"parade_task_duration_seconds_bucket{action="echo",le="+Inf"}"#)?,
        20.0
    );
    assert_eq!(get("parade_wasm_instantiate_seconds_count")?, 30.0);
    assert_eq!(get("parade_plugins_loaded")?, 3.0);
    assert_eq!(get("parade_store_up")?, 1.0);
    // The store's own counts, as the queue reports them.
    for count in queue.summary().await?.counts {
        let key = format!(
            "parade_queue_tasks{{action=\"{}\",status=\"{}\"}}",
            count.action, count.status_code
        );
        assert_eq!(get(&key)?, count.count as f64, "{key}");
    }
    assert_eq!(
        get(r#"parade_queue_tasks{action="trap",status="aborted"}"#)?,
        2.0
    );

    let health = http("GET", &format!("{admin}/healthz"), &[]).await?;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.body.contains(r#""store":"ok""#), "{}", health.body);
    assert_eq!(
        http("GET", &format!("{admin}/readyz"), &[]).await?.status,
        200
    );
    node.stop().await?;
    Ok(())
}

async fn operator_actions_need_the_token(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue
        .insert_tasks(&[task("bad", "word-count", "not json", Some(1))])
        .await?;
    let dir = node_dir(&["json_transform"])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[admin]\ntoken = \"s3cret\"\n",
    )?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    until_all_final(&queue, &node).await?;
    let bad = TaskId::from("bad");
    let status = |queue: Arc<dyn Parade>| {
        let bad = bad.clone();
        async move {
            let task = queue.get_task(&bad).await?;
            anyhow::Ok(task.map(|t| (t.status_code, t.num_tries)))
        }
    };
    assert_eq!(
        status(queue.clone()).await?,
        Some((TaskStatusCode::Aborted, 1))
    );

    let retry = format!("{admin}/api/task/retry?id=bad");
    let token = "Authorization: Bearer s3cret";
    let refused = http("POST", &retry, &[]).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("Bearer"), "{}", refused.body);
    let wrong = http("POST", &retry, &["Authorization: Bearer guess"]).await?;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        status(queue.clone()).await?,
        Some((TaskStatusCode::Aborted, 1)),
        "a refused retry changed the task"
    );

    // Paused, a retried task waits.
    let pause = http(
        "POST",
        &format!("{admin}/api/action/pause?action=word-count"),
        &[token],
    )
    .await?;
    assert_eq!(pause.status, 200, "{}", pause.body);
    let retried = http("POST", &retry, &[token]).await?;
    assert_eq!(retried.status, 200, "{}", retried.body);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        status(queue.clone()).await?,
        Some((TaskStatusCode::Pending, 0))
    );
    let page = http("GET", &format!("{admin}/"), &[]).await?;
    assert!(page.body.contains("paused: word-count"), "{}", page.body);

    // Resumed, it runs (and, its body still bad, aborts again).
    let resume = http(
        "POST",
        &format!("{admin}/api/action/resume?action=word-count"),
        &[token],
    )
    .await?;
    assert_eq!(resume.status, 200, "{}", resume.body);
    until_all_final(&queue, &node).await?;
    assert_eq!(
        status(queue.clone()).await?,
        Some((TaskStatusCode::Aborted, 1))
    );

    let delete = format!("{admin}/api/task/delete?id=bad");
    assert_eq!(http("POST", &delete, &[]).await?.status, 401);
    assert_eq!(http("POST", &delete, &[token]).await?.status, 200);
    assert_eq!(status(queue.clone()).await?, None);
    assert_eq!(http("POST", &delete, &[token]).await?.status, 404);
    let unknown = http(
        "POST",
        &format!("{admin}/api/action/pause?action=nothing"),
        &[token],
    )
    .await?;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    node.stop().await?;
    Ok(())
}

support::on_both_backends!(
    metrics_count_what_the_node_did,
    operator_actions_need_the_token
);

#[tokio::test]
async fn without_a_token_operator_actions_are_off() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&["echo"])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let answer = http(
        "POST",
        &format!("{admin}/api/action/pause?action=echo"),
        &["Authorization: Bearer anything"],
    )
    .await?;
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("[admin] token"), "{}", answer.body);
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn task_list_watch_redraws_the_table() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&[task("w1", "echo", "", None)]).await?;
    let dir = node_dir(&[])?;
    let mut watch = support::process::parade(dir.path())
        .args(["--database", &url, "task", "list", "--watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = watch.stdout.take().context("no stdout")?;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut added = false;
    // Two frames: the first shows w1; a task added meanwhile shows up in a later one.
    while !seen.contains("w2 ") {
        ensure!(
            Instant::now() < deadline,
            "no second frame with w2:\n{seen}"
        );
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buffer)).await??;
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if seen.contains("w1 ") && !added {
            queue.insert_tasks(&[task("w2", "echo", "", None)]).await?;
            added = true;
        }
    }
    assert!(
        seen.contains("(1 tasks)") && seen.contains("(2 tasks)"),
        "{seen}"
    );
    watch.kill().await?;
    Ok(())
}
