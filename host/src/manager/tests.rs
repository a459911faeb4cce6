//! The seed's ActionManager tests (parade-spec.md §6 items 23–26), with a mock queue that
//! hands out configured batch sizes and counts returns, and a mock actor that counts calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::queue::{Result, TaskData, TaskFilter, Waiter};

struct MockQueue {
    batches: Mutex<Vec<usize>>,
    returned: AtomicUsize,
    /// Hand out `max_tasks` tasks on every call instead of the configured batches.
    endless: bool,
    /// Never answer a return, as a store that has stopped answering.
    returns_hang: bool,
    owned: AtomicUsize,
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
            owned: AtomicUsize::new(0),
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

    async fn own_tasks(
        &self,
        _: &ActorId,
        max_tasks: u32,
        _: &[String],
        _: Option<Duration>,
    ) -> Result<Vec<OwnedTask>> {
        let size = if self.endless {
            max_tasks as usize
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
            })
            .collect())
    }

    async fn extend_task_deadline(
        &self,
        _: &TaskId,
        _: PerformanceToken,
        _: Duration,
    ) -> Result<()> {
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

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        Ok(tasks.len() as u64)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn insert_tasks_if_absent(&self, _: &[TaskData]) -> Result<Vec<TaskId>> {
        unsupported()
    }

    async fn next_due(&self, _: &[String]) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
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
