//! Returning and extending owned tasks: tokens, retries, exhaustion and expiry.

use std::time::Duration;

use parade_host::queue::{Error, Parade, TaskData, TaskId, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

pub async fn return_directly_and_retry(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "a"), task("123", "b"), task("222", "b")])
        .await?;
    let owned = own(&q, "actor", 3, &["a", "b"], MINUTE).await?;
    assert_eq!(owned_ids(&owned), ["111", "123", "222"]);
    let by_id = |id: &str| owned.iter().find(|t| t.id.as_str() == id).unwrap();

    finish(&q, by_id("111"), TaskStatusCode::Completed).await?;
    let again = finish(&q, by_id("111"), TaskStatusCode::Completed).await;
    assert!(
        matches!(again, Err(ref e) if matches!(e.downcast_ref(), Some(Error::InvalidToken { .. }))),
        "a second return with the same token must fail: {again:?}"
    );
    finish(&q, by_id("123"), TaskStatusCode::Pending).await?;

    let retried = own(&q, "actor", 3, &["a", "b"], MINUTE).await?;
    assert_eq!(owned_ids(&retried), ["123"]);
    assert_eq!(retried[0].num_signalled_failures, 0);
    let stored = row(&q, "123").await?;
    assert_eq!(stored.num_tries, 2);
    assert_eq!(stored.status.as_deref(), Some("pending"));
    let done = row(&q, "111").await?;
    assert_eq!(done.status_code, TaskStatusCode::Completed);
    assert_eq!(done.performance_token, None);
    assert_eq!(done.actor_id, None);
    Ok(())
}

pub async fn returning_as_in_progress_is_rejected(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "a")]).await?;
    let t = own_one(&q, "actor", &["a"], MINUTE).await?;
    let result = q
        .return_task(&t.id, t.token, "still going", TaskStatusCode::InProgress)
        .await;
    assert!(
        matches!(&result, Err(Error::ReturnedInProgress { task_id }) if task_id.as_str() == "111"),
        "{result:?}"
    );
    // Nothing changed: the owner can still return it properly.
    assert_eq!(
        row(&q, "111").await?.status_code,
        TaskStatusCode::InProgress
    );
    finish(&q, &t, TaskStatusCode::Completed).await?;
    Ok(())
}

pub async fn late_return_and_extend_succeed_until_reowned(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "a")]).await?;
    let t = own_one(&q, "slow", &["a"], Some(Duration::from_millis(200))).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    q.extend_task_deadline(&t.id, t.token, Duration::from_millis(200))
        .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    finish(&q, &t, TaskStatusCode::Completed).await?;
    assert_eq!(row(&q, "111").await?.status_code, TaskStatusCode::Completed);
    Ok(())
}

pub async fn extend_with_unknown_token_is_invalid(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "a")]).await?;
    let made_up = "20202020-2020-4020-8020-202020202020".parse()?;
    let result = q
        .extend_task_deadline(&TaskId::from("111"), made_up, Duration::from_secs(1))
        .await;
    assert!(
        matches!(result, Err(Error::InvalidToken { .. })),
        "{result:?}"
    );
    Ok(())
}

pub async fn extend_keeps_ownership_past_original_deadline(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("111", "a")]).await?;
    let t = own_one(&q, "actor", &["a"], Some(Duration::from_millis(100))).await?;
    q.extend_task_deadline(&t.id, t.token, Duration::from_secs(2))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(own(&q, "thief", 1, &["a"], None).await?.is_empty());
    Ok(())
}

pub async fn extend_fails_once_task_is_stolen(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("222", "a")]).await?;
    let t = own_one(&q, "actor", &["a"], Some(Duration::from_millis(100))).await?;
    let mut stolen = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !own(&q, "thief", 1, &["a"], MINUTE).await?.is_empty() {
            stolen = true;
            break;
        }
    }
    assert!(stolen, "the expired task was never re-offered");
    let result = q
        .extend_task_deadline(&t.id, t.token, Duration::from_secs(1))
        .await;
    assert!(
        matches!(result, Err(Error::InvalidToken { .. })),
        "{result:?}"
    );
    let late = finish(&q, &t, TaskStatusCode::Completed).await;
    assert!(
        late.is_err(),
        "a stale owner must not overwrite the new one"
    );
    assert_eq!(
        row(&q, "222").await?.status_code,
        TaskStatusCode::InProgress
    );
    Ok(())
}

/// Inserts "try_till_failure" (action fail, `max_tries`) signalling "end" (action report).
async fn insert_try_till_failure(q: &Queue, max_tries: i32) -> anyhow::Result<()> {
    q.insert_tasks(&[
        TaskData {
            max_tries: Some(max_tries),
            to_signal_after: ids(&["end"]),
            ..task("try_till_failure", "fail")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("end", "report")
        },
    ])
    .await?;
    Ok(())
}

pub async fn retry_until_failed_aborts_and_signals_successor(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    insert_try_till_failure(&q, 7).await?;
    for attempt in 1..=7 {
        let owned = own(&q, "actor", 2, &["fail", "report"], MINUTE).await?;
        assert_eq!(owned.len(), 1, "attempt {attempt}: {owned:?}");
        assert_eq!(owned[0].action, "fail");
        finish(&q, &owned[0], TaskStatusCode::Pending).await?;
    }
    let owned = own(&q, "actor", 2, &["fail", "report"], MINUTE).await?;
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].action, "report");
    let failed = row(&q, "try_till_failure").await?;
    assert_eq!(failed.status_code, TaskStatusCode::Aborted);
    assert_eq!(failed.num_tries, 7);
    Ok(())
}

/// Seed defect fixed: exhausting tries through a `pending` return aborted the task but did
/// not count as a failure for its successors.
pub async fn exhausted_pending_return_counts_as_failure_for_successors(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    insert_try_till_failure(&q, 1).await?;
    let t = own_one(&q, "actor", &["fail"], MINUTE).await?;
    finish(&q, &t, TaskStatusCode::Pending).await?;
    let end = own_one(&q, "actor", &["report"], MINUTE).await?;
    assert_eq!(end.num_signalled_failures, 1);
    Ok(())
}

pub async fn retry_multi_alternating_expiry_and_pending_return(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[TaskData {
        max_tries: Some(7),
        ..task("111", "a")
    }])
    .await?;
    let lifetime = Some(Duration::from_millis(250));
    for round in 0..7 {
        let t = own_one(&q, "actor", &["a"], lifetime).await?;
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            finish(&q, &t, TaskStatusCode::Pending).await?;
        }
    }
    assert!(own(&q, "actor", 1, &["a"], lifetime).await?.is_empty());
    // Fixed seed defect: the last try expired, so the task ended instead of hanging.
    assert_eq!(row(&q, "111").await?.status_code, TaskStatusCode::Aborted);
    Ok(())
}

/// Seed defect fixed: a task whose last try expired stayed in-progress forever, its
/// successors never signalled and its waiters never woken.
pub async fn expired_last_try_ends_aborted_and_signals_failure(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            max_tries: Some(1),
            to_signal_after: ids(&["after"]),
            notify_channel_after: Some("test.expiry".into()),
            ..task("doomed", "a")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("after", "b")
        },
    ])
    .await?;
    let waiter = q.new_waiter(&TaskId::from("doomed")).await?;
    let t = own_one(&q, "crashed", &["a"], Some(Duration::from_millis(200))).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Any owner's next call ends the expired task, whatever actions it asks for.
    let after = own_one(&q, "survivor", &["b"], MINUTE).await?;
    assert_eq!(after.id.as_str(), "after");
    assert_eq!(after.num_signalled_failures, 1);

    let outcome = tokio::time::timeout(Duration::from_secs(20), waiter.wait()).await??;
    assert_eq!(outcome.status_code, TaskStatusCode::Aborted);
    assert!(outcome.status.contains("expired"), "{}", outcome.status);
    let late = finish(&q, &t, TaskStatusCode::Completed).await;
    assert!(
        late.is_err(),
        "the crashed owner's token is void once the task ended"
    );
    Ok(())
}
