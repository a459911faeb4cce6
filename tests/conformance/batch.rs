//! What the ActionManager relies on beyond the seed: batched returns, handing tasks back,
//! and hints that wake idle actors.

use std::time::Duration;

use parade_host::queue::{Error, Parade, PerformanceToken, TaskData, TaskReturn, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

pub async fn return_tasks_applies_each_return_like_return_task(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["after"]),
            ..task("ok", "work")
        },
        TaskData {
            to_signal_after: ids(&["after"]),
            ..task("bad", "work")
        },
        task("again", "work"),
        task("stale", "work"),
        task("odd", "work"),
        task("nul", "work"),
        TaskData {
            total_dependencies: Some(2),
            ..task("after", "next")
        },
    ])
    .await?;
    let owned = own(&q, "actor", 6, &["work"], MINUTE).await?;
    let token_of = |id: &str| owned.iter().find(|t| t.id.as_str() == id).unwrap().token;
    let ret = |id: &str, code: TaskStatusCode| TaskReturn {
        id: id.into(),
        token: token_of(id),
        status: format!("{id} status"),
        code,
        retry_after: None,
    };
    let results = q
        .return_tasks(&[
            ret("ok", TaskStatusCode::Completed),
            ret("bad", TaskStatusCode::Aborted),
            ret("again", TaskStatusCode::Pending),
            TaskReturn {
                token: token_of("ok"),
                ..ret("stale", TaskStatusCode::Completed)
            },
            ret("odd", TaskStatusCode::InProgress),
            TaskReturn {
                status: "a NUL \0 in a status".into(),
                ..ret("nul", TaskStatusCode::Completed)
            },
        ])
        .await?;
    assert!(
        results[0].is_ok() && results[1].is_ok() && results[2].is_ok(),
        "{results:?}"
    );
    assert!(
        matches!(results[3], Err(Error::InvalidToken { .. })),
        "{results:?}"
    );
    assert!(
        matches!(&results[4], Err(Error::ReturnedInProgress { task_id }) if task_id.as_str() == "odd"),
        "{results:?}"
    );
    assert!(
        matches!(&results[5], Err(Error::InvalidReturn { task_id, .. }) if task_id.as_str() == "nul"),
        "a status the store cannot hold fails its own row only: {results:?}"
    );
    assert_eq!(
        row(&q, "nul").await?.status_code,
        TaskStatusCode::InProgress
    );

    assert_eq!(row(&q, "ok").await?.status_code, TaskStatusCode::Completed);
    assert_eq!(row(&q, "bad").await?.status.as_deref(), Some("bad status"));
    assert_eq!(row(&q, "again").await?.status_code, TaskStatusCode::Pending);
    assert_eq!(
        row(&q, "stale").await?.status_code,
        TaskStatusCode::InProgress
    );
    assert_eq!(
        row(&q, "odd").await?.status_code,
        TaskStatusCode::InProgress
    );
    let after = own_one(&q, "actor", &["next"], MINUTE).await?;
    assert_eq!(after.num_signalled_failures, 1);
    Ok(())
}

/// The corners of a batch: an id returned twice (the second finds its token spent), an id
/// whose first row has a stale token and whose second has the right one (the second
/// returns it, as one call per row in order would), a
/// successor listed twice by one predecessor (signalled once), several predecessors in one
/// batch signalling one successor, and a pending return with no tries left (aborted, so a
/// failure for the successor).
pub async fn return_tasks_counts_each_signal_once_per_predecessor(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["join", "join"]),
            ..task("twice", "work")
        },
        TaskData {
            to_signal_after: ids(&["join"]),
            ..task("plain", "work")
        },
        TaskData {
            to_signal_after: ids(&["join"]),
            max_tries: Some(1),
            ..task("last-try", "work")
        },
        TaskData {
            total_dependencies: Some(3),
            ..task("join", "next")
        },
        task("second-row", "work"),
    ])
    .await?;
    let owned = own(&q, "actor", 4, &["work"], MINUTE).await?;
    let ret = |id: &str, code: TaskStatusCode| TaskReturn {
        id: id.into(),
        token: owned.iter().find(|t| t.id.as_str() == id).unwrap().token,
        status: format!("{id} status"),
        code,
        retry_after: None,
    };
    let results = q
        .return_tasks(&[
            ret("twice", TaskStatusCode::Completed),
            ret("plain", TaskStatusCode::Completed),
            ret("twice", TaskStatusCode::Aborted),
            ret("last-try", TaskStatusCode::Pending),
            TaskReturn {
                token: PerformanceToken(uuid::Uuid::new_v4()),
                ..ret("second-row", TaskStatusCode::Aborted)
            },
            ret("second-row", TaskStatusCode::Completed),
        ])
        .await?;
    assert!(
        results[0].is_ok() && results[1].is_ok() && results[3].is_ok(),
        "{results:?}"
    );
    assert!(
        matches!(results[4], Err(Error::InvalidToken { .. })) && results[5].is_ok(),
        "{results:?}"
    );
    let second = row(&q, "second-row").await?;
    assert_eq!(
        (second.status_code, second.status.as_deref()),
        (TaskStatusCode::Completed, Some("second-row status"))
    );
    assert!(
        matches!(results[2], Err(Error::InvalidToken { .. })),
        "{results:?}"
    );
    assert_eq!(
        row(&q, "twice").await?.status_code,
        TaskStatusCode::Completed
    );
    assert_eq!(
        row(&q, "last-try").await?.status_code,
        TaskStatusCode::Aborted
    );
    let join = row(&q, "join").await?;
    assert_eq!((join.num_signals, join.num_failures), (3, 1), "{join:#?}");
    let join = own_one(&q, "actor", &["next"], MINUTE).await?;
    assert_eq!(join.num_signalled_failures, 1);
    Ok(())
}

pub async fn release_tasks_hands_back_without_using_a_try(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            max_tries: Some(1),
            ..task("once", "work")
        },
        task("kept", "work"),
    ])
    .await?;
    let owned = own(&q, "leaving", 2, &["work"], MINUTE).await?;
    let once = owned.iter().find(|t| t.id.as_str() == "once").unwrap();
    let released = q.release_tasks(&[once.lease()]).await?;
    assert_eq!(released, 1);
    let stored = row(&q, "once").await?;
    assert_eq!(stored.status_code, TaskStatusCode::Pending);
    assert_eq!(stored.num_tries, 0);
    assert_eq!(stored.actor_id, None);
    assert_eq!(
        row(&q, "kept").await?.status_code,
        TaskStatusCode::InProgress
    );

    assert_eq!(q.release_tasks(&[once.lease()]).await?, 0);
    let again = own_one(&q, "next", &["work"], MINUTE).await?;
    assert_eq!(
        again.id.as_str(),
        "once",
        "a released task runs again at once"
    );
    finish(&q, &again, TaskStatusCode::Completed).await?;
    Ok(())
}

pub async fn inserting_tasks_hints_idle_actors(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let Some(mut hints) = q.new_task_hints().await? else {
        anyhow::bail!("both backends offer new-task hints");
    };
    let woken = tokio::spawn(async move { hints.changed().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.insert_tasks(&[task("new", "work")]).await?;
    assert!(tokio::time::timeout(Duration::from_secs(10), woken).await??);
    Ok(())
}
