//! Cancelling tasks: pending, waiting and running tasks end aborted as any abort does;
//! finished and unknown ids get an answer of their own; a cascade reaches every task that
//! waits on a cancelled one.

use std::time::Duration;

use parade_host::queue::{CancelOutcome, Error, Parade, TaskData, TaskId, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

fn outcomes(answers: &[parade_host::queue::Cancellation]) -> Vec<(String, CancelOutcome)> {
    answers
        .iter()
        .map(|c| (c.id.0.clone(), c.outcome))
        .collect()
}

pub async fn cancel_answers_each_id_and_ends_what_has_not_ended(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["after"]),
            notify_channel_after: Some("test.cancel".into()),
            ..task("pending", "work")
        },
        TaskData {
            total_dependencies: Some(2),
            ..task("after", "next")
        },
        task("running", "run"),
        task("done", "run-done"),
        TaskData {
            run_after: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            ..task("later", "work")
        },
    ])
    .await?;
    let waiter = q.new_waiter(&TaskId::from("pending")).await?;
    let running = own_one(&q, "actor", &["run"], MINUTE).await?;
    let done = own_one(&q, "actor", &["run-done"], MINUTE).await?;
    finish(&q, &done, TaskStatusCode::Completed).await?;

    let refused = q
        .cancel_tasks(&ids(&["pending"]), "a NUL \0 here", false)
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument { .. })),
        "{refused:?}"
    );
    assert_eq!(
        row(&q, "pending").await?.status_code,
        TaskStatusCode::Pending
    );
    let mut hears = q
        .task_cancellations()
        .await?
        .expect("both backends announce cancelled running tasks");
    let answers = q
        .cancel_tasks(
            &ids(&["pending", "running", "done", "nowhere", "later", "pending"]),
            "operator said so",
            false,
        )
        .await?;
    assert_eq!(
        outcomes(&answers),
        [
            ("pending".into(), CancelOutcome::Cancelled),
            ("running".into(), CancelOutcome::Cancelled),
            (
                "done".into(),
                CancelOutcome::AlreadyEnded(TaskStatusCode::Completed)
            ),
            ("nowhere".into(), CancelOutcome::NotFound),
            ("later".into(), CancelOutcome::Cancelled),
        ]
    );
    for id in ["pending", "running", "later"] {
        let stored = row(&q, id).await?;
        assert_eq!(stored.status_code, TaskStatusCode::Aborted, "{id}");
        assert_eq!(
            stored.status.as_deref(),
            Some("cancelled: operator said so")
        );
        assert_eq!(stored.performance_token, None);
    }
    // As any abort: the successor hears of a failure, the waiter of the end.
    let after = row(&q, "after").await?;
    assert_eq!((after.num_signals, after.num_failures), (1, 1));
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiter.wait()).await??;
    assert_eq!(outcome.status_code, TaskStatusCode::Aborted);
    // The running task's late result is refused, and its node hears of the cancel.
    let late = q
        .return_task(
            &running.id,
            running.token,
            "late",
            TaskStatusCode::Completed,
        )
        .await;
    assert!(matches!(late, Err(Error::InvalidToken { .. })), "{late:?}");
    let heard = tokio::time::timeout(Duration::from_secs(10), hears.next()).await?;
    assert_eq!(heard, Some(TaskId::from("running")));
    // Only the running one is announced.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), hears.next())
            .await
            .is_err(),
        "nothing else was running"
    );
    // A cancelled task can be retried with the operator retry, as any aborted task.
    q.retry_task(&TaskId::from("running")).await?;
    assert_eq!(
        row(&q, "running").await?.status_code,
        TaskStatusCode::Pending
    );
    Ok(())
}

pub async fn cancel_with_cascade_reaches_every_waiting_successor(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    // root -> {a, b}; a -> c; b -> c; c -> root (a cycle); other waits on done-pred only.
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["a", "b"]),
            ..task("root", "work")
        },
        TaskData {
            total_dependencies: Some(1),
            to_signal_after: ids(&["c"]),
            ..task("a", "work")
        },
        TaskData {
            total_dependencies: Some(1),
            to_signal_after: ids(&["c"]),
            ..task("b", "work")
        },
        TaskData {
            total_dependencies: Some(2),
            to_signal_after: ids(&["root"]),
            ..task("c", "work")
        },
        TaskData {
            to_signal_after: ids(&["unrelated"]),
            ..task("done-pred", "other")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("unrelated", "other")
        },
    ])
    .await?;
    let answers = q.cancel_tasks(&ids(&["root"]), "", true).await?;
    let mut cancelled: Vec<String> = answers
        .iter()
        .filter(|c| c.outcome == CancelOutcome::Cancelled)
        .map(|c| c.id.0.clone())
        .collect();
    assert_eq!(answers[0].id.as_str(), "root", "the listed id comes first");
    cancelled.sort();
    assert_eq!(cancelled, ["a", "b", "c", "root"]);
    assert_eq!(row(&q, "c").await?.status.as_deref(), Some("cancelled"));
    assert_eq!(
        row(&q, "unrelated").await?.status_code,
        TaskStatusCode::Pending,
        "a task that does not wait on the cancelled ones is left alone"
    );
    Ok(())
}
