//! The `parade` command line against a real PostgreSQL database: the contract other tools
//! script against (output, exit codes, error messages).

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use parade_host::queue::{ActorId, Parade, PgParade, TaskData, TaskId, TaskStatusCode};

fn parade(url: &str, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_parade"))
        .args(["--database", url])
        .args(args)
        .output()?)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
}

async fn list_json(url: &str) -> anyhow::Result<Vec<TaskData>> {
    let listed = parade(url, &["task", "list", "--json"])?;
    assert_exit(&listed, 0);
    stdout(&listed)
        .lines()
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}

/// Owns the task `id` (action `act`), returns it with `code`, and hands back any other task
/// owned on the way.
async fn finish(url: &str, id: &str, code: TaskStatusCode) -> anyhow::Result<()> {
    let queue = PgParade::connect(url).await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("t"),
            100,
            &["act".into()],
            Some(Duration::from_secs(60)),
        )
        .await?;
    let (target, others): (Vec<_>, Vec<_>) = owned.into_iter().partition(|t| t.id.as_str() == id);
    let others: Vec<_> = others.into_iter().map(|t| (t.id, t.token)).collect();
    queue.release_tasks(&others).await?;
    let task = target
        .first()
        .ok_or_else(|| anyhow::anyhow!("could not own {id}"))?;
    queue
        .return_task(&task.id, task.token, "done here", code)
        .await?;
    Ok(())
}

#[tokio::test]
async fn task_add_prints_the_id_and_show_returns_the_row() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let next = parade(
        &url,
        &[
            "task",
            "add",
            "--action",
            "later",
            "--id",
            "next",
            "--total-dependencies",
            "1",
        ],
    )?;
    assert_exit(&next, 0);
    assert_eq!(stdout(&next), "next");
    let added = parade(
        &url,
        &[
            "task",
            "add",
            "--action",
            "act",
            "--body",
            "{\"x\":1}",
            "--max-tries",
            "3",
            "--signal-after",
            "next",
            "--notify",
            "chan",
        ],
    )?;
    assert_exit(&added, 0);
    let id = stdout(&added);
    assert!(!id.is_empty());

    let shown = parade(&url, &["task", "show", &id, "--json"])?;
    assert_exit(&shown, 0);
    let row: serde_json::Value = serde_json::from_str(&stdout(&shown))?;
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["action"], "act");
    assert_eq!(row["body"], "{\"x\":1}");
    assert_eq!(row["max_tries"], 3);
    assert_eq!(row["status_code"], "pending");
    assert_eq!(row["to_signal_after"], serde_json::json!(["next"]));
    assert_eq!(row["notify_channel_after"], "chan");
    Ok(())
}

#[tokio::test]
async fn show_of_a_missing_task_exits_2_naming_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let shown = parade(&url, &["task", "show", "no-such-task"])?;
    assert_exit(&shown, 2);
    assert!(
        stderr(&shown).contains("no-such-task"),
        "{}",
        stderr(&shown)
    );
    Ok(())
}

#[tokio::test]
async fn database_url_comes_from_the_environment() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let added = Command::new(env!("CARGO_BIN_EXE_parade"))
        .args(["task", "add", "--action", "act", "--id", "from-env"])
        .env("PARADE_DATABASE_URL", &url)
        .output()?;
    assert_exit(&added, 0);
    assert_eq!(list_json(&url).await?[0].id.as_str(), "from-env");
    Ok(())
}

#[tokio::test]
async fn file_with_a_bad_line_names_it_and_inserts_nothing() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"id\":\"a\",\"action\":\"act\",\"to_signal_after\":[\"b\"]}\n\n\
         {\"id\":\"b\",\"action\":\"act\",\"total_dependencies\":1}\n{\"action\":\"act\"}\n",
    )?;
    let added = parade(&url, &["task", "add", "--file", good.to_str().unwrap()])?;
    assert_exit(&added, 0);
    assert_eq!(stdout(&added), "3");
    let stored = list_json(&url).await?;
    assert_eq!(stored.len(), 3);
    assert!(
        !stored[2].id.as_str().is_empty(),
        "a task without id gets one"
    );

    for (name, third_line) in [
        ("broken.jsonl", "{\"id\":\"y\",\"action\":"),
        (
            "unknown.jsonl",
            "{\"id\":\"y\",\"action\":\"act\",\"colour\":\"red\"}",
        ),
        ("no-action.jsonl", "{\"id\":\"y\"}"),
    ] {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path)?;
        writeln!(file, "{{\"id\":\"x1\",\"action\":\"act\"}}")?;
        writeln!(file, "{{\"id\":\"x2\",\"action\":\"act\"}}")?;
        writeln!(file, "{third_line}")?;
        let failed = parade(&url, &["task", "add", "--file", path.to_str().unwrap()])?;
        assert_exit(&failed, 2);
        let message = stderr(&failed);
        assert!(message.contains(&format!("{name}:3")), "{message}");
    }
    assert_eq!(
        list_json(&url).await?.len(),
        3,
        "nothing of a bad file is inserted"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_successor_fails_and_inserts_nothing() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let added = parade(
        &url,
        &["task", "add", "--action", "act", "--signal-after", "ghost"],
    )?;
    assert_exit(&added, 2);
    assert!(stderr(&added).contains("ghost"), "{}", stderr(&added));
    assert!(list_json(&url).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn list_filters_and_keeps_insertion_order() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for (id, action) in [("c", "act"), ("a", "other"), ("b", "act")] {
        assert_exit(
            &parade(&url, &["task", "add", "--action", action, "--id", id])?,
            0,
        );
    }
    finish(&url, "c", TaskStatusCode::Completed).await?;
    let ids = |args: &[&str]| -> anyhow::Result<Vec<String>> {
        let mut all = vec!["task", "list", "--json"];
        all.extend_from_slice(args);
        let listed = parade(&url, &all)?;
        assert_exit(&listed, 0);
        stdout(&listed)
            .lines()
            .map(|l| Ok(serde_json::from_str::<TaskData>(l)?.id.0))
            .collect()
    };
    assert_eq!(ids(&[])?, ["c", "a", "b"]);
    assert_eq!(ids(&["--action", "act"])?, ["c", "b"]);
    assert_eq!(ids(&["--status", "pending"])?, ["a", "b"]);
    assert_eq!(ids(&["--limit", "1"])?, ["c"]);
    let table = parade(&url, &["task", "list"])?;
    assert!(stdout(&table).starts_with("ID"), "{}", stdout(&table));
    let bad = parade(&url, &["task", "list", "--status", "sleeping"])?;
    assert_exit(&bad, 2);
    Ok(())
}

#[tokio::test]
async fn wait_exit_code_follows_the_outcome() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for id in ["good", "bad", "never"] {
        assert_exit(
            &parade(
                &url,
                &[
                    "task", "add", "--action", "act", "--id", id, "--notify", "chan",
                ],
            )?,
            0,
        );
    }
    assert_exit(
        &parade(&url, &["task", "add", "--action", "act", "--id", "silent"])?,
        0,
    );

    for (id, code, exit) in [
        ("good", TaskStatusCode::Completed, 0),
        ("bad", TaskStatusCode::Aborted, 1),
    ] {
        let waiting = tokio::process::Command::new(env!("CARGO_BIN_EXE_parade"))
            .args(["--database", &url, "task", "wait", id, "--timeout", "20s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        finish(&url, id, code).await?;
        let output =
            tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output()).await??;
        assert_exit(&output, exit);
        assert_eq!(stdout(&output), format!("{code}\tdone here"));
    }

    let timed_out = parade(&url, &["task", "wait", "never", "--timeout", "300ms"])?;
    assert_exit(&timed_out, 2);
    assert!(
        stderr(&timed_out).contains("never"),
        "{}",
        stderr(&timed_out)
    );
    let no_channel = parade(&url, &["task", "wait", "silent", "--timeout", "1s"])?;
    assert_exit(&no_channel, 2);
    assert!(
        stderr(&no_channel).contains("notify channel"),
        "{}",
        stderr(&no_channel)
    );
    Ok(())
}

#[tokio::test]
async fn delete_removes_tasks_and_ignores_unknown_ids() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for id in ["x", "y"] {
        assert_exit(
            &parade(&url, &["task", "add", "--action", "act", "--id", id])?,
            0,
        );
    }
    assert_exit(&parade(&url, &["task", "delete", "x", "unknown"])?, 0);
    let left = list_json(&url).await?;
    assert_eq!(
        left.iter().map(|t| t.id.0.as_str()).collect::<Vec<_>>(),
        ["y"]
    );
    let queue = PgParade::connect(&url).await?;
    assert!(queue.get_task(&TaskId::from("x")).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn migrate_prepares_a_database_and_is_idempotent() -> anyhow::Result<()> {
    let url = support::new_pg_database(false).await?;
    let before = parade(&url, &["task", "list"])?;
    assert_exit(&before, 2);
    assert!(
        stderr(&before).contains("parade migrate"),
        "{}",
        stderr(&before)
    );
    assert_exit(&parade(&url, &["migrate"])?, 0);
    assert_exit(&parade(&url, &["migrate"])?, 0);
    assert_exit(&parade(&url, &["task", "list"])?, 0);
    Ok(())
}

#[tokio::test]
async fn a_bad_database_url_is_a_clear_error() -> anyhow::Result<()> {
    let listed = parade("mysql://somewhere/db", &["task", "list"])?;
    assert_exit(&listed, 2);
    assert!(
        stderr(&listed).contains("mysql://somewhere/db"),
        "{}",
        stderr(&listed)
    );
    Ok(())
}
