//! SQL-level tests: a client that speaks SQL to a parade database, as programs written for
//! the Go package did, works against Parade's schema unchanged.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use parade_host::queue::{
    ActorId, Error, Parade, PgParade, TaskData, TaskFilter, TaskId, TaskReturn, TaskStatusCode,
};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

async fn pool() -> anyhow::Result<PgPool> {
    let url = support::fresh_pg_database().await?;
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?)
}

#[tokio::test]
async fn plain_sql_insert_stays_permissive_about_successors() -> anyhow::Result<()> {
    let pool = pool().await?;
    // A seed-era client inserts a predecessor before its successor exists.
    sqlx::query(
        "INSERT INTO tasks (id, action, to_signal_after) VALUES ('first', 'a', ARRAY['second'])",
    )
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO tasks (id, action, total_dependencies) VALUES ('second', 'b', 1)")
        .execute(&pool)
        .await?;
    let parade = PgParade::from_pool(pool);
    let first = parade
        .own_tasks(&ActorId::from("sql"), 10, &["a".into(), "b".into()], None)
        .await?;
    assert_eq!(first.len(), 1);
    parade
        .return_task(
            &first[0].id,
            first[0].token,
            "ok",
            TaskStatusCode::Completed,
        )
        .await?;
    let second = parade
        .own_tasks(&ActorId::from("sql"), 10, &["b".into()], None)
        .await?;
    assert_eq!(second[0].id.as_str(), "second");
    Ok(())
}

#[tokio::test]
async fn sql_functions_keep_the_seed_signatures() -> anyhow::Result<()> {
    let pool = pool().await?;
    sqlx::query(
        "INSERT INTO tasks (id, action, body, status_code) VALUES ('t', 'act', 'b', 'pending')",
    )
    .execute(&pool)
    .await?;

    let owned = sqlx::query(
        "SELECT task_id, token, num_failures, action, body \
         FROM own_tasks(5, ARRAY['act']::VARCHAR ARRAY, 'sql-client', '1 minute'::INTERVAL)",
    )
    .fetch_one(&pool)
    .await?;
    let token: Uuid = owned.try_get("token")?;
    assert_eq!(owned.try_get::<String, _>("task_id")?, "t");
    assert_eq!(owned.try_get::<i32, _>("num_failures")?, 0);
    assert_eq!(owned.try_get::<String, _>("action")?, "act");
    assert_eq!(
        owned.try_get::<Option<String>, _>("body")?.as_deref(),
        Some("b")
    );

    let extended: Option<bool> =
        sqlx::query_scalar("SELECT extend_task_deadline('t', $1, '2 minutes'::INTERVAL)")
            .bind(token)
            .fetch_one(&pool)
            .await?;
    assert_eq!(extended, Some(true));
    let wrong: Option<bool> =
        sqlx::query_scalar("SELECT extend_task_deadline('t', $1, '2 minutes'::INTERVAL)")
            .bind(Uuid::new_v4())
            .fetch_one(&pool)
            .await?;
    assert_eq!(wrong, None);

    let in_progress = sqlx::query("SELECT return_task('t', $1, 'x', 'in-progress')")
        .bind(token)
        .fetch_one(&pool)
        .await;
    assert!(in_progress.is_err(), "returning as in-progress must raise");

    let returned: i32 = sqlx::query_scalar("SELECT return_task('t', $1, 'done!', 'completed')")
        .bind(token)
        .fetch_one(&pool)
        .await?;
    assert_eq!(returned, 1);
    let again: i32 = sqlx::query_scalar("SELECT return_task('t', $1, 'done!', 'completed')")
        .bind(token)
        .fetch_one(&pool)
        .await?;
    assert_eq!(again, 0);

    let (status, code): (String, String) =
        sqlx::query_as("SELECT status, status_code::text FROM tasks WHERE id = 't'")
            .fetch_one(&pool)
            .await?;
    assert_eq!((status.as_str(), code.as_str()), ("done!", "completed"));
    Ok(())
}

#[tokio::test]
async fn sql_delete_tasks_takes_a_work_table() -> anyhow::Result<()> {
    let pool = pool().await?;
    sqlx::query(
        "INSERT INTO tasks (id, action, to_signal_after, total_dependencies) VALUES \
         ('p', 'a', ARRAY['s'], NULL), ('s', 'a', NULL, 1), ('other', 'a', NULL, NULL)",
    )
    .execute(&pool)
    .await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE work (id VARCHAR, mark tasks_recurse_value) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO work VALUES ('p', 'new')")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT delete_tasks('work')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id")
        .fetch_all(&pool)
        .await?;
    assert_eq!(left, ["other"]);
    Ok(())
}

#[tokio::test]
async fn finishing_a_task_notifies_its_channel_with_its_id() -> anyhow::Result<()> {
    let pool = pool().await?;
    let parade = PgParade::from_pool(pool.clone());
    parade
        .insert_tasks(&[TaskData {
            notify_channel_after: Some("Mixed.Case channel".into()),
            ..TaskData::new("announced", "a")
        }])
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen("Mixed.Case channel").await?;
    let owned = parade
        .own_tasks(&ActorId::from("x"), 1, &["a".into()], None)
        .await?;
    parade
        .return_task(
            &owned[0].id,
            owned[0].token,
            "ok",
            TaskStatusCode::Completed,
        )
        .await?;
    let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await??;
    assert_eq!(note.channel(), "Mixed.Case channel");
    assert_eq!(note.payload(), "announced");
    Ok(())
}

#[tokio::test]
async fn unmigrated_database_reports_not_migrated() -> anyhow::Result<()> {
    let url = support::new_pg_database(false).await?;
    let parade = PgParade::connect(&url).await?;
    let result = parade
        .own_tasks(&ActorId::from("x"), 1, &["a".into()], None)
        .await;
    assert!(
        matches!(result, Err(Error::NotMigrated { .. })),
        "{result:?}"
    );
    let message = result.unwrap_err().to_string();
    assert!(message.contains("parade migrate"), "{message}");

    parade.migrate().await?;
    parade.migrate().await?;
    assert!(parade
        .own_tasks(&ActorId::from("x"), 1, &["a".into()], None)
        .await?
        .is_empty());
    assert!(parade.get_task(&TaskId::from("none")).await?.is_none());
    Ok(())
}

/// The node owns with `synchronous_commit` off for that one transaction: the connection goes
/// back to the pool as durable as it came, so the inserts and returns that follow on it
/// still wait for the disk.
#[tokio::test]
async fn owning_leaves_its_connection_committing_durably() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    // The test cluster turns synchronous_commit off; this database turns it back on.
    sqlx::query(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', \
         current_database()); END $$",
    )
    .execute(&PgPool::connect(&url).await?)
    .await?;
    let parade = PgParade::connect_with(&url, Some(1)).await?;
    parade.insert_tasks(&[TaskData::new("t", "a")]).await?;
    let owned = parade
        .own_tasks(&ActorId::from("x"), 10, &["a".into()], None)
        .await?;
    assert_eq!(owned.len(), 1);
    // The pool's only connection is the one that owned.
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(parade.pool())
        .await?;
    assert_eq!(setting, "on");
    Ok(())
}

/// Channels and ids that `pg_notify` refuses: empty, 64 bytes or more, a payload of 8,000
/// bytes or more. A plain SQL client can still store them.
const UNNOTIFIABLE: [(&str, &str); 3] = [("empty", ""), ("long", "c"), ("huge", "ch")];

async fn insert_unnotifiable(pool: &PgPool, max_tries: Option<i32>) -> anyhow::Result<()> {
    for (id, channel) in UNNOTIFIABLE {
        let (id, channel) = match id {
            "long" => (id.to_owned(), "c".repeat(64)),
            "huge" => ("i".repeat(8_000), channel.to_owned()),
            _ => (id.to_owned(), channel.to_owned()),
        };
        sqlx::query(
            "INSERT INTO tasks (id, action, notify_channel_after, max_tries) VALUES ($1, 'a', $2, $3)",
        )
        .bind(&id)
        .bind(&channel)
        .bind(max_tries)
        .execute(pool)
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_channel_pg_notify_refuses_fails_no_return_batch() -> anyhow::Result<()> {
    let pool = pool().await?;
    insert_unnotifiable(&pool, None).await?;
    sqlx::query(
        "INSERT INTO tasks (id, action, notify_channel_after) VALUES ('fine', 'a', 'done')",
    )
    .execute(&pool)
    .await?;
    let parade = PgParade::from_pool(pool);
    let owned = parade
        .own_tasks(&ActorId::from("sql"), 10, &["a".into()], None)
        .await?;
    assert_eq!(owned.len(), 4);
    // As in the seed, an empty channel is no channel to wait on.
    let waited = parade.new_waiter(&TaskId::from("empty")).await;
    assert!(
        matches!(waited, Err(Error::NoNotifyChannel { .. })),
        "{waited:?}"
    );
    let returns: Vec<TaskReturn> = owned
        .iter()
        .map(|t| TaskReturn {
            id: t.id.clone(),
            token: t.token,
            status: "ok".into(),
            code: TaskStatusCode::Completed,
            retry_after: None,
        })
        .collect();
    let results = parade.return_tasks(&returns).await?;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut listener = PgListener::connect_with(parade.pool()).await?;
    listener.listen("done").await?;
    let single = TaskData {
        notify_channel_after: Some("done".into()),
        ..TaskData::new("single", "b")
    };
    parade.insert_tasks(&[single]).await?;
    let t = &parade
        .own_tasks(&ActorId::from("sql"), 1, &["b".into()], None)
        .await?[0];
    parade
        .return_task(&t.id, t.token, "ok", TaskStatusCode::Completed)
        .await?;
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await??;
    assert_eq!(
        heard.payload(),
        "single",
        "valid channels are still notified"
    );
    for id in ["empty", "long", &"i".repeat(8_000), "fine"] {
        let task = parade.get_task(&TaskId::from(id)).await?.expect("stored");
        assert_eq!(task.status_code, TaskStatusCode::Completed, "{id:.20}");
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_last_try_with_an_unusable_channel_does_not_stop_owning() -> anyhow::Result<()> {
    let pool = pool().await?;
    insert_unnotifiable(&pool, Some(1)).await?;
    let parade = PgParade::from_pool(pool);
    let owned = parade
        .own_tasks(
            &ActorId::from("lost"),
            10,
            &["a".into()],
            Some(Duration::from_millis(10)),
        )
        .await?;
    assert_eq!(owned.len(), 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Every own aborts expired last tries first: here, each of the unusable channels.
    parade.insert_tasks(&[TaskData::new("next", "b")]).await?;
    let next = parade
        .own_tasks(&ActorId::from("other"), 10, &["b".into()], None)
        .await?;
    assert_eq!(next.len(), 1);
    let aborted = parade
        .list_tasks(&TaskFilter {
            status_code: Some(TaskStatusCode::Aborted),
            ..Default::default()
        })
        .await?;
    assert_eq!(aborted.len(), 3, "{aborted:?}");
    Ok(())
}

#[tokio::test]
async fn can_allocate_task_is_stable_and_owning_reads_the_runnable_index() -> anyhow::Result<()> {
    let pool = pool().await?;
    // The seed declared it IMMUTABLE although it reads now(): plans could fold it.
    let volatility: String = sqlx::query_scalar(
        "SELECT provolatile::text FROM pg_proc WHERE proname = 'can_allocate_task'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(volatility, "s", "can_allocate_task is STABLE");
    // A deep table of finished work and a few pending tasks: owning must reach the pending
    // ones through tasks_runnable_idx, never by reading the table.
    sqlx::query(
        "INSERT INTO tasks (id, action, status_code) \
         SELECT 'done-' || n, 'a', 'completed' FROM generate_series(1, 20000) n",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO tasks (id, action) SELECT 'todo-' || n, 'a' FROM generate_series(1, 10) n",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE tasks").execute(&pool).await?;
    let plan =
        support::own_plan::explain_own_pending(&pool, "a", 100, Duration::from_secs(60)).await?;
    assert!(
        plan.iter().any(|line| line.contains("tasks_runnable_idx")),
        "{plan:#?}"
    );
    assert!(
        !plan.iter().any(|line| line.contains("Seq Scan on tasks")),
        "{plan:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_seed_style_notify_without_payload_wakes_the_channels_waiters() -> anyhow::Result<()> {
    let pool = pool().await?;
    let parade = PgParade::from_pool(pool.clone());
    parade
        .insert_tasks(&[TaskData {
            notify_channel_after: Some("seed".into()),
            ..TaskData::new("old-style", "a")
        }])
        .await?;
    let waiter = parade.new_waiter(&TaskId::from("old-style")).await?;
    // A seed-era client that ends a task by hand and announces it with no payload.
    sqlx::query(
        "UPDATE tasks SET status = 'by hand', status_code = 'completed' WHERE id = 'old-style'",
    )
    .execute(&pool)
    .await?;
    sqlx::query("SELECT pg_notify('seed', NULL)")
        .execute(&pool)
        .await?;
    // Well inside the hub's 10 s re-check: the notification itself woke the waiter.
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiter.wait()).await??;
    assert_eq!(outcome.status, "by hand");
    assert_eq!(outcome.status_code, TaskStatusCode::Completed);
    Ok(())
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_is_said_once() -> anyhow::Result<()> {
    let nowhere = tempfile::tempdir()?;
    let url = format!(
        "postgres://nobody@localhost/none?host={}",
        nowhere.path().display()
    );
    let Err(e) = parade_host::queue::open(&url).await else {
        anyhow::bail!("no server listens in an empty directory");
    };
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    let rendered = format!("{:#}", anyhow::Error::from(e));
    assert!(rendered.contains("No such file"), "{rendered}");
    let Err(e) = parade_host::queue::open(&url).await else {
        unreachable!()
    };
    support::assert_says_each_thing_once(e.into());
    Ok(())
}

/// A DAG as a seed-era client stores it: root → mid-1, mid-2 → join, with root listing
/// mid-2 twice.
const PLAIN_SQL_DAG: &str = "INSERT INTO tasks (id, action, to_signal_after, total_dependencies) \
     VALUES ('root', 'dag', ARRAY['mid-1', 'mid-2', 'mid-2'], NULL), \
     ('mid-1', 'dag', ARRAY['join'], 1), ('mid-2', 'dag', ARRAY['join'], 1), \
     ('join', 'dag', NULL, 2)";

/// The ancestors of `id` in its graph, as (id, depth) pairs, sorted.
async fn ancestors(parade: &PgParade, id: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let graph = parade
        .task_graph(&TaskId::from(id), 300)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} is missing"))?;
    let mut found: Vec<(String, i32)> = graph
        .nodes
        .into_iter()
        .filter(|n| n.depth < 0)
        .map(|n| (n.id.0, n.depth))
        .collect();
    found.sort();
    Ok(found)
}

/// The ancestors of `join` in [`PLAIN_SQL_DAG`].
fn ancestors_of_join() -> Vec<(String, i32)> {
    vec![
        ("mid-1".to_owned(), -1),
        ("mid-2".to_owned(), -1),
        ("root".to_owned(), -2),
    ]
}

#[tokio::test]
async fn a_dag_inserted_by_plain_sql_has_its_ancestors_found() -> anyhow::Result<()> {
    let pool = pool().await?;
    sqlx::query(PLAIN_SQL_DAG).execute(&pool).await?;
    let parade = PgParade::from_pool(pool);
    assert_eq!(ancestors(&parade, "join").await?, ancestors_of_join());
    let listed = parade
        .list_tasks(&TaskFilter {
            predecessors_of: Some(TaskId::from("mid-2")),
            ..TaskFilter::default()
        })
        .await?;
    let names: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(names, ["root"]);
    Ok(())
}

#[tokio::test]
async fn a_store_migrated_with_a_dag_in_it_finds_its_ancestors() -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&support::new_pg_database(false).await?)
        .await?;
    // The schema as the migrations before tasks_to_signal_after_idx (0014) left it, with a DAG.
    let mut before = sqlx::migrate!("../migrations/postgres");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 14)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await?;
    sqlx::query(PLAIN_SQL_DAG).execute(&pool).await?;
    let parade = PgParade::from_pool(pool);
    parade.migrate().await?;
    assert_eq!(ancestors(&parade, "join").await?, ancestors_of_join());
    Ok(())
}

async fn predecessors_index_bytes(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT pg_relation_size('tasks_to_signal_after_idx')")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn tasks_without_successors_write_nothing_to_the_predecessors_index() -> anyhow::Result<()> {
    let pool = pool().await?;
    let empty = predecessors_index_bytes(&pool).await?;
    let parade = PgParade::from_pool(pool.clone());
    // The no-op path, 10,000 times: insert, own, return completed (none of them HOT).
    let plain: Vec<TaskData> = (0..10_000)
        .map(|i| TaskData::new(format!("plain-{i}"), "plain"))
        .collect();
    parade.insert_tasks(&plain).await?;
    let owned = parade
        .own_tasks(&ActorId::from("sql"), 10_000, &["plain".into()], None)
        .await?;
    assert_eq!(owned.len(), 10_000);
    let returns: Vec<TaskReturn> = owned
        .iter()
        .map(|t| TaskReturn {
            id: t.id.clone(),
            token: t.token,
            status: "done".into(),
            code: TaskStatusCode::Completed,
            retry_after: None,
        })
        .collect();
    let results = parade.return_tasks(&returns).await?;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        predecessors_index_bytes(&pool).await?,
        empty,
        "the no-op path wrote to the index"
    );
    // One task that signals a successor does write to it.
    parade
        .insert_tasks(&[TaskData {
            to_signal_after: vec![TaskId::from("plain-0")],
            ..TaskData::new("signals", "dag")
        }])
        .await?;
    assert!(predecessors_index_bytes(&pool).await? > empty);
    Ok(())
}

#[tokio::test]
async fn rows_stored_with_any_seq_by_plain_sql_are_listed_newest_first() -> anyhow::Result<()> {
    let pool = pool().await?;
    let parade = PgParade::from_pool(pool.clone());
    parade
        .insert_tasks(&[TaskData::new("middle", "a"), TaskData::new("newest", "a")])
        .await?;
    // `seq` is an identity column BY DEFAULT: a plain SQL client may store any value, far
    // below every window a page newest first reads before the rest, or above the sequence.
    sqlx::query(
        "INSERT INTO tasks (id, action, seq) VALUES ('deep', 'a', -9000000000), \
         ('ahead', 'a', 1000000000000)",
    )
    .execute(&pool)
    .await?;
    let one_a_page = TaskFilter {
        limit: Some(1),
        ..TaskFilter::default()
    };
    assert_eq!(
        newest_first_pages(&parade, one_a_page).await?,
        ["ahead", "newest", "middle", "deep"]
    );
    let one_page = parade
        .list_task_page(&TaskFilter {
            newest_first: true,
            limit: Some(10),
            ..TaskFilter::default()
        })
        .await?;
    let ids: Vec<&str> = one_page.tasks.iter().map(|t| t.task.id.as_str()).collect();
    assert_eq!(ids, ["ahead", "newest", "middle", "deep"]);
    assert!(one_page.next.is_none());
    Ok(())
}

/// The ids of every page newest first of `filter` (its limit the page size).
async fn newest_first_pages(parade: &PgParade, filter: TaskFilter) -> anyhow::Result<Vec<String>> {
    let filter = TaskFilter {
        newest_first: true,
        ..filter
    };
    Ok(support::ids_of(&support::all_pages(parade, &filter).await?))
}

#[tokio::test]
async fn the_optional_seq_index_serves_the_browsers_pages_alike() -> anyhow::Result<()> {
    let pool = pool().await?;
    let parade = PgParade::from_pool(pool.clone());
    let tasks: Vec<TaskData> = (0..20_000)
        .map(|i| {
            TaskData::new(
                format!("t{i:05}"),
                if i % 7 == 0 { "seventh" } else { "rest" },
            )
        })
        .collect();
    parade.insert_tasks(&tasks).await?;
    let filters = [
        TaskFilter {
            limit: Some(97),
            ..TaskFilter::default()
        },
        TaskFilter {
            action: Some("seventh".into()),
            limit: Some(50),
            ..TaskFilter::default()
        },
    ];
    let mut without = Vec::new();
    for filter in &filters {
        without.push(newest_first_pages(&parade, filter.clone()).await?);
    }
    // The index docs/queue-semantics.md tells operators they may add, as it says.
    sqlx::query("CREATE INDEX CONCURRENTLY tasks_seq_idx ON tasks (seq)")
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE tasks").execute(&pool).await?;
    let scans = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'tasks_seq_idx'",
        )
        .fetch_one(&pool)
        .await
    };
    let before = scans().await?;
    for (filter, expected) in filters.iter().zip(&without) {
        assert_eq!(
            &newest_first_pages(&parade, filter.clone()).await?,
            expected
        );
    }
    let mut expected: Vec<String> = tasks.iter().map(|t| t.id.0.clone()).collect();
    expected.reverse();
    assert_eq!(without[0], expected);
    // The pages read the index (statistics reach the view within a second or so).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while scans().await? == before {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the listing never read tasks_seq_idx"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
