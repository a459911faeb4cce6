//! The seed's ActionManager tests (parade-spec.md §6 items 23–26) and the manager's own, with
//! a mock queue that hands out configured batch sizes and counts returns, and a mock actor
//! that counts calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::queue::{OwnRequest, Result, TaskData, TaskFilter, TaskReturn, Waiter};

struct MockQueue {
    batches: Mutex<Vec<usize>>,
    returned: AtomicUsize,
    /// Hand out `max_tasks` tasks on every call instead of the configured batches.
    endless: bool,
    /// Never answer a return, as a store that has stopped answering.
    returns_hang: bool,
    /// Fail this many `return_tasks` calls as a whole, as an unreachable store does.
    failing_returns: AtomicUsize,
    return_calls: AtomicUsize,
    owned: AtomicUsize,
    extended: AtomicUsize,
}

impl MockQueue {
    fn new(batches: &[usize]) -> Arc<Self> {
        Arc::new(Self::unshared(batches))
    }

    fn unshared(batches: &[usize]) -> Self {
        let mut batches = batches.to_vec();
        batches.reverse();
        MockQueue {
            batches: Mutex::new(batches),
            returned: AtomicUsize::new(0),
            endless: false,
            returns_hang: false,
            failing_returns: AtomicUsize::new(0),
            return_calls: AtomicUsize::new(0),
            owned: AtomicUsize::new(0),
            extended: AtomicUsize::new(0),
        }
    }
}

fn unsupported<T>() -> Result<T> {
    Err(Error::NotMigrated {
        problem: "not part of the mock".into(),
    })
}

#[async_trait]
impl Parade for MockQueue {
    async fn insert_tasks(&self, _: &[TaskData]) -> Result<()> {
        unsupported()
    }

    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>> {
        let size = if self.endless {
            request.max_tasks as usize
        } else {
            self.batches.lock().unwrap().pop().unwrap_or(0)
        };
        let first = self.owned.fetch_add(size, Ordering::SeqCst);
        Ok((first..first + size)
            .map(|i| OwnedTask {
                id: TaskId(format!("task-{i}")),
                token: PerformanceToken(Uuid::new_v4()),
                num_signalled_failures: 0,
                action: "one".into(),
                body: None,
                num_tries: 1,
            })
            .collect())
    }

    async fn extend_task_deadline(
        &self,
        _: &TaskId,
        _: PerformanceToken,
        _: Duration,
    ) -> Result<()> {
        self.extended.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn return_task(
        &self,
        _: &TaskId,
        _: PerformanceToken,
        _: &str,
        _: TaskStatusCode,
    ) -> Result<()> {
        if self.returns_hang {
            std::future::pending::<()>().await;
        }
        self.returned.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        self.return_calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failing_returns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(Error::Busy {
                waited: Duration::ZERO,
            });
        }
        let mut results = Vec::with_capacity(returns.len());
        for r in returns {
            results.push(self.return_task(&r.id, r.token, &r.status, r.code).await);
        }
        Ok(results)
    }

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        Ok(tasks.len() as u64)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn insert_tasks_if_absent(&self, _: &[TaskData]) -> Result<Vec<TaskId>> {
        unsupported()
    }

    async fn cancel_tasks(
        &self,
        _: &[TaskId],
        _: &str,
        _: bool,
    ) -> Result<Vec<crate::queue::Cancellation>> {
        unsupported()
    }

    async fn next_due(
        &self,
        _: &[String],
        _: &[crate::queue::Backoff],
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }

    async fn new_waiter(&self, _: &TaskId) -> Result<Waiter> {
        unsupported()
    }

    async fn delete_tasks(&self, _: &[TaskId]) -> Result<()> {
        unsupported()
    }

    async fn get_task(&self, _: &TaskId) -> Result<Option<TaskData>> {
        unsupported()
    }

    async fn summary(&self) -> Result<crate::queue::QueueSummary> {
        unsupported()
    }

    async fn retry_task(&self, _: &TaskId) -> Result<()> {
        unsupported()
    }

    async fn list_tasks(&self, _: &TaskFilter) -> Result<Vec<TaskData>> {
        unsupported()
    }
}

#[derive(Default)]
struct MockActor {
    handled: AtomicUsize,
    /// How long each task takes.
    takes: Duration,
}

#[async_trait]
impl SimpleActor for MockActor {
    fn actions(&self) -> Vec<String> {
        vec!["one".into(), "two".into()]
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("mock")
    }

    async fn handle(&self, _: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        tokio::time::sleep(self.takes).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(ActorResult::completed("ok"))
    }
}

/// Runs a manager over `batches` for `run_for`, closes it, and returns (handled, returned).
async fn run(batches: &[usize], wait_time: Duration, run_for: Duration) -> (usize, usize) {
    let queue = MockQueue::new(batches);
    let actor = Arc::new(MockActor::default());
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            wait_time,
            ..ManagerProperties::default()
        },
    );
    tokio::time::sleep(run_for).await;
    manager.close().await;
    manager.close().await;
    (
        actor.handled.load(Ordering::SeqCst),
        queue.returned.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn no_batches_handle_nothing() {
    let default_wait = ManagerProperties::default().wait_time;
    assert_eq!(
        run(&[], default_wait, Duration::from_millis(50)).await,
        (0, 0)
    );
}

#[tokio::test]
async fn one_batch_is_handled_and_returned() {
    let default_wait = ManagerProperties::default().wait_time;
    assert_eq!(
        run(&[50], default_wait, Duration::from_millis(50)).await,
        (50, 50)
    );
}

#[tokio::test]
async fn back_to_back_batches_do_not_wait() {
    let default_wait = ManagerProperties::default().wait_time;
    assert_eq!(
        run(&[50, 30], default_wait, Duration::from_millis(50)).await,
        (80, 80)
    );
}

#[tokio::test]
async fn empty_answers_pause_for_wait_time() {
    let wait = Duration::from_millis(30);
    assert_eq!(
        run(&[50, 0, 0, 30], wait, Duration::from_millis(50)).await,
        (50, 50)
    );
}

/// While the store does not answer returns, a node owns up to the waiting queue, the workers
/// and one batch of results on its way back, and then no more: a crash re-runs at most that.
#[tokio::test]
async fn owning_stops_at_the_unsettled_limit_while_returns_hang() {
    let queue = Arc::new(MockQueue {
        endless: true,
        returns_hang: true,
        ..MockQueue::unshared(&[])
    });
    let props = ManagerProperties {
        workers: 2,
        channel_size: 10,
        max_tasks: 4,
        return_batch: 3,
        ..ManagerProperties::default()
    };
    let manager = ActionManager::start(Arc::new(MockActor::default()), queue.clone(), props);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(queue.owned.load(Ordering::SeqCst), 10 + 2 + 3);
    assert_eq!(manager.stats().owned, 15);
    // Dropped without close(), which would wait for the hanging returns.
    drop(manager);
}

/// Waits until `check` holds, polling; panics after `limit`.
async fn until(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Three tasks owned at once for one worker, each taking 600 ms, with ownership of 1 s: the
/// third has waited at least 1.2 s when the worker is free, so its ownership has gone and it
/// is handed back unstarted; one that waited longer than a heartbeat is extended first.
#[tokio::test]
async fn a_task_that_waited_past_its_ownership_is_handed_back_unstarted() {
    let queue = MockQueue::new(&[3]);
    let actor = Arc::new(MockActor {
        takes: Duration::from_millis(600),
        ..MockActor::default()
    });
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 1,
            max_duration: Duration::from_secs(1),
            heartbeat: Duration::from_millis(100),
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "every task to be settled", || {
        let stats = manager.stats();
        stats.owned == 3 && stats.settled() == 3
    })
    .await;
    manager.close().await;
    let stats = manager.stats();
    let handled = actor.handled.load(Ordering::SeqCst) as u64;
    assert!(stats.released >= 1, "{stats:?}");
    assert!(handled >= 1, "{stats:?}");
    assert_eq!(handled + stats.released, 3, "{stats:?}");
    assert_eq!(stats.completed, handled, "{stats:?}");
    if handled >= 2 {
        // The second waited at least 600 ms, longer than a heartbeat.
        assert!(queue.extended.load(Ordering::SeqCst) >= 1, "{stats:?}");
    }
}

/// Eight failed returns back off for longer than the returner's six tries used to last, well
/// within the 30 min ownership: the result is returned once the store answers again.
#[tokio::test]
async fn a_store_down_for_many_tries_loses_no_result() {
    let queue = MockQueue::new(&[1]);
    queue.failing_returns.store(8, Ordering::SeqCst);
    let manager = ActionManager::start(
        Arc::new(MockActor::default()),
        queue.clone(),
        ManagerProperties::default(),
    );
    until(Duration::from_secs(60), "the result to be settled", || {
        manager.stats().settled() == 1
    })
    .await;
    manager.close().await;
    let stats = manager.stats();
    assert_eq!(
        (stats.completed, stats.return_failures),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(queue.returned.load(Ordering::SeqCst), 1);
    assert_eq!(queue.return_calls.load(Ordering::SeqCst), 9);
}

/// A store that never answers: the result is dropped once its task's ownership has expired,
/// not before.
#[tokio::test]
async fn a_result_is_dropped_once_its_ownership_has_expired() {
    let queue = MockQueue::new(&[1]);
    queue.failing_returns.store(usize::MAX, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let manager = ActionManager::start(
        Arc::new(MockActor::default()),
        queue.clone(),
        ManagerProperties {
            max_duration: Duration::from_secs(1),
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "the result to be dropped", || {
        manager.stats().return_failures == 1
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(queue.return_calls.load(Ordering::SeqCst) >= 2);
    manager.close().await;
    assert_eq!(manager.stats().completed, 0);
}

/// Closing while the store does not answer: the returner stops retrying after the shutdown
/// grace period rather than for the rest of the ownership (30 min by default).
#[tokio::test]
async fn closing_gives_up_unreturned_results_after_the_shutdown_grace() {
    let queue = MockQueue::new(&[1]);
    queue.failing_returns.store(usize::MAX, Ordering::SeqCst);
    let manager = ActionManager::start(
        Arc::new(MockActor::default()),
        queue.clone(),
        ManagerProperties {
            shutdown_grace: Duration::from_millis(300),
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "a return to be tried", || {
        queue.return_calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), manager.close())
        .await
        .expect("close() waited for the store");
    assert_eq!(manager.stats().return_failures, 1);
}
