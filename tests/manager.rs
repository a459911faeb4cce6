//! The ActionManager against real stores: every test runs on PostgreSQL and on SQLite with a
//! native Rust actor.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use parade_host::manager::{ActionManager, ActorResult, ManagerProperties, SimpleActor};
use parade_host::queue::{ActorId, Parade, TaskData, TaskFilter, TaskId, TaskStatusCode};
use support::Backend;

/// Performs "work" and "slow" (body `MILLISECONDS/NAME`: sleeps first), recording each body,
/// and "panic" and "fail", which never succeed.
#[derive(Default)]
struct TestActor {
    performed: Mutex<HashMap<String, usize>>,
}

impl TestActor {
    fn performed(&self) -> HashMap<String, usize> {
        self.performed.lock().unwrap().clone()
    }
}

#[async_trait]
impl SimpleActor for TestActor {
    fn actions(&self) -> Vec<String> {
        ["work", "slow", "panic", "fail"].map(String::from).to_vec()
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("test-node")
    }

    async fn handle(
        &self,
        action: &str,
        body: Option<&str>,
        _signalled_failures: i32,
    ) -> anyhow::Result<ActorResult> {
        let body = body.unwrap_or_default();
        match action {
            "slow" => {
                let (millis, _) = body.split_once('/').unwrap_or((body, ""));
                tokio::time::sleep(Duration::from_millis(millis.parse()?)).await;
            }
            "panic" => panic!("the handler broke on {body}"),
            "fail" => anyhow::bail!("cannot do {body}"),
            _ => {}
        }
        *self
            .performed
            .lock()
            .unwrap()
            .entry(body.to_owned())
            .or_default() += 1;
        Ok(ActorResult::completed(format!("did {body}")))
    }
}

fn task(id: &str, action: &str, body: &str) -> TaskData {
    TaskData {
        body: Some(body.into()),
        ..TaskData::new(id, action)
    }
}

fn fast_props() -> ManagerProperties {
    ManagerProperties {
        wait_time: Duration::from_millis(50),
        err_wait_time: Duration::from_millis(200),
        ..ManagerProperties::default()
    }
}

/// Waits until `check` holds, polling; fails after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await? {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn count(queue: &Arc<dyn Parade>, code: TaskStatusCode) -> anyhow::Result<usize> {
    Ok(queue
        .list_tasks(&TaskFilter {
            status_code: Some(code),
            ..TaskFilter::default()
        })
        .await?
        .len())
}

async fn row(queue: &Arc<dyn Parade>, id: &str) -> anyhow::Result<TaskData> {
    queue
        .get_task(&TaskId::from(id))
        .await?
        .ok_or_else(|| anyhow::anyhow!("task {id} missing"))
}

support::on_both_backends!(
    eight_workers_perform_ten_thousand_tasks_exactly_once,
    heartbeats_keep_a_task_longer_than_max_duration,
    failing_and_panicking_handlers_retry_until_max_tries,
    shutdown_mid_run_loses_nothing,
    shutdown_hands_back_tasks_still_running_after_grace,
    idle_manager_wakes_when_a_task_is_inserted,
    declined_tasks_go_back_untried,
    wait_idle_returns_once_successors_are_done_too,
    a_result_the_store_refuses_ends_the_task_aborted_with_the_reason,
    a_handler_returning_in_progress_ends_the_task_aborted_with_the_reason,
    tasks_waiting_longer_than_max_duration_run_exactly_once,
);

async fn eight_workers_perform_ten_thousand_tasks_exactly_once(
    backend: Backend,
) -> anyhow::Result<()> {
    const TASKS: usize = 10_000;
    let queue = backend.open().await?;
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| task(&format!("t{i}"), "work", &i.to_string()))
        .collect();
    queue.insert_tasks(&tasks).await?;
    let actor = Arc::new(TestActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 8,
            ..fast_props()
        },
    );
    eventually(
        Duration::from_secs(300),
        "every task to complete",
        || async { Ok(manager.stats().completed == TASKS as u64) },
    )
    .await?;
    manager.close().await;
    let performed = actor.performed();
    assert_eq!(performed.len(), TASKS);
    assert!(performed.values().all(|&n| n == 1), "a task ran twice");
    assert_eq!(count(&queue, TaskStatusCode::Completed).await?, TASKS);
    Ok(())
}

async fn heartbeats_keep_a_task_longer_than_max_duration(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[task("long", "slow", "2500/long")])
        .await?;
    let actor = Arc::new(TestActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            max_duration: Duration::from_secs(1),
            heartbeat: Duration::from_millis(250),
            ..fast_props()
        },
    );
    eventually(
        Duration::from_secs(30),
        "the manager to own the task",
        || async { Ok(row(&queue, "long").await?.actor_id == Some(ActorId::from("test-node"))) },
    )
    .await?;
    let thief = ActorId::from("thief");
    eventually(Duration::from_secs(30), "the task to finish", || async {
        let stolen = queue
            .own_tasks(&thief, 1, &["slow".into()], Some(Duration::from_secs(60)))
            .await?;
        anyhow::ensure!(
            stolen.is_empty(),
            "the running task was re-offered: {stolen:?}"
        );
        Ok(row(&queue, "long").await?.status_code == TaskStatusCode::Completed)
    })
    .await?;
    manager.close().await;
    let stored = row(&queue, "long").await?;
    assert_eq!(stored.num_tries, 1);
    assert_eq!(manager.stats().lost, 0);
    Ok(())
}

async fn failing_and_panicking_handlers_retry_until_max_tries(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[
            TaskData {
                max_tries: Some(3),
                ..task("boom", "panic", "boom")
            },
            TaskData {
                max_tries: Some(2),
                ..task("nope", "fail", "nope")
            },
        ])
        .await?;
    let manager = ActionManager::start(Arc::new(TestActor::default()), queue.clone(), fast_props());
    eventually(Duration::from_secs(60), "both tasks to abort", || async {
        Ok(count(&queue, TaskStatusCode::Aborted).await? == 2)
    })
    .await?;
    manager.close().await;
    let boom = row(&queue, "boom").await?;
    assert_eq!(boom.num_tries, 3);
    let status = boom.status.unwrap_or_default();
    assert!(
        status.contains("panicked") && status.contains("the handler broke on boom"),
        "{status}"
    );
    let nope = row(&queue, "nope").await?;
    assert_eq!(nope.num_tries, 2);
    assert!(nope.status.unwrap_or_default().contains("cannot do nope"));
    assert_eq!(manager.stats().handler_failures, 5);
    Ok(())
}

async fn shutdown_mid_run_loses_nothing(backend: Backend) -> anyhow::Result<()> {
    const TASKS: usize = 300;
    let queue = backend.open().await?;
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| TaskData {
            max_tries: Some(1),
            ..task(&format!("t{i}"), "slow", &format!("10/t{i}"))
        })
        .collect();
    queue.insert_tasks(&tasks).await?;
    let first_actor = Arc::new(TestActor::default());
    let first = ActionManager::start(
        first_actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 4,
            ..fast_props()
        },
    );
    eventually(Duration::from_secs(30), "some progress", || async {
        Ok(first.stats().completed > 0)
    })
    .await?;
    first.close().await;
    let stats = first.stats();
    assert!(
        stats.released > 0,
        "the shutdown should hand tasks back: {stats:?}"
    );
    assert_eq!(count(&queue, TaskStatusCode::InProgress).await?, 0);
    assert_eq!(
        count(&queue, TaskStatusCode::Aborted).await?,
        0,
        "a handed-back task used its only try"
    );

    let second = ActionManager::start(Arc::new(TestActor::default()), queue.clone(), fast_props());
    eventually(
        Duration::from_secs(120),
        "the restart to finish",
        || async { Ok(count(&queue, TaskStatusCode::Completed).await? == TASKS) },
    )
    .await?;
    second.close().await;
    let done = first_actor.performed().len() as u64 + second.stats().completed;
    assert_eq!(
        done, TASKS as u64,
        "every task ran exactly once across the restart"
    );
    Ok(())
}

async fn shutdown_hands_back_tasks_still_running_after_grace(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[task("stuck", "slow", "60000/stuck")])
        .await?;
    let manager = ActionManager::start(
        Arc::new(TestActor::default()),
        queue.clone(),
        ManagerProperties {
            shutdown_grace: Duration::from_millis(200),
            ..fast_props()
        },
    );
    eventually(Duration::from_secs(30), "the task to start", || async {
        Ok(row(&queue, "stuck").await?.status_code == TaskStatusCode::InProgress)
    })
    .await?;
    tokio::time::timeout(Duration::from_secs(20), manager.close()).await?;
    let stored = row(&queue, "stuck").await?;
    assert_eq!(stored.status_code, TaskStatusCode::Pending);
    assert_eq!(stored.num_tries, 0);
    assert_eq!(manager.stats().released, 1);
    Ok(())
}

async fn idle_manager_wakes_when_a_task_is_inserted(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    // With a one-minute poll interval, only a wake-up can start the task in time.
    let manager = ActionManager::start(
        Arc::new(TestActor::default()),
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_secs(60),
            ..ManagerProperties::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    queue.insert_tasks(&[task("wake", "work", "wake")]).await?;
    eventually(
        Duration::from_secs(20),
        "the inserted task to run",
        || async { Ok(row(&queue, "wake").await?.status_code == TaskStatusCode::Completed) },
    )
    .await?;
    manager.close().await;
    Ok(())
}

/// Performs "work"; declines "gone" and stops listing it, as a node does when the plugin of
/// an action it had already owned tasks for is removed.
#[derive(Default)]
struct ForgetfulActor {
    forgot: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SimpleActor for ForgetfulActor {
    fn actions(&self) -> Vec<String> {
        if self.forgot.load(std::sync::atomic::Ordering::SeqCst) {
            vec!["work".into()]
        } else {
            vec!["work".into(), "gone".into()]
        }
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("forgetful")
    }

    async fn handle(&self, action: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        if action == "gone" {
            self.forgot.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(parade_host::manager::Declined {
                action: action.into(),
            }
            .into());
        }
        Ok(ActorResult::completed("done"))
    }
}

async fn declined_tasks_go_back_untried(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[
            TaskData {
                max_tries: Some(1),
                ..task("g", "gone", "")
            },
            task("w", "work", ""),
        ])
        .await?;
    let manager = ActionManager::start(
        Arc::new(ForgetfulActor::default()),
        queue.clone(),
        fast_props(),
    );
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle()).await?;
    manager.close().await;
    let declined = row(&queue, "g").await?;
    // Handed back without using its only try: another node can still perform it.
    assert_eq!(declined.status_code, TaskStatusCode::Pending);
    assert_eq!(declined.num_tries, 0);
    assert_eq!(
        row(&queue, "w").await?.status_code,
        TaskStatusCode::Completed
    );
    let stats = manager.stats();
    // An own_tasks call already under way when the actor forgot may own it once more.
    assert!(stats.released >= 1, "{stats:?}");
    assert_eq!((stats.retried, stats.completed), (0, 1), "{stats:?}");
    Ok(())
}

async fn wait_idle_returns_once_successors_are_done_too(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    // A chain: each link runs only after the one before it has been returned.
    let links: Vec<TaskData> = (0..5)
        .map(|i| TaskData {
            to_signal_after: if i < 4 {
                vec![TaskId::from(format!("link-{}", i + 1).as_str())]
            } else {
                Vec::new()
            },
            total_dependencies: Some(if i == 0 { 0 } else { 1 }),
            ..task(&format!("link-{i}"), "work", &format!("link {i}"))
        })
        .collect();
    queue.insert_tasks(&links).await?;
    let manager = ActionManager::start(Arc::new(TestActor::default()), queue.clone(), fast_props());
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle()).await?;
    assert_eq!(count(&queue, TaskStatusCode::Completed).await?, 5);
    let by_action = manager.stats_by_action();
    assert_eq!(by_action["work"].completed, 5);
    manager.close().await;
    Ok(())
}

/// Finishes "nul" tasks with a status holding NUL characters, as a hostile plugin might, and
/// "unfinished" tasks with the code in-progress, which no return may carry: results the
/// store refuses.
struct RefusedResultActor;

#[async_trait]
impl SimpleActor for RefusedResultActor {
    fn actions(&self) -> Vec<String> {
        vec!["nul".into(), "unfinished".into()]
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("refused")
    }

    async fn handle(&self, action: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        Ok(match action {
            "nul" => ActorResult::completed("before\0after"),
            _ => ActorResult {
                status: "still going".into(),
                status_code: TaskStatusCode::InProgress,
                retry_after: None,
            },
        })
    }
}

/// Runs one task of `action` (with two tries) by a [`RefusedResultActor`] until the node is
/// idle, and returns its row and the manager's stats.
async fn run_refused(
    backend: Backend,
    action: &str,
) -> anyhow::Result<(TaskData, parade_host::manager::ManagerStats)> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[TaskData {
            max_tries: Some(2),
            ..task("r", action, "")
        }])
        .await?;
    let manager = ActionManager::start(Arc::new(RefusedResultActor), queue.clone(), fast_props());
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle()).await?;
    manager.close().await;
    Ok((row(&queue, "r").await?, manager.stats()))
}

async fn a_result_the_store_refuses_ends_the_task_aborted_with_the_reason(
    backend: Backend,
) -> anyhow::Result<()> {
    let (stored, stats) = run_refused(backend, "nul").await?;
    assert_eq!(stored.status_code, TaskStatusCode::Aborted, "{stored:#?}");
    assert_eq!(stored.num_tries, 1, "{stored:#?}");
    let status = stored.status.unwrap_or_default();
    assert!(
        status.contains("refused") && status.contains("NUL"),
        "{status}"
    );
    assert!(!status.contains('\0'), "{status:?}");
    assert_eq!((stats.aborted, stats.refused), (1, 1), "{stats:?}");
    Ok(())
}

async fn a_handler_returning_in_progress_ends_the_task_aborted_with_the_reason(
    backend: Backend,
) -> anyhow::Result<()> {
    let (stored, stats) = run_refused(backend, "unfinished").await?;
    assert_eq!(stored.status_code, TaskStatusCode::Aborted, "{stored:#?}");
    assert_eq!(stored.num_tries, 1, "tried again: {stored:#?}");
    let status = stored.status.unwrap_or_default();
    assert!(
        status.contains("refused") && status.contains("in-progress"),
        "{status}"
    );
    assert_eq!((stats.aborted, stats.refused), (1, 1), "{stats:?}");
    Ok(())
}

/// Ten tasks of 300 ms for one worker take three times `max_duration`: those owned at once
/// would wait out their ownership in the queue, run twice or be cut off as lost.
async fn tasks_waiting_longer_than_max_duration_run_exactly_once(
    backend: Backend,
) -> anyhow::Result<()> {
    const TASKS: usize = 10;
    let queue = backend.open().await?;
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| task(&format!("t{i}"), "slow", &format!("300/t{i}")))
        .collect();
    queue.insert_tasks(&tasks).await?;
    let actor = Arc::new(TestActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 1,
            max_duration: Duration::from_secs(1),
            heartbeat: Duration::from_millis(250),
            ..fast_props()
        },
    );
    eventually(
        Duration::from_secs(120),
        "every task to complete",
        || async { Ok(count(&queue, TaskStatusCode::Completed).await? == TASKS) },
    )
    .await?;
    manager.close().await;
    let performed = actor.performed();
    assert_eq!(performed.len(), TASKS, "{performed:?}");
    assert!(
        performed.values().all(|&n| n == 1),
        "a task ran twice: {performed:?}"
    );
    for i in 0..TASKS {
        let stored = row(&queue, &format!("t{i}")).await?;
        assert_eq!(stored.num_tries, 1, "{stored:#?}");
    }
    let stats = manager.stats();
    assert_eq!(
        (stats.completed, stats.lost),
        (TASKS as u64, 0),
        "{stats:?}"
    );
    Ok(())
}
