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
        "memory = \"16MiB\"\ntimeout = \"5s\"\nconcurrency = 4\nnode_concurrency = 2\n",
    )?;
    let (code, out, err) = run(dir.path(), &["run", "--check"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("database  sqlite://parade.db"), "{out}");
    let echo = out
        .lines()
        .find(|l| l.starts_with("plugin    echo "))
        .with_context(|| out.clone())?;
    assert!(echo.contains("memory 16 MiB  timeout 5s"), "{echo}");
    assert!(
        echo.contains("timeout 5s  concurrency 4  node_concurrency 2"),
        "{echo}"
    );
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

// Periodic tasks: `[[schedule]]` entries enqueue one task per slot. The actions are served by
// no plugin, so every task stays pending where the test can count it.

/// The slots of schedule `name` that have a task in the store, in order, read from the
/// task ids (`schedule:NAME:SLOT`); fails on an id that does not name a whole-second slot.
async fn schedule_slots(
    queue: &Arc<dyn Parade>,
    name: &str,
) -> anyhow::Result<Vec<chrono::DateTime<chrono::Utc>>> {
    let prefix = format!("schedule:{name}:");
    let tasks = queue
        .list_tasks(&TaskFilter {
            id_prefix: Some(prefix.clone()),
            ..TaskFilter::default()
        })
        .await?;
    let mut slots = Vec::with_capacity(tasks.len());
    for t in &tasks {
        let slot =
            t.id.as_str()
                .strip_prefix(&prefix)
                .context("not a slot id")?;
        let slot: chrono::DateTime<chrono::Utc> = slot
            .parse()
            .with_context(|| format!("{} does not name a slot", t.id))?;
        ensure!(
            slot.timestamp_subsec_nanos() == 0,
            "{} is not a whole second",
            t.id
        );
        slots.push(slot);
    }
    slots.sort();
    Ok(slots)
}

/// Waits until schedule `name` has at least `n` tasks; their slots.
async fn until_slots(
    queue: &Arc<dyn Parade>,
    name: &str,
    n: usize,
    node: &Node,
) -> anyhow::Result<Vec<chrono::DateTime<chrono::Utc>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let slots = schedule_slots(queue, name).await?;
        if slots.len() >= n {
            return Ok(slots);
        }
        ensure!(
            Instant::now() < deadline,
            "schedule {name} has {} tasks, not {n}, after 30 s; log:\n{}",
            slots.len(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whole seconds from one slot to the next, for each pair.
fn gaps(slots: &[chrono::DateTime<chrono::Utc>]) -> Vec<i64> {
    slots
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_on_two_nodes_sharing_postgres_enqueues_each_slot_once() -> anyhow::Result<()> {
    let url = Backend::Postgres.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[[schedule]]\nname = \"tick\"\nevery = \"1s\"\naction = \"tick\"\nbody = \"{}\"\n\
         max_tries = 2\npriority = 7\n",
    )?;
    let spawned = chrono::Utc::now();
    let a = Node::start(dir.path(), &url, &[])?;
    let b = Node::start(dir.path(), &url, &[])?;
    for node in [&a, &b] {
        node.until_logged("schedule started", Duration::from_secs(60))
            .await?;
    }
    let both_running = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stopping = chrono::Utc::now();
    let (log_a, log_b) = (a.log(), b.log());
    a.stop().await?;
    b.stop().await?;
    let stopped = chrono::Utc::now();

    let slots = schedule_slots(&queue, "tick").await?;
    // Every slot while both nodes ran has its task (a second of slack at each end for the
    // insert, and one slot may be skipped if both nodes wake late on a loaded machine), and
    // no slot has two: the ids are the slots, one task each, one second apart.
    let covered = slots
        .iter()
        .filter(|s| **s > both_running + chrono::TimeDelta::seconds(1))
        .filter(|s| **s < stopping - chrono::TimeDelta::seconds(1))
        .count();
    let expected = (stopping - both_running).num_seconds() - 2;
    assert!(
        covered as i64 >= expected - 1,
        "{covered} slots of the {expected} seconds both nodes ran: {slots:?}"
    );
    // At most one task a second, each for a slot while a node ran.
    assert!(gaps(&slots).iter().all(|g| *g >= 1), "{slots:?}");
    assert!(
        slots.iter().all(|s| *s > spawned && *s <= stopped),
        "{slots:?} not within {spawned}..{stopped}"
    );
    for log in [&log_a, &log_b] {
        assert!(!log.contains("cannot enqueue"), "{log}");
    }
    let tasks = all_tasks(&queue).await?;
    assert_eq!(tasks.len(), slots.len(), "{tasks:#?}");
    for t in &tasks {
        assert_eq!(
            (
                t.action.as_str(),
                t.body.as_deref(),
                t.max_tries,
                t.priority
            ),
            ("tick", Some("{}"), Some(2), 7),
            "{t:#?}"
        );
        assert_eq!(t.status_code, TaskStatusCode::Pending, "{t:#?}");
    }
    Ok(())
}

async fn a_restarted_node_enqueues_one_missed_schedule_slot(
    backend: Backend,
) -> anyhow::Result<()> {
    const PERIOD: i64 = 2;
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        format!("[[schedule]]\nname = \"beat\"\nevery = \"{PERIOD}s\"\naction = \"beat\"\n"),
    )?;
    // First start on an empty store: the first slot is the next one, not a past one.
    let first_start = chrono::Utc::now();
    let node = Node::start(dir.path(), &url, &[])?;
    let before = until_slots(&queue, "beat", 2, &node).await?;
    node.stop().await?;
    assert!(
        before[0] > first_start,
        "{before:?} started before {first_start}"
    );
    let before = schedule_slots(&queue, "beat").await?;

    // Down across four or more slots.
    tokio::time::sleep(Duration::from_secs(4 * PERIOD as u64 + 1)).await;
    let node = Node::start(dir.path(), &url, &[])?;
    node.until_logged("enqueued the latest slot missed", Duration::from_secs(60))
        .await?;
    until_slots(&queue, "beat", before.len() + 2, &node).await?;
    let log = node.log();
    node.stop().await?;

    // One task for the missed slots, the latest at the restart: between the last slot
    // before and the slots after the restart, one gap of several periods and nothing in it.
    let after = schedule_slots(&queue, "beat")
        .await?
        .split_off(before.len());
    let missed = after[0];
    assert_eq!(
        log.matches("enqueued the latest slot missed").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains(&format!("slot={}", missed.format("%Y-%m-%dT%H:%M:%SZ"))),
        "the node enqueued {missed} as the missed slot? log:\n{log}"
    );
    let down = (missed - *before.last().unwrap()).num_seconds();
    assert!(down >= 4 * PERIOD, "{before:?} then {after:?}");
    assert!(gaps(&before).iter().all(|g| *g == PERIOD), "{before:?}");
    assert!(gaps(&after).iter().all(|g| *g == PERIOD), "{after:?}");
    Ok(())
}

async fn a_reload_adds_and_removes_schedules(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&[])?;
    let toml = dir.path().join("parade.toml");
    let entry = |name: &str| {
        format!("[[schedule]]\nname = \"{name}\"\nevery = \"1s\"\naction = \"{name}\"\n")
    };
    std::fs::write(&toml, entry("old"))?;
    let node = Node::start(dir.path(), &url, &[])?;
    until_slots(&queue, "old", 1, &node).await?;

    // Replace `old` by `new`: `new` enqueues, and `old` enqueues no more.
    replace_file(&toml, entry("new").as_bytes())?;
    node.until_logged("schedule removed", Duration::from_secs(30))
        .await?;
    until_slots(&queue, "new", 1, &node).await?;
    let old = schedule_slots(&queue, "old").await?;
    let log = node.log();
    assert!(
        log.lines()
            .any(|l| l.contains("schedule added") && l.contains("new")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("schedule removed") && l.contains("old")),
        "{log}"
    );

    // An invalid schedule rejects the whole reload: `new` keeps running, and the error
    // names the file, the line and the key.
    replace_file(
        &toml,
        format!(
            "{}\n[[schedule]]\nname = \"bad\"\ncron = \"0 25 * * *\"\naction = \"x\"\n",
            entry("new")
        )
        .as_bytes(),
    )?;
    node.until_logged("reload rejected", Duration::from_secs(30))
        .await?;
    let log = node.log();
    let rejected = log
        .lines()
        .find(|l| l.contains("reload rejected"))
        .context("no rejection")?;
    assert!(
        rejected.contains("parade.toml:8: key `schedule[1].cron`: invalid cron expression"),
        "{rejected}"
    );
    let new_before = schedule_slots(&queue, "new").await?.len();
    until_slots(&queue, "new", new_before + 2, &node).await?;

    node.stop().await?;
    assert_eq!(
        schedule_slots(&queue, "old").await?,
        old,
        "a removed schedule enqueued again"
    );
    assert!(schedule_slots(&queue, "bad").await?.is_empty());
    Ok(())
}

crate::support::instantiate!(schedules_on_postgres (crate::Backend::Postgres) [
    a_restarted_node_enqueues_one_missed_schedule_slot,
    a_reload_adds_and_removes_schedules,
]);
crate::support::instantiate!(schedules_on_sqlite (crate::Backend::Sqlite) [
    a_restarted_node_enqueues_one_missed_schedule_slot,
    a_reload_adds_and_removes_schedules,
]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_under_an_actor_prefix_enqueues_in_its_namespace() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[actor]\nprefix = \"tenant1\"\n\n[[schedule]]\nname = \"tick\"\nevery = \"1s\"\naction = \"tick\"\n",
    )?;
    // The store is created before the node starts, so the two do not both migrate it.
    let store = queue::open(&url).await?;
    let tenant: Arc<dyn Parade> = Arc::new(queue::Prefixed::new(store.clone(), "tenant1"));
    let node = Node::start(dir.path(), &url, &[])?;
    let slots = until_slots(&tenant, "tick", 1, &node).await?;
    node.stop().await?;
    let stored = all_tasks(&store).await?;
    let id = format!(
        "tenant1.schedule:tick:{}",
        slots[0].format("%Y-%m-%dT%H:%M:%SZ")
    );
    let task = stored
        .iter()
        .find(|t| t.id.as_str() == id)
        .with_context(|| format!("no task {id} in {stored:#?}"))?;
    assert_eq!(task.action, "tenant1.tick");
    Ok(())
}

#[tokio::test]
async fn schedules_do_not_keep_an_until_idle_node_running() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[[schedule]]\nname = \"tick\"\nevery = \"1s\"\naction = \"tick\"\n",
    )?;
    // `finish` fails if the node has not exited within a minute.
    let (code, _) = Node::start(dir.path(), &url, &["--until-idle"])?
        .finish()
        .await?;
    assert_eq!(code, 0);
    Ok(())
}

#[tokio::test]
async fn schedule_list_prints_each_next_slot_in_utc_and_its_time_zone() -> anyhow::Result<()> {
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        r#"
[[schedule]]
name = "nightly"
cron = "0 3 * * *"
timezone = "Asia/Tokyo"
action = "report"

[[schedule]]
name = "heartbeat"
every = "30s"
action = "ping"
"#,
    )?;
    let (code, out, err) = run(dir.path(), &["schedule", "list"]).await?;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("name"), "{out}");
    // 03:00 in Tokyo (UTC+9, no daylight saving) is 18:00Z the day before.
    let nightly = lines[1];
    assert!(nightly.starts_with("nightly "), "{out}");
    assert!(
        nightly.contains("cron \"0 3 * * *\" in Asia/Tokyo"),
        "{nightly}"
    );
    assert!(nightly.contains("T18:00:00Z"), "{nightly}");
    assert!(nightly.contains("T03:00:00+09:00 Asia/Tokyo"), "{nightly}");
    let heartbeat = lines[2];
    assert!(heartbeat.contains("every 30s"), "{heartbeat}");
    assert!(heartbeat.contains("+00:00 UTC"), "{heartbeat}");
    // It reads the file only: no store is created.
    assert!(!dir.path().join("parade.db").exists());

    let (code, out, err) = run(dir.path(), &["schedule", "list", "--json"]).await?;
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or(""))?;
    assert_eq!(first["name"], "nightly");
    assert_eq!(first["timezone"], "Asia/Tokyo");
    assert!(
        first["next"]
            .as_str()
            .is_some_and(|n| n.ends_with("T18:00:00Z")),
        "{first}"
    );

    // `--config FILE`, and an invalid schedule: exit 2, naming the file, the line and the key.
    std::fs::write(
        dir.path().join("other.toml"),
        "[[schedule]]\nname = \"a\"\naction = \"x\"\nevery = \"10ms\"\n",
    )?;
    let (code, _, err) = run(dir.path(), &["--config", "other.toml", "schedule", "list"]).await?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("other.toml:4: key `schedule[0].every`: invalid period \"10ms\""),
        "{err}"
    );
    Ok(())
}
