//! The seed's ActionManager tests (parade-spec.md §6 items 23–26) and the manager's own, with
//! a mock queue that hands out configured batch sizes and counts returns, and a mock actor
//! that counts calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::*;
use crate::queue::{OwnRequest, Result, TaskData, TaskFilter, TaskReturn, Waiter};

/// An own's actions, `max_tasks` and `max_in_progress`.
type OwnSize = (Vec<String>, u32, Option<u32>);

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
    /// Each own's actions and expiry backoff.
    own_requests: Mutex<Vec<(Vec<String>, Vec<Backoff>)>>,
    /// Each own's actions, `max_tasks` and `max_in_progress`.
    own_sizes: Mutex<Vec<OwnSize>>,
    /// Owns that found nothing.
    empty_owns: AtomicUsize,
    /// What `next_due` answers.
    due: Mutex<Option<DateTime<Utc>>>,
    next_due_calls: AtomicUsize,
    /// Every return, as sent.
    returns: Mutex<Vec<TaskReturn>>,
    /// How long each own takes, as a loaded store's does.
    own_takes: Duration,
    /// When each own began, and when each return was stored.
    own_began: Mutex<Vec<tokio::time::Instant>>,
    returned_at: Mutex<Vec<tokio::time::Instant>>,
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
            own_requests: Mutex::default(),
            own_sizes: Mutex::default(),
            empty_owns: AtomicUsize::new(0),
            due: Mutex::new(None),
            next_due_calls: AtomicUsize::new(0),
            returns: Mutex::default(),
            own_takes: Duration::ZERO,
            own_began: Mutex::default(),
            returned_at: Mutex::default(),
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
        self.own_began
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        tokio::time::sleep(self.own_takes).await;
        self.own_requests
            .lock()
            .unwrap()
            .push((request.actions.to_vec(), request.expiry_backoff.to_vec()));
        self.own_sizes.lock().unwrap().push((
            request.actions.to_vec(),
            request.max_tasks,
            request.max_in_progress,
        ));
        let size = if self.endless {
            request.max_tasks as usize
        } else {
            self.batches.lock().unwrap().pop().unwrap_or(0)
        };
        if size == 0 {
            self.empty_owns.fetch_add(1, Ordering::SeqCst);
        }
        let first = self.owned.fetch_add(size, Ordering::SeqCst);
        Ok((first..first + size)
            .map(|i| OwnedTask {
                id: TaskId(format!("task-{i}")),
                token: PerformanceToken(Uuid::new_v4()),
                num_signalled_failures: 0,
                // Of the first action asked for.
                action: request.actions[0].clone(),
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
        self.returns.lock().unwrap().extend_from_slice(returns);
        self.returned_at
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
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

    async fn prune_finished(&self, _: &crate::queue::Retention, _: u32) -> Result<u64> {
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

    async fn next_due(&self, _: &[String], _: &[Backoff]) -> Result<Option<DateTime<Utc>>> {
        self.next_due_calls.fetch_add(1, Ordering::SeqCst);
        Ok(*self.due.lock().unwrap())
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

    async fn list_task_page(&self, _: &TaskFilter) -> Result<crate::queue::TaskPage> {
        unsupported()
    }

    async fn task_graph(&self, _: &TaskId, _: u32) -> Result<Option<crate::queue::TaskGraph>> {
        unsupported()
    }
}

#[derive(Default)]
struct MockActor {
    handled: AtomicUsize,
    /// How long each task takes.
    takes: Duration,
    /// Fail every task (a handler error: pending).
    fails: bool,
    /// The backoff of every action; `None`: the default.
    backoff: Option<Backoff>,
    /// The limits of action "one"'s group; `None`: unlimited. A test may change them.
    limits: Mutex<Option<ConcurrencyLimits>>,
    /// "two" shares the group of "one".
    two_in_the_group: bool,
    /// Tasks of the group running now, and the most there were at once.
    group_running: AtomicUsize,
    group_most_running: AtomicUsize,
    /// Tasks handled per action: "one", "two".
    handled_one: AtomicUsize,
    handled_two: AtomicUsize,
}

impl MockActor {
    fn limits(&self) -> Option<ConcurrencyLimits> {
        *self.limits.lock().unwrap()
    }

    fn in_group(&self, action: &str) -> bool {
        self.limits().is_some() && (action == "one" || (action == "two" && self.two_in_the_group))
    }
}

#[async_trait]
impl SimpleActor for MockActor {
    fn actions(&self) -> Vec<String> {
        vec!["one".into(), "two".into()]
    }

    fn actor_id(&self) -> ActorId {
        ActorId::from("mock")
    }

    fn backoff(&self, action: &str) -> Backoff {
        match (self.backoff, action) {
            // "two" keeps the seed's behaviour, so the lists passed to own differ per action.
            (_, "two") => Backoff::IMMEDIATE,
            (Some(backoff), _) => backoff,
            (None, _) => Backoff::default(),
        }
    }

    fn concurrency(&self, action: &str) -> Option<ActionGroup> {
        let limits = self.limits().filter(|_| self.in_group(action))?;
        Some(ActionGroup {
            name: "group".into(),
            limits,
        })
    }

    async fn handle(&self, action: &str, _: Option<&str>, _: i32) -> anyhow::Result<ActorResult> {
        let in_group = self.in_group(action);
        if in_group {
            let now = self.group_running.fetch_add(1, Ordering::SeqCst) + 1;
            self.group_most_running.fetch_max(now, Ordering::SeqCst);
        }
        tokio::time::sleep(self.takes).await;
        if in_group {
            self.group_running.fetch_sub(1, Ordering::SeqCst);
        }
        match action {
            "one" => self.handled_one.fetch_add(1, Ordering::SeqCst),
            _ => self.handled_two.fetch_add(1, Ordering::SeqCst),
        };
        self.handled.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(!self.fails, "failing on purpose");
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

/// Backoff without jitter: 300 ms after the first try.
const FIXED: Backoff = Backoff {
    initial: Duration::from_millis(300),
    max: Duration::from_secs(1),
    multiplier: 2.0,
    jitter: false,
};

#[tokio::test]
async fn every_own_passes_each_action_s_backoff() {
    let queue = MockQueue::new(&[3, 0]);
    let actor = Arc::new(MockActor {
        backoff: Some(FIXED),
        ..MockActor::default()
    });
    let manager = ActionManager::start(actor, queue.clone(), ManagerProperties::default());
    until(Duration::from_secs(30), "the tasks to be returned", || {
        queue.returned.load(Ordering::SeqCst) == 3
    })
    .await;
    manager.close().await;
    let requests = queue.own_requests.lock().unwrap().clone();
    assert!(!requests.is_empty());
    for (actions, backoff) in requests {
        assert_eq!(actions, ["one", "two"]);
        assert_eq!(backoff, [FIXED, Backoff::IMMEDIATE]);
    }
}

/// A failed handler's task goes back pending with its first try's backoff, and the status
/// says when the next try comes.
#[tokio::test]
async fn a_failed_task_is_returned_with_its_backoff_and_a_status_saying_when() {
    let queue = MockQueue::new(&[1]);
    let actor = Arc::new(MockActor {
        fails: true,
        backoff: Some(FIXED),
        ..MockActor::default()
    });
    let manager = ActionManager::start(actor, queue.clone(), ManagerProperties::default());
    until(Duration::from_secs(30), "the task to be returned", || {
        queue.returned.load(Ordering::SeqCst) == 1
    })
    .await;
    manager.close().await;
    let returned = queue.returns.lock().unwrap()[0].clone();
    assert_eq!(returned.code, TaskStatusCode::Pending);
    assert_eq!(returned.retry_after, Some(Duration::from_millis(300)));
    assert!(
        returned
            .status
            .starts_with("handler failed: failing on purpose (try 1; next try in 300ms, at "),
        "{}",
        returned.status
    );
}

/// With a poll interval of a minute, only the wake timer can own the task due 300 ms after
/// the first (empty) own in time.
#[tokio::test]
async fn an_idle_node_wakes_for_the_earliest_due_task() {
    let queue = MockQueue::new(&[0, 1]);
    *queue.due.lock().unwrap() = Some(Utc::now() + chrono::TimeDelta::milliseconds(300));
    let actor = Arc::new(MockActor::default());
    let started = tokio::time::Instant::now();
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_secs(60),
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(20), "the due task to run", || {
        actor.handled.load(Ordering::SeqCst) == 1
    })
    .await;
    // Not before its time: the first own found nothing, and the second came at the timer.
    assert!(started.elapsed() >= Duration::from_millis(250));
    drop(manager);
}

/// A busy node never asks when tasks are due: only an own that found nothing does.
#[tokio::test]
async fn next_due_is_asked_only_after_an_empty_own() {
    let queue = MockQueue::new(&[40, 30, 20, 0, 10, 0]);
    let manager = ActionManager::start(
        Arc::new(MockActor::default()),
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_millis(20),
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "every task to be returned", || {
        queue.returned.load(Ordering::SeqCst) == 100
    })
    .await;
    manager.close().await;
    assert_eq!(
        queue.next_due_calls.load(Ordering::SeqCst),
        queue.empty_owns.load(Ordering::SeqCst)
    );
}

/// A node that returned a task for a later try is not idle before that try is due, even if
/// the store offers it to someone else: `parade run --until-idle` waits for its retries.
#[tokio::test]
async fn a_node_is_not_idle_while_a_retry_it_returned_waits() {
    let queue = MockQueue::new(&[1]);
    let actor = Arc::new(MockActor {
        fails: true,
        backoff: Some(FIXED),
        ..MockActor::default()
    });
    let started = tokio::time::Instant::now();
    let manager = ActionManager::start(
        actor,
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_millis(100),
            ..ManagerProperties::default()
        },
    );
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle())
        .await
        .expect("the node became idle once the retry was due");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(queue.returned.load(Ordering::SeqCst), 1);
    manager.close().await;
}

/// An own that began before a retry was due found nothing, though it returned after: the
/// node is not idle until an own that began after the due time found nothing too (seen in a
/// full run under load: `--until-idle` exited with the retry pending).
#[tokio::test]
async fn an_own_that_began_before_a_retry_was_due_does_not_make_the_node_idle() {
    let queue = Arc::new(MockQueue {
        own_takes: Duration::from_millis(250),
        ..MockQueue::unshared(&[1])
    });
    let actor = Arc::new(MockActor {
        fails: true,
        backoff: Some(FIXED),
        ..MockActor::default()
    });
    let manager = ActionManager::start(
        actor,
        queue.clone(),
        ManagerProperties {
            wait_time: Duration::from_millis(100),
            ..ManagerProperties::default()
        },
    );
    tokio::time::timeout(Duration::from_secs(20), manager.wait_idle())
        .await
        .expect("the node became idle once the retry was due");
    let returned = queue.returned_at.lock().unwrap()[0];
    let last_own = *queue.own_began.lock().unwrap().last().unwrap();
    assert!(
        last_own >= returned + Duration::from_millis(300),
        "idle after an own that began {:?} after the retry was stored (due after 300ms)",
        last_own - returned
    );
    manager.close().await;
}

/// Limits of one group: `node` on this node, `global` across the store.
fn limits(node: Option<u32>, global: Option<u32>) -> ConcurrencyLimits {
    ConcurrencyLimits {
        node: node.and_then(std::num::NonZeroU32::new),
        global: global.and_then(std::num::NonZeroU32::new),
    }
}

/// A store with endless work: "one" is limited to 2 on this node, "two" is not. The node
/// never holds more than 2 tasks of "one" (never asks for more than its room), while "two"
/// fills the other workers.
#[tokio::test]
async fn node_concurrency_caps_the_tasks_a_node_holds_of_a_group() {
    let queue = Arc::new(MockQueue {
        endless: true,
        ..MockQueue::unshared(&[])
    });
    let actor = Arc::new(MockActor {
        takes: Duration::from_millis(20),
        limits: Mutex::new(Some(limits(Some(2), None))),
        ..MockActor::default()
    });
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 8,
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "20 tasks of each action", || {
        actor.handled_one.load(Ordering::SeqCst) >= 20
            && actor.handled_two.load(Ordering::SeqCst) >= 20
    })
    .await;
    drop(manager);
    assert!(actor.group_most_running.load(Ordering::SeqCst) <= 2);
    let sizes = queue.own_sizes.lock().unwrap().clone();
    for (actions, max_tasks, max_in_progress) in &sizes {
        match actions.as_slice() {
            [one] if one == "one" => {
                assert!(
                    *max_tasks <= 2,
                    "asked for {max_tasks} of a group limited to 2"
                );
                assert_eq!(*max_in_progress, None, "no global limit");
            }
            [two] if two == "two" => assert_eq!(*max_in_progress, None),
            other => panic!("the limited group was owned with another action: {other:?}"),
        }
    }
}

/// A global limit travels to the store with its group's own request only.
#[tokio::test]
async fn a_global_limit_is_passed_to_the_store_with_its_group_only() {
    let queue = MockQueue::new(&[3, 3, 0]);
    let actor = Arc::new(MockActor {
        limits: Mutex::new(Some(limits(None, Some(3)))),
        ..MockActor::default()
    });
    let manager = ActionManager::start(actor, queue.clone(), ManagerProperties::default());
    until(Duration::from_secs(30), "the tasks to be returned", || {
        queue.returned.load(Ordering::SeqCst) == 6
    })
    .await;
    manager.close().await;
    let sizes = queue.own_sizes.lock().unwrap().clone();
    assert!(sizes.iter().any(|(a, _, _)| a == &["one"]));
    assert!(sizes.iter().any(|(a, _, _)| a == &["two"]));
    for (actions, _, max_in_progress) in sizes {
        let expected = (actions == ["one"]).then_some(3);
        assert_eq!(max_in_progress, expected, "{actions:?}");
    }
}

/// A group at its node limit is not asked for at all; when one of its tasks settles the
/// node owns again at once, not at the next poll (a minute away here).
#[tokio::test]
async fn a_group_at_its_node_limit_resumes_as_soon_as_a_task_settles() {
    let queue = Arc::new(MockQueue {
        endless: true,
        ..MockQueue::unshared(&[])
    });
    let actor = Arc::new(MockActor {
        takes: Duration::from_millis(20),
        limits: Mutex::new(Some(limits(Some(1), None))),
        two_in_the_group: true,
        ..MockActor::default()
    });
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 4,
            wait_time: Duration::from_secs(60),
            ..ManagerProperties::default()
        },
    );
    until(
        Duration::from_secs(30),
        "five tasks one after another",
        || actor.handled.load(Ordering::SeqCst) >= 5,
    )
    .await;
    drop(manager);
    assert_eq!(actor.group_most_running.load(Ordering::SeqCst), 1);
    for (actions, max_tasks, _) in queue.own_sizes.lock().unwrap().iter() {
        assert_eq!(actions, &["one", "two"], "one request for the whole group");
        assert_eq!(*max_tasks, 1);
    }
}

/// A reload that changes a plugin's limit applies within a second, without a restart: the
/// group held to one task at a time runs three at once after its node limit is raised.
#[tokio::test]
async fn a_changed_limit_applies_without_a_restart() {
    let queue = Arc::new(MockQueue {
        endless: true,
        ..MockQueue::unshared(&[])
    });
    let actor = Arc::new(MockActor {
        takes: Duration::from_millis(50),
        limits: Mutex::new(Some(limits(Some(1), None))),
        two_in_the_group: true,
        ..MockActor::default()
    });
    let manager = ActionManager::start(
        actor.clone(),
        queue.clone(),
        ManagerProperties {
            workers: 4,
            ..ManagerProperties::default()
        },
    );
    until(Duration::from_secs(30), "three tasks", || {
        actor.handled.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert_eq!(actor.group_most_running.load(Ordering::SeqCst), 1);
    *actor.limits.lock().unwrap() = Some(limits(Some(3), None));
    until(Duration::from_secs(30), "three tasks at once", || {
        actor.group_most_running.load(Ordering::SeqCst) == 3
    })
    .await;
    drop(manager);
}
