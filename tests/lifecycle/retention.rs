//! Retention with real processes: a node's pruner keeps the store small while it works
//! through 50,000 tasks (and takes a changed `[retention]` live), and `parade task prune`
//! deletes what it is told and says how many.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use parade_host::queue::{self, ActorId, Parade, TaskData, TaskStatusCode};

use crate::support::process::{http, node_dir, run, Node};
use crate::support::Backend;

/// Tasks in the run.
const TASKS: usize = 50_000;
/// The producer tops the queue up by this many...
const BATCH: usize = 500;
/// ...at most every this long (so at most 5,000 tasks a second, on any machine)...
const PACE: Duration = Duration::from_millis(100);
/// ...while fewer than this many are pending or running.
const BACKLOG: u64 = 2_000;
/// Most rows the store may hold at any sample: the backlog, plus the tasks of about 2.4 s
/// (2 s of retention, the pruner's 200 ms interval, a batch) at the producer's top rate,
/// with room to spare. Without pruning it would reach all 50,000.
const MOST_ROWS: u64 = 25_000;

/// Rows in the store: (all, pending or running).
async fn rows(queue: &Arc<dyn Parade>) -> anyhow::Result<(u64, u64)> {
    let summary = queue.summary().await?;
    let all = summary.counts.iter().map(|c| c.count).sum();
    let open = summary
        .counts
        .iter()
        .filter(|c| !c.status_code.is_final())
        .map(|c| c.count)
        .sum();
    Ok((all, open))
}

fn noop_tasks(from: usize, count: usize) -> Vec<TaskData> {
    (from..from + count)
        .map(|i| TaskData::new(format!("t-{i:05}"), "noop"))
        .collect()
}

/// Waits (up to a minute) until `done` holds for the store's (all, open) row counts.
async fn until_rows(
    queue: &Arc<dyn Parade>,
    what: &str,
    done: impl Fn(u64, u64) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (all, open) = rows(queue).await?;
        if done(all, open) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{what}: still {all} rows, {open} open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of an unlabelled sample in a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn a_node_with_retention_of_2_s_keeps_the_table_small(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["noop"])?;
    let config = dir.path().join("parade.toml");
    std::fs::write(&config, "[retention]\ncompleted = \"1h\"\n")?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;

    // Kept for an hour: the first tasks stay once done.
    const FIRST: usize = 1_000;
    queue.insert_tasks(&noop_tasks(0, FIRST)).await?;
    until_rows(&queue, "the first tasks", |all, open| {
        all == FIRST as u64 && open == 0
    })
    .await?;

    // Two seconds, live: those go, and so does every task of the run soon after it ends.
    std::fs::write(&config, "[retention]\ncompleted = \"2s\"\n")?;
    node.until_logged("retention changed", Duration::from_secs(30))
        .await?;
    let mut inserted = FIRST;
    let mut most_rows = 0;
    while inserted < TASKS {
        let (all, open) = rows(&queue).await?;
        most_rows = most_rows.max(all);
        if open < BACKLOG {
            let count = BATCH.min(TASKS - inserted);
            queue.insert_tasks(&noop_tasks(inserted, count)).await?;
            inserted += count;
        }
        tokio::time::sleep(PACE).await;
    }
    until_rows(&queue, "after the run", |all, open| open == 0 && all == 0).await?;
    eprintln!("{backend:?}: at most {most_rows} rows during a run of {TASKS} tasks");
    assert!(
        most_rows <= MOST_ROWS,
        "the store held {most_rows} rows at once; log:\n{}",
        node.log()
    );
    let metrics = http("GET", &format!("{admin}/metrics"), &[]).await?.body;
    assert_eq!(
        metric(&metrics, "parade_pruned_tasks_total"),
        Some(TASKS as f64),
        "{metrics}"
    );
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0);
    assert!(
        summary.lines().any(|l| {
            l.split_whitespace().take(2).collect::<Vec<_>>() == ["total", &TASKS.to_string()]
        }),
        "{summary}"
    );
    Ok(())
}

/// `[retention] completed = "0s"`: the node deletes completed tasks as it returns them, but
/// keeps one with a notify channel (its waiter reads the outcome); a reload to a longer
/// retention keeps completed tasks again, live.
async fn a_node_with_retention_zero_deletes_tasks_as_they_complete(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["noop"])?;
    let config = dir.path().join("parade.toml");
    std::fs::write(&config, "[retention]\ncompleted = \"0s\"\n")?;
    let node = Node::start(dir.path(), &url, &[])?;
    let waited = TaskData {
        notify_channel_after: Some("zero.done".into()),
        ..TaskData::new("waited", "noop")
    };
    queue.insert_tasks(&[waited]).await?;
    let waiter = queue.new_waiter(&"waited".into()).await?;
    queue.insert_tasks(&noop_tasks(0, 1_000)).await?;
    until_rows(&queue, "the tasks deleted as they complete", |all, open| {
        all == 1 && open == 0
    })
    .await?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), waiter.wait()).await??;
    assert_eq!(outcome.status_code, TaskStatusCode::Completed);
    let (code, out, _) = run(dir.path(), &["task", "wait", "waited", "--database", &url]).await?;
    assert_eq!(
        (code, out.split('\t').next()),
        (0, Some("completed")),
        "{out}"
    );

    std::fs::write(&config, "[retention]\ncompleted = \"1h\"\n")?;
    node.until_logged("retention changed", Duration::from_secs(30))
        .await?;
    queue.insert_tasks(&noop_tasks(1_000, 100)).await?;
    until_rows(&queue, "the tasks kept after the reload", |all, open| {
        all == 101 && open == 0
    })
    .await?;
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0, "{summary}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_node_with_retention_zero_deletes_tasks_as_they_complete() -> anyhow::Result<()> {
    a_node_with_retention_zero_deletes_tasks_as_they_complete(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_with_retention_zero_deletes_tasks_as_they_complete() -> anyhow::Result<()>
{
    a_node_with_retention_zero_deletes_tasks_as_they_complete(Backend::Postgres).await
}

/// `parade task prune ARGS` against `url` in `dir`: its exit code, stdout and stderr.
async fn prune(
    dir: &std::path::Path,
    url: &str,
    args: &[&str],
) -> anyhow::Result<(i32, String, String)> {
    let mut all = vec!["task", "prune", "--database", url];
    all.extend_from_slice(args);
    run(dir, &all).await
}

async fn task_prune_deletes_finished_tasks_past_an_age_and_says_how_many(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = tempfile::tempdir()?;
    let mut tasks: Vec<TaskData> = (0..4)
        .map(|i| TaskData::new(format!("done-{i}"), "work"))
        .collect();
    tasks.push(TaskData::new("pending", "later"));
    queue.insert_tasks(&tasks).await?;
    let owned = queue
        .own_tasks(&ActorId::from("test"), 4, &["work".into()], None)
        .await?;
    ensure!(owned.len() == 4, "owned {owned:?}");
    for (i, t) in owned.iter().enumerate() {
        let code = if i == 0 {
            TaskStatusCode::Aborted
        } else {
            TaskStatusCode::Completed
        };
        queue
            .return_task(&t.id, t.token, code.as_str(), code)
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // By the configuration: completed tasks are kept forever, aborted ones a week.
    std::fs::write(
        dir.path().join("parade.toml"),
        "[retention]\ncompleted = \"forever\"\n",
    )?;
    let (code, out, err) = prune(dir.path(), &url, &[]).await?;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "completed\t0\tkept forever\naborted\t0\tolder than 7days\n"
        ),
        "{err}"
    );
    let (code, out, err) = run(dir.path(), &["run", "--check"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("retention completed forever, aborted 7days\n"),
        "{out}"
    );

    let (code, out, err) = prune(
        dir.path(),
        &url,
        &["--older-than", "100ms", "--status", "aborted"],
    )
    .await?;
    assert_eq!(
        (code, out.as_str()),
        (0, "aborted\t1\tolder than 100ms\n"),
        "{err}"
    );
    let (code, out, err) = prune(dir.path(), &url, &["--older-than", "100ms"]).await?;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "completed\t3\tolder than 100ms\naborted\t0\tolder than 100ms\n"
        ),
        "{err}"
    );
    let left = queue.list_tasks(&Default::default()).await?;
    assert_eq!(
        left.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["pending"]
    );

    let (code, _, err) = prune(dir.path(), &url, &["--status", "pending"]).await?;
    assert_eq!(code, 2);
    assert!(err.contains("write completed or aborted"), "{err}");
    let (code, _, err) = prune(dir.path(), &url, &["--older-than", "0s"]).await?;
    assert_eq!(code, 2);
    assert!(err.contains("more than zero"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[retention]\n\naborted = \"soon\"\n")?;
    let bad_arg = bad.display().to_string();
    let (code, _, err) = prune(dir.path(), &url, &["--config", &bad_arg]).await?;
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{bad_arg}:3: key `retention.aborted`")),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_node_with_retention_of_2_s_keeps_the_table_small() -> anyhow::Result<()> {
    a_node_with_retention_of_2_s_keeps_the_table_small(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_with_retention_of_2_s_keeps_the_table_small() -> anyhow::Result<()> {
    a_node_with_retention_of_2_s_keeps_the_table_small(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_task_prune_deletes_finished_tasks_past_an_age_and_says_how_many(
) -> anyhow::Result<()> {
    task_prune_deletes_finished_tasks_past_an_age_and_says_how_many(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_task_prune_deletes_finished_tasks_past_an_age_and_says_how_many(
) -> anyhow::Result<()> {
    task_prune_deletes_finished_tasks_past_an_age_and_says_how_many(Backend::Postgres).await
}
