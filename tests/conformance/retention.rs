//! Retention: pruning deletes exactly the finished tasks whose time is up, in batches, and
//! nothing that has not ended; successors keep what their pruned predecessors told them; a
//! pruned task is gone for later inserts; pruners never delete a task twice, and on
//! PostgreSQL they take turns on one advisory lock.

use std::time::Duration;

use parade_host::queue::{Error, Parade, PgParade, Retention, TaskData, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

/// Keeps completed tasks 200 ms and aborted ones 200 ms: short enough for a test to outwait.
const BRIEF: Retention = Retention {
    completed: Some(Duration::from_millis(200)),
    aborted: Some(Duration::from_millis(200)),
};

/// Waits until tasks finished now are past [`BRIEF`].
async fn outwait_brief_retention() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Owns and ends each of `ids` (of action `action`), in order, with `code`.
async fn end_each(
    q: &Queue,
    action: &str,
    ids: &[&str],
    code: TaskStatusCode,
) -> anyhow::Result<()> {
    for id in ids {
        let t = own_one(q, "actor", &[action], MINUTE).await?;
        anyhow::ensure!(t.id.as_str() == *id, "owned {} before {id}", t.id);
        finish(q, &t, code).await?;
    }
    Ok(())
}

pub async fn pruning_deletes_exactly_the_expired_finished_tasks_in_batches(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(task(&format!("done-{i}"), "work"));
    }
    old.push(TaskData {
        to_signal_after: ids(&["successor"]),
        ..task("failed", "work")
    });
    old.extend([
        TaskData {
            total_dependencies: Some(1),
            ..task("successor", "next")
        },
        task("pending", "work-later"),
        task("running", "run"),
    ]);
    q.insert_tasks(&old).await?;
    for _ in 0..6 {
        let t = own_one(&q, "actor", &["work"], MINUTE).await?;
        let code = if t.id.as_str() == "failed" {
            TaskStatusCode::Aborted
        } else {
            TaskStatusCode::Completed
        };
        finish(&q, &t, code).await?;
    }
    own_one(&q, "actor", &["run"], MINUTE).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Finished just now: kept by a retention of a minute.
    q.insert_tasks(&[task("fresh", "fresh")]).await?;
    let fresh = own_one(&q, "actor", &["fresh"], MINUTE).await?;
    finish(&q, &fresh, TaskStatusCode::Completed).await?;

    let forever = Retention::default();
    assert_eq!(
        q.prune_finished(&forever, 100).await?,
        0,
        "forever keeps all"
    );
    let retention = Retention {
        completed: Some(Duration::from_millis(200)),
        aborted: Some(Duration::from_secs(60)),
    };
    // Five completed tasks are past 200 ms; the aborted one is kept for a minute.
    let mut batches = Vec::new();
    loop {
        let deleted = q.prune_finished(&retention, 2).await?;
        batches.push(deleted);
        if deleted < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 1], "at most 2 per call");
    let left: Vec<String> = {
        let mut ids: Vec<String> = q
            .list_tasks(&Default::default())
            .await?
            .into_iter()
            .map(|t| t.id.0)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(left, ["failed", "fresh", "pending", "running", "successor"]);
    // The successor saw its predecessor's failure before, and still does.
    let successor = row(&q, "successor").await?;
    assert_eq!((successor.num_signals, successor.num_failures), (1, 1));
    let aborted_too = Retention {
        completed: None,
        aborted: Some(Duration::from_millis(100)),
    };
    assert_eq!(q.prune_finished(&aborted_too, 100).await?, 1);
    assert!(q.get_task(&"failed".into()).await?.is_none());
    assert!(
        q.get_task(&"fresh".into()).await?.is_some(),
        "completed kept forever"
    );
    Ok(())
}

pub async fn a_successor_keeps_the_signals_of_pruned_predecessors(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    // `join` waits for two predecessors; `released` for one, which has ended by the prune.
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["join", "released"]),
            ..task("first", "pre")
        },
        TaskData {
            to_signal_after: ids(&["join"]),
            ..task("second", "pre-later")
        },
        TaskData {
            total_dependencies: Some(2),
            ..task("join", "join")
        },
        TaskData {
            total_dependencies: Some(1),
            ..task("released", "released")
        },
    ])
    .await?;
    end_each(&q, "pre", &["first"], TaskStatusCode::Aborted).await?;
    outwait_brief_retention().await;
    assert_eq!(q.prune_finished(&BRIEF, 100).await?, 1);
    assert!(q.get_task(&"first".into()).await?.is_none());

    // Unlike delete_tasks, pruning takes nothing back: `join` still counts the signal and
    // the failure, and still needs its second predecessor; `released` still runs.
    let join = row(&q, "join").await?;
    assert_eq!(
        (join.num_signals, join.num_failures, join.total_dependencies),
        (1, 1, Some(2))
    );
    assert!(own(&q, "actor", 1, &["join"], MINUTE).await?.is_empty());
    let released = own_one(&q, "actor", &["released"], MINUTE).await?;
    assert_eq!(released.num_signalled_failures, 1);
    finish(&q, &released, TaskStatusCode::Completed).await?;

    end_each(&q, "pre-later", &["second"], TaskStatusCode::Completed).await?;
    let join = own_one(&q, "actor", &["join"], MINUTE).await?;
    assert_eq!(join.num_signalled_failures, 1);
    Ok(())
}

pub async fn a_pruned_task_is_gone_for_later_inserts(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("once", "work")]).await?;
    end_each(&q, "work", &["once"], TaskStatusCode::Completed).await?;
    // Before the prune, a new predecessor may name the finished task (and its signal is
    // harmless: a finished task is never offered again)...
    q.insert_tasks(&[TaskData {
        to_signal_after: ids(&["once"]),
        ..task("before-prune", "later")
    }])
    .await?;
    outwait_brief_retention().await;
    assert_eq!(q.prune_finished(&BRIEF, 100).await?, 1);

    // ... after it, the task is unknown, as if it had never been stored.
    let naming_it = q
        .insert_tasks(&[TaskData {
            to_signal_after: ids(&["once"]),
            ..task("after-prune", "later")
        }])
        .await;
    assert!(
        matches!(&naming_it, Err(Error::UnknownSuccessor { successor, .. }) if successor.as_str() == "once"),
        "{naming_it:?}"
    );
    // Its id is free again: inserting it stores a new task, which runs.
    assert_eq!(
        q.insert_tasks_if_absent(&[task("once", "work")]).await?,
        ids(&["once"])
    );
    let again = row(&q, "once").await?;
    assert_eq!(
        (again.status_code, again.num_tries),
        (TaskStatusCode::Pending, 0)
    );
    end_each(&q, "work", &["once"], TaskStatusCode::Completed).await?;
    Ok(())
}

pub async fn concurrent_pruners_delete_each_expired_task_once(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let finished: Vec<String> = (0..40).map(|i| format!("done-{i:02}")).collect();
    let tasks: Vec<TaskData> = finished.iter().map(|id| task(id, "work")).collect();
    q.insert_tasks(&tasks).await?;
    let owned = own(&q, "actor", 40, &["work"], MINUTE).await?;
    for t in &owned {
        finish(&q, t, TaskStatusCode::Completed).await?;
    }
    q.insert_tasks(&[task("pending", "work-later")]).await?;
    outwait_brief_retention().await;

    // Four pruners at once, three rows a batch, each until a batch comes back short.
    let pruners: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut deleted = 0;
                loop {
                    let batch = q.prune_finished(&BRIEF, 3).await?;
                    deleted += batch;
                    if batch < 3 {
                        return anyhow::Ok(deleted);
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for pruner in pruners {
        total += pruner.await??;
    }
    assert_eq!(total, 40, "each expired task deleted once");
    let left: Vec<String> = q
        .list_tasks(&Default::default())
        .await?
        .into_iter()
        .map(|t| t.id.0)
        .collect();
    assert_eq!(left, ["pending"]);
    Ok(())
}

/// PostgreSQL only (SQLite's writers take turns on its write lock anyway): a pruner waits
/// for the one holding the prune lock, then deletes what is left, so several nodes and a
/// one-off `parade task prune` never prune at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pruners_take_turns_on_one_advisory_lock() -> anyhow::Result<()> {
    use sqlx::{Connection, PgConnection};
    let url = crate::support::fresh_pg_database().await?;
    let q: Queue = std::sync::Arc::new(PgParade::connect(&url).await?);
    q.insert_tasks(&[task("a", "work"), task("b", "work")])
        .await?;
    end_each(&q, "work", &["a", "b"], TaskStatusCode::Completed).await?;
    outwait_brief_retention().await;

    let mut holder = PgConnection::connect(&url).await?;
    let mut held = holder.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('parade prune finished', 0))")
        .execute(&mut *held)
        .await?;
    let waiting = tokio::spawn({
        let q = q.clone();
        async move { q.prune_finished(&BRIEF, 100).await }
    });
    let mut observer = PgConnection::connect(&url).await?;
    let mut polls = 0;
    loop {
        let waiters: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&mut observer)
        .await?;
        if waiters == 1 {
            break;
        }
        polls += 1;
        anyhow::ensure!(polls < 600, "the pruner never waited for the prune lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!waiting.is_finished());
    assert_eq!(q.list_tasks(&Default::default()).await?.len(), 2);
    held.commit().await?;
    assert_eq!(waiting.await??, 2);
    Ok(())
}
