//! Owning tasks: which tasks are offered, to whom, in what order, and for how long.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parade_host::queue::{Parade, Prefixed, TaskData, TaskStatusCode};
use tokio::sync::Mutex;

use crate::common::*;
use crate::support::Store;

pub async fn owning_hands_out_disjoint_batches(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        task("000", "never"),
        task("111", "frob"),
        task("123", "broz"),
        task("222", "broz"),
    ])
    .await?;
    let a = own(&q, "tortoise", 2, &["frob", "broz"], None).await?;
    let b = own(&q, "hare", 2, &["frob", "broz"], None).await?;
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 1);
    let mut all = owned_ids(&a);
    all.extend(owned_ids(&b));
    all.sort();
    assert_eq!(all, ["111", "123", "222"]);
    assert_eq!(row(&q, "000").await?.status_code, TaskStatusCode::Pending);
    Ok(())
}

pub async fn owned_task_carries_body_unchanged(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let body = "\"it is a \\\"quoted\\\" JSON string\" \t\n with ünïcödé \\N";
    q.insert_tasks(&[
        TaskData {
            body: Some(body.into()),
            ..task("body", "yes")
        },
        task("nobody", "no"),
    ])
    .await?;
    let owned = own(&q, "actor", 2, &["yes", "no"], None).await?;
    assert_eq!(owned.len(), 2);
    for t in owned {
        match t.id.as_str() {
            "body" => assert_eq!(t.body.as_deref(), Some(body)),
            "nobody" => assert_eq!(t.body, None),
            other => panic!("unexpected task {other}"),
        }
    }
    Ok(())
}

pub async fn owning_after_deadline_reoffers_task(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "frob")]).await?;
    let first = own_one(&q, "tortoise", &["frob"], Some(Duration::from_secs(1))).await?;
    assert!(own(&q, "hare", 1, &["frob"], None).await?.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = own_one(&q, "hare", &["frob"], None).await?;
    assert_eq!(second.id.as_str(), "111");
    assert_ne!(second.token, first.token, "re-owning issues a new token");
    let stored = row(&q, "111").await?;
    assert_eq!(stored.num_tries, 2);
    assert_eq!(stored.actor_id.map(|a| a.0), Some("hare".into()));
    Ok(())
}

pub async fn expired_ownerships_are_offered_before_pending_tasks(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("lost", "frob")]).await?;
    own_one(&q, "crashed", &["frob"], Some(Duration::from_millis(200))).await?;
    // Newer, higher-priority pending work does not jump ahead of an expired ownership.
    q.insert_tasks(&[TaskData {
        priority: 10,
        ..task("fresh", "frob")
    }])
    .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = own_one(&q, "survivor", &["frob"], MINUTE).await?;
    assert_eq!(next.id.as_str(), "lost");
    let then = own_one(&q, "survivor", &["frob"], MINUTE).await?;
    assert_eq!(then.id.as_str(), "fresh");
    Ok(())
}

pub async fn owning_without_duration_never_expires(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "frob")]).await?;
    own_one(&q, "forever", &["frob"], None).await?;
    assert_eq!(row(&q, "111").await?.action_deadline, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(own(&q, "other", 1, &["frob"], Some(Duration::ZERO))
        .await?
        .is_empty());
    Ok(())
}

pub async fn owning_follows_priority_then_insertion_order(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let mut tasks: Vec<TaskData> = (0..10).map(|i| task(&format!("t{i}"), "work")).collect();
    tasks[7].priority = 5;
    tasks[3].priority = 1;
    q.insert_tasks(&tasks).await?;
    q.insert_tasks(&[task("late", "work")]).await?;
    let mut order = Vec::new();
    for _ in 0..11 {
        order.push(own_one(&q, "a", &["work"], MINUTE).await?.id.0);
    }
    assert_eq!(
        order,
        ["t7", "t3", "t0", "t1", "t2", "t4", "t5", "t6", "t8", "t9", "late"]
    );
    Ok(())
}

pub async fn tasks_without_tries_left_are_never_offered(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            max_tries: Some(0),
            ..task("zero", "work")
        },
        TaskData {
            max_tries: Some(3),
            num_tries: 3,
            ..task("used-up", "work")
        },
        TaskData {
            max_tries: Some(3),
            num_tries: 2,
            ..task("one-left", "work")
        },
    ])
    .await?;
    let owned = own(&q, "a", 10, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&owned), ["one-left"]);
    Ok(())
}

pub async fn dependency_counts_gate_owning_by_equality(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            total_dependencies: Some(0),
            ..task("no-deps", "work")
        },
        TaskData {
            total_dependencies: Some(2),
            num_signals: 1,
            ..task("waiting", "work")
        },
        TaskData {
            total_dependencies: Some(1),
            num_signals: 2,
            ..task("over-signalled", "work")
        },
        TaskData {
            total_dependencies: Some(2),
            num_signals: 2,
            ..task("ready", "work")
        },
    ])
    .await?;
    let owned = own(&q, "a", 10, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&owned), ["no-deps", "ready"]);
    Ok(())
}

pub async fn concurrent_owners_perform_every_task_exactly_once(store: Store) -> anyhow::Result<()> {
    const TASKS: usize = 3000;
    let q = Arc::new(queue(store).await?);
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| task(&format!("job-{i}"), if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    q.insert_tasks(&tasks).await?;
    let performed = Arc::new(Mutex::new(Vec::new()));
    let mut owners = Vec::new();
    for owner in 0..6 {
        let q = q.clone();
        let performed = performed.clone();
        owners.push(tokio::spawn(async move {
            let actor = format!("owner-{owner}");
            loop {
                let batch = own(&*q, &actor, 37, &["even", "odd"], MINUTE).await?;
                if batch.is_empty() {
                    return anyhow::Ok(());
                }
                for t in &batch {
                    finish(&*q, t, TaskStatusCode::Completed).await?;
                }
                performed
                    .lock()
                    .await
                    .extend(batch.into_iter().map(|t| t.id.0));
            }
        }));
    }
    for owner in owners {
        owner.await??;
    }
    let performed = performed.lock().await;
    let distinct: HashSet<&String> = performed.iter().collect();
    assert_eq!(performed.len(), TASKS, "a task was performed twice");
    assert_eq!(distinct.len(), TASKS);
    Ok(())
}

pub async fn prefix_hides_other_namespaces_and_strips_names(store: Store) -> anyhow::Result<()> {
    let store = store.backend.open().await?;
    let left = Prefixed::new(store.clone(), "left");
    let right = Prefixed::new(store.clone(), "right");
    left.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["next"]),
            ..task("first", "work")
        },
        task("next", "work"),
    ])
    .await?;
    right.insert_tasks(&[task("first", "work")]).await?;

    assert_eq!(
        row(&store, "left.first").await?.to_signal_after,
        ids(&["left.next"]),
        "ids and successors are stored prefixed"
    );
    let mut owned = own(&left, "actor", 10, &["work"], MINUTE).await?;
    owned.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(owned_ids(&owned), ["first", "next"]);
    assert!(
        owned.iter().all(|t| t.action == "work"),
        "actions are stripped"
    );
    let listed = left.list_tasks(&Default::default()).await?;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].to_signal_after, ids(&["next"]));
    assert_eq!(own(&right, "actor", 10, &["work"], MINUTE).await?.len(), 1);
    Ok(())
}
