//! Dependencies: successors run after their predecessors signal them, and see how many
//! predecessors failed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parade_host::queue::{Parade, TaskData, TaskStatusCode};
use tokio::sync::Mutex;

use crate::common::*;
use crate::support::Store;

pub async fn counts_failures_of_predecessors(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["end"]),
            ..task("success", "ok")
        },
        TaskData {
            to_signal_after: ids(&["end"]),
            ..task("failure", "bad")
        },
        TaskData {
            total_dependencies: Some(2),
            ..task("end", "done")
        },
    ])
    .await?;
    assert!(own(&q, "a", 1, &["done"], MINUTE).await?.is_empty());
    let ok = own_one(&q, "a", &["ok"], MINUTE).await?;
    finish(&q, &ok, TaskStatusCode::Completed).await?;
    assert!(own(&q, "a", 1, &["done"], MINUTE).await?.is_empty());
    let bad = own_one(&q, "a", &["bad"], MINUTE).await?;
    finish(&q, &bad, TaskStatusCode::Aborted).await?;
    let end = own_one(&q, "a", &["done"], MINUTE).await?;
    assert_eq!(end.id.as_str(), "end");
    assert_eq!(end.num_signalled_failures, 1);
    let stored = row(&q, "end").await?;
    assert_eq!((stored.num_signals, stored.num_failures), (2, 1));
    assert_eq!(
        row(&q, "failure").await?.num_failures,
        0,
        "own failures are not counted"
    );
    Ok(())
}

pub async fn divisor_dag_runs_each_task_after_its_divisors(store: Store) -> anyhow::Result<()> {
    const N: usize = 63;
    let q = queue(store).await?;
    let name = |n: usize| format!("number-{n}");
    let tasks: Vec<TaskData> = (1..=N)
        .map(|n| TaskData {
            body: Some(n.to_string()),
            to_signal_after: (2 * n..=N).step_by(n).map(|m| name(m).into()).collect(),
            total_dependencies: Some((1..n).filter(|d| n % d == 0).count() as i32),
            ..task(&name(n), "div")
        })
        .collect();
    q.insert_tasks(&tasks).await?;
    let mut done = HashSet::new();
    loop {
        let owned = own(&q, "divider", 17, &["div"], None).await?;
        if owned.is_empty() {
            break;
        }
        for t in &owned {
            let n: usize = t.body.as_deref().unwrap_or_default().parse()?;
            for d in (1..n).filter(|d| n % d == 0) {
                assert!(done.contains(&d), "{n} ran before its divisor {d}");
            }
        }
        for t in &owned {
            finish(&q, t, TaskStatusCode::Completed).await?;
            done.insert(t.body.as_deref().unwrap_or_default().parse::<usize>()?);
        }
    }
    assert_eq!(done.len(), N);
    Ok(())
}

pub async fn fan_in_dag_under_concurrent_owners(store: Store) -> anyhow::Result<()> {
    const PARTS: usize = 2000;
    const SHARDS: usize = 5;
    const OWNERS: usize = 4;
    let q = Arc::new(queue(store).await?);
    let shard_of = |part: usize| (part / 100) % SHARDS;
    let mut tasks: Vec<TaskData> = (0..PARTS)
        .map(|i| TaskData {
            to_signal_after: ids(&[&format!("shard-{}", shard_of(i))]),
            ..task(&format!("part-{i}"), "part")
        })
        .collect();
    for s in 0..SHARDS {
        tasks.push(TaskData {
            total_dependencies: Some((0..PARTS).filter(|&i| shard_of(i) == s).count() as i32),
            to_signal_after: ids(&["done"]),
            ..task(&format!("shard-{s}"), "shard")
        });
    }
    tasks.push(TaskData {
        total_dependencies: Some(SHARDS as i32),
        ..task("done", "done")
    });
    q.insert_tasks(&tasks).await?;

    let parts = Arc::new(Mutex::new(Vec::new()));
    let done_count = Arc::new(AtomicUsize::new(0));
    let mut owners = Vec::new();
    for owner in 0..OWNERS {
        let (q, parts, done_count) = (q.clone(), parts.clone(), done_count.clone());
        owners.push(tokio::spawn(async move {
            let actor = format!("owner-{owner}");
            let mut round = 0usize;
            let mut idle_rounds = 0;
            // Shards and "done" become runnable only after others finish: stop after a few
            // empty rounds rather than at the first.
            while idle_rounds < 20 {
                round += 1;
                let bulk = 45 + (owner * 7 + round * 13) % 11;
                let batch =
                    own(&*q, &actor, bulk as u32, &["part", "shard", "done"], MINUTE).await?;
                if batch.is_empty() {
                    idle_rounds += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                idle_rounds = 0;
                for t in &batch {
                    match t.action.as_str() {
                        "part" => parts.lock().await.push(t.id.0.clone()),
                        "done" => {
                            done_count.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                    finish(&*q, t, TaskStatusCode::Completed).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for owner in owners {
        owner.await??;
    }
    let parts = parts.lock().await;
    assert_eq!(parts.len(), PARTS, "every part exactly once");
    assert_eq!(parts.iter().collect::<HashSet<_>>().len(), PARTS);
    assert_eq!(
        done_count.load(Ordering::SeqCst),
        1,
        "exactly one owner gets done"
    );
    assert_eq!(
        row(&*q, "done").await?.status_code,
        TaskStatusCode::Completed
    );
    Ok(())
}

pub async fn signalling_missing_successor_is_ignored(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        TaskData {
            to_signal_after: ids(&["gone"]),
            ..task("first", "a")
        },
        task("gone", "b"),
    ])
    .await?;
    q.delete_tasks(&ids(&["gone"])).await?;
    let t = own_one(&q, "actor", &["a"], MINUTE).await?;
    finish(&q, &t, TaskStatusCode::Completed).await?;
    assert_eq!(
        row(&q, "first").await?.status_code,
        TaskStatusCode::Completed
    );
    Ok(())
}
