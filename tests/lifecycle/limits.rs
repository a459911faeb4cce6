//! Concurrency limits with real processes: two `parade run` nodes on one PostgreSQL, serving
//! a plugin whose manifest says `concurrency = 3` and `node_concurrency = 2`, work through
//! 500 tasks while the test samples the store: never more than 3 of the plugin's tasks are
//! in progress with an unexpired ownership, never more than 2 of them owned by one node,
//! and every task runs exactly once. The dashboard of one node shows both limits and their
//! use while the run goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::ensure;
use parade_host::queue::{self, TaskData, TaskFilter, TaskStatusCode};

use crate::support::process::{http, node_dir, Node};
use crate::support::Backend;

const TASKS: usize = 500;
/// Rounds of `burn` per task: a few milliseconds each, so tasks overlap.
const ROUNDS: &str = "3000000";
/// How long the run may take before the test gives up with what it saw.
const PATIENCE: Duration = Duration::from_secs(180);

/// The burn plugin's tasks in progress with an unexpired ownership, by owner.
const IN_PROGRESS_BY_OWNER: &str = "SELECT actor_id::text, count(*) FROM tasks \
     WHERE action = 'burn' AND status_code = 'in-progress' \
       AND (action_deadline IS NULL OR action_deadline >= now()) \
     GROUP BY actor_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_never_exceed_the_plugin_s_concurrency() -> anyhow::Result<()> {
    let url = Backend::Postgres.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let pool = sqlx::PgPool::connect(&url).await?;
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| TaskData {
            body: Some(ROUNDS.into()),
            ..TaskData::new(format!("burn-{i:03}"), "burn")
        })
        .collect();
    queue.insert_tasks(&tasks).await?;
    let dir = node_dir(&["burn"])?;
    std::fs::write(
        dir.path().join("plugins/burn.toml"),
        "concurrency = 3\nnode_concurrency = 2\n",
    )?;
    // More workers than the limits allow, so only the limits hold the nodes back.
    std::fs::write(
        dir.path().join("parade.toml"),
        "[manager]\nworkers = 4\nmax_tasks = 10\n",
    )?;
    let a = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let b = Node::start(dir.path(), &url, &[])?;

    let admin = a.admin_url().await?;
    let started = Instant::now();
    let mut dashboard_checked = false;
    let (mut samples, mut most, mut most_by_one) = (0u64, 0i64, 0i64);
    let mut owners_seen: HashMap<String, i64> = HashMap::new();
    loop {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(IN_PROGRESS_BY_OWNER)
            .fetch_all(&pool)
            .await?;
        samples += 1;
        let total: i64 = rows.iter().map(|(_, n)| n).sum();
        most = most.max(total);
        for (owner, n) in rows {
            most_by_one = most_by_one.max(n);
            let seen = owners_seen.entry(owner.unwrap_or_default()).or_default();
            *seen = (*seen).max(n);
        }
        let done = queue
            .summary()
            .await?
            .counts
            .iter()
            .filter(|c| c.status_code == TaskStatusCode::Completed)
            .map(|c| c.count)
            .sum::<u64>();
        if done == TASKS as u64 {
            break;
        }
        if !dashboard_checked && done >= 10 {
            check_dashboard(&admin).await?;
            dashboard_checked = true;
        }
        ensure!(
            started.elapsed() < PATIENCE,
            "{done} of {TASKS} done after {PATIENCE:?}; log of a:\n{}\nlog of b:\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "{TASKS} tasks in {:?}: {samples} samples, at most {most} in progress, at most \
         {most_by_one} on one node ({owners_seen:?})",
        started.elapsed()
    );
    let (code_a, _) = a.stop().await?;
    let (code_b, _) = b.stop().await?;
    assert_eq!((code_a, code_b), (0, 0));

    assert!(
        most <= 3,
        "{most} tasks in progress at once, concurrency = 3"
    );
    assert!(
        most_by_one <= 2,
        "{most_by_one} tasks on one node at once, node_concurrency = 2"
    );
    assert!(most >= 1, "no sample saw a task running");
    assert!(dashboard_checked);
    for t in queue.list_tasks(&TaskFilter::default()).await? {
        assert_eq!(t.status_code, TaskStatusCode::Completed, "{t:#?}");
        assert_eq!(t.num_tries, 1, "{t:#?} ran more than once");
    }
    Ok(())
}

/// The overview shows the burn plugin's limits, with no more in use than they allow, in its
/// JSON and on its page, and `/metrics` has them.
async fn check_dashboard(admin: &str) -> anyhow::Result<()> {
    let overview: serde_json::Value = serde_json::from_str(
        &http("GET", &format!("{admin}/api/overview"), &[])
            .await?
            .body,
    )?;
    let burn = overview["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|p| p["name"] == "burn"))
        .ok_or_else(|| anyhow::anyhow!("no burn plugin in {overview}"))?;
    let concurrency = &burn["concurrency"];
    assert_eq!(concurrency["limit"], 3, "{concurrency}");
    assert_eq!(concurrency["node_limit"], 2, "{concurrency}");
    let in_use = |key: &str| concurrency[key].as_u64().unwrap_or(u64::MAX);
    assert!(in_use("in_progress") <= 3, "{concurrency}");
    assert!(in_use("node_held") <= 2, "{concurrency}");
    let metrics = http("GET", &format!("{admin}/metrics"), &[]).await?.body;
    for sample in [
        "parade_plugin_concurrency_limit{plugin=\"burn\",scope=\"store\"} 3",
        "parade_plugin_concurrency_limit{plugin=\"burn\",scope=\"node\"} 2",
        "parade_plugin_concurrency_in_use{plugin=\"burn\",scope=\"store\"} ",
        "parade_plugin_concurrency_in_use{plugin=\"burn\",scope=\"node\"} ",
    ] {
        assert!(metrics.contains(sample), "no {sample} in {metrics}");
    }
    let page = http("GET", &format!("{admin}/"), &[]).await?.body;
    assert!(
        page.contains(" of 3 in the store, ") && page.contains(" of 2 on this node"),
        "the plugins table shows the limits: {page}"
    );
    Ok(())
}
