//! Time in the queue: delayed tasks, the earliest due time an idle node sleeps until, and
//! idempotent inserts (what periodic tasks rely on).

use std::time::Duration;

use chrono::{DateTime, Utc};
use parade_host::queue::{Error, Parade, TaskData, TaskId};

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
    assert_eq!(q.next_due(&actions(&["x"])).await?, None);
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
    assert!(near(q.next_due(&actions(&["x"])).await?, 30));
    assert!(near(q.next_due(&actions(&["x", "y"])).await?, 10));
    // A pending task that is due now waits for nothing: no time to sleep until.
    assert_eq!(q.next_due(&actions(&["z"])).await?, None);
    // An ownership's deadline is when its task comes back.
    own_one(&q, "actor", &["z"], Some(Duration::from_secs(5))).await?;
    assert!(near(q.next_due(&actions(&["x", "z"])).await?, 5));
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
