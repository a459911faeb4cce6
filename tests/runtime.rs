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
use parade_host::runtime::{ComponentActor, ContractVersion, Plugin, PluginLimits, Runtime};
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
    extending_a_deadline_by_zero_is_refused,
    extending_a_deadline_grants_at_most_the_time_limit,
    a_nul_in_a_status_is_stored_as_a_replacement_character,
    components_of_both_contract_versions_run_side_by_side,
    a_delayed_prioritised_follow_up_task_is_stored_as_asked,
    a_snoozed_task_waits_in_the_queue_before_its_next_try,
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
        "sleep",
        "shout",
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
    expect_failure("sleep", "timed out");
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
    assert_eq!(status("shout").0, TaskStatusCode::Completed);
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
        num_tries: 1,
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
        num_tries: 1,
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

/// An actor serving only `plugin`, on an in-memory queue of its own.
async fn lone_actor(runtime: Arc<Runtime>, plugin: Arc<Plugin>) -> anyhow::Result<ComponentActor> {
    let queue: Arc<dyn Parade> =
        Arc::new(parade_host::queue::SqliteParade::open("sqlite::memory:").await?);
    ComponentActor::new(
        runtime,
        vec![plugin],
        queue,
        ActorId::from("lone"),
        Duration::from_secs(600),
    )
}

/// A guest blocked in a host call (here `std::thread::sleep`: a clock subscription and a
/// poll, where epoch interruption never reaches) is stopped at its plugin's timeout, and
/// its task ends exactly as a guest looping in its own code does: same status, same code
/// from the plugin's failure policy.
#[tokio::test]
async fn a_guest_waiting_in_a_host_call_times_out_like_one_running_code() -> anyhow::Result<()> {
    use parade_host::manager::Actor;
    use parade_host::runtime::FailurePolicy;

    for on_failure in [FailurePolicy::Retry, FailurePolicy::Abort] {
        let runtime = Runtime::new(None)?;
        let limits = PluginLimits {
            timeout: Duration::from_secs(1),
            on_failure,
            ..PluginLimits::default()
        };
        let misbehave = load(&runtime, "misbehave", limits).await?;
        let actor = lone_actor(runtime.clone(), misbehave).await?;
        let looped = actor.perform(&owned("loop")).await?;
        let slept = tokio::time::timeout(Duration::from_secs(30), actor.perform(&owned("sleep")))
            .await
            .context("a task sleeping in a host call held its worker past its timeout")??;
        assert_eq!(slept.status, "plugin misbehave: timed out after 1s");
        assert_eq!(
            (slept.status_code, slept.status.as_str()),
            (looped.status_code, looped.status.as_str()),
            "{on_failure:?}"
        );
        let expected = match on_failure {
            FailurePolicy::Retry => TaskStatusCode::Pending,
            FailurePolicy::Abort => TaskStatusCode::Aborted,
        };
        assert_eq!(slept.status_code, expected);
        assert_eq!(runtime.stats.failures().get("timeout"), Some(&2));
    }
    Ok(())
}

/// A component whose `actions()` hangs in a host call cannot hold up a node's start or
/// its reloads: it is refused within 10 s (its timeout is the default 30 minutes), with
/// an error naming the file.
#[tokio::test]
async fn a_plugin_whose_actions_hang_is_refused_at_load() -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    let path = component_path("stall")?;
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        runtime.load_file(&path, PluginLimits::default()),
    )
    .await
    .context("loading a plugin whose actions() hangs did not end")?
    .expect_err("a plugin whose actions() hangs must be refused");
    let message = format!("{refused:#}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("its actions() did not return within 10s"),
        "{message}"
    );
    Ok(())
}

/// A guest that prints far more than the node keeps (1 MiB) completes: the first 64 KiB
/// are logged, then one line says the rest was cut.
#[tokio::test]
async fn a_guest_printing_a_mebibyte_completes_and_its_log_says_it_was_cut() -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = lone_actor(runtime, misbehave).await?;
    let (result, log) = logged_while(actor.perform(&owned("shout"))).await;
    let result = result?;
    assert_eq!(
        (result.status_code, result.status.as_str()),
        (TaskStatusCode::Completed, "shouted")
    );
    assert_eq!(
        log.matches("output truncated after 64 KiB").count(),
        1,
        "{}",
        &log[log.len().saturating_sub(2_000)..]
    );
    let kept = log.lines().filter(|l| l.contains("xxxxxxxx")).count();
    assert!((1..=64).contains(&kept), "{kept} lines of output logged");
    Ok(())
}

/// A task's lines reach the log up to 1,000 (through the `log` import and stdout
/// together), then one line says the rest are dropped.
#[tokio::test]
async fn a_task_logs_at_most_a_thousand_lines() -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = lone_actor(runtime, misbehave).await?;
    let (result, log) = logged_while(actor.perform(&owned("chatter"))).await;
    let result = result?;
    assert_eq!(
        (result.status_code, result.status.as_str()),
        (TaskStatusCode::Completed, "chattered")
    );
    assert_eq!(log.matches("chatter line ").count(), 1_000);
    assert_eq!(log.matches("log lines truncated after 1000").count(), 1);
    Ok(())
}

/// A component of two core modules, each with its own linear memory, serving
/// `two-memories` (grows each memory to 4 MiB) and `one-memory` (grows the first to 2 MiB).
const TWO_MEMORIES: &str = r#"
(component
  (core module $Extra
    (memory (export "memory") 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  (core module $Main
    (import "extra" "grow" (func $grow_extra (param i32) (result i32)))
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 0x1000))
    (data (i32.const 0x100) "one-memory")
    (data (i32.const 0x110) "two-memories")
    (data (i32.const 0x120) "ok")
    ;; actions(): a list of two strings at 0x200, its (pointer, length) at 0x300.
    (data (i32.const 0x200) "\00\01\00\00\0a\00\00\00\10\01\00\00\0c\00\00\00")
    (data (i32.const 0x300) "\00\02\00\00\02\00\00\00")
    ;; handle(): the result {status: "ok", code: completed}.
    (data (i32.const 0x400) "\20\01\00\00\02\00\00\00\00")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func (export "actions") (result i32) (i32.const 0x300))
    (func (export "handle") (param i32 i32 i32 i32 i32 i32) (result i32)
      (if (i32.eq (local.get 1) (i32.const 12))
        (then
          ;; 1 + 63 pages of 64 KiB: 4 MiB each.
          (if (i32.eq (call $grow_extra (i32.const 63)) (i32.const -1)) (then unreachable))
          (if (i32.eq (memory.grow (i32.const 63)) (i32.const -1)) (then unreachable)))
        (else
          (if (i32.eq (memory.grow (i32.const 31)) (i32.const -1)) (then unreachable))))
      (i32.const 0x400)))
  (core instance $extra (instantiate $Extra))
  (core instance $main (instantiate $Main (with "extra" (instance $extra))))
  (alias core export $main "memory" (core memory $memory))
  (alias core export $main "cabi_realloc" (core func $realloc))
  (alias core export $main "actions" (core func $actions))
  (alias core export $main "handle" (core func $handle))
  (type $code (enum "completed" "aborted" "pending"))
  (export $code-export "status-code" (type $code))
  (type $result (record (field "status" string) (field "code" $code-export)))
  (export $result-export "actor-result" (type $result))
  (func $actions-lifted (result (list string))
    (canon lift (core func $actions) (memory $memory) (realloc $realloc)))
  (export "actions" (func $actions-lifted))
  (func $handle-lifted
    (param "action" string) (param "body" (option string)) (param "signalled-failures" u32)
    (result $result-export)
    (canon lift (core func $handle) (memory $memory) (realloc $realloc)))
  (export "handle" (func $handle-lifted))
)
"#;

/// A plugin's memory limit holds for its task's instance as a whole: two memories that
/// each stay within it but together exceed it end the task "out of memory", while one
/// memory within the limit runs.
#[tokio::test]
async fn memory_is_limited_per_task_instance_not_per_memory() -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let runtime = Runtime::new(None)?;
    let limits = PluginLimits {
        memory: 4 << 20,
        on_failure: parade_host::runtime::FailurePolicy::Abort,
        ..PluginLimits::default()
    };
    let plugin = runtime
        .load("two_memories", &wat::parse_str(TWO_MEMORIES)?, limits)
        .await?;
    assert_eq!(plugin.actions, ["one-memory", "two-memories"]);
    let actor = lone_actor(runtime, Arc::new(plugin)).await?;
    let within = actor.perform(&owned("one-memory")).await?;
    assert_eq!(
        (within.status_code, within.status.as_str()),
        (TaskStatusCode::Completed, "ok")
    );
    let over = actor.perform(&owned("two-memories")).await?;
    assert_eq!(over.status_code, TaskStatusCode::Aborted, "{over:?}");
    assert_eq!(
        over.status,
        "plugin two_memories: out of memory (limit 4 MiB)"
    );
    Ok(())
}

/// A node refuses more workers than its pooling allocator has instance slots for, naming
/// both numbers; within them (or allocating on demand) any number is fine.
#[tokio::test]
async fn workers_beyond_the_pools_instance_slots_are_refused() -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    runtime.check_workers(5)?;
    runtime.check_workers(255)?;
    if runtime.is_pooling() {
        let refused = runtime
            .check_workers(300)
            .expect_err("300 workers cannot all run in 256 slots");
        let message = format!("{refused:#}");
        assert!(
            message.contains("workers = 300") && message.contains("256 instance slots"),
            "{message}"
        );
    }
    Ok(())
}

/// Inserts a task of `action` with `body` and owns it for 60 seconds.
async fn insert_and_own(
    queue: &Arc<dyn Parade>,
    id: &str,
    action: &str,
    body: &str,
) -> anyhow::Result<parade_host::queue::OwnedTask> {
    queue
        .insert_tasks(&[TaskData {
            body: Some(body.into()),
            ..TaskData::new(id, action)
        }])
        .await?;
    queue
        .own_tasks(
            &ActorId::from("owner"),
            1,
            &[action.to_owned()],
            Some(Duration::from_secs(60)),
        )
        .await?
        .pop()
        .with_context(|| format!("task {id} was not owned"))
}

/// An actor performing misbehave tasks of `queue`, with a 120 s timeout for them.
async fn extending_actor(queue: &Arc<dyn Parade>) -> anyhow::Result<ComponentActor> {
    let runtime = Runtime::new(None)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(120),
        ..PluginLimits::default()
    };
    let misbehave = load(&runtime, "misbehave", limits).await?;
    ComponentActor::new(
        runtime,
        vec![misbehave],
        queue.clone(),
        ActorId::from("owner"),
        Duration::from_secs(600),
    )
}

/// The stored deadline of task `id`.
async fn deadline_of(
    queue: &Arc<dyn Parade>,
    id: &parade_host::queue::TaskId,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    queue
        .get_task(id)
        .await?
        .and_then(|t| t.action_deadline)
        .context("the task has no deadline")
}

/// `extend-deadline(0)` is refused with an error the guest sees (it would hand the running
/// task to another node at once), and the deadline stays as it was.
async fn extending_a_deadline_by_zero_is_refused(backend: Backend) -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let queue = backend.open().await?;
    let actor = extending_actor(&queue).await?;
    let task = insert_and_own(&queue, "zero", "extend-deadline", "0").await?;
    let before = deadline_of(&queue, &task.id).await?;
    let refused = actor.perform(&task).await?;
    assert_eq!(refused.status_code, TaskStatusCode::Aborted, "{refused:?}");
    assert!(
        refused
            .status
            .contains("refused: extend-deadline takes at least 1 second"),
        "{}",
        refused.status
    );
    assert_eq!(deadline_of(&queue, &task.id).await?, before);
    Ok(())
}

/// A huge extension is cut to the task's time limit (here the plugin's 120 s timeout)
/// rather than stranding the task for decades if the node then crashes.
async fn extending_a_deadline_grants_at_most_the_time_limit(
    backend: Backend,
) -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let queue = backend.open().await?;
    let actor = extending_actor(&queue).await?;
    let task = insert_and_own(&queue, "forever", "extend-deadline", "4294967295").await?;
    let asked = chrono::Utc::now();
    let extended = actor.perform(&task).await?;
    assert_eq!(
        (extended.status_code, extended.status.as_str()),
        (TaskStatusCode::Completed, "extended")
    );
    let granted = deadline_of(&queue, &task.id).await? - asked;
    assert!(
        granted > chrono::Duration::seconds(110) && granted <= chrono::Duration::seconds(125),
        "extended by {granted}"
    );
    Ok(())
}

/// A NUL in a status a guest returns (which PostgreSQL text cannot hold) is stored as
/// U+FFFD, the rest of the status as it was.
async fn a_nul_in_a_status_is_stored_as_a_replacement_character(
    backend: Backend,
) -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let queue = backend.open().await?;
    let runtime = Runtime::new(None)?;
    let misbehave = load(&runtime, "misbehave", PluginLimits::default()).await?;
    let actor = ComponentActor::new(
        runtime,
        vec![misbehave],
        queue.clone(),
        ActorId::from("owner"),
        Duration::from_secs(60),
    )?;
    let task = insert_and_own(&queue, "nul", "nul-status", "").await?;
    let result = actor.perform(&task).await?;
    assert_eq!(
        (result.status_code, result.status.as_str()),
        (TaskStatusCode::Completed, "before\u{FFFD}after")
    );
    queue
        .return_task(&task.id, task.token, &result.status, result.status_code)
        .await?;
    let stored = queue
        .get_task(&task.id)
        .await?
        .context("the task is gone")?;
    assert_eq!(stored.status.as_deref(), Some("before\u{FFFD}after"));
    Ok(())
}

/// A component built against `parade:actor@0.1.0` (`legacy`, wit-bindgen on
/// `wit/0.1.0/`) and ones built against 0.2.0 run side by side in one node: each is
/// detected at load, and the 0.1.0 one gets every host import it had (log, task id, try
/// number, enqueue, extend-deadline) with the meaning it had.
async fn components_of_both_contract_versions_run_side_by_side(
    backend: Backend,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(None)?;
    for (name, version) in [
        ("legacy", ContractVersion::V0_1),
        ("echo", ContractVersion::V0_2),
        ("later", ContractVersion::V0_2),
    ] {
        let plugin = load(&runtime, name, PluginLimits::default()).await?;
        assert_eq!(plugin.contract(), version, "{name}");
    }
    assert_eq!(ContractVersion::V0_1.to_string(), "parade:actor@0.1.0");

    let limits = PluginLimits::default();
    let (queue, manager) = node(
        backend,
        &[
            ("legacy", limits.clone()),
            ("echo", limits.clone()),
            ("later", limits.clone()),
            ("noop", limits.clone()),
        ],
    )
    .await?;
    queue
        .insert_tasks(&[
            TaskData {
                body: Some("old".into()),
                ..TaskData::new("l-echo", "legacy-echo")
            },
            TaskData {
                max_tries: Some(3),
                ..TaskData::new("l-retry", "legacy-retry")
            },
            TaskData {
                body: Some("from 0.1.0".into()),
                ..TaskData::new("l-enqueue", "legacy-enqueue")
            },
            TaskData {
                body: Some("60".into()),
                ..TaskData::new("l-extend", "legacy-extend")
            },
            TaskData {
                body: Some("new".into()),
                ..TaskData::new("n-echo", "echo")
            },
            TaskData {
                body: Some("- 3".into()),
                ..TaskData::new("n-later", "enqueue-later")
            },
        ])
        .await?;
    let tasks = settled(&queue, 8).await?;
    manager.close().await;

    let outcome = |id: &str| {
        let t = find(&tasks, id);
        (t.status_code, t.status.clone().unwrap_or_default())
    };
    let completed = |status: &str| (TaskStatusCode::Completed, status.to_owned());
    assert_eq!(outcome("l-echo"), completed("old (try 1, task l-echo)"));
    assert_eq!(outcome("l-retry"), completed("done on try 2"));
    assert_eq!(find(&tasks, "l-retry").num_tries, 2);
    assert_eq!(outcome("l-enqueue"), completed("enqueued l-enqueue.child"));
    assert_eq!(outcome("l-extend"), completed("extended"));
    // The 0.1.0 follow-up task: due at once, default priority, its own fields kept.
    let child = find(&tasks, "l-enqueue.child");
    assert_eq!(
        (child.priority, child.run_after, child.max_tries),
        (0, None, Some(3))
    );
    assert_eq!(
        outcome("l-enqueue.child"),
        completed("from 0.1.0 (try 1, task l-enqueue.child)")
    );
    assert_eq!(outcome("n-echo"), completed("new"));
    assert_eq!(outcome("n-later"), completed("enqueued n-later.later"));
    assert_eq!(find(&tasks, "n-later.later").priority, 3);
    Ok(())
}

/// Performs one `enqueue-later` task with `body` ("DELAY_MS PRIORITY") on `actor`, returning
/// its result.
async fn enqueue_later(
    queue: &Arc<dyn Parade>,
    actor: &ComponentActor,
    id: &str,
    body: &str,
) -> anyhow::Result<parade_host::manager::ActorResult> {
    use parade_host::manager::Actor;

    let task = insert_and_own(queue, id, "enqueue-later", body).await?;
    actor.perform(&task).await
}

/// A 0.2.0 guest's `enqueue` stores `delay-ms` as `run_after` (now plus the delay) and
/// `priority` as the task's priority: the delayed task is not offered before its time. A
/// delay past 365 days is refused with an error the guest sees, and stores nothing.
async fn a_delayed_prioritised_follow_up_task_is_stored_as_asked(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let runtime = Runtime::new(None)?;
    let later = load(&runtime, "later", PluginLimits::default()).await?;
    let actor = ComponentActor::new(
        runtime,
        vec![later],
        queue.clone(),
        ActorId::from("owner"),
        Duration::from_secs(60),
    )?;
    let stored = |id: &str| {
        let queue = queue.clone();
        let id = id.to_owned();
        async move { queue.get_task(&id.as_str().into()).await }
    };

    let asked = chrono::Utc::now();
    let result = enqueue_later(&queue, &actor, "hour", "3600000 7").await?;
    assert_eq!(
        (result.status_code, result.status.as_str()),
        (TaskStatusCode::Completed, "enqueued hour.later")
    );
    let hour = stored("hour.later")
        .await?
        .context("hour.later was not stored")?;
    assert_eq!(hour.priority, 7);
    let delay = hour.run_after.context("no run_after")? - asked;
    assert!(
        delay >= chrono::Duration::milliseconds(3_600_000 - 1)
            && delay < chrono::Duration::seconds(3_600 + 30),
        "stored {delay} after the call for a delay of an hour"
    );
    let offered = queue
        .own_tasks(&ActorId::from("x"), 10, &["noop".to_owned()], None)
        .await?;
    assert!(
        offered.is_empty(),
        "a task delayed an hour was offered: {offered:?}"
    );

    // No delay (or 0) is due at once; a negative priority is kept.
    enqueue_later(&queue, &actor, "now", "0 -5").await?;
    enqueue_later(&queue, &actor, "plain", "- -").await?;
    let now = stored("now.later").await?.context("now.later")?;
    let plain = stored("plain.later").await?.context("plain.later")?;
    assert_eq!((now.priority, now.run_after), (-5, None));
    assert_eq!((plain.priority, plain.run_after), (0, None));

    // Exactly a year is allowed; a millisecond more, or u64::MAX, is not.
    let year = enqueue_later(&queue, &actor, "year", "31536000000 0").await?;
    assert_eq!(year.status_code, TaskStatusCode::Completed, "{year:?}");
    for (id, ms) in [
        ("longer", "31536000001"),
        ("forever", "18446744073709551615"),
    ] {
        let refused = enqueue_later(&queue, &actor, id, &format!("{ms} 0")).await?;
        assert_eq!(refused.status_code, TaskStatusCode::Aborted, "{refused:?}");
        assert_eq!(
            refused.status,
            format!(
                "refused: task 0 of this enqueue call: delay-ms {ms} is more than 365 days \
                 (31536000000 ms): enqueue a task that re-enqueues itself to wait longer"
            )
        );
        assert!(stored(&format!("{id}.later")).await?.is_none(), "{id}");
    }
    Ok(())
}

/// A 0.2.0 guest's pending result with `retry-after-ms` (the `flaky` example with
/// `retry_after_ms`) makes its task wait in the queue: its status says when the next try
/// comes, the stored `run_after` is that far ahead, and the next try comes no sooner.
async fn a_snoozed_task_waits_in_the_queue_before_its_next_try(
    backend: Backend,
) -> anyhow::Result<()> {
    let (queue, manager) = node(backend, &[("flaky", PluginLimits::default())]).await?;
    let started = tokio::time::Instant::now();
    queue
        .insert_tasks(&[TaskData {
            body: Some(r#"{"failures": 1, "retry_after_ms": 1500}"#.into()),
            max_tries: Some(3),
            ..TaskData::new("snoozer", "flaky")
        }])
        .await?;
    let id = "snoozer".into();
    let waiting = loop {
        let task = queue.get_task(&id).await?.context("the task is gone")?;
        if task.num_tries == 1 && task.status.is_some() {
            break task;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the first try did not end: {task:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen = chrono::Utc::now();
    let status = waiting.status.clone().unwrap_or_default();
    assert_eq!(waiting.status_code, TaskStatusCode::Pending, "{status}");
    assert!(
        status.starts_with("failing on purpose, try 1 of 2; next try in 1.5s, at 20")
            && status.ends_with('Z'),
        "{status}"
    );
    let ahead = waiting
        .run_after
        .context("a snoozed task has a run_after")?
        - seen;
    assert!(
        ahead > chrono::Duration::milliseconds(500)
            && ahead <= chrono::Duration::milliseconds(1500),
        "run_after is {ahead} ahead"
    );

    let tasks = settled(&queue, 1).await?;
    manager.close().await;
    let done = find(&tasks, "snoozer");
    assert_eq!(
        (done.status_code, done.status.as_deref(), done.num_tries),
        (TaskStatusCode::Completed, Some("succeeded on try 2"), 2)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the second try came after {:?}",
        started.elapsed()
    );
    Ok(())
}

/// A snooze is kept as asked up to 30 days; a longer one is cut to 30 days and the status
/// says so. Other results carry no delay.
#[tokio::test]
async fn a_snooze_past_thirty_days_is_cut_to_thirty_days() -> anyhow::Result<()> {
    use parade_host::manager::Actor;

    let runtime = Runtime::new(None)?;
    let later = load(&runtime, "later", PluginLimits::default()).await?;
    let echo = load(&runtime, "echo", PluginLimits::default()).await?;
    let queue: Arc<dyn Parade> =
        Arc::new(parade_host::queue::SqliteParade::open("sqlite::memory:").await?);
    let actor = ComponentActor::new(
        runtime,
        vec![later, echo],
        queue,
        ActorId::from("snooze"),
        Duration::from_secs(60),
    )?;
    let snooze = |ms: &str| {
        let mut task = owned("snooze");
        task.body = Some(ms.to_owned());
        task
    };
    let short = actor.perform(&snooze("250")).await?;
    assert_eq!(
        (short.status_code, short.status.as_str(), short.retry_after),
        (
            TaskStatusCode::Pending,
            "snoozing for 250 ms",
            Some(Duration::from_millis(250))
        )
    );
    let month = actor.perform(&snooze("2592000000")).await?;
    assert_eq!(month.retry_after, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(month.status, "snoozing for 2592000000 ms");
    let forever = actor.perform(&snooze("18446744073709551615")).await?;
    assert_eq!(
        (forever.status_code, forever.retry_after),
        (
            TaskStatusCode::Pending,
            Some(Duration::from_secs(30 * 86_400))
        )
    );
    assert_eq!(
        forever.status,
        "snoozing for 18446744073709551615 ms (plugin later: retry-after-ms \
         18446744073709551615 is more than 30 days; trying again in 30 days)"
    );
    let echoed = actor.perform(&owned("echo")).await?;
    assert_eq!(
        (echoed.status_code, echoed.retry_after),
        (TaskStatusCode::Completed, None)
    );
    Ok(())
}
