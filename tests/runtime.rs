//! Tasks performed by real WebAssembly components (built by scripts/build-plugins.sh)
//! through the ActionManager, on both backends; the sandbox's limits; loading errors.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use parade_host::manager::{ActionManager, ManagerProperties};
use parade_host::queue::{ActorId, Parade, TaskData, TaskFilter, TaskStatusCode};
use parade_host::runtime::{ComponentActor, Plugin, PluginLimits, Runtime};
use support::Backend;

fn component_path(name: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    Ok(path)
}

async fn load(runtime: &Runtime, name: &str, limits: PluginLimits) -> anyhow::Result<Arc<Plugin>> {
    Ok(Arc::new(
        runtime.load_file(&component_path(name)?, limits).await?,
    ))
}

/// A node on a fresh store running `plugins`.
async fn node(
    backend: Backend,
    plugins: &[(&str, PluginLimits)],
) -> anyhow::Result<(Arc<dyn Parade>, ActionManager)> {
    let queue = backend.open().await?;
    let runtime = Runtime::new(None)?;
    let mut loaded = Vec::new();
    for (name, limits) in plugins {
        loaded.push(load(&runtime, name, limits.clone()).await?);
    }
    let props = ManagerProperties {
        wait_time: Duration::from_millis(50),
        ..ManagerProperties::default()
    };
    let actor = ComponentActor::new(
        runtime,
        loaded,
        queue.clone(),
        ActorId::from("wasm-node"),
        props.max_duration,
    )?;
    let manager = ActionManager::start(Arc::new(actor), queue.clone(), props);
    Ok((queue, manager))
}

async fn settled(queue: &Arc<dyn Parade>, count: usize) -> anyhow::Result<Vec<TaskData>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = queue.list_tasks(&TaskFilter::default()).await?;
        let done = tasks.iter().filter(|t| t.status_code.is_final()).count();
        if tasks.len() >= count && done == tasks.len() {
            return Ok(tasks);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "tasks did not settle: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find<'a>(tasks: &'a [TaskData], id: &str) -> &'a TaskData {
    tasks
        .iter()
        .find(|t| t.id.as_str() == id)
        .unwrap_or_else(|| panic!("task {id} missing"))
}

support::on_both_backends!(
    host_imports_answer_hostile_arguments_without_harm,
    example_plugins_perform_tasks_end_to_end,
    misbehaving_plugins_fail_only_their_own_tasks,
);

async fn example_plugins_perform_tasks_end_to_end(backend: Backend) -> anyhow::Result<()> {
    let limits = PluginLimits::default();
    let (queue, manager) = node(
        backend,
        &[
            ("echo", limits.clone()),
            ("json_transform", limits.clone()),
            ("fan_out", limits.clone()),
            ("flaky", limits.clone()),
        ],
    )
    .await?;
    queue
        .insert_tasks(&[
            TaskData {
                body: Some("hello".into()),
                ..TaskData::new("echo-1", "echo")
            },
            TaskData {
                body: Some(r#"{"text": "the cat and the hat and the bat"}"#.into()),
                ..TaskData::new("count-1", "word-count")
            },
            TaskData {
                body: Some("not json".into()),
                ..TaskData::new("count-bad", "word-count")
            },
            TaskData {
                body: Some(r#"{"failures": 2}"#.into()),
                max_tries: Some(5),
                ..TaskData::new("flaky-1", "flaky")
            },
            TaskData {
                body: Some(r#"{"children": 4}"#.into()),
                ..TaskData::new("dag", "fan-out")
            },
        ])
        .await?;
    let tasks = settled(&queue, 5 + 4 + 1).await?;
    manager.close().await;

    let echo = find(&tasks, "echo-1");
    assert_eq!(
        (echo.status_code, echo.status.as_deref()),
        (TaskStatusCode::Completed, Some("hello"))
    );
    let counted: serde_json::Value = serde_json::from_str(
        find(&tasks, "count-1")
            .status
            .as_deref()
            .unwrap_or_default(),
    )?;
    assert_eq!(counted["words"], 8);
    assert_eq!(counted["distinct"], 5);
    assert_eq!(counted["top"][0], serde_json::json!(["the", 3]));
    assert_eq!(counted["top"][1], serde_json::json!(["and", 2]));
    assert_eq!(
        find(&tasks, "count-bad").status_code,
        TaskStatusCode::Aborted
    );
    let flaky = find(&tasks, "flaky-1");
    assert_eq!(flaky.status_code, TaskStatusCode::Completed);
    assert_eq!(flaky.num_tries, 3);
    assert_eq!(flaky.status.as_deref(), Some("succeeded on try 3"));

    let join = find(&tasks, "dag.join");
    assert_eq!(join.status_code, TaskStatusCode::Completed);
    assert_eq!(join.num_signals, 4);
    for i in 0..4 {
        assert_eq!(
            find(&tasks, &format!("dag.child-{i}")).status_code,
            TaskStatusCode::Completed
        );
    }
    Ok(())
}

async fn misbehaving_plugins_fail_only_their_own_tasks(backend: Backend) -> anyhow::Result<()> {
    let tight = PluginLimits {
        memory: 32 << 20,
        timeout: Duration::from_secs(1),
        ..PluginLimits::default()
    };
    let (queue, manager) = node(
        backend,
        &[("misbehave", tight), ("echo", PluginLimits::default())],
    )
    .await?;
    let actions = [
        "trap",
        "loop",
        "hog",
        "recurse",
        "read-file",
        "read-env",
        "connect",
        "huge-status",
        "print",
        "bad-utf8-log",
        "bad-utf8-status",
    ];
    let mut tasks: Vec<TaskData> = actions
        .iter()
        .map(|a| TaskData {
            max_tries: Some(1),
            ..TaskData::new(*a, *a)
        })
        .collect();
    tasks.push(TaskData {
        body: Some("still here".into()),
        ..TaskData::new("survivor", "echo")
    });
    queue.insert_tasks(&tasks).await?;
    let done = settled(&queue, tasks.len()).await?;
    manager.close().await;

    let status = |id: &str| {
        let t = find(&done, id);
        (t.status_code, t.status.clone().unwrap_or_default())
    };
    let expect_failure = |id: &str, words: &str| {
        let (code, text) = status(id);
        assert_eq!(code, TaskStatusCode::Aborted, "{id}: {text}");
        assert!(
            text.contains(words),
            "{id}: {text:?} should mention {words:?}"
        );
    };
    expect_failure("trap", "unreachable");
    expect_failure("loop", "timed out");
    expect_failure("hog", "out of memory");
    expect_failure("recurse", "stack overflow");
    expect_failure("read-file", "denied");
    expect_failure("read-env", "denied");
    expect_failure("connect", "denied");
    expect_failure("bad-utf8-log", "a string that is not valid UTF-8");
    expect_failure("bad-utf8-status", "a string that is not valid UTF-8");
    let (code, huge) = status("huge-status");
    assert_eq!(code, TaskStatusCode::Completed);
    assert!(
        huge.len() < 70_000 && huge.ends_with("[cut]"),
        "{} bytes",
        huge.len()
    );
    assert_eq!(status("print").0, TaskStatusCode::Completed);
    assert_eq!(
        status("survivor"),
        (TaskStatusCode::Completed, "still here".into())
    );
    Ok(())
}

#[tokio::test]
async fn loading_refuses_what_is_not_a_parade_component() -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    let dir = tempfile::tempdir()?;
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello")?;
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0")?;
    for (path, says) in [
        (&text, "not a WebAssembly file"),
        (&core, "core WebAssembly module"),
    ] {
        let error = runtime
            .load_file(path, PluginLimits::default())
            .await
            .expect_err("must refuse");
        let message = format!("{error:#}");
        assert!(message.contains(says), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    let echo = runtime
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    assert_eq!(echo.actions, ["echo"]);
    Ok(())
}

#[tokio::test]
async fn compiled_components_are_cached_by_content_hash() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(Some(cache.path().to_owned()))?;
    let first = runtime
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    // One compiled entry (beside it, its tag and the cache's key).
    let cached = cache_entry(cache.path())?;
    assert!(cached
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(&first.hash));
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&cached)?.ino();
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::File::options()
        .append(true)
        .open(&cached)?
        .set_modified(day_ago)?;

    let again = Runtime::new(Some(cache.path().to_owned()))?;
    again
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    // A recompile would have written a new file in its place.
    assert_eq!(std::fs::metadata(&cached)?.ino(), inode, "not recompiled");
    assert!(
        std::fs::metadata(&cached)?.modified()? > day_ago,
        "a load marks the entry used"
    );

    std::fs::write(&cached, b"garbage")?;
    let plugin = again
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    assert_eq!(
        plugin.actions,
        ["echo"],
        "a broken cache entry is recompiled"
    );
    Ok(())
}

/// The cache drops what nothing loads any more, and keeps what is in use or recent.
#[tokio::test]
async fn pruning_the_cache_drops_only_entries_unused_for_a_week() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(Some(cache.path().to_owned()))?;
    let echo = runtime
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    let in_use = cache_entry(cache.path())?;
    let file = |name: &str, age_hours: u64| -> anyhow::Result<PathBuf> {
        let path = cache.path().join(name);
        if !path.exists() {
            std::fs::write(&path, b"compiled")?;
        }
        std::fs::File::options()
            .append(true)
            .open(&path)?
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(age_hours * 3600))?;
        Ok(path)
    };
    let in_use = file(in_use.file_name().unwrap().to_str().unwrap(), 24 * 30)?;
    let stale = file("00aa-1234.cwasm", 24 * 8)?;
    let recent = file("00bb-1234.cwasm", 24 * 6)?;
    let crashed = file("00cc-1234.partial-77", 2)?;
    let compiling = file("00dd-1234.partial-78", 0)?;
    let other = file("README", 24 * 365)?;

    assert_eq!(runtime.prune_cache(&[echo.hash.as_str()]), 2);
    for (path, kept) in [
        (&in_use, true),
        (&stale, false),
        (&recent, true),
        (&crashed, false),
        (&compiling, true),
        (&other, true),
    ] {
        assert_eq!(path.exists(), kept, "{}", path.display());
    }
    Ok(())
}

#[tokio::test]
async fn granted_env_and_directories_are_all_a_plugin_sees() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::{OwnedTask, PerformanceToken, SqliteParade};
    use parade_host::runtime::{DirGrant, PluginGrants};

    let shared = tempfile::tempdir()?;
    std::fs::write(shared.path().join("hello.txt"), "hi")?;
    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    let runtime = Runtime::new(None)?;
    let task = OwnedTask {
        id: "g".into(),
        token: PerformanceToken(uuid::Uuid::new_v4()),
        num_signalled_failures: 0,
        action: "grants".into(),
        body: None,
    };
    let perform = |grants: PluginGrants| {
        let (runtime, queue, task) = (runtime.clone(), queue.clone(), task.clone());
        async move {
            let plugin = runtime
                .load_file(&component_path("misbehave")?, PluginLimits::default())
                .await?
                .with_grants(grants)?;
            let actor = ComponentActor::new(
                runtime,
                vec![Arc::new(plugin)],
                queue,
                ActorId::from("g"),
                Duration::from_secs(60),
            )?;
            anyhow::Ok(actor.perform(&task).await?.status)
        }
    };
    let nothing = perform(PluginGrants::default()).await?;
    assert!(nothing.starts_with("env= read=read denied"), "{nothing}");
    assert!(nothing.ends_with("write=write denied"), "{nothing}");

    let dir = |writable| DirGrant {
        host: shared.path().to_owned(),
        guest: "/granted".into(),
        writable,
    };
    let read_only = perform(PluginGrants {
        env: vec![("PARADE_TEST_GRANT".into(), "yes".into())],
        dirs: vec![dir(false)],
        ..PluginGrants::default()
    })
    .await?;
    assert_eq!(read_only, "env=yes read=hi write=write denied");
    assert!(!shared.path().join("new.txt").exists());

    let writable = perform(PluginGrants {
        env: Vec::new(),
        dirs: vec![dir(true)],
        ..PluginGrants::default()
    })
    .await?;
    assert_eq!(writable, "env= read=hi write=written");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("new.txt"))?,
        "written"
    );

    let missing = runtime
        .load_file(&component_path("misbehave")?, PluginLimits::default())
        .await?
        .with_grants(PluginGrants {
            env: Vec::new(),
            dirs: vec![DirGrant {
                host: shared.path().join("nope"),
                guest: "/x".into(),
                writable: false,
            }],
            ..PluginGrants::default()
        });
    assert!(format!("{:#}", missing.unwrap_err()).contains("does not exist"));
    Ok(())
}

#[tokio::test]
async fn enqueued_tasks_are_namespaced_like_the_nodes_own() -> anyhow::Result<()> {
    use parade_host::queue::{Prefixed, SqliteParade};

    let store: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    let node_queue: Arc<dyn Parade> = Arc::new(Prefixed::new(store.clone(), "tenant"));
    let runtime = Runtime::new(None)?;
    let plugins = vec![
        load(&runtime, "fan_out", PluginLimits::default()).await?,
        load(&runtime, "echo", PluginLimits::default()).await?,
    ];
    let props = ManagerProperties {
        wait_time: Duration::from_millis(50),
        ..ManagerProperties::default()
    };
    let actor = ComponentActor::new(
        runtime,
        plugins,
        node_queue.clone(),
        ActorId::from("tenant-node"),
        props.max_duration,
    )?;
    let manager = ActionManager::start(Arc::new(actor), node_queue.clone(), props);
    node_queue
        .insert_tasks(&[TaskData {
            body: Some(r#"{"children": 2}"#.into()),
            ..TaskData::new("dag", "fan-out")
        }])
        .await?;
    let seen_by_node = settled(&node_queue, 4).await?;
    manager.close().await;
    assert!(seen_by_node.iter().any(|t| t.id.as_str() == "dag.join"));

    let stored = store.list_tasks(&TaskFilter::default()).await?;
    assert_eq!(stored.len(), 4);
    for task in &stored {
        assert!(task.id.as_str().starts_with("tenant."), "{}", task.id);
        assert!(task.action.starts_with("tenant."), "{}", task.action);
        assert_eq!(task.status_code, TaskStatusCode::Completed, "{}", task.id);
    }
    Ok(())
}

/// An owned task of `action`, outside any queue.
fn owned(action: &str) -> parade_host::queue::OwnedTask {
    parade_host::queue::OwnedTask {
        id: format!("t-{action}").as_str().into(),
        token: parade_host::queue::PerformanceToken(uuid::Uuid::new_v4()),
        num_signalled_failures: 0,
        action: action.into(),
        body: Some("b".into()),
    }
}

#[tokio::test]
async fn a_fuel_limit_ends_a_runaway_task_and_needs_a_metering_runtime() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::SqliteParade;
    use parade_host::runtime::RuntimeOptions;

    let limited = PluginLimits {
        fuel: Some(5_000_000),
        ..PluginLimits::default()
    };
    let plain = Runtime::new(None)?;
    let refused = plain
        .load_file(&component_path("misbehave")?, limited.clone())
        .await
        .expect_err("a runtime without metering cannot honour fuel");
    assert!(
        format!("{refused:#}").contains("without fuel metering"),
        "{refused:#}"
    );

    let metering = Runtime::with_options(RuntimeOptions {
        cache_dir: None,
        fuel: true,
    })?;
    let plugins = vec![
        Arc::new(
            metering
                .load_file(&component_path("misbehave")?, limited)
                .await?,
        ),
        // Without a limit of its own, a plugin on a metering runtime runs unhindered.
        Arc::new(
            metering
                .load_file(&component_path("echo")?, PluginLimits::default())
                .await?,
        ),
    ];
    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    let actor = ComponentActor::new(
        metering,
        plugins,
        queue,
        ActorId::from("fuel"),
        Duration::from_secs(60),
    )?;
    let looped = actor.perform(&owned("loop")).await?;
    assert_eq!(looped.status_code, TaskStatusCode::Pending);
    assert_eq!(looped.status, "plugin misbehave: ran out of fuel");
    let echoed = actor.perform(&owned("echo")).await?;
    assert_eq!(
        (echoed.status_code, echoed.status.as_str()),
        (TaskStatusCode::Completed, "b")
    );
    Ok(())
}

#[tokio::test]
async fn replacing_plugins_switches_new_tasks_and_declines_removed_actions() -> anyhow::Result<()> {
    use parade_host::manager::{Actor, Declined};
    use parade_host::queue::SqliteParade;

    let runtime = Runtime::new(None)?;
    let echo = load(&runtime, "echo", PluginLimits::default()).await?;
    let noop = load(&runtime, "noop", PluginLimits::default()).await?;
    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    let actor = ComponentActor::new(
        runtime,
        vec![echo.clone()],
        queue,
        ActorId::from("swap"),
        Duration::from_secs(60),
    )?;
    assert_eq!(actor.actions(), ["echo"]);

    // A clash changes nothing.
    let clash = actor
        .replace_plugins(vec![echo.clone(), echo.clone()])
        .expect_err("two plugins claim echo");
    assert!(
        format!("{clash}").contains("claimed by two plugins"),
        "{clash}"
    );
    assert_eq!(actor.actions(), ["echo"]);

    actor.replace_plugins(vec![noop])?;
    assert_eq!(actor.actions(), ["noop"]);
    let declined = actor
        .perform(&owned("echo"))
        .await
        .expect_err("echo is no longer served");
    assert!(declined.is::<Declined>(), "{declined:#}");
    let done = actor.perform(&owned("noop")).await?;
    assert_eq!(done.status_code, TaskStatusCode::Completed);
    Ok(())
}

#[tokio::test]
async fn a_component_reaching_for_what_the_node_does_not_grant_is_refused_at_load(
) -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    // Imports an interface no node provides.
    let raw_sockets = wat::parse_str(
        r#"(component
             (import "evil:net/raw-socket@1.0.0" (instance (export "connect" (func))))
           )"#,
    )?;
    let refused = runtime
        .load("sockets", &raw_sockets, PluginLimits::default())
        .await
        .expect_err("an ungranted import must be refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains("imports something a Parade node does not provide"),
        "{message}"
    );
    assert!(message.contains("evil:net/raw-socket"), "{message}");

    // A valid component of some other world: it exports nothing Parade can call.
    let other_world = wat::parse_str("(component)")?;
    let refused = runtime
        .load("other", &other_world, PluginLimits::default())
        .await
        .expect_err("a component of another world must be refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains("does not export the parade:actor/actor world"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn no_task_sees_memory_an_earlier_task_wrote() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::SqliteParade;

    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    let actor = ComponentActor::new(
        runtime,
        vec![misbehave],
        queue,
        ActorId::from("snoop"),
        Duration::from_secs(60),
    )?;
    // One after another, so pooled slots are reused: each task dirties ~900 KiB that the
    // next must not see.
    for _ in 0..50 {
        let result = actor.perform(&owned("snoop")).await?;
        assert_eq!(
            (result.status_code, result.status.as_str()),
            (TaskStatusCode::Completed, "clean")
        );
    }
    Ok(())
}

async fn host_imports_answer_hostile_arguments_without_harm(
    backend: Backend,
) -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let queue = backend.open().await?;
    queue
        .insert_tasks(&[TaskData::new("flood", "flood")])
        .await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("f"),
            1,
            &["flood".to_owned()],
            Some(Duration::from_secs(60)),
        )
        .await?
        .pop()
        .context("the task was not owned")?;
    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = ComponentActor::new(
        runtime,
        vec![misbehave],
        queue.clone(),
        ActorId::from("f"),
        Duration::from_secs(60),
    )?;
    let result = actor.perform(&owned).await?;
    assert_eq!(result.status_code, TaskStatusCode::Completed, "{result:?}");
    let status = result.status;
    assert!(
        status.contains("many: enqueue takes at most 10000 tasks per call, got 10001"),
        "{status}"
    );
    assert!(
        status.contains("nul: ") && status.contains("NUL character"),
        "{status}"
    );
    assert!(status.contains("no-such-task"), "{status}");
    assert!(status.contains("deadline: "), "{status}");
    // Nothing of the refused batches was stored; a 1 MiB id is stored or refused whole.
    let stored = queue.list_tasks(&TaskFilter::default()).await?;
    let long_id_stored = status.contains("long id accepted");
    assert_eq!(stored.len(), 1 + usize::from(long_id_stored), "{status}");
    Ok(())
}

/// A task owned from `queue` (which must hold it) by a throwaway actor, for `perform`.
async fn own(
    queue: &Arc<dyn Parade>,
    action: &str,
) -> anyhow::Result<parade_host::queue::OwnedTask> {
    queue
        .own_tasks(
            &ActorId::from("own"),
            1,
            &[action.to_owned()],
            Some(Duration::from_secs(60)),
        )
        .await?
        .pop()
        .with_context(|| format!("no {action} task to own"))
}

/// `signal-after` may name tasks of the same `enqueue` call and tasks the same task run
/// enqueued earlier; naming any other task (an unrelated one, or one another run created)
/// is refused with the id, and stores nothing.
#[tokio::test]
async fn a_guest_may_signal_only_tasks_it_created() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::SqliteParade;

    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    queue
        .insert_tasks(&[
            TaskData {
                total_dependencies: Some(1),
                ..TaskData::new("victim", "gated")
            },
            TaskData {
                body: Some("victim".into()),
                ..TaskData::new("t1", "signal-forge")
            },
        ])
        .await?;
    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = ComponentActor::new(
        runtime,
        vec![misbehave],
        queue.clone(),
        ActorId::from("own"),
        Duration::from_secs(60),
    )?;
    let first = actor.perform(&own(&queue, "signal-forge").await?).await?;
    assert_eq!(first.status_code, TaskStatusCode::Completed, "{first:?}");
    let (allowed, forged) = first
        .status
        .split_once(" | forged: ")
        .context(first.status.clone())?;
    assert_eq!(allowed, "batch: ok | earlier: ok | generated: ok");
    assert!(
        forged.contains("\"victim\"") && forged.contains("signal-after"),
        "{forged}"
    );
    let stored = queue.list_tasks(&TaskFilter::default()).await?;
    assert_eq!(
        find(&stored, "t1.a").to_signal_after,
        ["t1.b".into()] as [parade_host::queue::TaskId; 1]
    );
    assert_eq!(
        find(&stored, "t1.c").to_signal_after,
        ["t1.a".into()] as [parade_host::queue::TaskId; 1]
    );
    assert_eq!(find(&stored, "t1.d").to_signal_after.len(), 1);
    assert!(
        stored.iter().all(|t| t.id.as_str() != "t1.e"),
        "{stored:#?}"
    );

    // Another task run cannot name what the first one created either.
    queue
        .insert_tasks(&[TaskData {
            body: Some("t1.a".into()),
            ..TaskData::new("t2", "signal-forge")
        }])
        .await?;
    let second = actor.perform(&own(&queue, "signal-forge").await?).await?;
    let forged = second
        .status
        .split_once(" | forged: ")
        .context(second.status.clone())?
        .1;
    assert!(forged.contains("\"t1.a\""), "{forged}");
    let stored = queue.list_tasks(&TaskFilter::default()).await?;
    assert!(
        stored.iter().all(|t| t.id.as_str() != "t2.e"),
        "{stored:#?}"
    );
    let victim = find(&stored, "victim");
    assert!(
        stored
            .iter()
            .all(|t| !t.to_signal_after.contains(&victim.id)),
        "{stored:#?}"
    );
    Ok(())
}

/// One task run may enqueue 100,000 tasks in all (10,000 per call); past that, every call
/// is refused with a message saying so, and nothing more is stored.
#[tokio::test]
async fn a_task_run_enqueues_at_most_its_quota() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::SqliteParade;

    let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
    queue
        .insert_tasks(&[TaskData {
            body: Some("110000".into()),
            ..TaskData::new("greedy", "enqueue-quota")
        }])
        .await?;
    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = ComponentActor::new(
        runtime,
        vec![misbehave],
        queue.clone(),
        ActorId::from("own"),
        Duration::from_secs(600),
    )?;
    let result = actor.perform(&own(&queue, "enqueue-quota").await?).await?;
    assert_eq!(result.status_code, TaskStatusCode::Completed, "{result:?}");
    let quota = "enqueue takes at most 100000 tasks per task run; this run has enqueued 100000";
    assert_eq!(
        result.status,
        format!(
            "accepted 100000 | refused: {quota} and asked for 10000 more \
             | one more: {quota} and asked for 1 more"
        )
    );
    let stored = queue
        .list_tasks(&TaskFilter {
            limit: Some(1_000_000),
            ..TaskFilter::default()
        })
        .await?;
    assert_eq!(stored.len(), 1 + 100_000);
    Ok(())
}

/// The one compiled entry (`.cwasm` file) in `cache`.
fn cache_entry(cache: &std::path::Path) -> anyhow::Result<PathBuf> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(cache)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            entries.push(path);
        }
    }
    anyhow::ensure!(entries.len() == 1, "{entries:?}");
    Ok(entries.remove(0))
}

/// A `.cwasm` the node did not write (garbage, or another component's compiled code under
/// the expected name, as a guest with a writable grant on the cache could plant) is never
/// loaded: the component is compiled again, the entry replaced, and the plugin runs as
/// itself.
#[tokio::test]
async fn a_planted_cache_entry_is_recompiled_not_loaded() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::queue::SqliteParade;

    let noop_cache = tempfile::tempdir()?;
    Runtime::new(Some(noop_cache.path().to_owned()))?
        .load_file(&component_path("noop")?, PluginLimits::default())
        .await?;
    let noop_compiled = std::fs::read(cache_entry(noop_cache.path())?)?;

    let cache = tempfile::tempdir()?;
    Runtime::new(Some(cache.path().to_owned()))?
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    let entry = cache_entry(cache.path())?;
    for planted in [noop_compiled.clone(), b"garbage".to_vec()] {
        std::fs::write(&entry, &planted)?;
        let runtime = Runtime::new(Some(cache.path().to_owned()))?;
        let echo = load(&runtime, "echo", PluginLimits::default()).await?;
        assert_eq!(echo.actions, ["echo"], "a planted entry was loaded");
        let queue: Arc<dyn Parade> = Arc::new(SqliteParade::open("sqlite::memory:").await?);
        let actor = ComponentActor::new(
            runtime,
            vec![echo],
            queue,
            ActorId::from("cache"),
            Duration::from_secs(60),
        )?;
        let echoed = actor.perform(&owned("echo")).await?;
        assert_eq!(
            (echoed.status_code, echoed.status.as_str()),
            (TaskStatusCode::Completed, "b")
        );
        let now = std::fs::read(&entry)?;
        assert_ne!(now, planted, "the planted entry was not replaced");
        assert_eq!(cache_entry(cache.path())?, entry);
    }
    // The replacement is the node's own: the next start loads it without compiling.
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&entry)?.ino();
    Runtime::new(Some(cache.path().to_owned()))?
        .load_file(&component_path("echo")?, PluginLimits::default())
        .await?;
    assert_eq!(std::fs::metadata(&entry)?.ino(), inode, "recompiled again");
    Ok(())
}

/// The node's log while `body` runs on this thread, as text. The guest's lines and the
/// node's markers are logged on the thread that performs the task.
async fn logged_while<F: std::future::Future>(body: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let output = {
        let _default = tracing::subscriber::set_default(subscriber);
        body.await
    };
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (output, text)
}

/// An actor serving only `plugin`, on a queue of its own.
fn lone_actor(runtime: Arc<Runtime>, plugin: Arc<Plugin>) -> anyhow::Result<ComponentActor> {
    let queue: Arc<dyn Parade> = Arc::new(futures_free_sqlite()?);
    ComponentActor::new(
        runtime,
        vec![plugin],
        queue,
        ActorId::from("lone"),
        Duration::from_secs(600),
    )
}
