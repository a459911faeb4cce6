//! Faults a production queue meets, with real processes: a node killed with SIGKILL mid-run
//! and restarted, PostgreSQL restarted under a running node, a disk that fills up under a
//! running node, and stores that cannot be opened. Each test asserts that nothing is lost
//! and reports what it counted.
//!
//! The disk-full and read-only cases mount small tmpfs file systems, which needs root (as
//! `scripts/test.sh` runs); elsewhere they say they were not checked.
//!
//! `PARADE_SOAK=N` multiplies the tasks and the kills by N for a longer soak run, e.g.
//! `PARADE_SOAK=10 scripts/test.sh -E 'binary(faults)'`.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{self, Parade, TaskData, TaskFilter, TaskStatusCode};
use sqlx::Connection;
use support::process::{node_dir, run, Node};
use support::Backend;

/// `n`, times `PARADE_SOAK` when set.
fn soak(n: usize) -> usize {
    let factor = std::env::var("PARADE_SOAK")
        .ok()
        .and_then(|f| f.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    n * factor
}

/// Short ownership, so tasks of a killed node are offered again within seconds.
const FAST_EXPIRY: &str = "[manager]\nmax_duration = \"2s\"\nerr_wait_time = \"200ms\"\n\
                           wait_time = \"100ms\"\nmax_tasks = 100\nchannel_size = 200\n\
                           return_batch = 50\n";

fn echo_tasks(prefix: &str, count: usize) -> Vec<TaskData> {
    (0..count)
        .map(|i| TaskData {
            body: Some(format!("{prefix}{i}")),
            ..TaskData::new(format!("{prefix}{i}"), "echo")
        })
        .collect()
}

async fn all_tasks(queue: &Arc<dyn Parade>) -> anyhow::Result<Vec<TaskData>> {
    Ok(queue
        .list_tasks(&TaskFilter {
            limit: Some(1_000_000),
            ..TaskFilter::default()
        })
        .await?)
}

async fn count(queue: &Arc<dyn Parade>, code: TaskStatusCode) -> anyhow::Result<usize> {
    Ok(all_tasks(queue)
        .await?
        .iter()
        .filter(|t| t.status_code == code)
        .count())
}

/// Waits until every task is completed, failing with the counts if that takes too long.
async fn until_all_completed(
    queue: &Arc<dyn Parade>,
    total: usize,
    timeout: Duration,
    node: &Node,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = count(queue, TaskStatusCode::Completed).await.unwrap_or(0);
        if done == total {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{done} of {total} tasks completed after {timeout:?}; node log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sigkill_mid_run_then_restart_loses_nothing(backend: Backend) -> anyhow::Result<()> {
    let total = soak(20_000);
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&echo_tasks("k", total)).await?;
    let dir = node_dir(&["echo"])?;
    std::fs::write(dir.path().join("parade.toml"), FAST_EXPIRY)?;

    let mut kills = 0;
    let mut in_flight_at_kills: HashSet<String> = HashSet::new();
    for _ in 0..soak(2) {
        let node = Node::start(dir.path(), &url, &[])?;
        let before = count(&queue, TaskStatusCode::Completed).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&queue, TaskStatusCode::Completed).await? < before + 1500 {
            ensure!(
                Instant::now() < deadline,
                "no progress; log:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node.kill().await?;
        kills += 1;
        // What the dead node held: the only tasks allowed to run twice.
        for task in all_tasks(&queue).await? {
            if task.status_code == TaskStatusCode::InProgress {
                in_flight_at_kills.insert(task.id.0);
            }
        }
    }
    // A node holds at most channel_size + workers + return_batch unsettled tasks (200 + 5 +
    // 50 here): that is all a crash can make run again.
    assert!(
        in_flight_at_kills.len() <= kills * 255,
        "{} tasks were in flight at {kills} kills",
        in_flight_at_kills.len()
    );
    let survivor = Node::start(dir.path(), &url, &[])?;
    until_all_completed(&queue, total, Duration::from_secs(120), &survivor).await?;
    survivor.stop().await?;

    let tasks = all_tasks(&queue).await?;
    assert_eq!(tasks.len(), total);
    let mut ran_twice = 0;
    for task in &tasks {
        assert_eq!(task.status_code, TaskStatusCode::Completed, "{task:#?}");
        assert_eq!(task.status.as_deref(), task.body.as_deref(), "{task:#?}");
        if task.num_tries > 1 {
            ran_twice += 1;
            assert!(
                in_flight_at_kills.contains(&task.id.0),
                "{} ran {} times but was not in flight at a kill",
                task.id,
                task.num_tries
            );
        }
    }
    eprintln!(
        "{backend:?}: {total} tasks, {kills} kills; {} in flight at the kills, {ran_twice} ran twice; all completed",
        in_flight_at_kills.len()
    );
    Ok(())
}

support::on_both_backends!(sigkill_mid_run_then_restart_loses_nothing);

/// A PostgreSQL cluster of the test's own, which it may restart.
struct OwnCluster {
    dir: PathBuf,
    admin_url: String,
}

impl OwnCluster {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster.sh")
    }

    async fn start() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("parade-fault-pg-{}", uuid::Uuid::new_v4().simple()));
        let output = tokio::process::Command::new(Self::script())
            .args(["start", &dir.display().to_string()])
            .output()
            .await?;
        ensure!(
            output.status.success(),
            "starting a cluster: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let admin_url = String::from_utf8(output.stdout)?.trim().to_owned();
        Ok(OwnCluster { dir, admin_url })
    }

    async fn restart(&self, mode: &str) -> anyhow::Result<()> {
        let status = tokio::process::Command::new(Self::script())
            .args(["restart", &self.dir.display().to_string(), mode])
            .status()
            .await?;
        ensure!(status.success(), "restarting the cluster ({mode}) failed");
        Ok(())
    }
}

impl OwnCluster {
    /// Stops the cluster (a fast shutdown, which disconnects every client), keeps it down for
    /// `down`, and starts it again with the same settings (`pg_ctl restart` of a stopped
    /// cluster starts it with the options it last ran with).
    async fn outage(&self, down: Duration) -> anyhow::Result<()> {
        let pid_file = self.dir.join("data/postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)?
            .lines()
            .next()
            .context("an empty postmaster.pid")?
            .trim()
            .to_owned();
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await?;
        ensure!(status.success(), "kill -INT {pid} (the postmaster) failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_file.exists() {
            ensure!(Instant::now() < deadline, "PostgreSQL did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(down).await;
        self.restart("fast").await
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .args(["stop", &self.dir.display().to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_under_a_running_node_lose_nothing() -> anyhow::Result<()> {
    let total = soak(20_000);
    let cluster = OwnCluster::start().await?;
    let url = cluster.admin_url.clone();
    let dir = node_dir(&["echo"])?;
    let (code, _, err) = run(dir.path(), &["migrate", "--database", &url]).await?;
    ensure!(code == 0, "migrate: {err}");
    std::fs::write(dir.path().join("parade.toml"), FAST_EXPIRY)?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&echo_tasks("r", total)).await?;

    let node = Node::start(dir.path(), &url, &[])?;
    for mode in ["fast", "immediate"] {
        let before = count(&queue, TaskStatusCode::Completed).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&queue, TaskStatusCode::Completed).await.unwrap_or(0) < before + 2000 {
            ensure!(
                Instant::now() < deadline,
                "no progress; log:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.restart(mode).await?;
    }
    until_all_completed(&queue, total, Duration::from_secs(120), &node).await?;
    let log = node.log();
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0);
    let tasks = all_tasks(&queue).await?;
    let ran_again = tasks.iter().filter(|t| t.num_tries > 1).count();
    assert!(tasks
        .iter()
        .all(|t| t.status_code == TaskStatusCode::Completed));
    eprintln!(
        "{total} tasks, 2 PostgreSQL restarts (fast, immediate); {ran_again} ran again; all completed\n{summary}"
    );
    // The node said what happened rather than dying.
    assert!(
        log.contains("WARN") || log.contains("ERROR"),
        "the restarts went unreported:\n{log}"
    );
    Ok(())
}

/// PostgreSQL goes away for 20 s under a running node whose ownerships last a minute: the
/// node keeps its finished results until the store is back and returns them then, so every
/// task completes on its first try (a result dropped during the outage would make its task
/// run again once its ownership expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_second_postgres_outage_loses_no_result_and_runs_nothing_twice(
) -> anyhow::Result<()> {
    let total = soak(20_000);
    let cluster = OwnCluster::start().await?;
    let url = cluster.admin_url.clone();
    let dir = node_dir(&["echo"])?;
    let (code, _, err) = run(dir.path(), &["migrate", "--database", &url]).await?;
    ensure!(code == 0, "migrate: {err}");
    std::fs::write(
        dir.path().join("parade.toml"),
        "[manager]\nmax_duration = \"60s\"\nerr_wait_time = \"200ms\"\nwait_time = \"100ms\"\n\
         max_tasks = 100\nchannel_size = 200\nreturn_batch = 50\n",
    )?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&echo_tasks("o", total)).await?;

    let node = Node::start(dir.path(), &url, &[])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&queue, TaskStatusCode::Completed).await? < 2000 {
        ensure!(
            Instant::now() < deadline,
            "no progress; log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.outage(Duration::from_secs(20)).await?;
    until_all_completed(&queue, total, Duration::from_secs(120), &node).await?;
    let log = node.log();
    let (code, summary) = node.stop().await?;
    assert_eq!(code, 0);
    let tasks = all_tasks(&queue).await?;
    assert_eq!(tasks.len(), total);
    let ran_twice: Vec<_> = tasks.iter().filter(|t| t.num_tries != 1).collect();
    for task in &tasks {
        assert_eq!(task.status_code, TaskStatusCode::Completed, "{task:#?}");
        assert_eq!(task.status.as_deref(), task.body.as_deref(), "{task:#?}");
    }
    assert!(
        ran_twice.is_empty(),
        "{} tasks ran more than once, e.g. {:#?}; node log:\n{log}",
        ran_twice.len(),
        ran_twice.first()
    );
    assert!(
        log.contains("returning results failed"),
        "the outage went unnoticed:\n{log}"
    );
    eprintln!("{total} tasks, a 20 s PostgreSQL outage; none ran twice; all completed\n{summary}");
    Ok(())
}

/// A small tmpfs mounted on a fresh folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (as `mount -o size=` takes it); `None` where this process may
    /// not mount file systems.
    fn mount(size: &str) -> anyhow::Result<Option<Tmpfs>> {
        let dir = tempfile::tempdir()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ok(mounted.then_some(Tmpfs { dir }))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only (`false`) or read-write (`true`): read-only stops root too.
    fn set_writable(&self, writable: bool) -> anyhow::Result<()> {
        let status = std::process::Command::new("mount")
            .args(["-o", if writable { "remount,rw" } else { "remount,ro" }])
            .arg(self.dir.path())
            .status()?;
        ensure!(
            status.success(),
            "remounting {} failed",
            self.dir.path().display()
        );
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
    }
}

/// The waiters' shared listening connection is cut by a PostgreSQL restart. Every waiter
/// must still hear of its task: those ended before the restart, and those ended by another
/// connection right after it, while the listener may not be listening again yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_miss_no_task_across_a_postgres_restart() -> anyhow::Result<()> {
    let cluster = OwnCluster::start().await?;
    let url = cluster.admin_url.clone();
    queue::migrate(&url).await?;
    let waited = queue::open(&url).await?;
    let tasks: Vec<TaskData> = (0..40)
        .map(|i| TaskData {
            notify_channel_after: Some("restart".into()),
            ..TaskData::new(format!("w{i}"), "wait")
        })
        .collect();
    waited.insert_tasks(&tasks).await?;
    let mut waiters = Vec::new();
    for task in &tasks {
        waiters.push(waited.new_waiter(&task.id).await?);
    }
    let owned = waited
        .own_tasks(&"owner".into(), 40, &["wait".into()], None)
        .await?;
    ensure!(owned.len() == 40, "owned {} of 40", owned.len());
    let (before, after) = owned.split_at(20);
    for task in before {
        waited
            .return_task(&task.id, task.token, "before", TaskStatusCode::Completed)
            .await?;
    }
    cluster.outage(Duration::from_millis(500)).await?;
    // Another client ends the rest as soon as the server answers again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let finisher = loop {
        match queue::open(&url).await {
            Ok(store) => break store,
            Err(e) => {
                ensure!(
                    Instant::now() < deadline,
                    "PostgreSQL did not come back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    for task in after {
        finisher
            .return_task(&task.id, task.token, "after", TaskStatusCode::Aborted)
            .await?;
    }
    for (i, waiter) in waiters.iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(30), waiter.wait())
            .await
            .with_context(|| format!("waiter of w{i} missed its task"))??;
        let expected = if before.iter().any(|t| t.id == *waiter.task_id()) {
            ("before", TaskStatusCode::Completed)
        } else {
            ("after", TaskStatusCode::Aborted)
        };
        ensure!(
            (outcome.status.as_str(), outcome.status_code) == expected,
            "waiter of {} heard {outcome:?}",
            waiter.task_id()
        );
    }
    Ok(())
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return Ok(()), // ENOSPC
            Err(e) => return Err(e.into()),
        }
    }
}

/// The disk under a SQLite queue fills up while a node works through it, then space comes
/// back: the node reports the failures and goes on, and the database is whole, with every
/// task completed with its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_up_under_a_running_node_loses_nothing() -> anyhow::Result<()> {
    let Some(fs) = Tmpfs::mount("96m")? else {
        eprintln!("cannot mount a tmpfs here (not root?): the disk-full case was not checked");
        return Ok(());
    };
    let dir = node_dir(&["echo"])?;
    std::fs::write(dir.path().join("parade.toml"), FAST_EXPIRY)?;
    let url = format!("sqlite://{}", fs.path().join("queue.db").display());
    let total = soak(50_000);
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&echo_tasks("full-", total)).await?;

    let node = Node::start(dir.path(), &url, &["--config", "parade.toml"])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;
    let filler = fs.path().join("filler");
    fill(&filler)?;
    let done_when_full = count(&queue, TaskStatusCode::Completed).await?;
    ensure!(
        done_when_full < total,
        "the node finished before the disk filled up"
    );
    node.until_logged("database or disk is full", Duration::from_secs(30))
        .await?;
    // Full for a while: the node keeps trying, and keeps running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut node = node;
    ensure!(
        node.child.try_wait()?.is_none(),
        "the node exited on a full disk:\n{}",
        node.log()
    );
    std::fs::remove_file(&filler)?;
    until_all_completed(&queue, total, Duration::from_secs(120), &node).await?;
    let log = node.log();
    node.stop().await?;

    let tasks = all_tasks(&queue).await?;
    assert_eq!(tasks.len(), total);
    for t in &tasks {
        assert_eq!(t.status.as_deref(), Some(t.id.as_str()), "{t:#?}");
    }
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(check, "ok");
    eprintln!(
        "disk full after {done_when_full} of {total} tasks; {} full-disk errors logged; all completed",
        log.matches("database or disk is full").count()
    );
    Ok(())
}

/// `parade run` against `url` must exit 2 saying `says`.
async fn refuses(dir: &Path, url: &str, says: &[&str]) -> anyhow::Result<()> {
    let (code, out, err) = run(dir, &["run", "--until-idle", "--database", url]).await?;
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    for text in says {
        assert!(err.contains(text), "expected {text:?} in:\n{err}");
    }
    Ok(())
}

#[tokio::test]
async fn stores_that_cannot_be_opened_fail_clearly_and_keep_their_data() -> anyhow::Result<()> {
    let dir = node_dir(&["echo"])?;

    // A read-only SQLite file: a clear error, and the tasks in it untouched.
    let path = dir.path().join("readonly.db");
    let url = format!("sqlite://{}", path.display());
    {
        let queue = queue::open(&url).await?;
        queue.insert_tasks(&echo_tasks("ro", 3)).await?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    let running_as_root = std::fs::OpenOptions::new().append(true).open(&path).is_ok();
    if !running_as_root {
        refuses(dir.path(), &url, &["readonly.db", "cannot be written"]).await?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let queue = queue::open(&url).await?;
        assert_eq!(count(&queue, TaskStatusCode::Pending).await?, 3);
    } else if let Some(fs) = Tmpfs::mount("8m")? {
        // Root writes read-only files, but not on a read-only file system.
        let path = fs.path().join("readonly.db");
        let url = format!("sqlite://{}", path.display());
        // Through the CLI, so no connection of this process keeps the file open.
        for id in ["ro0", "ro1", "ro2"] {
            let (code, _, err) = run(
                dir.path(),
                &[
                    "--database",
                    &url,
                    "task",
                    "add",
                    "--action",
                    "echo",
                    "--id",
                    id,
                ],
            )
            .await?;
            ensure!(code == 0, "{err}");
        }
        let before = std::fs::read(&path)?;
        fs.set_writable(false)?;
        refuses(dir.path(), &url, &["readonly.db", "cannot be written"]).await?;
        assert_eq!(std::fs::read(&path)?, before, "the file changed");
        fs.set_writable(true)?;
        let queue = queue::open(&url).await?;
        assert_eq!(count(&queue, TaskStatusCode::Pending).await?, 3);
    } else {
        eprintln!("running as root without leave to mount: the read-only case was not checked");
    }

    // A new queue on a full disk.
    if let Some(fs) = Tmpfs::mount("1m")? {
        fill(&fs.path().join("filler"))?;
        let url = format!("sqlite://{}", fs.path().join("new.db").display());
        refuses(dir.path(), &url, &["new.db", "database or disk is full"]).await?;
    } else {
        eprintln!("cannot mount a tmpfs here (not root?): the full-disk start was not checked");
    }

    // A directory where the file should be.
    let folder = dir.path().join("a-folder.db");
    std::fs::create_dir(&folder)?;
    refuses(
        dir.path(),
        &format!("sqlite://{}", folder.display()),
        &["a-folder.db", "is a directory"],
    )
    .await?;

    // A PostgreSQL server that is not there.
    refuses(
        dir.path(),
        "postgres://parade@localhost/parade?host=/nonexistent-socket-dir&port=5432",
        &["cannot open the queue at postgres://parade@localhost/parade"],
    )
    .await?;

    // An unknown scheme.
    refuses(
        dir.path(),
        "mysql://x/y",
        &["mysql://x/y", "expected postgres://"],
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_nodes_killed_repeatedly_loses_nothing() -> anyhow::Result<()> {
    let total = soak(20_000);
    let url = Backend::Postgres.fresh_url().await?;
    let queue = queue::open(&url).await?;
    queue.insert_tasks(&echo_tasks("m", total)).await?;
    let dir = node_dir(&["echo"])?;
    std::fs::write(dir.path().join("parade.toml"), FAST_EXPIRY)?;
    let steady = [
        Node::start(dir.path(), &url, &[])?,
        Node::start(dir.path(), &url, &[])?,
    ];
    let mut in_flight_at_kills: HashSet<String> = HashSet::new();
    let mut kills = 0;
    for _ in 0..soak(3) {
        let victim = Node::start(dir.path(), &url, &[])?;
        victim
            .until_logged("node started", Duration::from_secs(60))
            .await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before: HashSet<String> = in_progress(&queue).await?;
        victim.kill().await?;
        kills += 1;
        // Only the victim's tasks can run twice; the steady nodes' may be in this set too,
        // which keeps the check conservative.
        in_flight_at_kills.extend(before);
        in_flight_at_kills.extend(in_progress(&queue).await?);
    }
    until_all_completed(&queue, total, Duration::from_secs(120), &steady[0]).await?;
    for node in steady {
        node.stop().await?;
    }
    let tasks = all_tasks(&queue).await?;
    let ran_twice = tasks.iter().filter(|t| t.num_tries > 1).count();
    for task in &tasks {
        assert_eq!(task.status_code, TaskStatusCode::Completed, "{task:#?}");
        assert!(
            task.num_tries == 1 || in_flight_at_kills.contains(&task.id.0),
            "{} ran {} times but was not in flight at a kill",
            task.id,
            task.num_tries
        );
    }
    eprintln!("3 nodes on PostgreSQL, {total} tasks, {kills} kills of one of them; {ran_twice} ran twice; all completed");
    Ok(())
}

async fn in_progress(queue: &Arc<dyn Parade>) -> anyhow::Result<HashSet<String>> {
    Ok(all_tasks(queue)
        .await?
        .into_iter()
        .filter(|t| t.status_code == TaskStatusCode::InProgress)
        .map(|t| t.id.0)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_rewritten_many_times_a_second_fails_no_task() -> anyhow::Result<()> {
    let total = soak(3000);
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["versioned"])?;
    let component = dir.path().join("plugins/versioned.wasm");
    let v1 = std::fs::read(&component)?;
    let mut v2 = v1.clone();
    let marker = b"parade-version-1";
    let at = v2
        .windows(marker.len())
        .position(|w| w == marker)
        .context("no version marker")?;
    v2[at + marker.len() - 1] = b'2';
    let node = Node::start(dir.path(), &url, &[])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;
    let storm = tokio::spawn(async move {
        // Rewrites in place (not by rename), 20 times a second: readers can meet half a file.
        // It ends on version 2, so the storm must end in a swap to it.
        for i in 0..60 {
            let bytes = if i % 2 == 0 { &v1 } else { &v2 };
            std::fs::write(&component, bytes)?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    });
    for batch in 0..30 {
        let tasks: Vec<TaskData> = (0..total / 30)
            .map(|i| TaskData::new(format!("s{batch}-{i}"), "versioned"))
            .collect();
        queue.insert_tasks(&tasks).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    storm.await??;
    until_all_completed(&queue, total, Duration::from_secs(60), &node).await?;
    node.until_logged("plugin replaced", Duration::from_secs(10))
        .await?;
    // Once the storm has settled, the last version written serves: wait until probes see it
    // twice in a row (a reload that started mid-storm may still be finishing).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut probes, mut in_a_row) = (0, 0);
    while in_a_row < 2 {
        ensure!(
            Instant::now() < deadline,
            "version 2 never served; log:\n{}",
            node.log()
        );
        probes += 1;
        let id = format!("probe-{probes}");
        queue
            .insert_tasks(&[TaskData::new(id.as_str(), "versioned")])
            .await?;
        let status = loop {
            let stored = queue.get_task(&id.as_str().into()).await?;
            if let Some(t) = stored.filter(|t| t.status_code.is_final()) {
                break t.status;
            }
            ensure!(
                Instant::now() < deadline,
                "{id} never ran; log:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        in_a_row = if status.as_deref() == Some("parade-version-2") {
            in_a_row + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total = total + probes;
    let after: Vec<TaskData> = (0..10)
        .map(|i| TaskData::new(format!("after-{i}"), "versioned"))
        .collect();
    queue.insert_tasks(&after).await?;
    let total = total + after.len();
    until_all_completed(&queue, total, Duration::from_secs(60), &node).await?;
    for task in &after {
        let stored = queue.get_task(&task.id).await?.context("task gone")?;
        assert_eq!(stored.status.as_deref(), Some("parade-version-2"));
    }
    let log = node.log();
    node.stop().await?;
    let tasks = all_tasks(&queue).await?;
    let on_v2 = tasks
        .iter()
        .filter(|t| t.status.as_deref() == Some("parade-version-2"))
        .count();
    for task in &tasks {
        assert_eq!(task.num_tries, 1, "{task:#?}");
        let status = task.status.as_deref().unwrap_or("");
        assert!(
            status == "parade-version-1" || status == "parade-version-2",
            "{task:#?}"
        );
    }
    let reloads = log.matches("plugin replaced").count();
    let rejected = log.matches("reload rejected").count();
    eprintln!("reload storm: 60 rewrites in 3 s, {reloads} swaps, {rejected} rejected (half-written), {total} tasks all completed, {on_v2} on version 2");
    assert!(reloads > 0, "no reload happened:\n{log}");
    Ok(())
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_faults_under_load_stay_contained() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = node_dir(&["echo", "misbehave"])?;
    std::fs::write(
        dir.path().join("plugins/misbehave.toml"),
        // A timeout well past what a hog needs to reach its memory limit on a loaded machine
        // (at 1 s one was once timed out first), so each fault ends as its own kind.
        "memory = \"32MiB\"\ntimeout = \"3s\"\non_failure = \"abort\"\n",
    )?;
    let node = Node::start(dir.path(), &url, &["--workers", "8"])?;
    node.until_logged("node started", Duration::from_secs(60))
        .await?;
    let pid = node.child.id().context("node exited")?;

    // Hundreds of faults of every kind, mixed with ordinary work.
    let mut tasks = echo_tasks("before", 1000);
    for i in 0..300 {
        let action = ["trap", "hog", "recurse"][i % 3];
        tasks.push(TaskData::new(format!("fault-{action}-{i}"), action));
    }
    for i in 0..8 {
        tasks.push(TaskData::new(format!("fault-loop-{i}"), "loop"));
    }
    queue.insert_tasks(&tasks).await?;
    let total = tasks.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak_rss: f64 = 0.0;
    loop {
        peak_rss = peak_rss.max(rss_mib(pid)?);
        let done = all_tasks(&queue)
            .await?
            .iter()
            .filter(|t| t.status_code.is_final())
            .count();
        if done == total {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{done} of {total} ended; log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every fault ended only its own task, with a status that says which.
    for task in all_tasks(&queue).await? {
        let status = task.status.clone().unwrap_or_default();
        if task.action == "echo" {
            assert_eq!(task.status_code, TaskStatusCode::Completed, "{task:#?}");
        } else {
            assert_eq!(task.status_code, TaskStatusCode::Aborted, "{task:#?}");
            let expected = match task.action.as_str() {
                "trap" => "unreachable",
                "hog" => "out of memory",
                "recurse" => "stack overflow",
                _ => "timed out",
            };
            assert!(status.contains(expected), "{task:#?}");
        }
    }
    // The node still works afterwards, and its memory stayed bounded.
    queue.insert_tasks(&echo_tasks("after", 1000)).await?;
    until_all_completed(&queue, 2000, Duration::from_secs(60), &node).await?;
    peak_rss = peak_rss.max(rss_mib(pid)?);
    node.stop().await?;
    eprintln!(
        "{} faults and 2000 ordinary tasks; peak RSS {peak_rss:.0} MiB",
        total - 1000
    );
    assert!(peak_rss < 512.0, "peak RSS {peak_rss:.0} MiB");
    Ok(())
}
