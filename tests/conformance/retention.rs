//! Retention: pruning deletes exactly the finished tasks whose time is up, in batches, and
//! nothing that has not ended.

use std::time::Duration;

use parade_host::queue::{Parade, Retention, TaskData, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

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
