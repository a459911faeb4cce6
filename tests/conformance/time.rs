//! Time in the queue: delayed tasks, the earliest due time an idle node sleeps until, and
//! idempotent inserts (what periodic tasks rely on).

use std::time::Duration;

use chrono::{DateTime, Utc};
use parade_host::queue::{
    ActorId, Backoff, Error, OwnRequest, Parade, TaskData, TaskId, TaskReturn, TaskStatusCode,
};

use crate::common::*;
use crate::support::Store;

fn at(offset: chrono::Duration) -> Option<DateTime<Utc>> {
    Some(Utc::now() + offset)
}

fn delayed(id: &str, action: &str, offset: chrono::Duration) -> TaskData {
    TaskData {
        run_after: at(offset),
        ..task(id, action)
    }
}

pub async fn a_delayed_task_is_owned_only_once_due(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        delayed("later", "work", chrono::Duration::milliseconds(800)),
        task("now", "work"),
    ])
    .await?;
    let first = own(&q, "actor", 10, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&first), ["now"], "the delayed task waits");
    let stored = row(&q, "later").await?;
    assert!(stored.run_after.is_some(), "a waiting task shows its time");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let due = own(&q, "actor", 10, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&due), ["later"]);
    Ok(())
}

pub async fn priority_and_insertion_order_hold_among_due_tasks(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let past = chrono::Duration::milliseconds(-500);
    q.insert_tasks(&[
        delayed("old-low", "work", past),
        TaskData {
            priority: 5,
            ..delayed("old-high", "work", past)
        },
        task("new-low", "work"),
        // Not due: never offered, whatever its priority.
        TaskData {
            priority: 9,
            ..delayed("future-high", "work", chrono::Duration::minutes(10))
        },
    ])
    .await?;
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(own_one(&q, "actor", &["work"], MINUTE).await?.id.0);
    }
    assert_eq!(order, ["old-high", "old-low", "new-low"]);
    assert!(own(&q, "actor", 10, &["work"], MINUTE).await?.is_empty());
    Ok(())
}

pub async fn next_due_is_the_earliest_delayed_task_or_deadline_of_the_actions(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    assert_eq!(q.next_due(&actions(&["x"]), &[]).await?, None);
    q.insert_tasks(&[
        delayed("x-60", "x", chrono::Duration::seconds(60)),
        delayed("x-30", "x", chrono::Duration::seconds(30)),
        delayed("y-10", "y", chrono::Duration::seconds(10)),
        task("z", "z"),
    ])
    .await?;
    let near = |due: Option<DateTime<Utc>>, seconds: i64| {
        due.is_some_and(|due| {
            (due - Utc::now() - chrono::Duration::seconds(seconds)).abs()
                < chrono::Duration::seconds(3)
        })
    };
    assert!(near(q.next_due(&actions(&["x"]), &[]).await?, 30));
    assert!(near(q.next_due(&actions(&["x", "y"]), &[]).await?, 10));
    // A pending task that is due now waits for nothing: no time to sleep until.
    assert_eq!(q.next_due(&actions(&["z"]), &[]).await?, None);
    // An ownership's deadline is when its task comes back.
    own_one(&q, "actor", &["z"], Some(Duration::from_secs(5))).await?;
    assert!(near(q.next_due(&actions(&["x", "z"]), &[]).await?, 5));
    Ok(())
}

pub async fn insert_if_absent_adds_only_new_ids_and_names_them(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("slot-1", "tick")]).await?;
    let added = q
        .insert_tasks_if_absent(&[
            task("slot-1", "tick"),
            task("slot-2", "tick"),
            task("slot-3", "tick"),
        ])
        .await?;
    assert_eq!(added, [TaskId::from("slot-2"), TaskId::from("slot-3")]);
    assert!(q
        .insert_tasks_if_absent(&[task("slot-2", "tick")])
        .await?
        .is_empty());
    let twice = q
        .insert_tasks_if_absent(&[task("slot-4", "tick"), task("slot-4", "tick")])
        .await;
    assert!(
        matches!(twice, Err(Error::DuplicateTask { .. })),
        "{twice:?}"
    );
    let dangling = q
        .insert_tasks_if_absent(&[TaskData {
            to_signal_after: ids(&["nowhere"]),
            ..task("slot-5", "tick")
        }])
        .await;
    assert!(
        matches!(dangling, Err(Error::UnknownSuccessor { .. })),
        "{dangling:?}"
    );
    assert_eq!(q.list_tasks(&Default::default()).await?.len(), 3);
    // Many at once (PostgreSQL stores a large batch by another statement).
    let many: Vec<TaskData> = (0..150).map(|i| task(&format!("m{i}"), "tick")).collect();
    assert_eq!(q.insert_tasks_if_absent(&many).await?.len(), 150);
    assert!(q.insert_tasks_if_absent(&many).await?.is_empty());
    Ok(())
}

fn fixed(seconds: u64) -> Backoff {
    Backoff {
        initial: Duration::from_secs(seconds),
        max: Duration::from_secs(3600),
        multiplier: 2.0,
        jitter: false,
    }
}

pub async fn a_pending_return_with_a_delay_waits_it_out(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[TaskData {
        max_tries: Some(5),
        ..task("flaky", "work")
    }])
    .await?;
    let t = own_one(&q, "actor", &["work"], MINUTE).await?;
    assert_eq!(t.num_tries, 1, "the first try");
    let results = q
        .return_tasks(&[TaskReturn {
            id: t.id.clone(),
            token: t.token,
            status: "busy, try later".into(),
            code: TaskStatusCode::Pending,
            // Jittered delays are computed to the nanosecond; the store keeps what it can.
            retry_after: Some(Duration::from_millis(700) + Duration::from_nanos(123)),
        }])
        .await?;
    assert!(results[0].is_ok(), "{results:?}");
    let waiting = row(&q, "flaky").await?;
    assert_eq!(waiting.status_code, TaskStatusCode::Pending);
    assert!(waiting.run_after.is_some_and(|at| at > Utc::now()));
    assert!(own(&q, "actor", 10, &["work"], MINUTE).await?.is_empty());
    let near = q.next_due(&actions(&["work"]), &[]).await?;
    assert!(near.is_some_and(|due| due <= Utc::now() + chrono::Duration::seconds(1)));
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = own_one(&q, "actor", &["work"], MINUTE).await?;
    assert_eq!(again.num_tries, 2, "the second try");
    // A delay on a return that ends the task means nothing.
    let results = q
        .return_tasks(&[TaskReturn {
            id: again.id.clone(),
            token: again.token,
            status: "done".into(),
            code: TaskStatusCode::Completed,
            retry_after: Some(Duration::from_secs(60)),
        }])
        .await?;
    assert!(results[0].is_ok());
    let done = row(&q, "flaky").await?;
    assert_eq!(done.status_code, TaskStatusCode::Completed);
    assert_eq!(done.run_after, None);
    Ok(())
}

pub async fn an_expired_ownership_backs_off_by_its_actions_policy(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("slow", "backs-off"), task("quick", "at-once")])
        .await?;
    let names = actions(&["backs-off", "at-once"]);
    // Try 1 of "backs-off" waits 1 s past its deadline; "at-once" has no policy.
    let policy = [fixed(1), Backoff::IMMEDIATE];
    let request = |actor: &'static str| OwnRequest {
        actor: Box::leak(Box::new(ActorId::from(actor))),
        max_tasks: 10,
        actions: &names,
        max_duration: Some(Duration::from_millis(200)),
        expiry_backoff: &policy,
        max_in_progress: None,
    };
    assert_eq!(q.own(&request("crashed")).await?.len(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let early = q.own(&request("next")).await?;
    assert_eq!(owned_ids(&early), ["quick"], "the backed-off task waits");
    let due = q.next_due(&names[..1], &policy[..1]).await?;
    assert!(
        due.is_some_and(|due| due > Utc::now() && due < Utc::now() + chrono::Duration::seconds(2)),
        "next due is the deadline plus the backoff: {due:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let late = q.own(&request("next")).await?;
    let slow = late.iter().find(|t| t.id.as_str() == "slow");
    assert!(slow.is_some_and(|t| t.num_tries == 2), "{late:?}");
    Ok(())
}

#[test]
fn the_default_backoff_doubles_from_one_second_up_to_ten_minutes() {
    let policy = Backoff {
        jitter: false,
        ..Backoff::default()
    };
    assert_eq!(policy.delay(1), Duration::from_secs(1));
    assert_eq!(policy.delay(4), Duration::from_secs(8));
    assert_eq!(policy.delay(30), Duration::from_secs(600));
}
