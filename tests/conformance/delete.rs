//! Deleting tasks: dependencies are removed, and successors left with nothing to wait for
//! are deleted too.

use parade_host::queue::{Parade, TaskData, TaskStatusCode};

use crate::common::*;
use crate::support::Store;

fn signals(id: &str, successors: &[&str]) -> TaskData {
    TaskData {
        to_signal_after: ids(successors),
        ..task(id, "work")
    }
}

fn gated(mut t: TaskData, total: i32, signalled: i32) -> TaskData {
    t.total_dependencies = Some(total);
    t.num_signals = signalled;
    t
}

async fn remaining(q: &Queue) -> anyhow::Result<Vec<String>> {
    let mut left: Vec<String> = q
        .list_tasks(&Default::default())
        .await?
        .into_iter()
        .map(|t| t.id.0)
        .collect();
    left.sort();
    Ok(left)
}

pub async fn delete_chain_with_extra_link_removes_everything(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        signals("a0", &["a1", "a3"]),
        gated(signals("a1", &["a2"]), 1, 0),
        gated(signals("a2", &["a3"]), 2, 1),
        gated(task("a3", "work"), 2, 0),
    ])
    .await?;
    q.delete_tasks(&ids(&["a0"])).await?;
    assert!(remaining(&q).await?.is_empty());
    Ok(())
}

pub async fn delete_only_one_dependency_keeps_successor(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        signals("b0", &["b2"]),
        signals("b1", &["b2"]),
        gated(task("b2", "work"), 2, 0),
    ])
    .await?;
    q.delete_tasks(&ids(&["b0"])).await?;
    assert_eq!(remaining(&q).await?, ["b1", "b2"]);
    assert_eq!(row(&q, "b2").await?.total_dependencies, Some(1));
    Ok(())
}

pub async fn delete_treelike_removes_whole_tree(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        signals("c0", &["c1", "c2"]),
        gated(signals("c1", &["c3", "c4"]), 1, 0),
        gated(signals("c2", &["c4", "c5"]), 1, 0),
        gated(signals("c3", &["c5", "c6"]), 1, 0),
        gated(task("c4", "work"), 2, 0),
        gated(task("c5", "work"), 2, 0),
        gated(task("c6", "work"), 1, 0),
    ])
    .await?;
    q.delete_tasks(&ids(&["c0"])).await?;
    assert!(remaining(&q).await?.is_empty());
    Ok(())
}

pub async fn delete_done_predecessor_keeps_waiting_successor(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            status_code: TaskStatusCode::Completed,
            ..signals("d0", &["d1"])
        },
        gated(task("d1", "work"), 2, 1),
    ])
    .await?;
    q.delete_tasks(&ids(&["d0"])).await?;
    assert_eq!(remaining(&q).await?, ["d1"]);
    Ok(())
}

pub async fn delete_pending_predecessor_removes_satisfied_successor(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[signals("e0", &["e1"]), gated(task("e1", "work"), 2, 1)])
        .await?;
    q.delete_tasks(&ids(&["e0"])).await?;
    assert!(remaining(&q).await?.is_empty());
    Ok(())
}

/// Seed defect fixed: deleting a finished predecessor also deleted successors that were
/// already runnable (or done), though the deletion changed nothing for them.
pub async fn delete_completed_predecessor_keeps_runnable_successor(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            status_code: TaskStatusCode::Completed,
            ..signals("f0", &["f1"])
        },
        gated(task("f1", "work"), 1, 1),
    ])
    .await?;
    q.delete_tasks(&ids(&["f0"])).await?;
    assert_eq!(remaining(&q).await?, ["f1"]);
    assert_eq!(own(&q, "a", 1, &["work"], MINUTE).await?.len(), 1);
    Ok(())
}

/// Seed defect fixed: a duplicated id removed its dependency twice.
pub async fn delete_duplicate_ids_decrements_once(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        signals("g0", &["g2"]),
        signals("g1", &["g2"]),
        gated(task("g2", "work"), 2, 0),
    ])
    .await?;
    q.delete_tasks(&ids(&["g0", "g0"])).await?;
    assert_eq!(remaining(&q).await?, ["g1", "g2"]);
    assert_eq!(row(&q, "g2").await?.total_dependencies, Some(1));
    Ok(())
}

pub async fn delete_unknown_and_already_deleted_ids_is_fine(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("x", "work")]).await?;
    q.delete_tasks(&ids(&["x", "never-existed"])).await?;
    q.delete_tasks(&ids(&["x"])).await?;
    q.delete_tasks(&[]).await?;
    assert!(remaining(&q).await?.is_empty());
    Ok(())
}

/// Seed defects fixed: ids longer than 64 characters could not be deleted, and a dependency
/// cycle was not guarded against.
pub async fn delete_handles_long_ids_and_cycles(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let long = "l".repeat(300);
    q.insert_tasks(&[
        signals(&long, &["h0"]),
        gated(signals("h0", &["h1"]), 1, 0),
        gated(signals("h1", &["h0"]), 1, 0),
    ])
    .await?;
    q.delete_tasks(&ids(&[&long])).await?;
    assert!(remaining(&q).await?.is_empty());
    Ok(())
}
