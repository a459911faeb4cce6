//! A running task cancelled with `parade task cancel` (another process) while a real node
//! runs it: a component computing in an endless loop, and one waiting in a host call (an
//! hour's sleep: a monotonic-clock subscription and a poll). The node has one worker, so the
//! next task completing shows the worker free again; the plugin's time limit is 30 minutes,
//! so only the cancel can end the task within the test.
//!
//! The node hears of the cancel by NOTIFY on PostgreSQL (its heartbeat is 20 minutes away,
//! so nothing else could stop the task). On SQLite a cancel is announced only inside the
//! process that made it, so the node finds out at its next heartbeat (1 s here), when
//! extending the deadline fails. Each test prints the time from running the cancel command
//! to the node's log line and to the next task's completion (BENCHMARKS.md, "Cancelling a
//! running task"); nothing asserts on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{self, Parade, TaskData, TaskStatusCode};

use crate::support::process::{node_dir, parade, Node};
use crate::support::Backend;

/// How long the test waits for anything before giving up with what it saw: far past the
/// figures it measures, never part of what it asserts.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the test looks at the store and the log while it measures.
const POLL: Duration = Duration::from_millis(2);
/// How long the node's CPU time is watched, before and after the cancel of a computing task.
const CPU_WINDOW: Duration = Duration::from_millis(500);

/// The node's settings: one worker; ownership for an hour, so the plugin's 30-minute time
/// limit applies; on SQLite a heartbeat every second, its only way to hear of the cancel.
fn node_config(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "[manager]\nworkers = 1\nmax_duration = \"1h\"\n",
        Backend::Sqlite => "[manager]\nworkers = 1\nmax_duration = \"1h\"\nheartbeat = \"1s\"\n",
    }
}

async fn status_code(queue: &Arc<dyn Parade>, id: &str) -> anyhow::Result<Option<TaskStatusCode>> {
    Ok(queue.get_task(&id.into()).await?.map(|t| t.status_code))
}

/// Waits until task `id` has status code `code`.
async fn until_status(
    queue: &Arc<dyn Parade>,
    id: &str,
    code: TaskStatusCode,
    node: &Node,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = status_code(queue, id).await?;
        if now == Some(code) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "task {id} is {now:?}, not {code:?}, after {PATIENCE:?}; the node's log:\n{}",
            node.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// CPU time the node process has used so far, in clock ticks (user and system, from
/// `/proc/PID/stat`).
fn cpu_ticks(node: &Node) -> anyhow::Result<u64> {
    let pid = node.child.id().context("the node exited")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no command name in /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15, so 12 and 13 after the name.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// CPU ticks the node uses in [`CPU_WINDOW`].
async fn cpu_ticks_in_a_window(node: &Node) -> anyhow::Result<u64> {
    let before = cpu_ticks(node)?;
    tokio::time::sleep(CPU_WINDOW).await;
    Ok(cpu_ticks(node)? - before)
}

/// Whether the node's log has a line of task `id` saying it was stopped.
fn logged_stopping(log: &str, id: &str) -> bool {
    log.lines()
        .any(|l| l.contains(&format!("id={id}")) && l.contains("stopped"))
}

/// Starts a task of `action` that never ends by itself, cancels it from the CLI, and checks
/// that the store ended it, the node logged stopping it and its only worker ran the next task;
/// if the component `computes`, also that the node's CPU use fell back to idle.
async fn cancel_from_the_cli_stops_the_component(
    backend: Backend,
    action: &str,
    computes: bool,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["misbehave", "echo"])?;
    std::fs::write(dir.path().join("parade.toml"), node_config(backend))?;
    let node = Node::start(dir.path(), &url, &[])?;
    node.until_logged("node started", PATIENCE).await?;

    let endless = format!("endless-{action}");
    queue
        .insert_tasks(&[TaskData::new(endless.as_str(), action)])
        .await?;
    // Owned means taken by the fetch loop; the idle worker starts it at once, long before
    // the cancel command below has even connected.
    until_status(&queue, &endless, TaskStatusCode::InProgress, &node).await?;
    queue
        .insert_tasks(&[TaskData {
            body: Some("after the cancel".into()),
            ..TaskData::new("next", "echo")
        }])
        .await?;
    ensure!(
        status_code(&queue, "next").await? != Some(TaskStatusCode::Completed),
        "the only worker ran the next task while {endless} was running"
    );
    // A computing component keeps a core busy (as much of one as the machine gives it).
    let busy = if computes {
        cpu_ticks_in_a_window(&node).await?
    } else {
        0
    };

    let asked = Instant::now();
    let cancel = parade(dir.path())
        .args(["--database", &url, "task", "cancel", &endless])
        .args(["--reason", "stopped by the test"])
        .output();
    tokio::pin!(cancel);
    let (mut cancel_ran, mut logged, mut next_done) = (None, None, None);
    while cancel_ran.is_none() || logged.is_none() || next_done.is_none() {
        ensure!(
            asked.elapsed() < PATIENCE,
            "after {PATIENCE:?}: cancel command done {cancel_ran:?}, stop logged {logged:?}, \
             next task completed {next_done:?}; the node's log:\n{}",
            node.log()
        );
        if cancel_ran.is_none() {
            if let Ok(output) = tokio::time::timeout(POLL, &mut cancel).await {
                let output = output.context("running parade task cancel")?;
                ensure!(
                    output.status.success(),
                    "parade task cancel failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert_eq!(
                    String::from_utf8_lossy(&output.stdout).trim(),
                    format!("{endless}\tcancelled")
                );
                cancel_ran = Some(asked.elapsed());
            }
        } else {
            tokio::time::sleep(POLL).await;
        }
        if logged.is_none() && logged_stopping(&node.log(), &endless) {
            logged = Some(asked.elapsed());
        }
        if next_done.is_none()
            && status_code(&queue, "next").await? == Some(TaskStatusCode::Completed)
        {
            next_done = Some(asked.elapsed());
        }
    }
    eprintln!(
        "cancel figures: {backend:?}, {action}: cancel command {:.1} ms, node's log line {:.1} ms, \
         next task completed {:.1} ms after the command started",
        ms(cancel_ran),
        ms(logged),
        ms(next_done)
    );

    // Stopped, not merely abandoned: the node's CPU falls to what an idle node uses. (A
    // component waiting in a host call costs no CPU either way; it is stopped by the same
    // drop of its call.)
    if computes {
        let idle = cpu_ticks_in_a_window(&node).await?;
        eprintln!("cancel figures: {backend:?}, {action}: node CPU ticks in {CPU_WINDOW:?}: {busy} running, {idle} after the cancel");
        ensure!(
            idle * 4 < busy,
            "the node used {idle} CPU ticks in {CPU_WINDOW:?} after the cancel, against {busy} \
             while the task ran: the component still computes"
        );
    }

    let ended = queue
        .get_task(&endless.as_str().into())
        .await?
        .context("the cancelled task is gone")?;
    assert_eq!(ended.status_code, TaskStatusCode::Aborted, "{ended:#?}");
    assert_eq!(
        ended.status.as_deref(),
        Some("cancelled: stopped by the test")
    );
    let next = queue
        .get_task(&"next".into())
        .await?
        .context("next is gone")?;
    assert_eq!(next.status.as_deref(), Some("after the cancel"));
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0);
    // Counted as cancelled, however the node learnt of it (on SQLite, from another process,
    // only at its heartbeat): not as a lost result whose task would run again.
    ensure!(
        !summary.contains("not stored")
            && summary.contains("cancelled while this node owned them (stopped, not run again): 1"),
        "the node does not report the task as cancelled: {summary}"
    );
    Ok(())
}

fn ms(elapsed: Option<Duration>) -> f64 {
    elapsed.unwrap_or_default().as_secs_f64() * 1000.0
}

async fn a_looping_task_cancelled_from_the_cli_is_stopped(backend: Backend) -> anyhow::Result<()> {
    cancel_from_the_cli_stops_the_component(backend, "loop", true).await
}

async fn a_task_waiting_in_a_host_call_cancelled_from_the_cli_is_stopped(
    backend: Backend,
) -> anyhow::Result<()> {
    cancel_from_the_cli_stops_the_component(backend, "sleep", false).await
}

/// One test per backend for each scenario above (the shared `on_both_backends!` names
/// scenarios at the crate root; these live in this module).
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(crate::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(crate::support::Backend::Sqlite).await
                }
            )*
        }
    };
}

on_both_backends!(
    a_looping_task_cancelled_from_the_cli_is_stopped,
    a_task_waiting_in_a_host_call_cancelled_from_the_cli_is_stopped,
);
