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

/// Owns the pending task `id` of action `action` as another node would: its token.
async fn own_elsewhere(
    queue: &Arc<dyn Parade>,
    action: &str,
    id: &str,
) -> anyhow::Result<queue::PerformanceToken> {
    let owned = queue
        .own_tasks(
            &queue::ActorId::from("elsewhere"),
            1,
            &[action.to_owned()],
            Some(Duration::from_secs(600)),
        )
        .await?;
    let task = owned.first().context("nothing owned")?;
    ensure!(task.id.as_str() == id, "owned {} instead of {id}", task.id);
    Ok(task.token)
}

/// A store holding, of actions no node serves: `running` (owned by another node),
/// `waiting` (on `running`), `delayed` (due in an hour), `done` (completed), and `head`
/// signalling `tail`; a running node with `[admin] token = "s3cret"` on it. The queue, the
/// node's folder, the node, its admin URL and the running task's token.
async fn node_with_tasks_to_cancel(
    backend: Backend,
) -> anyhow::Result<(
    Arc<dyn Parade>,
    tempfile::TempDir,
    Node,
    String,
    queue::PerformanceToken,
)> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue
        .insert_tasks(&[
            TaskData {
                to_signal_after: vec![TaskId::from("waiting")],
                ..task("running", "held", "", None)
            },
            TaskData {
                total_dependencies: Some(1),
                ..task("waiting", "later", "", None)
            },
            TaskData {
                run_after: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                ..task("delayed", "later", "", None)
            },
            task("done", "finished", "", None),
            TaskData {
                to_signal_after: vec![TaskId::from("tail")],
                ..task("head", "later", "", None)
            },
            TaskData {
                total_dependencies: Some(1),
                ..task("tail", "later", "", None)
            },
        ])
        .await?;
    let token = own_elsewhere(&queue, "held", "running").await?;
    let done = own_elsewhere(&queue, "finished", "done").await?;
    queue
        .return_task(&TaskId::from("done"), done, "ok", TaskStatusCode::Completed)
        .await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[admin]\ntoken = \"s3cret\"\n",
    )?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    Ok((queue, dir, node, admin, token))
}

/// A task's status code and status.
async fn state_of(queue: &Arc<dyn Parade>, id: &str) -> anyhow::Result<(TaskStatusCode, String)> {
    let task = queue
        .get_task(&TaskId::from(id))
        .await?
        .with_context(|| format!("task {id} is gone"))?;
    Ok((task.status_code, task.status.unwrap_or_default()))
}

async fn cancel_needs_the_token_and_answers_per_task(backend: Backend) -> anyhow::Result<()> {
    let (queue, _dir, node, admin, token) = node_with_tasks_to_cancel(backend).await?;
    let cancel = |query: &str| format!("{admin}/api/task/cancel?{query}");
    let bearer = "Authorization: Bearer s3cret";

    let listed = "id=running&id=delayed&id=done&id=ghost&reason=operator%20says%20no";
    let refused = http("POST", &cancel(listed), &[]).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let wrong = http("POST", &cancel(listed), &["Authorization: Bearer guess"]).await?;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(
        state_of(&queue, "running").await?.0,
        TaskStatusCode::InProgress,
        "a refused cancel changed the task"
    );

    for (query, problem) in [
        ("reason=x", "missing ?id="),
        ("id=delayed&cascade=maybe", "cascade is true or false"),
        ("id=delayed&force=1", "unknown parameter \"force\""),
        ("id=delayed&reason=a%00b", "NUL"),
    ] {
        let answer = http("POST", &cancel(query), &[bearer]).await?;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        let error: serde_json::Value = serde_json::from_str(&answer.body)?;
        let error = error["error"].as_str().unwrap_or_default();
        assert!(error.contains(problem), "{query}: {}", answer.body);
    }
    assert_eq!(
        state_of(&queue, "delayed").await?.0,
        TaskStatusCode::Pending
    );

    let answer = http("POST", &cancel(listed), &[bearer]).await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body)?;
    assert_eq!(
        body["tasks"],
        serde_json::json!([
            {"id": "running", "outcome": "cancelled", "cascade": false},
            {"id": "delayed", "outcome": "cancelled", "cascade": false},
            {"id": "done", "outcome": "already-ended", "status_code": "completed", "cascade": false},
            {"id": "ghost", "outcome": "not-found", "cascade": false},
        ])
    );
    assert_eq!(body["ok"], "2 cancelled, 1 already ended, 1 not found");
    for id in ["running", "delayed"] {
        assert_eq!(
            state_of(&queue, id).await?,
            (
                TaskStatusCode::Aborted,
                "cancelled: operator says no".into()
            ),
            "{id}"
        );
    }
    assert_eq!(
        state_of(&queue, "done").await?,
        (TaskStatusCode::Completed, "ok".into())
    );
    // The running task's owner can no longer return it, and its successor heard of the end.
    let late = queue
        .return_task(
            &TaskId::from("running"),
            token,
            "late",
            TaskStatusCode::Completed,
        )
        .await;
    assert!(
        matches!(late, Err(queue::Error::InvalidToken { .. })),
        "{late:?}"
    );
    let waiting = queue
        .get_task(&TaskId::from("waiting"))
        .await?
        .context("gone")?;
    assert_eq!((waiting.num_signals, waiting.num_failures), (1, 1));

    let cascaded = http("POST", &cancel("id=head&cascade=true"), &[bearer]).await?;
    assert_eq!(cascaded.status, 200, "{}", cascaded.body);
    let body: serde_json::Value = serde_json::from_str(&cascaded.body)?;
    assert_eq!(
        body["tasks"],
        serde_json::json!([
            {"id": "head", "outcome": "cancelled", "cascade": false},
            {"id": "tail", "outcome": "cancelled", "cascade": true},
        ])
    );
    assert_eq!(
        state_of(&queue, "tail").await?,
        (TaskStatusCode::Aborted, "cancelled".into())
    );
    assert!(
        node.log()
            .contains("admin: cancel head (reason \"\", cascade true)"),
        "the cancel is logged:\n{}",
        node.log()
    );
    node.stop().await?;
    Ok(())
}

support::on_both_backends!(
    metrics_count_what_the_node_did,
    operator_actions_need_the_token,
    cancel_needs_the_token_and_answers_per_task
);

#[tokio::test]
async fn task_pages_show_what_applies_to_the_task_and_cancel_only_with_a_token(
) -> anyhow::Result<()> {
    let (queue, _dir, node, admin, _token) = node_with_tasks_to_cancel(Backend::Sqlite).await?;
    let page = |id: &str| {
        let admin = admin.clone();
        let id = id.to_owned();
        async move {
            let answer = http("GET", &format!("{admin}/task?id={id}"), &[]).await?;
            ensure!(answer.status == 200, "{id}: {}", answer.body);
            anyhow::Ok(answer.body)
        }
    };
    let delayed = queue
        .get_task(&TaskId::from("delayed"))
        .await?
        .context("gone")?;
    let due_at = delayed
        .run_after
        .context("no run_after")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let delayed = page("delayed").await?;
    assert!(
        delayed.contains("data-field=\"due\">in ") && delayed.contains(&format!("({due_at})</td>")),
        "{delayed}"
    );
    assert!(!delayed.contains("data-field=\"deadline\""), "{delayed}");
    let running = page("running").await?;
    assert!(running.contains("data-field=\"deadline\""), "{running}");
    assert!(!running.contains("data-field=\"due\""), "{running}");
    // The cancel controls, for tasks that have not ended; never the token itself.
    for body in [&delayed, &running] {
        assert!(body.contains("id=\"operator\""), "{body}");
        assert!(body.contains("sessionStorage"), "{body}");
        assert!(!body.contains("s3cret"), "{body}");
    }
    let done = page("done").await?;
    for absent in [
        "data-field=\"deadline\"",
        "data-field=\"due\"",
        "id=\"cancel\"",
    ] {
        assert!(
            !done.contains(absent),
            "{absent} on a finished task's page: {done}"
        );
    }
    // A predecessor's page lists its waiting successor.
    let head = page("head").await?;
    assert!(head.contains("/task?id=tail"), "{head}");
    node.stop().await?;

    // Without a token the node takes no operator actions: no controls.
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue
        .insert_tasks(&[
            TaskData {
                to_signal_after: vec![TaskId::from("later")],
                ..task("first", "held", "", None)
            },
            TaskData {
                total_dependencies: Some(1),
                run_after: Some(chrono::Utc::now() + chrono::Duration::minutes(5)),
                ..task("later", "held", "", None)
            },
        ])
        .await?;
    let dir = node_dir(&[])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let first = http("GET", &format!("{admin}/task?id=first"), &[]).await?;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.body.contains("id=\"operator\""), "{}", first.body);
    assert!(
        first.body.contains("due <time class=\"due\""),
        "a delayed successor says when it is due: {}",
        first.body
    );
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn without_a_token_operator_actions_are_off() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&["echo"])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    for action in ["action/pause?action=echo", "task/cancel?id=x"] {
        let answer = http(
            "POST",
            &format!("{admin}/api/{action}"),
            &["Authorization: Bearer anything"],
        )
        .await?;
        assert_eq!(answer.status, 403, "{action}: {}", answer.body);
        assert!(answer.body.contains("[admin] token"), "{}", answer.body);
    }
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

// ---------------------------------------------------------------------------------------
// Hardening: Host names, performance tokens, slow clients, the connection cap, summary
// caching, metric labels, database passwords.

/// The listener's `HOST:PORT` from its base URL.
fn authority(admin: &str) -> &str {
    admin.trim_start_matches("http://")
}

/// Sends `request` as it is to the listener at `admin` and reads the answer to its end (at
/// most 30 s): its status code and the whole text.
async fn raw(admin: &str, request: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(authority(admin)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .context("no complete answer within 30s")??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {answer:?}"))?;
    Ok((status, answer))
}

/// `GET path` with exactly this `Host` header.
async fn get_as(admin: &str, host: &str, path: &str) -> anyhow::Result<(u16, String)> {
    raw(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn requests_naming_another_host_are_refused() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[admin]\nhosts = [\"dash.example.com\"]\n",
    )?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let port = authority(&admin)
        .rsplit_once(':')
        .context("no port")?
        .1
        .to_owned();
    // A DNS-rebinding page reaches the listener under its own name.
    for path in [
        "/",
        "/task?id=x",
        "/api/overview",
        "/api/task?id=x",
        "/metrics",
        "/healthz",
    ] {
        let (status, answer) = get_as(&admin, &format!("evil.example:{port}"), path).await?;
        assert_eq!(status, 421, "{path}: {answer}");
        assert!(answer.contains("[admin] hosts"), "{path}: {answer}");
        assert!(
            !answer.contains("parade_"),
            "{path} leaked metrics: {answer}"
        );
    }
    for host in [
        authority(&admin).to_owned(),
        format!("localhost:{port}"),
        "dash.example.com".to_owned(),
        format!("DASH.example.com:{port}"),
    ] {
        let (status, answer) = get_as(&admin, &host, "/healthz").await?;
        assert_eq!(status, 200, "Host {host}: {answer}");
    }
    let (status, answer) = raw(
        &admin,
        "GET /api/overview HTTP/1.0\r\nConnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(status, 421, "a request without Host: {answer}");
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn admin_answers_never_show_performance_tokens() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue
        .insert_tasks(&[
            TaskData {
                total_dependencies: Some(1),
                ..task("after", "held", "", None)
            },
            TaskData {
                to_signal_after: vec![TaskId::from("after")],
                ..task("held-1", "held", "secret body", None)
            },
        ])
        .await?;
    // Owned by someone else: in progress, with a token that returns it.
    let owned = queue
        .own_tasks(
            &queue::ActorId::from("elsewhere"),
            1,
            &["held".to_owned()],
            Some(Duration::from_secs(600)),
        )
        .await?;
    let token = owned.first().context("nothing owned")?.token.to_string();
    let dir = node_dir(&[])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    for path in [
        "/api/task?id=held-1",
        "/task?id=held-1",
        "/api/task?id=after",
        "/task?id=after",
        "/api/overview",
        "/",
    ] {
        let answer = http("GET", &format!("{admin}{path}"), &[]).await?;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(
            !answer.body.contains(&token),
            "{path} shows the token: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("performance_token"),
            "{path} names the token: {}",
            answer.body
        );
    }
    let shown = http("GET", &format!("{admin}/api/task?id=held-1"), &[]).await?;
    assert!(
        shown.body.contains("elsewhere"),
        "the owner is still shown: {}",
        shown.body
    );
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let mut stream = tokio::net::TcpStream::connect(authority(&admin)).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n", authority(&admin)).as_bytes())
        .await?;
    // The header timeout is a few seconds; 30 s bounds the test, not the listener.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .context("the listener kept a connection whose headers never ended for 30s")?;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_err() || !answer.contains(" 200 "),
        "an unfinished request was served: {answer}"
    );
    // The listener still serves others.
    assert_eq!(
        http("GET", &format!("{admin}/healthz"), &[]).await?.status,
        200
    );
    node.stop().await?;
    Ok(())
}

/// The listener's documented cap on connections served at once.
const ADMIN_MAX_CONNECTIONS: usize = 64;

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let mut silent = Vec::new();
    for _ in 0..ADMIN_MAX_CONNECTIONS {
        let mut stream = tokio::net::TcpStream::connect(authority(&admin)).await?;
        stream.write_all(b"GET / HTTP/1.1\r\n").await?;
        silent.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = tokio::spawn({
        let admin = admin.clone();
        async move { http("GET", &format!("{admin}/healthz"), &[]).await }
    });
    // While every slot is held the request waits (a correctness check, not a speed one:
    // it may only wait longer).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !over.is_finished(),
        "a connection over the cap was served at once"
    );
    drop(silent);
    let answer = tokio::time::timeout(Duration::from_secs(30), over)
        .await
        .context("the waiting request was never served")???;
    assert_eq!(answer.status, 200, "{}", answer.body);
    node.stop().await?;
    Ok(())
}

/// A store that counts `summary` calls and makes each take a while, so concurrent scrapes
/// overlap one in flight; it counts the dashboard's other reads (`list_tasks`, `get_task`)
/// in `reads`.
struct CountingSummaries {
    inner: Arc<dyn Parade>,
    calls: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Parade for CountingSummaries {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> queue::Result<()> {
        self.inner.insert_tasks(tasks).await
    }
    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> queue::Result<Vec<TaskId>> {
        self.inner.insert_tasks_if_absent(tasks).await
    }
    async fn own(&self, request: &queue::OwnRequest<'_>) -> queue::Result<Vec<queue::OwnedTask>> {
        self.inner.own(request).await
    }
    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: queue::PerformanceToken,
        duration: Duration,
    ) -> queue::Result<()> {
        self.inner.extend_task_deadline(id, token, duration).await
    }
    async fn return_task(
        &self,
        id: &TaskId,
        token: queue::PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> queue::Result<()> {
        self.inner.return_task(id, token, status, code).await
    }
    async fn return_tasks(
        &self,
        returns: &[queue::TaskReturn],
    ) -> queue::Result<Vec<queue::Result<()>>> {
        self.inner.return_tasks(returns).await
    }
    async fn release_tasks(&self, tasks: &[queue::TaskLease]) -> queue::Result<u64> {
        self.inner.release_tasks(tasks).await
    }
    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[queue::Backoff],
    ) -> queue::Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.inner.next_due(actions, expiry_backoff).await
    }
    async fn new_task_hints(&self) -> queue::Result<Option<queue::TaskHints>> {
        self.inner.new_task_hints().await
    }
    async fn new_waiter(&self, id: &TaskId) -> queue::Result<queue::Waiter> {
        self.inner.new_waiter(id).await
    }
    async fn delete_tasks(&self, ids: &[TaskId]) -> queue::Result<()> {
        self.inner.delete_tasks(ids).await
    }
    async fn get_task(&self, id: &TaskId) -> queue::Result<Option<TaskData>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_task(id).await
    }
    async fn list_tasks(&self, filter: &TaskFilter) -> queue::Result<Vec<TaskData>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.list_tasks(filter).await
    }
    async fn list_task_page(&self, filter: &TaskFilter) -> queue::Result<queue::TaskPage> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.list_task_page(filter).await
    }
    async fn task_graph(
        &self,
        id: &TaskId,
        max_nodes: u32,
    ) -> queue::Result<Option<queue::TaskGraph>> {
        self.inner.task_graph(id, max_nodes).await
    }
    async fn summary(&self) -> queue::Result<queue::QueueSummary> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.inner.summary().await
    }
    async fn cancel_tasks(
        &self,
        ids: &[TaskId],
        reason: &str,
        cascade: bool,
    ) -> queue::Result<Vec<queue::Cancellation>> {
        self.inner.cancel_tasks(ids, reason, cascade).await
    }
    async fn task_cancellations(&self) -> queue::Result<Option<queue::TaskCancellations>> {
        self.inner.task_cancellations().await
    }
    async fn prune_finished(
        &self,
        retention: &queue::Retention,
        max_rows: u32,
    ) -> queue::Result<u64> {
        self.inner.prune_finished(retention, max_rows).await
    }
    async fn ping(&self) -> queue::Result<()> {
        self.inner.ping().await
    }
    async fn retry_task(&self, id: &TaskId) -> queue::Result<()> {
        self.inner.retry_task(id).await
    }
}

/// An admin listener in this process on `queue`, serving no plugins; its base URL, and the
/// sender that stops it.
async fn admin_in_process(
    queue: Arc<dyn Parade>,
) -> anyhow::Result<(String, tokio::sync::watch::Sender<bool>)> {
    use parade_host::admin::{self, AdminState};
    use parade_host::manager::{ActionManager, ManagerProperties};
    use parade_host::runtime::{ComponentActor, Runtime};
    let runtime = Runtime::new(None)?;
    let actor = Arc::new(ComponentActor::new(
        runtime.clone(),
        Vec::new(),
        queue.clone(),
        queue::ActorId::from("admin-test"),
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
        actor_id: "admin-test".into(),
        database: "sqlite://test.db".into(),
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
    Ok((format!("http://{bound}"), stop))
}

/// The sum of a scrape's `parade_queue_tasks` samples.
fn queued_in(scrape: &str) -> f64 {
    samples(scrape)
        .iter()
        .filter(|(key, _)| key.starts_with("parade_queue_tasks{"))
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_summary_query_per_second() -> anyhow::Result<()> {
    let store = Backend::Sqlite.open().await?;
    store
        .insert_tasks(&[task("a", "x", "", None), task("b", "y", "", None)])
        .await?;
    let counting = Arc::new(CountingSummaries {
        inner: store.clone(),
        calls: Default::default(),
        reads: Default::default(),
    });
    let (admin, _stop) = admin_in_process(counting.clone()).await?;
    let calls = || counting.calls.load(std::sync::atomic::Ordering::SeqCst);

    let started = Instant::now();
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move { http("GET", &format!("{admin}/metrics"), &[]).await })
        })
        .collect();
    for scrape in scrapes {
        let scrape = scrape.await??;
        assert_eq!(scrape.status, 200);
        assert_eq!(queued_in(&scrape.body), 2.0, "{}", scrape.body);
    }
    let allowed = 1 + started.elapsed().as_secs() as usize;
    assert!(
        calls() <= allowed,
        "20 concurrent scrapes ran {} summary queries in {:?}",
        calls(),
        started.elapsed()
    );

    // Counts stay fresh: a scrape a second later queries again and sees the new task.
    store.insert_tasks(&[task("c", "x", "", None)]).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = calls();
    let scrape = http("GET", &format!("{admin}/metrics"), &[]).await?;
    assert_eq!(queued_in(&scrape.body), 3.0, "{}", scrape.body);
    assert_eq!(calls(), before + 1);
    // The dashboard's polls share the same summary.
    let started = Instant::now();
    let before = calls();
    for _ in 0..5 {
        assert_eq!(
            http("GET", &format!("{admin}/api/overview"), &[])
                .await?
                .status,
            200
        );
    }
    assert!(calls() - before <= 1 + started.elapsed().as_secs() as usize);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_polls_share_each_store_read_once_per_second() -> anyhow::Result<()> {
    let store = Backend::Sqlite.open().await?;
    store
        .insert_tasks(&[task("a", "x", "", None), task("b", "y", "", None)])
        .await?;
    let counting = Arc::new(CountingSummaries {
        inner: store.clone(),
        calls: Default::default(),
        reads: Default::default(),
    });
    let (admin, _stop) = admin_in_process(counting.clone()).await?;
    let load = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
    // Many tabs polling everything the overview reads, at once and over a few seconds.
    let started = Instant::now();
    let mut polls = Vec::new();
    for tab in 0..10 {
        let admin = admin.clone();
        polls.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..6 {
                for path in ["/", "/overview/panels", "/api/overview", "/api/history"] {
                    statuses.push(http("GET", &format!("{admin}{path}"), &[]).await?.status);
                }
                if round % 2 == tab % 2 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
            }
            anyhow::Ok(statuses)
        }));
    }
    for poll in polls {
        assert!(poll.await??.iter().all(|s| *s == 200));
    }
    let seconds = started.elapsed().as_secs() as usize;
    // The history's sampler may add one summary per interval.
    let allowed = 1 + seconds + seconds / parade_host::admin::HISTORY_INTERVAL.as_secs() as usize;
    assert!(
        load(&counting.calls) <= allowed,
        "240 polls ran {} summary queries in {:?}",
        load(&counting.calls),
        started.elapsed()
    );
    // One read of the recent failures per second (this node has no schedules).
    assert!(
        load(&counting.reads) <= 1 + seconds,
        "240 polls ran {} other reads in {:?}",
        load(&counting.reads),
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn metric_labels_name_only_the_actions_this_node_serves() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let mut tasks = vec![task("e1", "echo", "hi", None)];
    // Any producer (or guest) can invent action names; each must not become a series.
    tasks.extend((0..40).map(|i| task(&format!("g{i}"), &format!("guest-{i}"), "", None)));
    queue.insert_tasks(&tasks).await?;
    let dir = node_dir(&["echo"])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !queue
        .get_task(&TaskId::from("e1"))
        .await?
        .is_some_and(|t| t.status_code.is_final())
    {
        ensure!(Instant::now() < deadline, "e1 never ran:\n{}", node.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let scrape = http("GET", &format!("{admin}/metrics"), &[]).await?;
    assert!(!scrape.body.contains("guest-"), "{}", scrape.body);
    let metrics = samples(&scrape.body);
    assert_eq!(
        metrics.get(r#"parade_queue_tasks{action="other",status="pending"}"#),
        Some(&40.0),
        "{}",
        scrape.body
    );
    assert_eq!(
        metrics.get(r#"parade_queue_tasks{action="echo",status="completed"}"#),
        Some(&1.0),
        "{}",
        scrape.body
    );
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_dashboard_shows_the_database_without_its_password() -> anyhow::Result<()> {
    // The test cluster trusts local connections, so a password in the URL is never used.
    let url = format!("{}&password=hunter2", support::fresh_pg_database().await?);
    let dir = node_dir(&[])?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    for path in ["/api/overview", "/"] {
        let answer = http("GET", &format!("{admin}{path}"), &[]).await?;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(!answer.body.contains("hunter2"), "{path}: {}", answer.body);
        assert!(
            answer.body.contains("password=***"),
            "{path}: {}",
            answer.body
        );
    }
    assert!(!node.log().contains("hunter2"), "{}", node.log());
    node.stop().await?;
    Ok(())
}
