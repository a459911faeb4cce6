//! What the operators' view reads and does: counts by action and status, owners, recent
//! tasks, a task's predecessors, and retrying an aborted task.

use std::time::Duration;

use parade_host::queue::{
    ActionAttention, Error, OwnerCount, Parade, TaskCount, TaskData, TaskFilter, TaskId,
    TaskStatusCode,
};

use crate::common::*;
use crate::support::Store;

pub async fn summary_counts_by_action_and_status_and_names_owners(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        task("a1", "resize"),
        task("a2", "resize"),
        task("a3", "resize"),
        task("b1", "mail"),
    ])
    .await?;
    let owned = own(&q, "node-1", 2, &["resize"], None).await?;
    finish(&q, &owned[0], TaskStatusCode::Completed).await?;
    let summary = q.summary().await?;
    let count = |action: &str, status_code, count| TaskCount {
        action: action.into(),
        status_code,
        count,
    };
    assert_eq!(
        summary.counts,
        [
            count("mail", TaskStatusCode::Pending, 1),
            count("resize", TaskStatusCode::Completed, 1),
            count("resize", TaskStatusCode::InProgress, 1),
            count("resize", TaskStatusCode::Pending, 1),
        ]
    );
    assert_eq!(
        summary.owners,
        [OwnerCount {
            actor_id: "node-1".into(),
            in_progress: 1
        }]
    );
    Ok(())
}

pub async fn summary_names_runnable_tasks_and_those_past_their_deadline(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let now = chrono::Utc::now();
    q.insert_tasks(&[
        task("ready-1", "resize"),
        task("ready-2", "resize"),
        TaskData {
            run_after: Some(now - chrono::Duration::seconds(5)),
            ..task("due-now", "resize")
        },
        TaskData {
            run_after: Some(now + chrono::Duration::hours(1)),
            ..task("later", "resize")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("waiting", "resize")
        },
        task("held", "mail"),
    ])
    .await?;
    own_one(&q, "node-1", &["mail"], None).await?;
    q.insert_tasks(&[task("lapsed", "mail")]).await?;
    own_one(&q, "node-2", &["mail"], Some(Duration::from_millis(10))).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary = q.summary().await?;
    assert_eq!(
        summary.attention,
        [
            ActionAttention {
                action: "mail".into(),
                runnable: 0,
                past_deadline: 1,
                within_limit: 0,
            },
            ActionAttention {
                action: "resize".into(),
                runnable: 3,
                past_deadline: 0,
                within_limit: 0,
            },
        ]
    );
    Ok(())
}

pub async fn finished_tasks_are_counted_by_minute_action_and_code(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let before = chrono::Utc::now() - chrono::Duration::minutes(1);
    q.insert_tasks(&[
        task("c1", "resize"),
        task("c2", "resize"),
        task("a1", "resize"),
        task("m1", "mail"),
        task("waits", "mail"),
    ])
    .await?;
    for owned in own(&q, "node-1", 3, &["resize"], None).await? {
        let code = if owned.id.as_str() == "a1" {
            TaskStatusCode::Aborted
        } else {
            TaskStatusCode::Completed
        };
        finish(&q, &owned, code).await?;
    }
    let mail = own_one(&q, "node-1", &["mail"], None).await?;
    finish(&q, &mail, TaskStatusCode::Completed).await?;
    let after = chrono::Utc::now();

    let minutes = q.finished_by_minute(before).await?;
    let mut totals = std::collections::BTreeMap::new();
    for m in &minutes {
        assert_eq!(
            m.minute.timestamp() % 60,
            0,
            "{m:?} is not a minute's start"
        );
        assert_eq!(m.minute.timestamp_subsec_micros(), 0, "{m:?}");
        assert!(
            m.minute >= before - chrono::Duration::minutes(1) && m.minute <= after,
            "{m:?}"
        );
        *totals
            .entry((m.action.as_str(), m.status_code.as_str()))
            .or_insert(0) += m.count;
    }
    assert_eq!(
        totals.into_iter().collect::<Vec<_>>(),
        [
            (("mail", "completed"), 1),
            (("resize", "aborted"), 1),
            (("resize", "completed"), 2),
        ]
    );
    // Nothing finished after a time to come.
    let later = q
        .finished_by_minute(after + chrono::Duration::minutes(2))
        .await?;
    assert_eq!(later, []);
    Ok(())
}

pub async fn list_newest_first_and_predecessors(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            total_dependencies: Some(2),
            ..task("join", "work")
        },
        TaskData {
            to_signal_after: ids(&["join"]),
            ..task("left", "work")
        },
        TaskData {
            to_signal_after: ids(&["join"]),
            ..task("right", "work")
        },
        task("alone", "work"),
    ])
    .await?;
    let newest = q
        .list_tasks(&TaskFilter {
            newest_first: true,
            limit: Some(2),
            ..TaskFilter::default()
        })
        .await?;
    let names: Vec<&str> = newest.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(names, ["alone", "right"]);
    let predecessors = q
        .list_tasks(&TaskFilter {
            predecessors_of: Some(TaskId::from("join")),
            ..TaskFilter::default()
        })
        .await?;
    let names: Vec<&str> = predecessors.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(names, ["left", "right"]);
    Ok(())
}

pub async fn retry_makes_an_aborted_task_runnable_again(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            max_tries: Some(1),
            ..task("broke", "work")
        },
        TaskData {
            to_signal_after: ids(&["after"]),
            ..task("signals", "work")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("after", "later")
        },
        task("fine", "other"),
    ])
    .await?;
    let owned = own(&q, "a", 2, &["work"], None).await?;
    for task in &owned {
        finish(&q, task, TaskStatusCode::Aborted).await?;
    }
    q.retry_task(&TaskId::from("broke")).await?;
    let again = row(&q, "broke").await?;
    assert_eq!(
        (again.status_code, again.num_tries, again.actor_id),
        (TaskStatusCode::Pending, 0, None)
    );
    // It can be owned again, with its tries restored.
    let owned = own_one(&q, "b", &["work"], None).await?;
    assert_eq!(owned.id.as_str(), "broke");

    let refused = |e: Error| match e {
        Error::InvalidTask { problem, .. } => problem,
        other => panic!("expected InvalidTask, got {other:?}"),
    };
    let problem = refused(q.retry_task(&TaskId::from("signals")).await.unwrap_err());
    assert!(problem.contains("signals successors"), "{problem}");
    let problem = refused(q.retry_task(&TaskId::from("fine")).await.unwrap_err());
    assert!(problem.contains("it is pending"), "{problem}");
    assert!(matches!(
        q.retry_task(&TaskId::from("nope")).await,
        Err(Error::TaskNotFound { .. })
    ));
    Ok(())
}
