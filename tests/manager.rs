//! The ActionManager against real stores: every test runs on PostgreSQL and on SQLite with a
//! native Rust actor.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parade_host::manager::{ActionManager, Actor, ActorResult, ManagerProperties, SimpleActor};
use parade_host::queue::{
    ActorId, Backoff, OwnRequest, OwnedTask, Parade, TaskData, TaskFilter, TaskId, TaskStatusCode,
};
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
    pending_results_back_off_longer_each_try_up_to_the_cap,
    an_immediate_policy_offers_a_pending_task_again_at_once,
    a_snooze_sets_the_next_try_instead_of_the_backoff,
    an_expired_ownership_waits_its_backoff_past_the_deadline,
    an_idle_manager_starts_a_delayed_task_on_time,
    a_running_task_cancelled_in_the_store_is_stopped_and_frees_its_worker,
    a_task_cancelled_while_it_waits_for_a_worker_is_not_started,
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

/// 200 ms after the first try, doubling, at most 400 ms, without jitter: a policy fast
/// enough for tests, whose cap shows from the third try.
const FAST: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_millis(400),
    multiplier: 2.0,
    jitter: false,
};

/// How much later than its try's start a return may be stored: the handler is instant, so
/// this is the worker, the returner and one store round trip on a busy machine. Less than
/// the 400 ms between the capped wait and an uncapped one.
const RETURN_SLACK: chrono::TimeDelta = chrono::TimeDelta::milliseconds(350);

/// Records when each try starts. "fail" tasks fail every time; "snooze" tasks ask for 700 ms
/// on their first try and complete on the next; other tasks complete. Every action backs off
/// [`FAST`], except "immediate", which backs off not at all and fails every time.
#[derive(Default)]
struct RetryActor {
    tries: Mutex<Vec<(TaskId, i32, DateTime<Utc>)>>,
}

impl RetryActor {
    /// When each try of task `id` started, in order.
    fn starts(&self, id: &str) -> Vec<DateTime<Utc>> {
        let tries = self.tries.lock().unwrap();
        tries
            .iter()
            .filter(|(task, _, _)| task.as_str() == id)
            .map(|(_, _, at)| *at)
            .collect()
    }
}

#[async_trait]
impl Actor for RetryActor {
    fn actions(&self) -> Vec<String> {
        ["fail", "immediate", "snooze", "work"]
            .map(String::from)
            .to_vec()
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("retry-node")
    }

    fn backoff(&self, action: &str) -> Backoff {
        if action == "immediate" {
            Backoff::IMMEDIATE
        } else {
            FAST
        }
    }

    async fn perform(&self, task: &OwnedTask) -> anyhow::Result<ActorResult> {
        self.tries
            .lock()
            .unwrap()
            .push((task.id.clone(), task.num_tries, Utc::now()));
        Ok(match task.action.as_str() {
            "fail" | "immediate" => ActorResult::retry(format!("failed try {}", task.num_tries)),
            "snooze" if task.num_tries == 1 => {
                ActorResult::retry_after("snoozing for 700ms", Duration::from_millis(700))
            }
            _ => ActorResult::completed(format!("done on try {}", task.num_tries)),
        })
    }
}

/// A manager of a [`RetryActor`] that polls only every 10 s: anything that starts sooner
/// was started by a hint or by the wake timer.
fn retry_manager(queue: &Arc<dyn Parade>) -> (Arc<RetryActor>, ActionManager) {
    let actor = Arc::new(RetryActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_secs(10),
            ..ManagerProperties::default()
        },
    );
    (actor, manager)
}

/// Polls task `id` until it is final, and returns it, with the row as it was while it waited
/// for each next try (pending, `run_after` set), once per try.
async fn watch_retries(
    queue: &Arc<dyn Parade>,
    id: &str,
) -> anyhow::Result<(TaskData, Vec<TaskData>)> {
    let mut waiting: Vec<TaskData> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stored = row(queue, id).await?;
        if stored.status_code.is_final() {
            return Ok((stored, waiting));
        }
        let seen = waiting.iter().any(|w| w.num_tries == stored.num_tries);
        if stored.status_code == TaskStatusCode::Pending && stored.num_tries > 0 && !seen {
            waiting.push(stored);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "task {id} did not finish: {:#?}",
            row(queue, id).await?
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that `start` (a try's start) came no sooner than `due` and within a generous
/// second of it.
fn assert_started_on_time(start: DateTime<Utc>, due: DateTime<Utc>, what: &str) {
    let late = start - due;
    assert!(
        late >= -chrono::TimeDelta::milliseconds(1) && late <= chrono::TimeDelta::seconds(1),
        "{what} started {late} after it was due"
    );
}

async fn pending_results_back_off_longer_each_try_up_to_the_cap(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let (actor, manager) = retry_manager(&queue);
    queue
        .insert_tasks(&[TaskData {
            max_tries: Some(4),
            ..TaskData::new("f", "fail")
        }])
        .await?;
    let (ended, waiting) = watch_retries(&queue, "f").await?;
    manager.close().await;
    let starts = actor.starts("f");
    assert_eq!(starts.len(), 4, "{ended:#?}");
    assert_eq!(
        (ended.status_code, ended.num_tries),
        (TaskStatusCode::Aborted, 4)
    );
    let tries: Vec<i32> = waiting.iter().map(|w| w.num_tries).collect();
    assert_eq!(tries, [1, 2, 3], "{waiting:#?}");
    for (waited, expected_ms) in waiting.iter().zip([200, 400, 400]) {
        let try_number = waited.num_tries as usize;
        let run_after = waited.run_after.expect("a retry waits with a run_after");
        let ahead = run_after - starts[try_number - 1];
        let expected = chrono::TimeDelta::milliseconds(expected_ms);
        assert!(
            ahead >= expected && ahead <= expected + RETURN_SLACK,
            "after try {try_number}: run_after {ahead} after the try started, expected {expected}"
        );
        let status = waited.status.clone().unwrap_or_default();
        assert!(
            status.starts_with(&format!(
                "failed try {try_number} (try {try_number}; next try in {expected_ms}ms, at "
            )),
            "{status}"
        );
        assert_started_on_time(
            starts[try_number],
            run_after,
            &format!("try {}", try_number + 1),
        );
    }
    Ok(())
}

async fn an_immediate_policy_offers_a_pending_task_again_at_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let (actor, manager) = retry_manager(&queue);
    queue
        .insert_tasks(&[TaskData {
            max_tries: Some(3),
            ..TaskData::new("i", "immediate")
        }])
        .await?;
    let (ended, waiting) = watch_retries(&queue, "i").await?;
    manager.close().await;
    assert_eq!(
        (ended.status_code, ended.num_tries, ended.status.as_deref()),
        (TaskStatusCode::Aborted, 3, Some("failed try 3"))
    );
    for waited in &waiting {
        assert_eq!(waited.run_after, None, "{waited:#?}");
        assert!(!waited
            .status
            .as_deref()
            .unwrap_or_default()
            .contains("next try"));
    }
    let starts = actor.starts("i");
    assert_eq!(starts.len(), 3);
    for pair in starts.windows(2) {
        // Offered again by the return itself: nothing waits for a timer or a poll.
        assert_started_on_time(pair[1], pair[0], "the next try");
    }
    Ok(())
}

async fn a_snooze_sets_the_next_try_instead_of_the_backoff(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let (actor, manager) = retry_manager(&queue);
    queue.insert_tasks(&[TaskData::new("s", "snooze")]).await?;
    let (ended, waiting) = watch_retries(&queue, "s").await?;
    manager.close().await;
    assert_eq!(
        (ended.status_code, ended.num_tries, ended.status.as_deref()),
        (TaskStatusCode::Completed, 2, Some("done on try 2"))
    );
    let [waited] = waiting.as_slice() else {
        panic!("one wait expected: {waiting:#?}")
    };
    // The actor's status says when; the manager adds nothing to it.
    assert_eq!(waited.status.as_deref(), Some("snoozing for 700ms"));
    let starts = actor.starts("s");
    let run_after = waited
        .run_after
        .expect("a snoozed task waits with a run_after");
    let ahead = run_after - starts[0];
    let asked = chrono::TimeDelta::milliseconds(700);
    assert!(
        ahead >= asked && ahead <= asked + RETURN_SLACK,
        "run_after {ahead} after the try started"
    );
    assert_started_on_time(starts[1], run_after, "the snoozed task's next try");
    Ok(())
}

async fn an_expired_ownership_waits_its_backoff_past_the_deadline(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue.insert_tasks(&[TaskData::new("e", "work")]).await?;
    // A node that owns the task and dies: its ownership lapses after 300 ms.
    let dead = queue
        .own(&OwnRequest {
            actor: &ActorId::from("dead-node"),
            max_tasks: 1,
            actions: &["work".into()],
            max_duration: Some(Duration::from_millis(300)),
            expiry_backoff: &[FAST],
            max_in_progress: None,
        })
        .await?;
    assert_eq!(dead.len(), 1);
    let deadline = row(&queue, "e")
        .await?
        .action_deadline
        .expect("an owned task has a deadline");
    let (actor, manager) = retry_manager(&queue);
    eventually(
        Duration::from_secs(30),
        "the task to be taken over",
        || async { Ok(row(&queue, "e").await?.status_code == TaskStatusCode::Completed) },
    )
    .await?;
    manager.close().await;
    let [taken_over] = actor.starts("e")[..] else {
        panic!("one try expected: {:?}", actor.starts("e"))
    };
    // Try 1 lapsed: it waits the first try's backoff, 200 ms, past its deadline.
    assert_started_on_time(
        taken_over,
        deadline + chrono::TimeDelta::milliseconds(200),
        "the taken-over task",
    );
    assert_eq!(row(&queue, "e").await?.num_tries, 2);
    Ok(())
}

async fn an_idle_manager_starts_a_delayed_task_on_time(backend: Backend) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let (actor, manager) = retry_manager(&queue);
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle()).await?;
    let due = Utc::now() + chrono::TimeDelta::seconds(1);
    queue
        .insert_tasks(&[TaskData {
            run_after: Some(due),
            ..TaskData::new("d", "work")
        }])
        .await?;
    eventually(
        Duration::from_secs(30),
        "the delayed task to run",
        || async { Ok(row(&queue, "d").await?.status_code == TaskStatusCode::Completed) },
    )
    .await?;
    manager.close().await;
    let [started] = actor.starts("d")[..] else {
        panic!("one try expected: {:?}", actor.starts("d"))
    };
    // With a 10 s poll interval, only the wake timer starts it this close to its time.
    assert_started_on_time(started, due, "the delayed task");
    Ok(())
}

/// An operator cancels a runaway task: the node stops it at once (it would have run for an
/// hour) and its only worker takes the next task.
async fn a_running_task_cancelled_in_the_store_is_stopped_and_frees_its_worker(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    queue
        .insert_tasks(&[task("endless", "slow", "3600000")])
        .await?;
    let manager = ActionManager::start(
        Arc::new(TestActor::default()),
        queue.clone(),
        ManagerProperties {
            workers: 1,
            ..fast_props()
        },
    );
    eventually(Duration::from_secs(10), "the endless task runs", || async {
        Ok(row(&queue, "endless").await?.status_code == TaskStatusCode::InProgress)
    })
    .await?;
    queue.insert_tasks(&[task("next", "work", "after")]).await?;
    let answers = queue
        .cancel_tasks(&[TaskId::from("endless")], "runaway", false)
        .await?;
    assert_eq!(answers.len(), 1);
    eventually(
        Duration::from_secs(5),
        "the next task completes on the freed worker",
        || async { Ok(row(&queue, "next").await?.status_code == TaskStatusCode::Completed) },
    )
    .await?;
    assert_eq!(manager.stats().cancelled, 1);
    // The cancelled task is settled: nothing is left in the node, so it reaches idle (as
    // `--until-idle` needs to exit).
    tokio::time::timeout(Duration::from_secs(10), manager.wait_idle())
        .await
        .map_err(|_| anyhow::anyhow!("the node never became idle after the cancel"))?;
    let endless = row(&queue, "endless").await?;
    assert_eq!(endless.status_code, TaskStatusCode::Aborted);
    assert_eq!(endless.status.as_deref(), Some("cancelled: runaway"));
    manager.close().await;
    Ok(())
}

/// A task this node owns but has not started yet (it waits for the one busy worker) is
/// cancelled: the worker does not start it when it comes free.
async fn a_task_cancelled_while_it_waits_for_a_worker_is_not_started(
    backend: Backend,
) -> anyhow::Result<()> {
    let queue = backend.open().await?;
    let actor = Arc::new(TestActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 1,
            ..fast_props()
        },
    );
    // Quick tasks first, so the node knows tasks are short and owns more than it can start.
    let quick: Vec<TaskData> = (0..5)
        .map(|i| task(&format!("quick-{i}"), "work", &format!("quick-{i}")))
        .collect();
    queue.insert_tasks(&quick).await?;
    eventually(
        Duration::from_secs(10),
        "the quick tasks complete",
        || async { Ok(actor.performed().len() == 5) },
    )
    .await?;
    queue
        .insert_tasks(&[
            task("endless", "slow", "3600000"),
            task("waiting", "slow", "300/waiting"),
        ])
        .await?;
    eventually(
        Duration::from_secs(10),
        "both are owned, one running",
        || async {
            Ok(
                row(&queue, "endless").await?.status_code == TaskStatusCode::InProgress
                    && row(&queue, "waiting").await?.status_code == TaskStatusCode::InProgress,
            )
        },
    )
    .await?;
    queue
        .cancel_tasks(&[TaskId::from("waiting")], "not wanted", false)
        .await?;
    // Let the node hear of it before its worker comes free.
    tokio::time::sleep(Duration::from_millis(200)).await;
    queue
        .cancel_tasks(&[TaskId::from("endless")], "runaway", false)
        .await?;
    tokio::time::timeout(Duration::from_secs(10), manager.wait_idle())
        .await
        .map_err(|_| anyhow::anyhow!("the node never became idle after the cancels"))?;
    assert_eq!(
        actor.performed().get("300/waiting"),
        None,
        "the cancelled task was started"
    );
    let waiting = row(&queue, "waiting").await?;
    assert_eq!(waiting.status_code, TaskStatusCode::Aborted);
    assert_eq!(waiting.status.as_deref(), Some("cancelled: not wanted"));
    manager.close().await;
    Ok(())
}
