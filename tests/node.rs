//! `parade run` as a real process: tasks done end to end on both backends, live reload
//! under load, two nodes sharing one PostgreSQL, and the configuration errors a user meets.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{self, Parade, TaskData, TaskFilter, TaskStatusCode};
use support::process::{component, node_dir, run, Node};
use support::Backend;

fn task(id: &str, action: &str, body: &str) -> TaskData {
    TaskData {
        body: Some(body.into()),
        ..TaskData::new(id, action)
    }
}

async fn all_tasks(queue: &Arc<dyn Parade>) -> anyhow::Result<Vec<TaskData>> {
    Ok(queue.list_tasks(&TaskFilter::default()).await?)
}

/// The `completed` column of `action`'s line in a node's summary.
fn completed_in_summary(summary: &str, action: &str) -> Option<u64> {
    summary
        .lines()
        .find(|l| l.split_whitespace().next() == Some(action))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

async fn run_until_idle_does_every_task(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["echo", "fan_out", "flaky", "json_transform"])?;
    queue
        .insert_tasks(&[
            task("hello", "echo", "hello, parade"),
            task("count", "word-count", r#"{"text": "a b a"}"#),
            TaskData {
                max_tries: Some(4),
                ..task("flaky", "flaky", r#"{"failures": 2}"#)
            },
            task("dag", "fan-out", r#"{"children": 3}"#),
        ])
        .await?;

    let (code, summary) = Node::start(dir.path(), &url, &["--until-idle"])?
        .finish()
        .await?;
    assert_eq!(code, 0);
    let tasks = all_tasks(&queue).await?;
    // The DAG's 3 children and its join were enqueued by the fan-out component.
    assert_eq!(tasks.len(), 8, "{tasks:#?}");
    for t in &tasks {
        assert_eq!(t.status_code, TaskStatusCode::Completed, "{t:#?}");
    }
    let status = |id: &str| {
        tasks
            .iter()
            .find(|t| t.id.as_str() == id)
            .and_then(|t| t.status.clone())
            .unwrap_or_default()
    };
    assert_eq!(status("hello"), "hello, parade");
    assert!(
        status("count").contains(r#"["a",2]"#),
        "{}",
        status("count")
    );
    assert_eq!(status("dag.join"), "joined 3 children of dag");
    // The summary counts each action's results, including flaky's two retries.
    assert_eq!(completed_in_summary(&summary, "echo"), Some(5), "{summary}");
    assert_eq!(
        completed_in_summary(&summary, "flaky"),
        Some(1),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["flaky", "1", "0", "2"]),
        "{summary}"
    );
    assert!(summary.lines().any(|l| l.starts_with("total")), "{summary}");
    Ok(())
}

/// Rewrites the version marker of the `versioned` component: a new version of it.
fn versioned_component(version: u8) -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::fs::read(component("versioned")?)?;
    let marker = b"parade-version-1";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .context("the version marker is not in versioned.wasm")?;
    bytes[at + marker.len() - 1] = b'0' + version;
    Ok(bytes)
}

/// Writes `bytes` to `path` the way deploy tools do: aside, then renamed into place.
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let aside = path.with_file_name(format!(
        ".{}.partial",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&aside, bytes)?;
    std::fs::rename(&aside, path)?;
    Ok(())
}

/// Inserts one task and waits until it ends; its final row.
async fn probe(
    queue: &Arc<dyn Parade>,
    action: &str,
    n: &mut u32,
    timeout: Duration,
) -> anyhow::Result<Option<TaskData>> {
    *n += 1;
    let id = format!("probe-{action}-{n}");
    let body = if action == "word-count" {
        r#"{"text": "probe"}"#
    } else {
        "probe"
    };
    queue.insert_tasks(&[task(&id, action, body)]).await?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let row = queue.get_task(&id.as_str().into()).await?;
        if row.as_ref().is_some_and(|t| t.status_code.is_final()) {
            return Ok(row);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

async fn reload_under_load_loses_nothing(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["versioned", "echo"])?;
    let plugins = dir.path().join("plugins");
    let node = Node::start(dir.path(), &url, &[])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;

    // A steady flow of tasks for the whole test.
    let flowing = tokio::spawn({
        let queue = queue.clone();
        async move {
            let mut batch = 0;
            loop {
                batch += 1;
                let tasks: Vec<TaskData> = (0..10)
                    .flat_map(|i| {
                        [
                            task(&format!("flow-{batch}-{i}-v"), "versioned", ""),
                            task(&format!("flow-{batch}-{i}-e"), "echo", "flow"),
                        ]
                    })
                    .collect();
                if queue.insert_tasks(&tasks).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut n = 0;
    let first = probe(&queue, "versioned", &mut n, Duration::from_secs(10)).await?;
    assert_eq!(
        first.and_then(|t| t.status).as_deref(),
        Some("parade-version-1")
    );

    // A new version: new tasks run on it soon after, and never on the old one again.
    replace_file(&plugins.join("versioned.wasm"), &versioned_component(2)?)?;
    let swapped = Instant::now();
    let served_by_new = loop {
        let row = probe(&queue, "versioned", &mut n, Duration::from_secs(10))
            .await?
            .context("a probe task did not finish")?;
        if row.status.as_deref() == Some("parade-version-2") {
            break swapped.elapsed();
        }
        ensure!(
            swapped.elapsed() < Duration::from_secs(3),
            "the new version was not serving 3 s after it was written; log:\n{}",
            node.log()
        );
    };
    eprintln!("the new version served a new task {served_by_new:?} after it was written");
    for _ in 0..3 {
        let row = probe(&queue, "versioned", &mut n, Duration::from_secs(10)).await?;
        assert_eq!(
            row.and_then(|t| t.status).as_deref(),
            Some("parade-version-2")
        );
    }

    // Add a plugin: its action is served.
    std::fs::copy(
        component("json_transform")?,
        plugins.join("json_transform.wasm"),
    )?;
    let mut counted = None;
    for _ in 0..60 {
        counted = probe(&queue, "word-count", &mut n, Duration::from_millis(500)).await?;
        if counted.is_some() {
            break;
        }
    }
    assert_eq!(
        counted.map(|t| t.status_code),
        Some(TaskStatusCode::Completed),
        "log:\n{}",
        node.log()
    );

    // Remove one: its tasks wait, untried, for a node that serves them.
    std::fs::remove_file(plugins.join("echo.wasm"))?;
    node.until_logged("plugin removed", Duration::from_secs(5))
        .await?;
    let waiting = probe(&queue, "echo", &mut n, Duration::from_secs(1)).await?;
    assert!(waiting.is_none(), "an echo task ran after echo was removed");

    // A broken file is refused, and everything else keeps serving.
    std::fs::write(
        plugins.join("broken.wasm"),
        b"\0asm this is not a component",
    )?;
    node.until_logged("reload rejected", Duration::from_secs(5))
        .await?;
    assert!(node.log().contains("broken.wasm"), "{}", node.log());
    let row = probe(&queue, "versioned", &mut n, Duration::from_secs(10)).await?;
    assert_eq!(
        row.and_then(|t| t.status).as_deref(),
        Some("parade-version-2")
    );
    std::fs::remove_file(plugins.join("broken.wasm"))?;

    flowing.abort();
    let _ = flowing.await;
    // Let the flow drain, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = all_tasks(&queue).await?;
        let open = tasks
            .iter()
            .filter(|t| t.action == "versioned" && !t.status_code.is_final())
            .count();
        if open == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{open} versioned tasks still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = node.stop().await?;
    assert_eq!(code, 0);

    // Nothing failed and nothing was lost: every task completed, except the echo tasks
    // inserted after echo was removed, which wait untried.
    let tasks = all_tasks(&queue).await?;
    for t in &tasks {
        assert_ne!(t.status_code, TaskStatusCode::Aborted, "{t:#?}");
        assert_eq!(t.num_failures, 0, "{t:#?}");
        if t.status_code != TaskStatusCode::Completed {
            assert_eq!(t.action, "echo", "{t:#?}");
            assert_eq!(t.status_code, TaskStatusCode::Pending, "{t:#?}");
        }
    }
    assert!(tasks.iter().filter(|t| t.action == "versioned").count() > 100);
    Ok(())
}

support::on_both_backends!(
    run_until_idle_does_every_task,
    reload_under_load_loses_nothing
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_share_the_work() -> anyhow::Result<()> {
    const TASKS: usize = 3000;
    let url = Backend::Postgres.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| task(&format!("t{i}"), "echo", &i.to_string()))
        .collect();
    queue.insert_tasks(&tasks).await?;
    // Small batches, so neither node can own everything before the other starts.
    let dir = node_dir(&["echo"])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[manager]\nmax_tasks = 20\nchannel_size = 20\nworkers = 2\n",
    )?;
    let a = Node::start(dir.path(), &url, &["--until-idle"])?;
    let b = Node::start(dir.path(), &url, &["--until-idle"])?;
    let (_, a) = a.finish().await?;
    let (_, b) = b.finish().await?;
    let (a, b) = (
        completed_in_summary(&a, "echo").unwrap_or(0),
        completed_in_summary(&b, "echo").unwrap_or(0),
    );
    assert_eq!(a + b, TASKS as u64, "node a did {a}, node b {b}");
    assert!(a > 0 && b > 0, "node a did {a}, node b {b}");
    for t in all_tasks(&queue).await? {
        assert_eq!(t.status_code, TaskStatusCode::Completed, "{t:#?}");
        assert_eq!(t.num_tries, 1, "{t:#?} ran more than once");
    }
    Ok(())
}

#[tokio::test]
async fn check_describes_a_good_configuration() -> anyhow::Result<()> {
    let dir = node_dir(&["echo", "json_transform"])?;
    std::fs::write(
        dir.path().join("plugins/echo.toml"),
        "memory = \"16MiB\"\ntimeout = \"5s\"\n",
    )?;
    let (code, out, err) = run(dir.path(), &["run", "--check"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("database  sqlite://parade.db"), "{out}");
    let echo = out
        .lines()
        .find(|l| l.starts_with("plugin    echo "))
        .with_context(|| out.clone())?;
    assert!(echo.contains("memory 16 MiB  timeout 5s"), "{echo}");
    assert!(echo.ends_with("actions: echo"), "{echo}");
    assert!(out.contains("actions: word-count"), "{out}");
    assert!(out.ends_with("configuration OK\n"), "{out}");
    // It checks; it does not create the store.
    assert!(!dir.path().join("parade.db").exists());
    Ok(())
}

/// `parade run --check` in `dir` must fail, saying each of `says` on stderr.
async fn check_fails(dir: &Path, says: &[&str]) -> anyhow::Result<()> {
    let (code, out, err) = run(dir, &["run", "--check"]).await?;
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    for text in says {
        assert!(err.contains(text), "expected {text:?} in:\n{err}");
    }
    Ok(())
}

#[tokio::test]
async fn configuration_errors_name_the_file_line_and_key() -> anyhow::Result<()> {
    let dir = node_dir(&["echo"])?;
    let toml = dir.path().join("parade.toml");

    std::fs::write(&toml, "[manager]\nworkers = 2\nwait_tme = \"1s\"\n")?;
    check_fails(
        dir.path(),
        &["parade.toml:3: key `manager.wait_tme`: unknown field `wait_tme`"],
    )
    .await?;

    std::fs::write(&toml, "[manager]\nheartbeat = \"often\"\n")?;
    check_fails(
        dir.path(),
        &["parade.toml:2: key `manager.heartbeat`: invalid duration \"often\""],
    )
    .await?;

    std::fs::write(
        &toml,
        "[[plugin]]\nname = \"x\"\nfile = \"nowhere/x.wasm\"\n",
    )?;
    check_fails(
        dir.path(),
        &["parade.toml:3: key `plugin[0].file`: component nowhere/x.wasm does not exist"],
    )
    .await?;

    // A manifest that limits a plugin to an action it does not export.
    std::fs::write(
        &toml,
        "[[plugin]]\nfile = \"plugins/echo.wasm\"\nactions = [\"shout\"]\n",
    )?;
    check_fails(
        dir.path(),
        &[
            "parade.toml:3: key `plugin[0].actions`",
            "action \"shout\" is not one the component exports (its actions() returns echo)",
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn two_plugins_claiming_one_action_are_refused_naming_both_files() -> anyhow::Result<()> {
    let dir = node_dir(&["echo"])?;
    std::fs::copy(component("echo")?, dir.path().join("plugins/echo2.wasm"))?;
    check_fails(
        dir.path(),
        &[
            "action \"echo\" is claimed by two plugins",
            "plugins/echo.wasm",
            "plugins/echo2.wasm",
        ],
    )
    .await
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused_naming_it() -> anyhow::Result<()> {
    let dir = node_dir(&[])?;
    std::fs::write(dir.path().join("plugins/notes.wasm"), "hello")?;
    check_fails(
        dir.path(),
        &["plugins/notes.wasm", "not a WebAssembly file"],
    )
    .await?;
    std::fs::write(dir.path().join("plugins/notes.wasm"), b"\0asm\x01\0\0\0")?;
    check_fails(dir.path(), &["a core WebAssembly module, not a component"]).await
}

#[tokio::test]
async fn sigterm_stops_an_idle_node_cleanly() -> anyhow::Result<()> {
    let dir = node_dir(&["echo"])?;
    let url = Backend::Sqlite.fresh_url().await?;
    let node = Node::start(dir.path(), &url, &["--log-format", "json"])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;
    let log = node.log();
    let started = log
        .lines()
        .find(|l| l.contains("node started"))
        .context("no start line")?;
    let line: serde_json::Value = serde_json::from_str(started)
        .with_context(|| format!("--log-format json wrote {started:?}"))?;
    assert_eq!(line["fields"]["message"], "node started");
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0);
    assert!(summary.contains("total"), "{summary}");
    Ok(())
}

#[tokio::test]
async fn a_second_signal_exits_at_once() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&[task("spin", "loop", "")]).await?;
    let dir = node_dir(&["misbehave"])?;
    let mut node = Node::start(dir.path(), &url, &[])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue
        .get_task(&"spin".into())
        .await?
        .is_none_or(|t| t.status_code != TaskStatusCode::InProgress)
    {
        ensure!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first signal waits for the running task (up to the 30 s shutdown grace)...
    node.signal("INT").await?;
    node.until_logged("shutting down", Duration::from_secs(10))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        node.child.try_wait()?.is_none(),
        "exited before the grace period"
    );
    // ...the second does not.
    node.signal("TERM").await?;
    let status = tokio::time::timeout(Duration::from_secs(10), node.child.wait())
        .await
        .context("a second signal did not exit at once")??;
    assert_eq!(status.code(), Some(130));
    assert!(node.log().contains("exiting at once"), "{}", node.log());
    // The task is left to its deadline, not lost.
    let spin = queue.get_task(&"spin".into()).await?.context("task gone")?;
    assert_eq!(spin.status_code, TaskStatusCode::InProgress);
    Ok(())
}

/// A plugin may not be granted a directory that is, contains or lies inside the node's own
/// files — the plugins folder, the compiled-component cache, the configuration file, the
/// database — writable or not, compared after resolving symbolic links. `--check` (and so
/// a start) refuses it, naming the plugin, the grant and what it overlaps.
#[tokio::test]
async fn a_grant_overlapping_the_node_s_own_files_is_refused() -> anyhow::Result<()> {
    let dir = node_dir(&["echo"])?;
    let root = dir.path().canonicalize()?;
    for folder in ["etc", "data/out", "cache"] {
        std::fs::create_dir_all(root.join(folder))?;
    }
    std::os::unix::fs::symlink(root.join("cache"), root.join("cache-link"))?;
    std::fs::write(
        root.join("etc/parade.toml"),
        "[plugins]\ndir = \"../plugins\"\ncache_dir = \"../cache\"\n",
    )?;
    let check = |grant: &'static str| {
        let root = root.clone();
        async move {
            std::fs::write(
                root.join("plugins/echo.toml"),
                format!("dirs = [{grant}]\n"),
            )?;
            run(
                &root,
                &[
                    "--database",
                    "sqlite://data/parade.db",
                    "run",
                    "--check",
                    "--config",
                    "etc/parade.toml",
                ],
            )
            .await
        }
    };
    let (code, _, err) =
        check("{ host = \"../data/out\", guest = \"/out\", writable = true }").await?;
    assert_eq!(code, 0, "a folder beside the node's files is fine: {err}");

    let refusals = [
        (
            "{ host = \"../cache-link\", guest = \"/c\", writable = true }",
            format!(
                "; resolves to {cache}) is the compiled-component cache (`plugins.cache_dir`) \
                 {cache}: a guest could plant compiled code",
                cache = root.join("cache").display()
            ),
        ),
        (
            "{ host = \".\", guest = \"/p\" }",
            format!(
                "is the plugins folder (`plugins.dir`) {}",
                root.join("plugins").display()
            ),
        ),
        (
            "{ host = \"../etc\", guest = \"/etc\" }",
            format!(
                "contains the configuration file {}",
                root.join("etc/parade.toml").display()
            ),
        ),
        (
            "{ host = \"../data\", guest = \"/data\" }",
            format!(
                "contains the database file (`database.url`) {}",
                root.join("data/parade.db").display()
            ),
        ),
    ];
    for (grant, overlap) in refusals {
        let (code, _, err) = check(grant).await?;
        assert_eq!(code, 2, "{grant}: {err}");
        for says in [
            "plugins/echo.toml:1: key `dirs[0]`",
            "plugin \"echo\": granted directory",
            &overlap,
        ] {
            assert!(err.contains(says), "{grant}: expected {says:?} in:\n{err}");
        }
    }
    assert!(!root.join("data/parade.db").exists());
    Ok(())
}

/// A reload that would grant a plugin the node's own files is rejected with the reason; the
/// plugins already loaded keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_granting_the_node_s_own_files_is_rejected() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["echo"])?;
    let node = Node::start(dir.path(), &url, &[])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;
    std::fs::write(
        dir.path().join("plugins/echo.toml"),
        "dirs = [{ host = \".\", guest = \"/plugins\", writable = true }]\n",
    )?;
    node.until_logged("reload rejected", Duration::from_secs(30))
        .await?;
    let log = node.log();
    let rejected = log
        .lines()
        .find(|l| l.contains("reload rejected"))
        .context("no rejection")?;
    assert!(
        rejected.contains("plugin \"echo\": granted directory")
            && rejected.contains("is the plugins folder"),
        "{rejected}"
    );
    let mut n = 0;
    let served = probe(&queue, "echo", &mut n, Duration::from_secs(30))
        .await?
        .context("echo stopped serving")?;
    assert_eq!(served.status_code, TaskStatusCode::Completed);
    node.stop().await?;
    Ok(())
}
