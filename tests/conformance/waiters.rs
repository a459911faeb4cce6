//! Waiting for tasks to end.

use std::time::Duration;

use parade_host::queue::{Error, Parade, TaskData, TaskId, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

const PATIENCE: Duration = Duration::from_secs(20);

fn notifying(id: &str, channel: &str) -> TaskData {
    TaskData {
        notify_channel_after: Some(channel.into()),
        ..task(id, "work")
    }
}

pub async fn waiter_sees_completion_and_abort_created_before_or_after_return(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    for (code, status) in [
        (TaskStatusCode::Aborted, "b0rked"),
        (TaskStatusCode::Completed, "yay"),
    ] {
        for waiter_first in [true, false] {
            let id = TaskId::from(format!("{code}-{waiter_first}"));
            q.insert_tasks(&[notifying(id.as_str(), "test.done")])
                .await?;
            let t = own_one(&q, "actor", &["work"], MINUTE).await?;
            let early = if waiter_first {
                Some(q.new_waiter(&id).await?)
            } else {
                None
            };
            q.return_task(&t.id, t.token, status, code).await?;
            let waiter = match early {
                Some(w) => w,
                None => q.new_waiter(&id).await?,
            };
            let outcome = tokio::time::timeout(PATIENCE, waiter.wait()).await??;
            assert_eq!(outcome.status, status);
            assert_eq!(outcome.status_code, code);
            // Waiting again returns the same answer.
            assert_eq!(waiter.wait().await?, outcome);
        }
    }
    Ok(())
}

pub async fn waiter_on_task_without_channel_fails(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    // An empty channel, which the seed also treated as none, can only come from plain SQL
    // now (insert_tasks refuses it); tests/postgres_sql.rs covers that case.
    q.insert_tasks(&[task("silent", "work")]).await?;
    let result = q.new_waiter(&TaskId::from("silent")).await;
    assert!(
        matches!(result, Err(Error::NoNotifyChannel { .. })),
        "{result:?}"
    );
    Ok(())
}

pub async fn waiter_on_missing_task_fails(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let result = q.new_waiter(&TaskId::from("ghost")).await;
    assert!(
        matches!(result, Err(Error::TaskNotFound { .. })),
        "{result:?}"
    );
    Ok(())
}

/// Seed defect fixed: after Cancel, Wait blocked forever.
pub async fn cancel_returns_cancelled_at_once(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[notifying("slow", "test.slow")]).await?;
    let waiter = q.new_waiter(&TaskId::from("slow")).await?;
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.wait().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiter.cancel();
    let result = tokio::time::timeout(PATIENCE, waiting).await??;
    assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    assert!(matches!(waiter.wait().await, Err(Error::Cancelled { .. })));
    Ok(())
}

/// Seed defect fixed: cancelling a waiter whose task had already ended panicked.
pub async fn cancel_after_finish_is_harmless(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[notifying("quick", "test.quick")]).await?;
    let t = own_one(&q, "actor", &["work"], MINUTE).await?;
    finish(&q, &t, TaskStatusCode::Completed).await?;
    let waiter = q.new_waiter(&TaskId::from("quick")).await?;
    waiter.cancel();
    let outcome = waiter.wait().await?;
    assert_eq!(outcome.status_code, TaskStatusCode::Completed);
    Ok(())
}

/// Seed defect fixed: any notification on a shared channel woke every waiter on it, which
/// then reported its own task's unfinished status.
pub async fn waiters_sharing_a_channel_wake_only_for_their_task(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        notifying("one", "test.shared"),
        notifying("two", "test.shared"),
    ])
    .await?;
    let one = q.new_waiter(&TaskId::from("one")).await?;
    let two = q.new_waiter(&TaskId::from("two")).await?;
    let owned = own(&q, "actor", 2, &["work"], MINUTE).await?;
    let task_one = owned.iter().find(|t| t.id.as_str() == "one").unwrap();
    let task_two = owned.iter().find(|t| t.id.as_str() == "two").unwrap();

    finish(&q, task_one, TaskStatusCode::Completed).await?;
    assert_eq!(
        tokio::time::timeout(PATIENCE, one.wait())
            .await??
            .status_code,
        TaskStatusCode::Completed
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), two.wait())
            .await
            .is_err(),
        "the other task's waiter must keep waiting"
    );
    finish(&q, task_two, TaskStatusCode::Aborted).await?;
    assert_eq!(
        tokio::time::timeout(PATIENCE, two.wait())
            .await??
            .status_code,
        TaskStatusCode::Aborted
    );
    Ok(())
}

/// More waiters than the store has pooled connections: they must share one listener.
pub async fn many_waiters_share_one_listener(store: Store) -> anyhow::Result<()> {
    const WAITERS: usize = 60;
    let q = queue(store).await?;
    let tasks: Vec<TaskData> = (0..WAITERS)
        .map(|i| notifying(&format!("w{i}"), &format!("test.chan{}", i % 7)))
        .collect();
    q.insert_tasks(&tasks).await?;
    let mut waiters = Vec::new();
    for t in &tasks {
        waiters.push(q.new_waiter(&t.id).await?);
    }
    let owned = own(&q, "actor", WAITERS as u32, &["work"], MINUTE).await?;
    assert_eq!(owned.len(), WAITERS);
    for t in &owned {
        finish(&q, t, TaskStatusCode::Completed).await?;
    }
    for waiter in waiters {
        let outcome = tokio::time::timeout(PATIENCE, waiter.wait()).await??;
        assert_eq!(outcome.status_code, TaskStatusCode::Completed);
    }
    Ok(())
}

pub async fn waiter_on_a_deleted_task_fails_promptly(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[notifying("doomed", "test.doomed")])
        .await?;
    let waiter = q.new_waiter(&TaskId::from("doomed")).await?;
    let waiting = tokio::spawn(async move { waiter.wait().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.delete_tasks(&[TaskId::from("doomed")]).await?;
    // Well inside PostgreSQL's 10 s re-check: the delete itself wakes the waiter.
    let result = tokio::time::timeout(Duration::from_secs(5), waiting).await??;
    assert!(
        matches!(&result, Err(Error::WaitFailed { problem, .. }) if problem.contains("deleted")),
        "{result:?}"
    );
    Ok(())
}
