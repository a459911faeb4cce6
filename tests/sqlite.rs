//! What only the SQLite backend has to prove: several pools (as several processes) on one
//! file, the default store, and clear errors for files it cannot use. Its queue semantics
//! are covered by the conformance suite.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use parade_host::queue::{
    ActorId, Error, Parade, SqliteParade, TaskData, TaskFilter, TaskId, TaskStatusCode,
};

fn url_of(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_on_one_file_perform_every_task_exactly_once() -> anyhow::Result<()> {
    const TASKS: usize = 2000;
    let url = url_of(&support::fresh_sqlite_path());
    let first = Arc::new(SqliteParade::open(&url).await?);
    let second = Arc::new(SqliteParade::open(&url).await?);
    let tasks: Vec<TaskData> = (0..TASKS)
        .map(|i| TaskData::new(format!("t{i}"), "work"))
        .collect();
    first.insert_tasks(&tasks).await?;

    let mut owners = Vec::new();
    for (n, store) in [first.clone(), second.clone(), first, second]
        .into_iter()
        .enumerate()
    {
        owners.push(tokio::spawn(async move {
            let actor = ActorId::from(format!("owner-{n}"));
            let mut performed = Vec::new();
            loop {
                let batch = store
                    .own_tasks(&actor, 25, &["work".into()], Some(Duration::from_secs(60)))
                    .await?;
                if batch.is_empty() {
                    return anyhow::Ok(performed);
                }
                for t in batch {
                    store
                        .return_task(&t.id, t.token, "ok", TaskStatusCode::Completed)
                        .await?;
                    performed.push(t.id.0);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for owner in owners {
        all.extend(owner.await??);
    }
    assert_eq!(all.len(), TASKS, "a task was performed twice or not at all");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), TASKS);
    Ok(())
}

#[tokio::test]
async fn waiter_sees_task_finished_through_another_pool() -> anyhow::Result<()> {
    let url = url_of(&support::fresh_sqlite_path());
    let watcher = SqliteParade::open(&url).await?;
    let worker = SqliteParade::open(&url).await?;
    watcher
        .insert_tasks(&[TaskData {
            notify_channel_after: Some("done".into()),
            ..TaskData::new("job", "work")
        }])
        .await?;
    let waiter = watcher.new_waiter(&TaskId::from("job")).await?;
    let owned = worker
        .own_tasks(&ActorId::from("w"), 1, &["work".into()], None)
        .await?;
    worker
        .return_task(
            &owned[0].id,
            owned[0].token,
            "finished elsewhere",
            TaskStatusCode::Completed,
        )
        .await?;
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiter.wait()).await??;
    assert_eq!(outcome.status, "finished elsewhere");
    Ok(())
}

/// Whether the database file itself, read without its WAL, holds task `id`. A copy taken
/// while a checkpoint writes may be torn: that reads as "not yet".
async fn database_file_holds(path: &std::path::Path, id: &str) -> bool {
    use sqlx::Connection;
    let copy_dir = tempfile::tempdir().expect("creating a temporary directory");
    let copy = copy_dir.path().join("copy.db");
    if std::fs::copy(path, &copy).is_err() {
        return false;
    }
    let Ok(mut conn) = sqlx::SqliteConnection::connect(&url_of(&copy)).await else {
        return false;
    };
    let found: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE id = ?1")
        .bind(id)
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    matches!(found, Ok(1))
}

// A commit never checkpoints the WAL itself (below SQLite's own mark, which bounds the WAL
// should the background fall behind): the checkpoints run behind the writers. So a small
// write must still reach the database file while the store stays open and idle.
#[tokio::test]
async fn a_small_write_reaches_the_database_file_in_the_background() -> anyhow::Result<()> {
    let path = support::fresh_sqlite_path();
    let store = SqliteParade::open(&url_of(&path)).await?;
    store
        .insert_tasks(&[TaskData::new("small", "work")])
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !database_file_holds(&path, "small").await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "30 s after its commit the task was still only in the WAL of {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    Ok(())
}

#[tokio::test]
async fn in_memory_store_works() -> anyhow::Result<()> {
    let store = SqliteParade::open("sqlite::memory:").await?;
    store.insert_tasks(&[TaskData::new("m", "work")]).await?;
    let owned = store
        .own_tasks(&ActorId::from("a"), 5, &["work".into()], None)
        .await?;
    assert_eq!(owned.len(), 1);
    Ok(())
}

fn assert_open_error(result: Result<SqliteParade, Error>, path: &str, problem: &str) {
    match result {
        Err(e @ Error::OpenStore { .. }) => {
            let message = e.to_string();
            support::assert_says_each_thing_once(e.into());
            assert!(message.contains(path), "{message} should name {path}");
            assert!(
                message.contains(problem),
                "{message} should say {problem:?}"
            );
        }
        Err(other) => panic!("expected OpenStore naming {path}, got {other:?}"),
        Ok(_) => panic!("opening {path} should fail"),
    }
}

#[tokio::test]
async fn directory_path_is_a_clear_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().display().to_string();
    assert_open_error(
        SqliteParade::open(&format!("sqlite://{path}")).await,
        &path,
        "directory",
    );
    Ok(())
}

#[tokio::test]
async fn file_that_is_not_sqlite_is_a_clear_error_and_stays_intact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.db");
    let content = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content)?;
    assert_open_error(
        SqliteParade::open(&url_of(&path)).await,
        &path.display().to_string(),
        "not a database",
    );
    assert_eq!(
        std::fs::read_to_string(&path)?,
        content,
        "the file was modified"
    );
    Ok(())
}

#[tokio::test]
async fn database_from_a_newer_parade_is_a_clear_error() -> anyhow::Result<()> {
    let path = support::fresh_sqlite_path();
    let store = SqliteParade::open(&url_of(&path)).await?;
    store.insert_tasks(&[TaskData::new("kept", "work")]).await?;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, x'00', 0)",
    )
    .execute(store.pool())
    .await?;
    drop(store);
    assert_open_error(
        SqliteParade::open(&url_of(&path)).await,
        &path.display().to_string(),
        "newer Parade",
    );
    Ok(())
}

#[tokio::test]
async fn read_only_open_of_a_missing_file_is_a_clear_error() -> anyhow::Result<()> {
    let path = support::fresh_sqlite_path();
    assert_open_error(
        SqliteParade::open(&format!("{}?mode=ro", url_of(&path))).await,
        &path.display().to_string(),
        "unable to open",
    );
    Ok(())
}

#[tokio::test]
async fn read_only_database_is_a_clear_error_and_stays_intact() -> anyhow::Result<()> {
    let path = support::fresh_sqlite_path();
    let store = SqliteParade::open(&url_of(&path)).await?;
    store.insert_tasks(&[TaskData::new("kept", "work")]).await?;
    drop(store);
    // The test may run as root, which ignores file permissions: open it read-only instead.
    assert_open_error(
        SqliteParade::open(&format!("{}?mode=ro", url_of(&path))).await,
        &path.display().to_string(),
        "cannot be written",
    );
    let store = SqliteParade::open(&url_of(&path)).await?;
    assert!(store.get_task(&TaskId::from("kept")).await?.is_some());
    Ok(())
}

#[test]
fn cli_without_database_uses_parade_db_in_the_working_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let parade = env!("CARGO_BIN_EXE_parade");
    let added = Command::new(parade)
        .args(["task", "add", "--action", "echo", "--body", "hi"])
        .current_dir(dir.path())
        .env_remove("PARADE_DATABASE_URL")
        .output()?;
    assert!(added.status.success(), "{added:?}");
    let id = String::from_utf8(added.stdout)?.trim().to_owned();
    assert!(dir.path().join("parade.db").is_file());
    let listed = Command::new(parade)
        .args(["task", "list", "--json"])
        .current_dir(dir.path())
        .env_remove("PARADE_DATABASE_URL")
        .output()?;
    assert!(listed.status.success(), "{listed:?}");
    let task: TaskData = serde_json::from_str(String::from_utf8(listed.stdout)?.trim())?;
    assert_eq!(task.id.as_str(), id);
    assert_eq!(task.body.as_deref(), Some("hi"));
    Ok(())
}

/// A DAG as a plain SQL client stores it: root → mid-1, mid-2 → join, with root listing
/// mid-2 twice (to_signal_after is a JSON array; created_at in microseconds).
const PLAIN_SQL_DAG: &str = "INSERT INTO tasks \
     (id, action, to_signal_after, total_dependencies, created_at) VALUES \
     ('root', 'dag', '[\"mid-1\", \"mid-2\", \"mid-2\"]', NULL, 0), \
     ('mid-1', 'dag', '[\"join\"]', 1, 0), \
     ('mid-2', 'dag', '[\"join\"]', 1, 0), \
     ('join', 'dag', NULL, 2, 0)";

/// The graph of `id` as (id, depth) pairs, sorted.
async fn graph_depths(store: &impl Parade, id: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let graph = store
        .task_graph(&TaskId::from(id), 300)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} is missing"))?;
    let mut depths: Vec<(String, i32)> =
        graph.nodes.into_iter().map(|n| (n.id.0, n.depth)).collect();
    depths.sort();
    Ok(depths)
}

fn depths(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
    let mut pairs: Vec<(String, i32)> = pairs.iter().map(|(id, d)| (id.to_string(), *d)).collect();
    pairs.sort();
    pairs
}

/// The predecessors `predecessors_of` lists for `id`, in insertion order.
async fn listed_predecessors(store: &impl Parade, id: &str) -> anyhow::Result<Vec<String>> {
    Ok(store
        .list_tasks(&TaskFilter {
            predecessors_of: Some(TaskId::from(id)),
            ..TaskFilter::default()
        })
        .await?
        .into_iter()
        .map(|t| t.id.0)
        .collect())
}

/// The (successor, predecessor) pairs the triggers keep, sorted.
async fn stored_pairs(store: &SqliteParade) -> anyhow::Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT successor_id, predecessor_id FROM task_predecessors ORDER BY 1, 2")
            .fetch_all(store.pool())
            .await?,
    )
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect()
}

#[tokio::test]
async fn plain_sql_writes_keep_the_predecessors_of_every_task() -> anyhow::Result<()> {
    let store = SqliteParade::open(&url_of(&support::fresh_sqlite_path())).await?;
    sqlx::query(PLAIN_SQL_DAG).execute(store.pool()).await?;
    assert_eq!(
        stored_pairs(&store).await?,
        pairs(&[
            ("join", "mid-1"),
            ("join", "mid-2"),
            ("mid-1", "root"),
            ("mid-2", "root")
        ])
    );
    assert_eq!(
        graph_depths(&store, "join").await?,
        depths(&[("join", 0), ("mid-1", -1), ("mid-2", -1), ("root", -2)])
    );
    assert_eq!(
        listed_predecessors(&store, "join").await?,
        ["mid-1", "mid-2"]
    );

    sqlx::query("DELETE FROM tasks WHERE id = 'mid-1'")
        .execute(store.pool())
        .await?;
    sqlx::query("UPDATE tasks SET to_signal_after = '[\"join\"]' WHERE id = 'root'")
        .execute(store.pool())
        .await?;
    assert_eq!(
        stored_pairs(&store).await?,
        pairs(&[("join", "mid-2"), ("join", "root")])
    );
    assert_eq!(
        listed_predecessors(&store, "join").await?,
        ["root", "mid-2"]
    );

    // REPLACE deletes the old row without its delete trigger: its pair (join, root) stays
    // behind, and the reads still list only what each row's to_signal_after says.
    sqlx::query(
        "INSERT OR REPLACE INTO tasks (id, action, to_signal_after, created_at) \
         VALUES ('root', 'dag', '[\"mid-2\"]', 0)",
    )
    .execute(store.pool())
    .await?;
    assert_eq!(listed_predecessors(&store, "join").await?, ["mid-2"]);
    assert_eq!(listed_predecessors(&store, "mid-2").await?, ["root"]);
    assert_eq!(
        graph_depths(&store, "join").await?,
        depths(&[("join", 0), ("mid-2", -1), ("root", -2)])
    );
    // A to_signal_after that is not JSON lists nothing, and its row can still be deleted.
    sqlx::query(
        "INSERT INTO tasks (id, action, to_signal_after, created_at) \
         VALUES ('garbled', 'dag', '[\"join\"', 0)",
    )
    .execute(store.pool())
    .await?;
    sqlx::query("DELETE FROM tasks WHERE id = 'garbled'")
        .execute(store.pool())
        .await?;
    assert_eq!(listed_predecessors(&store, "join").await?, ["mid-2"]);
    Ok(())
}

#[tokio::test]
async fn a_store_migrated_with_a_dag_in_it_finds_its_ancestors() -> anyhow::Result<()> {
    let url = url_of(&support::fresh_sqlite_path());
    // The store as the migrations before task_predecessors (0006) left it, with a DAG.
    let pool = sqlx::SqlitePool::connect_with(
        url.parse::<sqlx::sqlite::SqliteConnectOptions>()?
            .create_if_missing(true),
    )
    .await?;
    let mut before = sqlx::migrate!("../migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await?;
    sqlx::query(PLAIN_SQL_DAG).execute(&pool).await?;
    pool.close().await;

    let store = SqliteParade::open(&url).await?;
    assert_eq!(
        graph_depths(&store, "join").await?,
        depths(&[("join", 0), ("mid-1", -1), ("mid-2", -1), ("root", -2)])
    );
    assert_eq!(listed_predecessors(&store, "mid-2").await?, ["root"]);
    // The pairs were filled from the rows, and the triggers keep them from now on.
    store.delete_tasks(&[TaskId::from("mid-1")]).await?;
    assert_eq!(
        stored_pairs(&store).await?,
        pairs(&[("join", "mid-2"), ("mid-1", "root"), ("mid-2", "root")])
    );
    Ok(())
}
