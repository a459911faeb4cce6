//! Deleting at completion (`[retention] completed = "0s"`, [`OnCompletion::Delete`]): a
//! completed return deletes its task after signalling its successors as any completion does;
//! a task with a notify channel is kept for its waiters; aborted tasks and retries are kept;
//! a return that does not hold the task deletes nothing.

use std::time::Duration;

use parade_host::queue::{
    Error, OnCompletion, OwnedTask, PerformanceToken, TaskData, TaskId, TaskReturn, TaskStatusCode,
};

use crate::common::*;
use crate::support::Store;

const PATIENCE: Duration = Duration::from_secs(20);

fn returned(task: &OwnedTask, code: TaskStatusCode) -> TaskReturn {
    TaskReturn {
        id: task.id.clone(),
        token: task.token,
        status: format!("{code} here"),
        code,
        retry_after: None,
    }
}

pub async fn a_completion_that_deletes_still_signals_its_successors(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["next", "next"]),
            ..task("first", "work")
        },
        TaskData {
            to_signal_after: ids(&["next"]),
            ..task("second", "work")
        },
        TaskData {
            total_dependencies: Some(2),
            ..task("next", "then")
        },
        task("plain", "work"),
    ])
    .await?;
    let owned = own(&q, "actor", 3, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&owned), ["first", "plain", "second"]);
    let returns: Vec<TaskReturn> = owned
        .iter()
        .map(|t| returned(t, TaskStatusCode::Completed))
        .collect();
    let results = q.return_tasks_with(&returns, OnCompletion::Delete).await?;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for id in ["first", "second", "plain"] {
        assert!(
            q.get_task(&TaskId::from(id)).await?.is_none(),
            "{id} was kept"
        );
    }
    // One signal from each predecessor (the duplicate entry counts once), no failures.
    let next = row(&q, "next").await?;
    assert_eq!((next.num_signals, next.num_failures), (2, 0));
    let next = own_one(&q, "actor", &["then"], MINUTE).await?;
    assert_eq!(next.id.as_str(), "next");
    Ok(())
}

pub async fn a_completion_that_deletes_keeps_aborts_retries_and_waited_for_tasks(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            notify_channel_after: Some("test.done".into()),
            ..task("waited", "work")
        },
        TaskData {
            to_signal_after: ids(&["after"]),
            ..task("failing", "work")
        },
        task("again", "work"),
        TaskData {
            total_dependencies: Some(1),
            ..task("after", "then")
        },
    ])
    .await?;
    let waiter = q.new_waiter(&TaskId::from("waited")).await?;
    let owned = own(&q, "actor", 3, &["work"], MINUTE).await?;
    let returns: Vec<TaskReturn> = owned
        .iter()
        .map(|t| match t.id.as_str() {
            "waited" => returned(t, TaskStatusCode::Completed),
            "failing" => returned(t, TaskStatusCode::Aborted),
            _ => returned(t, TaskStatusCode::Pending),
        })
        .collect();
    let results = q.return_tasks_with(&returns, OnCompletion::Delete).await?;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // Its waiter hears the outcome, and the row stays for the pruner.
    let outcome = tokio::time::timeout(PATIENCE, waiter.wait()).await??;
    assert_eq!(
        (outcome.status_code, outcome.status.as_str()),
        (TaskStatusCode::Completed, "completed here")
    );
    assert_eq!(
        row(&q, "waited").await?.status_code,
        TaskStatusCode::Completed
    );
    assert_eq!(
        row(&q, "failing").await?.status_code,
        TaskStatusCode::Aborted
    );
    assert_eq!(row(&q, "after").await?.num_failures, 1);
    let again = own_one(&q, "actor", &["work"], MINUTE).await?;
    assert_eq!(again.id.as_str(), "again");
    // Its second try completes: now it goes.
    let results = q
        .return_tasks_with(
            &[returned(&again, TaskStatusCode::Completed)],
            OnCompletion::Delete,
        )
        .await?;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(q.get_task(&TaskId::from("again")).await?.is_none());
    Ok(())
}

pub async fn a_completion_that_does_not_hold_the_task_deletes_nothing(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("held", "work")]).await?;
    let t = own_one(&q, "actor", &["work"], MINUTE).await?;
    let stale = TaskReturn {
        token: PerformanceToken(uuid::Uuid::new_v4()),
        ..returned(&t, TaskStatusCode::Completed)
    };
    let results = q
        .return_tasks_with(
            &[
                stale,
                returned(&t, TaskStatusCode::Completed),
                returned(&t, TaskStatusCode::Completed),
            ],
            OnCompletion::Delete,
        )
        .await?;
    assert!(
        matches!(results[0], Err(Error::InvalidToken { .. })),
        "{results:?}"
    );
    assert!(results[1].is_ok(), "{results:?}");
    // The same task twice: the first return took its token.
    assert!(
        matches!(results[2], Err(Error::InvalidToken { .. })),
        "{results:?}"
    );
    assert!(q.get_task(&TaskId::from("held")).await?.is_none());
    // Keep is the default: the seed's behaviour.
    q.insert_tasks(&[task("kept", "work")]).await?;
    let t = own_one(&q, "actor", &["work"], MINUTE).await?;
    q.return_tasks(&[returned(&t, TaskStatusCode::Completed)])
        .await?;
    assert_eq!(
        row(&q, "kept").await?.status_code,
        TaskStatusCode::Completed
    );
    Ok(())
}
