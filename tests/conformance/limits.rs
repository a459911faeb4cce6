//! Concurrency limits: an own with `max_in_progress` leaves at most that many tasks of its
//! actions in progress with an unexpired ownership, whoever owns them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parade_host::queue::{ActorId, OwnRequest, OwnedTask, Parade, Prefixed, TaskStatusCode};
use tokio::sync::Mutex;

use crate::common::*;
use crate::support::Store;

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

/// Owns up to `max` tasks of `names` for `actor`, leaving at most `limit` of them in progress.
async fn own_within(
    queue: &(impl Parade + ?Sized),
    actor: &str,
    max: u32,
    names: &[&str],
    limit: u32,
    duration: Option<Duration>,
) -> anyhow::Result<Vec<OwnedTask>> {
    let names = actions(names);
    Ok(queue
        .own(&OwnRequest {
            actor: &ActorId::from(actor),
            max_tasks: max,
            actions: &names,
            max_duration: duration,
            expiry_backoff: &[],
            max_in_progress: Some(limit),
        })
        .await?)
}

/// Eight owners race for 40 tasks of one group limited to 3, each holding what it owns for a
/// moment: never more than 3 are held at once, and every task runs exactly once. A task
/// counts as held from after its own returned until before its return is sent, so the
/// count here is never above the store's.
pub async fn the_global_limit_holds_under_concurrent_owners(store: Store) -> anyhow::Result<()> {
    const TASKS: usize = 40;
    const LIMIT: usize = 3;
    let q = Arc::new(queue(store).await?);
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            task(
                &format!("job-{i}"),
                if i % 2 == 0 { "left" } else { "right" },
            )
        })
        .collect();
    q.insert_tasks(&tasks).await?;
    let held = Arc::new(AtomicUsize::new(0));
    let most_held = Arc::new(AtomicUsize::new(0));
    let performed = Arc::new(Mutex::new(Vec::new()));
    let mut owners = Vec::new();
    for owner in 0..8 {
        let (q, held, most_held, performed) = (
            q.clone(),
            held.clone(),
            most_held.clone(),
            performed.clone(),
        );
        owners.push(tokio::spawn(async move {
            let actor = format!("owner-{owner}");
            let mut idle_rounds = 0;
            while performed.lock().await.len() < TASKS {
                let batch = own_within(&*q, &actor, 2, &["left", "right"], 3, MINUTE).await?;
                if batch.is_empty() {
                    idle_rounds += 1;
                    anyhow::ensure!(idle_rounds < 10_000, "{actor} never found room");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let now = held.fetch_add(batch.len(), Ordering::SeqCst) + batch.len();
                most_held.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                held.fetch_sub(batch.len(), Ordering::SeqCst);
                for t in &batch {
                    finish(&*q, t, TaskStatusCode::Completed).await?;
                }
                performed
                    .lock()
                    .await
                    .extend(batch.into_iter().map(|t| t.id.0));
            }
            anyhow::Ok(())
        }));
    }
    for owner in owners {
        owner.await??;
    }
    let most = most_held.load(Ordering::SeqCst);
    assert!(most <= LIMIT, "{most} tasks held at once, limit {LIMIT}");
    assert!(most >= 1);
    let performed = performed.lock().await;
    let distinct: HashSet<&String> = performed.iter().collect();
    assert_eq!(performed.len(), TASKS, "a task was performed twice");
    assert_eq!(distinct.len(), TASKS);
    Ok(())
}

/// The limit leaves room for exactly what is left; a return frees room at once.
pub async fn an_own_takes_no_more_than_the_room_left(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let tasks: Vec<_> = (0..6).map(|i| task(&format!("t{i}"), "work")).collect();
    q.insert_tasks(&tasks).await?;
    let first = own_within(&q, "a", 2, &["work"], 3, MINUTE).await?;
    assert_eq!(first.len(), 2);
    let second = own_within(&q, "b", 10, &["work"], 3, MINUTE).await?;
    assert_eq!(second.len(), 1, "one place was left");
    assert!(own_within(&q, "c", 10, &["work"], 3, MINUTE)
        .await?
        .is_empty());
    finish(&q, &first[0], TaskStatusCode::Completed).await?;
    let after_return = own_within(&q, "c", 10, &["work"], 3, MINUTE).await?;
    assert_eq!(after_return.len(), 1, "the return freed one place");
    // Without a limit the rest are owned as ever.
    assert_eq!(own(&q, "d", 10, &["work"], MINUTE).await?.len(), 2);
    Ok(())
}

/// What a limit counts is the tasks owned within it: a task once owned within its group's
/// limit counts toward it whenever it is in progress again, whoever owns it; a task only
/// ever owned without a limit does not (a node that lacks the limit owns outside it).
pub async fn a_limit_counts_the_tasks_owned_within_it(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let tasks: Vec<_> = (0..6).map(|i| task(&format!("t{i}"), "work")).collect();
    q.insert_tasks(&tasks).await?;
    let outside = own(&q, "unlimited", 2, &["work"], MINUTE).await?;
    assert_eq!(outside.len(), 2);
    let within = own_within(&q, "a", 10, &["work"], 2, MINUTE).await?;
    assert_eq!(
        within.len(),
        2,
        "tasks owned without the limit do not take its room"
    );
    // Back to pending with a try left, then owned again without the limit: it still counts.
    q.release_tasks(&[within[0].lease()]).await?;
    let again = own(&q, "unlimited", 1, &["work"], MINUTE).await?;
    assert_eq!(owned_ids(&again), [within[0].id.0.clone()]);
    assert!(
        own_within(&q, "b", 10, &["work"], 2, MINUTE)
            .await?
            .is_empty(),
        "a task once owned within the limit counts toward it"
    );
    Ok(())
}

/// The summary's `within_limit` is what the limit counts: ownerships made within a limit and
/// not lapsed, not every task in progress.
pub async fn the_summary_counts_what_the_limit_counts(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let tasks: Vec<_> = (0..6).map(|i| task(&format!("t{i}"), "work")).collect();
    q.insert_tasks(&tasks).await?;
    assert_eq!(own(&q, "unlimited", 2, &["work"], MINUTE).await?.len(), 2);
    assert_eq!(own_within(&q, "a", 2, &["work"], 5, MINUTE).await?.len(), 2);
    let lapsing = own_within(&q, "b", 1, &["work"], 5, Some(Duration::from_millis(100))).await?;
    assert_eq!(lapsing.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = q.summary().await?;
    let in_progress: u64 = summary
        .counts
        .iter()
        .filter(|c| c.status_code == TaskStatusCode::InProgress)
        .map(|c| c.count)
        .sum();
    assert_eq!(in_progress, 5, "{summary:?}");
    assert_eq!(summary.within_limit(&["work".to_owned()]), 2, "{summary:?}");
    // The limit agrees: it has room for 3, and 2 tasks can be owned (the pending one and the
    // lapsed one), so both are, and then both count.
    assert_eq!(
        own_within(&q, "c", 10, &["work"], 5, MINUTE).await?.len(),
        2
    );
    assert_eq!(q.summary().await?.within_limit(&["work".to_owned()]), 4);
    Ok(())
}

/// An ownership that lapsed stops counting once its deadline passes; owning it again counts
/// it again. An ownership without a deadline counts until it ends.
pub async fn expired_ownerships_stop_counting_toward_the_limit(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let tasks: Vec<_> = (0..5).map(|i| task(&format!("t{i}"), "work")).collect();
    q.insert_tasks(&tasks).await?;
    let lapsing = own_within(
        &q,
        "crashed",
        2,
        &["work"],
        2,
        Some(Duration::from_millis(200)),
    )
    .await?;
    assert_eq!(lapsing.len(), 2);
    assert!(own_within(&q, "next", 5, &["work"], 2, MINUTE)
        .await?
        .is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retaken = own_within(&q, "next", 5, &["work"], 2, MINUTE).await?;
    assert_eq!(
        owned_ids(&retaken),
        owned_ids(&lapsing),
        "the expired ownerships are owned again first, and fill the room"
    );
    assert!(
        own_within(&q, "other", 5, &["work"], 2, MINUTE)
            .await?
            .is_empty(),
        "owned again, they count again"
    );
    for t in &retaken {
        finish(&q, t, TaskStatusCode::Completed).await?;
    }
    let forever = own_within(&q, "forever", 1, &["work"], 2, None).await?;
    assert_eq!(forever.len(), 1);
    let last = own_within(&q, "next", 5, &["work"], 2, MINUTE).await?;
    assert_eq!(
        last.len(),
        1,
        "an ownership without a deadline still counts"
    );
    Ok(())
}

/// A group at its limit owns nothing, for any of its actions; tasks of other actions
/// neither count toward it nor wait for it.
pub async fn an_at_limit_group_owns_nothing_while_others_are_unaffected(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        task("x1", "x"),
        task("y1", "y"),
        task("y2", "y"),
        task("z1", "z"),
        task("z2", "z"),
        task("z3", "z"),
    ])
    .await?;
    // In progress elsewhere: not the group's.
    assert_eq!(own(&q, "busy", 3, &["z"], MINUTE).await?.len(), 3);
    let group = own_within(&q, "a", 5, &["x", "y"], 2, MINUTE).await?;
    assert_eq!(group.len(), 2, "tasks of z do not count toward x and y");
    assert!(own_within(&q, "b", 5, &["y", "x"], 2, MINUTE)
        .await?
        .is_empty());
    q.insert_tasks(&[task("z4", "z"), task("w1", "w")]).await?;
    let others = own(&q, "c", 5, &["z", "w"], MINUTE).await?;
    assert_eq!(owned_ids(&others), ["w1", "z4"]);
    let left: Vec<String> = q
        .list_tasks(&Default::default())
        .await?
        .into_iter()
        .filter(|t| t.status_code == TaskStatusCode::Pending)
        .map(|t| t.id.0)
        .collect();
    assert_eq!(left.len(), 1, "one task of the group waits: {left:?}");
    Ok(())
}

/// Through `Prefixed` a limit counts the namespace's tasks only: the same action in two
/// namespaces has the room twice.
pub async fn a_limit_counts_only_its_namespace(store: Store) -> anyhow::Result<()> {
    let store = store.backend.open().await?;
    let left = Prefixed::new(store.clone(), "left");
    let right = Prefixed::new(store.clone(), "right");
    for namespace in [&left, &right] {
        namespace
            .insert_tasks(&[task("a", "work"), task("b", "work")])
            .await?;
    }
    let owned_left = own_within(&left, "n", 5, &["work"], 1, MINUTE).await?;
    assert_eq!(owned_ids(&owned_left), ["a"]);
    assert!(own_within(&left, "n", 5, &["work"], 1, MINUTE)
        .await?
        .is_empty());
    let owned_right = own_within(&right, "n", 5, &["work"], 1, MINUTE).await?;
    assert_eq!(owned_ids(&owned_right), ["a"], "names come back unprefixed");
    Ok(())
}
