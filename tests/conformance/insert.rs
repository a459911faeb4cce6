//! Inserting and reading tasks back.

use chrono::{TimeZone, Utc};
use parade_host::queue::{
    ActorId, Error, Parade, PerformanceToken, TaskData, TaskFilter, TaskStatusCode,
};

use crate::common::*;
use crate::support::Store;

pub async fn inserted_row_keeps_every_column(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("next", "work")]).await?;
    let full = TaskData {
        body: Some("{\"n\": 1}".into()),
        status: Some("half way".into()),
        status_code: TaskStatusCode::InProgress,
        num_tries: 2,
        num_failures: 1,
        max_tries: Some(5),
        num_signals: 1,
        total_dependencies: Some(3),
        actor_id: Some(ActorId::from("someone")),
        action_deadline: Some(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()),
        performance_token: Some(PerformanceToken(
            "6f1c8e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b".parse()?,
        )),
        to_signal_after: ids(&["next"]),
        notify_channel_after: Some("chan".into()),
        priority: 7,
        run_after: Some(Utc.with_ymd_and_hms(2031, 2, 3, 4, 5, 6).unwrap()),
        ..task("full", "work")
    };
    q.insert_tasks(std::slice::from_ref(&full)).await?;
    // num_failures is stored too (the seed silently dropped it).
    assert_eq!(row(&q, "full").await?, full);
    assert_eq!(row(&q, "next").await?, task("next", "work"));
    // A large batch is stored by another statement on PostgreSQL (COPY, not INSERT).
    let full_in_bulk = TaskData {
        body: Some("tab\there, newline\nthere, back\\slash".into()),
        to_signal_after: ids(&["next", "full"]),
        ..full.clone()
    };
    let mut bulk: Vec<TaskData> = (0..200)
        .map(|i| task(&format!("bulk{i}"), "work"))
        .collect();
    bulk[100] = TaskData {
        id: "full-in-bulk".into(),
        ..full_in_bulk.clone()
    };
    q.insert_tasks(&bulk).await?;
    assert_eq!(
        row(&q, "full-in-bulk").await?,
        TaskData {
            id: "full-in-bulk".into(),
            ..full_in_bulk
        }
    );
    assert_eq!(row(&q, "bulk199").await?, task("bulk199", "work"));
    Ok(())
}

pub async fn insert_rejects_unknown_successor_and_stores_nothing(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let result = q
        .insert_tasks(&[
            task("fine", "work"),
            TaskData {
                to_signal_after: ids(&["fine", "nowhere"]),
                ..task("dangling", "work")
            },
        ])
        .await;
    match result {
        // Named as the caller names them, bare or in a namespace.
        Err(Error::UnknownSuccessor { task_id, successor }) => {
            assert_eq!(task_id.as_str(), "dangling");
            assert_eq!(successor.as_str(), "nowhere");
        }
        other => panic!("expected UnknownSuccessor, got {other:?}"),
    }
    assert!(q.list_tasks(&Default::default()).await?.is_empty());
    Ok(())
}

pub async fn insert_accepts_successor_already_stored(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[TaskData {
        total_dependencies: Some(1),
        ..task("later", "work")
    }])
    .await?;
    q.insert_tasks(&[TaskData {
        to_signal_after: ids(&["later", "self-too"]),
        ..task("self-too", "work")
    }])
    .await?;
    assert_eq!(q.list_tasks(&Default::default()).await?.len(), 2);
    Ok(())
}

pub async fn insert_rejects_duplicate_id_and_stores_nothing(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("taken", "work")]).await?;
    let result = q
        .insert_tasks(&[task("new", "work"), task("taken", "other")])
        .await;
    assert!(
        matches!(&result, Err(Error::DuplicateTask { task_id }) if task_id.as_str() == "taken"),
        "the error names the stored task: {result:?}"
    );
    let in_batch = q
        .insert_tasks(&[task("twice", "work"), task("twice", "work")])
        .await;
    assert!(
        matches!(&in_batch, Err(Error::DuplicateTask { task_id }) if task_id.as_str() == "twice"),
        "{in_batch:?}"
    );
    let stored = q.list_tasks(&Default::default()).await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].action, "work");
    Ok(())
}

pub async fn insert_rejects_negative_counts(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let result = q
        .insert_tasks(&[TaskData {
            max_tries: Some(-1),
            ..task("neg", "work")
        }])
        .await;
    assert!(
        matches!(result, Err(Error::InvalidTask { .. })),
        "{result:?}"
    );
    Ok(())
}

pub async fn list_filters_by_status_and_action_in_insertion_order(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    for name in ["c", "a", "b"] {
        q.insert_tasks(&[task(name, "x"), task(&format!("{name}-y"), "y")])
            .await?;
    }
    let t = own_one(&q, "actor", &["y"], MINUTE).await?;
    assert_eq!(t.id.as_str(), "c-y");
    let listed = |filter: TaskFilter| {
        let q = &q;
        async move {
            anyhow::Ok(
                q.list_tasks(&filter)
                    .await?
                    .into_iter()
                    .map(|t| t.id.0)
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(
        listed(TaskFilter {
            action: Some("x".into()),
            ..Default::default()
        })
        .await?,
        ["c", "a", "b"]
    );
    assert_eq!(
        listed(TaskFilter {
            status_code: Some(TaskStatusCode::InProgress),
            ..Default::default()
        })
        .await?,
        ["c-y"]
    );
    assert_eq!(
        listed(TaskFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await?,
        ["c", "c-y"]
    );
    Ok(())
}
