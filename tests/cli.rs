//! The `parade` command line against a real PostgreSQL database: the contract other tools
//! script against. Output (ids, JSON with column names as keys, status lines), exit codes
//! (0 success, 1 for `task wait` on an aborted task and `task cancel` of an unknown id, 2
//! for every error) and error messages that name what went wrong (the id, FILE:LINE, the
//! flag, `parade migrate`, `PARADE_DATABASE_URL`).
//!
//! Every test runs the real binary against its own fresh database; tasks are finished
//! through the library, as an actor would. Tests of delayed, idempotent and cancelled tasks
//! run on both backends (SQLite too).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use parade_host::queue::{ActorId, OwnedTask, Parade, PgParade, TaskData, TaskId, TaskStatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use support::Backend;
use tokio::process::{Child, Command};

/// Every column of the `tasks` table, as `task show --json` must name them.
const TASK_COLUMNS: [&str; 17] = [
    "id",
    "action",
    "body",
    "status",
    "status_code",
    "num_tries",
    "num_failures",
    "max_tries",
    "num_signals",
    "total_dependencies",
    "actor_id",
    "action_deadline",
    "performance_token",
    "to_signal_after",
    "notify_channel_after",
    "priority",
    "run_after",
];

/// The `parade` binary with a clean environment: no database from the caller's environment,
/// no log filter, output captured.
fn parade_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parade"));
    command
        .env_remove("PARADE_DATABASE_URL")
        .env_remove("PARADE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What one run of `parade` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code and returns the run for further checks.
    #[track_caller]
    fn exits(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout\n{}--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that the error message contains `text`.
    #[track_caller]
    fn says(self, text: &str) -> Self {
        assert!(
            self.stderr.contains(text),
            "stderr does not contain {text:?}:\n{}",
            self.stderr
        );
        self
    }

    /// The printed output without its final newline.
    fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

/// Runs a command to completion (at most 60 s).
async fn run(mut command: Command) -> anyhow::Result<Run> {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .context("parade did not exit within 60s")??;
    Ok(output.into())
}

/// Runs `parade --database URL ARGS...`.
async fn parade(url: &str, args: &[&str]) -> anyhow::Result<Run> {
    let mut command = parade_command();
    command.arg("--database").arg(url).args(args);
    run(command).await
}

/// Adds one task of action `act` with this id through the CLI.
async fn add(url: &str, id: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["task", "add", "--action", "act", "--id", id];
    args.extend_from_slice(extra);
    let added = parade(url, &args).await?.exits(0);
    assert_eq!(added.out(), id);
    Ok(())
}

/// `task list --json ARGS...`, parsed: one task row per line.
async fn list(url: &str, args: &[&str]) -> anyhow::Result<Vec<TaskData>> {
    let mut all = vec!["task", "list", "--json"];
    all.extend_from_slice(args);
    let listed = parade(url, &all).await?.exits(0);
    listed
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("list line {line:?}")))
        .collect()
}

/// The ids `task list --json ARGS...` prints, in order.
async fn listed_ids(url: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
    Ok(list(url, args).await?.into_iter().map(|t| t.id.0).collect())
}

/// `task show ID --json`, parsed.
async fn show_json(url: &str, id: &str) -> anyhow::Result<Value> {
    let shown = parade(url, &["task", "show", id, "--json"]).await?.exits(0);
    Ok(serde_json::from_str(&shown.stdout)?)
}

/// A generated task id: 32 lower-case hex digits.
fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// As an actor would: owns the task `id` (action `act`), returns it with status "done" and
/// `code`, and gives back any other task it owned on the way.
async fn finish(url: &str, id: &str, code: TaskStatusCode) -> anyhow::Result<()> {
    let queue = parade_host::queue::open(url).await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("t"),
            10,
            &["act".to_string()],
            Some(Duration::from_secs(60)),
        )
        .await?;
    let (target, others): (Vec<_>, Vec<_>) = owned.into_iter().partition(|t| t.id.as_str() == id);
    let others: Vec<_> = others.iter().map(OwnedTask::lease).collect();
    queue.release_tasks(&others).await?;
    let Some(task) = target.first() else {
        bail!("could not own task {id}");
    };
    queue
        .return_task(&task.id, task.token, "done", code)
        .await?;
    Ok(())
}

/// Starts `parade task wait ID --timeout 20s` in the background.
fn spawn_wait(url: &str, id: &str) -> anyhow::Result<Child> {
    let mut command = parade_command();
    command.args(["--database", url, "task", "wait", id, "--timeout", "20s"]);
    Ok(command.spawn()?)
}

/// Returns once some session of the database at `url` listens on `channel` (the waiting
/// child), failing if `child` exits first or nothing listens within 20 s.
async fn until_listening(url: &str, channel: &str, child: &mut Child) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listening: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN %' || $1 || '%')",
        )
        .bind(channel)
        .fetch_one(&mut conn)
        .await?;
        if listening {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("parade task wait exited ({status}) before listening on {channel}");
        }
        if Instant::now() > deadline {
            bail!("parade task wait did not listen on {channel} within 20s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `lines` (joined by newlines) to `name` in `dir`.
fn write_file(dir: &Path, name: &str, lines: &[&str]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(path)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------------------
// task add / task show

#[tokio::test]
async fn task_add_prints_generated_id_and_show_returns_row() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "next", &["--total-dependencies", "1"]).await?;
    let added = parade(
        &url,
        &[
            "task",
            "add",
            "--action",
            "act",
            "--body",
            r#"{"x":1}"#,
            "--max-tries",
            "3",
            "--signal-after",
            "next",
            "--notify",
            "chan",
        ],
    )
    .await?
    .exits(0);
    let id = added.out();
    assert!(is_generated_id(id), "generated id {id:?}");

    let row = show_json(&url, id).await?;
    let mut keys: Vec<&str> = row
        .as_object()
        .context("task show --json prints an object")?
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut columns = TASK_COLUMNS.to_vec();
    columns.sort_unstable();
    assert_eq!(keys, columns, "one key per column");
    assert_eq!(
        row,
        json!({
            "id": id,
            "action": "act",
            "body": r#"{"x":1}"#,
            "status": null,
            "status_code": "pending",
            "num_tries": 0,
            "num_failures": 0,
            "max_tries": 3,
            "num_signals": 0,
            "total_dependencies": null,
            "actor_id": null,
            "action_deadline": null,
            "performance_token": null,
            "to_signal_after": ["next"],
            "notify_channel_after": "chan",
            "priority": 0,
            "run_after": null,
        })
    );

    let next = show_json(&url, "next").await?;
    assert_eq!(next["id"], "next");
    assert_eq!(next["total_dependencies"], 1);
    assert_eq!(next["to_signal_after"], json!([]));
    assert_eq!(next["notify_channel_after"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn task_add_generates_a_different_id_each_time() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let first = parade(&url, &["task", "add", "--action", "act"])
        .await?
        .exits(0);
    let second = parade(&url, &["task", "add", "--action", "act"])
        .await?
        .exits(0);
    assert_ne!(first.out(), second.out());
    assert_eq!(
        listed_ids(&url, &[]).await?,
        [first.out(), second.out()],
        "both stored under the printed ids"
    );
    Ok(())
}

#[tokio::test]
async fn task_add_with_priority_stores_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "urgent", &["--priority", "7"]).await?;
    assert_eq!(show_json(&url, "urgent").await?["priority"], 7);
    Ok(())
}

#[tokio::test]
async fn task_show_without_json_prints_one_column_per_line() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "plain", &["--body", "hello", "--notify", "chan"]).await?;
    let shown = parade(&url, &["task", "show", "plain"]).await?.exits(0);
    let lines: Vec<&str> = shown.stdout.lines().collect();
    for expected in [
        "id: plain",
        "action: act",
        "body: hello",
        "status_code: pending",
        "num_tries: 0",
        "notify_channel_after: chan",
    ] {
        assert!(
            lines.contains(&expected),
            "{expected:?} in\n{}",
            shown.stdout
        );
    }
    assert_eq!(lines.len(), TASK_COLUMNS.len(), "{}", shown.stdout);
    Ok(())
}

#[tokio::test]
async fn task_show_of_missing_id_exits_2_naming_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for json in [true, false] {
        let mut args = vec!["task", "show", "no-such-task"];
        if json {
            args.push("--json");
        }
        let shown = parade(&url, &args).await?.exits(2).says("no-such-task");
        assert_eq!(shown.stdout, "", "nothing on stdout");
    }
    Ok(())
}

#[tokio::test]
async fn task_add_of_an_existing_id_exits_2_and_keeps_the_stored_task() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "dup", &["--body", "first"]).await?;
    parade(
        &url,
        &[
            "task", "add", "--action", "other", "--id", "dup", "--body", "second",
        ],
    )
    .await?
    .exits(2)
    .says("dup");
    let row = show_json(&url, "dup").await?;
    assert_eq!(row["action"], "act");
    assert_eq!(row["body"], "first");
    assert_eq!(listed_ids(&url, &[]).await?, ["dup"]);
    Ok(())
}

#[tokio::test]
async fn task_add_without_action_or_file_exits_2() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    parade(&url, &["task", "add", "--id", "x"])
        .await?
        .exits(2)
        .says("--action");
    assert!(listed_ids(&url, &[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn task_add_signal_after_unknown_id_exits_2_and_inserts_nothing() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "known", &["--total-dependencies", "1"]).await?;
    parade(
        &url,
        &[
            "task",
            "add",
            "--action",
            "act",
            "--id",
            "pred",
            "--signal-after",
            "known",
            "--signal-after",
            "ghost",
        ],
    )
    .await?
    .exits(2)
    .says("ghost");
    assert_eq!(listed_ids(&url, &[]).await?, ["known"]);
    Ok(())
}

#[tokio::test]
async fn task_add_signal_after_is_repeatable() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "s1", &["--total-dependencies", "1"]).await?;
    add(&url, "s2", &["--total-dependencies", "1"]).await?;
    add(
        &url,
        "pred",
        &["--signal-after", "s1", "--signal-after", "s2"],
    )
    .await?;
    assert_eq!(
        show_json(&url, "pred").await?["to_signal_after"],
        json!(["s1", "s2"])
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the database URL

#[tokio::test]
async fn database_falls_back_to_parade_database_url_env() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let mut command = parade_command();
    command
        .args(["task", "add", "--action", "act", "--id", "from-env"])
        .env("PARADE_DATABASE_URL", &url);
    assert_eq!(run(command).await?.exits(0).out(), "from-env");

    let mut command = parade_command();
    command
        .args(["task", "list", "--json"])
        .env("PARADE_DATABASE_URL", &url);
    let listed = run(command).await?.exits(0);
    let task: TaskData = serde_json::from_str(listed.out())?;
    assert_eq!(task.id.as_str(), "from-env");
    Ok(())
}

#[tokio::test]
async fn database_flag_overrides_parade_database_url_env() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let mut command = parade_command();
    command
        .args([
            "--database",
            &url,
            "task",
            "add",
            "--action",
            "act",
            "--id",
            "x",
        ])
        .env("PARADE_DATABASE_URL", "mysql://not-this-one/db");
    run(command).await?.exits(0);
    assert_eq!(listed_ids(&url, &[]).await?, ["x"]);
    Ok(())
}

#[tokio::test]
async fn empty_database_url_exits_2_and_mentions_parade_database_url() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut from_env = parade_command();
    from_env
        .args(["task", "list"])
        .env("PARADE_DATABASE_URL", "")
        .current_dir(dir.path());
    run(from_env).await?.exits(2).says("PARADE_DATABASE_URL");

    let mut from_flag = parade_command();
    from_flag
        .args(["--database", "", "task", "list"])
        .current_dir(dir.path());
    run(from_flag).await?.exits(2).says("PARADE_DATABASE_URL");
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "no store was created"
    );
    Ok(())
}

#[tokio::test]
async fn without_database_flag_or_env_the_default_is_parade_db_in_working_directory(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut add = parade_command();
    add.args(["task", "add", "--action", "act", "--id", "local"])
        .current_dir(dir.path());
    run(add).await?.exits(0);
    assert!(dir.path().join("parade.db").exists());

    let mut list = parade_command();
    list.args(["task", "list", "--json"])
        .current_dir(dir.path());
    let listed = run(list).await?.exits(0);
    let task: TaskData = serde_json::from_str(listed.out())?;
    assert_eq!(task.id.as_str(), "local");
    Ok(())
}

#[tokio::test]
async fn unsupported_database_url_exits_2_naming_it() -> anyhow::Result<()> {
    parade("mysql://somewhere/db", &["task", "list"])
        .await?
        .exits(2)
        .says("mysql://somewhere/db");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task add --file

#[tokio::test]
async fn task_add_file_inserts_every_line_in_order_skipping_blank_lines() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "stored", &["--total-dependencies", "1"]).await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(
        dir.path(),
        "tasks.jsonl",
        &[
            r#"{"id":"z","action":"act","to_signal_after":["m"],"notify_channel_after":"chan"}"#,
            "",
            r#"{"id":"m","action":"act","total_dependencies":1,"body":"{\"n\":2}","max_tries":4}"#,
            "   ",
            r#"{"action":"other","priority":5,"to_signal_after":["stored"]}"#,
            r#"{"id":"a","action":"act"}"#,
        ],
    )?;
    let added = parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(0);
    assert_eq!(added.out(), "4", "prints how many tasks were inserted");

    let tasks = list(&url, &[]).await?;
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[..3], ["stored", "z", "m"], "file order is kept");
    assert!(
        is_generated_id(ids[3]),
        "a task without id gets one: {ids:?}"
    );
    assert_eq!(ids[4], "a");

    let z = &tasks[1];
    assert_eq!(z.to_signal_after, [TaskId::from("m")]);
    assert_eq!(z.notify_channel_after.as_deref(), Some("chan"));
    let m = &tasks[2];
    assert_eq!(m.total_dependencies, Some(1));
    assert_eq!(m.body.as_deref(), Some(r#"{"n":2}"#));
    assert_eq!(m.max_tries, Some(4));
    assert_eq!(m.status_code, TaskStatusCode::Pending);
    let generated = &tasks[3];
    assert_eq!(generated.action, "other");
    assert_eq!(generated.priority, 5);
    assert_eq!(generated.to_signal_after, [TaskId::from("stored")]);
    Ok(())
}

#[tokio::test]
async fn task_add_file_gives_each_task_without_id_its_own() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(dir.path(), "anonymous.jsonl", &[r#"{"action":"act"}"#; 3])?;
    parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(0);
    let mut ids = listed_ids(&url, &[]).await?;
    assert!(ids.iter().all(|id| is_generated_id(id)), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids");
    Ok(())
}

/// Adds two good lines then `third` from FILE, expects exit 2 with a message naming FILE:3
/// and containing `problem`, and checks that the store still holds only the task `before`.
async fn assert_file_rejected_at_line_3(third: &str, problem: &str) -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "before", &[]).await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(
        dir.path(),
        "bad.jsonl",
        &[
            r#"{"id":"x1","action":"act"}"#,
            r#"{"id":"x2","action":"act"}"#,
            third,
            r#"{"id":"x4","action":"act"}"#,
        ],
    )?;
    let failed = parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(2)
        .says(&format!("{}:3", file.display()))
        .says(problem)
        .says("nothing was inserted");
    assert_eq!(failed.stdout, "");
    assert_eq!(
        listed_ids(&url, &[]).await?,
        ["before"],
        "nothing of the file is inserted"
    );
    Ok(())
}

#[tokio::test]
async fn task_add_file_with_invalid_json_on_line_3_names_file_3_and_inserts_nothing(
) -> anyhow::Result<()> {
    assert_file_rejected_at_line_3(r#"{"id":"x3","action":"#, "not a task").await
}

#[tokio::test]
async fn task_add_file_with_unknown_key_names_file_3_and_inserts_nothing() -> anyhow::Result<()> {
    assert_file_rejected_at_line_3(r#"{"id":"x3","action":"act","colour":"red"}"#, "colour").await
}

#[tokio::test]
async fn task_add_file_with_line_without_action_names_file_3_and_inserts_nothing(
) -> anyhow::Result<()> {
    assert_file_rejected_at_line_3(r#"{"id":"x3","body":"b"}"#, "action").await
}

#[tokio::test]
async fn task_add_file_the_store_refuses_inserts_nothing() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "taken", &[]).await?;
    let dir = tempfile::tempdir()?;
    for (name, bad) in [
        ("duplicate.jsonl", r#"{"id":"taken","action":"act"}"#),
        (
            "ghost.jsonl",
            r#"{"id":"x3","action":"act","to_signal_after":["ghost"]}"#,
        ),
    ] {
        let file = write_file(
            dir.path(),
            name,
            &[
                r#"{"id":"x1","action":"act"}"#,
                r#"{"id":"x2","action":"act"}"#,
                bad,
            ],
        )?;
        parade(&url, &["task", "add", "--file", path_arg(&file)])
            .await?
            .exits(2)
            .says(name)
            .says("nothing was inserted");
    }
    assert_eq!(listed_ids(&url, &[]).await?, ["taken"]);
    Ok(())
}

#[tokio::test]
async fn task_add_file_refuses_single_task_options_instead_of_ignoring_them() -> anyhow::Result<()>
{
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(dir.path(), "one.jsonl", &[r#"{"action":"act"}"#])?;
    for option in [
        &["--id", "x"][..],
        &["--body", "b"],
        &["--max-tries", "2"],
        &["--total-dependencies", "1"],
        &["--signal-after", "x"],
        &["--notify", "chan"],
        &["--priority", "3"],
    ] {
        let mut args = vec!["task", "add", "--file", path_arg(&file)];
        args.extend_from_slice(option);
        parade(&url, &args).await?.exits(2).says(option[0]);
    }
    assert!(listed_ids(&url, &[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn task_add_missing_file_exits_2_naming_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.jsonl");
    parade(&url, &["task", "add", "--file", path_arg(&missing)])
        .await?
        .exits(2)
        .says(&missing.display().to_string());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task list

#[tokio::test]
async fn task_list_returns_insertion_order_not_id_or_priority_order() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "c", &[]).await?;
    add(&url, "a", &["--priority", "9"]).await?;
    add(&url, "b", &["--priority=-1"]).await?;
    assert_eq!(listed_ids(&url, &[]).await?, ["c", "a", "b"]);
    Ok(())
}

#[tokio::test]
async fn task_list_filters_by_status_action_and_limit() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for (id, action) in [
        ("c", "act"),
        ("a", "other"),
        ("e", "act"),
        ("b", "act"),
        ("d", "other"),
    ] {
        parade(&url, &["task", "add", "--action", action, "--id", id])
            .await?
            .exits(0);
    }
    finish(&url, "e", TaskStatusCode::Completed).await?;

    assert_eq!(listed_ids(&url, &[]).await?, ["c", "a", "e", "b", "d"]);
    assert_eq!(
        listed_ids(&url, &["--action", "act"]).await?,
        ["c", "e", "b"]
    );
    assert_eq!(listed_ids(&url, &["--action", "other"]).await?, ["a", "d"]);
    assert_eq!(
        listed_ids(&url, &["--status", "pending"]).await?,
        ["c", "a", "b", "d"]
    );
    assert_eq!(listed_ids(&url, &["--status", "completed"]).await?, ["e"]);
    assert!(listed_ids(&url, &["--status", "aborted"]).await?.is_empty());
    assert_eq!(
        listed_ids(&url, &["--status", "pending", "--action", "act"]).await?,
        ["c", "b"]
    );
    assert_eq!(listed_ids(&url, &["--limit", "2"]).await?, ["c", "a"]);
    assert_eq!(
        listed_ids(&url, &["--action", "act", "--limit", "2"]).await?,
        ["c", "e"]
    );
    assert!(listed_ids(&url, &["--action", "nobody"]).await?.is_empty());

    let completed = list(&url, &["--status", "completed"]).await?;
    assert_eq!(completed[0].status.as_deref(), Some("done"));
    assert_eq!(completed[0].num_tries, 1);
    Ok(())
}

#[tokio::test]
async fn task_list_with_unknown_status_exits_2() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    parade(&url, &["task", "list", "--status", "sleeping"])
        .await?
        .exits(2)
        .says("sleeping");
    Ok(())
}

#[tokio::test]
async fn task_list_without_json_prints_a_table() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "first", &[]).await?;
    add(&url, "second", &[]).await?;
    finish(&url, "first", TaskStatusCode::Aborted).await?;
    let listed = parade(&url, &["task", "list"]).await?.exits(0);
    let rows: Vec<Vec<&str>> = listed
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ID", "ACTION", "CODE", "TRIES", "DUE", "STATUS"],
            vec!["first", "act", "aborted", "1", "done"],
            vec!["second", "act", "pending", "0"],
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task wait

/// Adds a task with notify channel `chan`, starts `task wait` on it, ends it with `code`
/// once the waiter listens, and returns what `task wait` did.
async fn wait_for_task_ended_with(code: TaskStatusCode) -> anyhow::Result<Run> {
    let url = support::fresh_pg_database().await?;
    add(&url, "watched", &["--notify", "chan"]).await?;
    let mut waiting = spawn_wait(&url, "watched")?;
    until_listening(&url, "chan", &mut waiting).await?;
    assert!(
        waiting.try_wait()?.is_none(),
        "task wait returned before the task ended"
    );
    finish(&url, "watched", code).await?;
    let output = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .context("task wait did not return after the task ended")??;
    Ok(output.into())
}

#[tokio::test]
async fn task_wait_prints_status_and_exits_0_when_task_completes() -> anyhow::Result<()> {
    let waited = wait_for_task_ended_with(TaskStatusCode::Completed)
        .await?
        .exits(0);
    assert_eq!(waited.out(), "completed\tdone");
    Ok(())
}

#[tokio::test]
async fn task_wait_prints_status_and_exits_1_when_task_aborts() -> anyhow::Result<()> {
    let waited = wait_for_task_ended_with(TaskStatusCode::Aborted)
        .await?
        .exits(1);
    assert_eq!(waited.out(), "aborted\tdone");
    Ok(())
}

#[tokio::test]
async fn task_wait_of_an_already_ended_task_returns_at_once() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "ended", &["--notify", "chan"]).await?;
    finish(&url, "ended", TaskStatusCode::Completed).await?;
    let waited = parade(&url, &["task", "wait", "ended", "--timeout", "5s"])
        .await?
        .exits(0);
    assert_eq!(waited.out(), "completed\tdone");
    Ok(())
}

#[tokio::test]
async fn task_wait_exits_2_on_timeout() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "never", &["--notify", "chan"]).await?;
    let started = Instant::now();
    let waited = parade(&url, &["task", "wait", "never", "--timeout", "300ms"])
        .await?
        .exits(2)
        .says("never");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(waited.stdout, "", "no status line on timeout");
    assert_eq!(
        show_json(&url, "never").await?["status_code"],
        "pending",
        "the task is untouched"
    );
    Ok(())
}

#[tokio::test]
async fn task_wait_reads_a_task_without_notify_channel_until_it_ends() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "silent", &[]).await?;
    let waiting = spawn_wait(&url, "silent")?;
    finish(&url, "silent", TaskStatusCode::Completed).await?;
    let output = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .context("task wait did not return after the task ended")??;
    let waited = Run::from(output).exits(0);
    assert_eq!(waited.out(), "completed\tdone");
    Ok(())
}

#[tokio::test]
async fn task_wait_of_a_task_without_notify_channel_exits_2_on_timeout() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "silent", &[]).await?;
    let waited = parade(&url, &["task", "wait", "silent", "--timeout", "300ms"])
        .await?
        .exits(2)
        .says("task silent did not end within 300ms");
    assert_eq!(waited.stdout, "", "no status line on timeout");
    Ok(())
}

#[tokio::test]
async fn task_wait_exits_2_for_missing_task() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    parade(&url, &["task", "wait", "no-such-task", "--timeout", "5s"])
        .await?
        .exits(2)
        .says("no-such-task");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task delete

#[tokio::test]
async fn task_delete_removes_tasks_and_unknown_ids_succeed() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    for id in ["x", "y", "z"] {
        add(&url, id, &[]).await?;
    }
    let deleted = parade(&url, &["task", "delete", "x", "z"]).await?.exits(0);
    assert_eq!(deleted.stdout, "");
    assert_eq!(listed_ids(&url, &[]).await?, ["y"]);
    let queue = PgParade::connect(&url).await?;
    assert!(queue.get_task(&TaskId::from("x")).await?.is_none());
    assert!(queue.get_task(&TaskId::from("z")).await?.is_none());

    parade(&url, &["task", "delete", "unknown", "x"])
        .await?
        .exits(0);
    assert_eq!(listed_ids(&url, &[]).await?, ["y"]);
    parade(&url, &["task", "show", "x"]).await?.exits(2);
    Ok(())
}

#[tokio::test]
async fn task_delete_without_ids_exits_2() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "kept", &[]).await?;
    parade(&url, &["task", "delete"]).await?.exits(2);
    assert_eq!(listed_ids(&url, &[]).await?, ["kept"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// migrate

#[tokio::test]
async fn migrate_on_unmigrated_database_succeeds_and_is_idempotent() -> anyhow::Result<()> {
    let url = support::new_pg_database(false).await?;
    for _ in 0..2 {
        let migrated = parade(&url, &["migrate"]).await?.exits(0);
        assert_eq!(migrated.out(), "migrated");
    }
    add(&url, "after-migrate", &[]).await?;
    assert_eq!(listed_ids(&url, &[]).await?, ["after-migrate"]);
    Ok(())
}

#[tokio::test]
async fn migrate_keeps_existing_tasks() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "kept", &["--body", "b"]).await?;
    parade(&url, &["migrate"]).await?.exits(0);
    assert_eq!(show_json(&url, "kept").await?["body"], "b");
    Ok(())
}

#[tokio::test]
async fn task_commands_on_unmigrated_database_exit_2_saying_run_parade_migrate(
) -> anyhow::Result<()> {
    let url = support::new_pg_database(false).await?;
    for args in [
        &["task", "list"][..],
        &["task", "add", "--action", "act"],
        &["task", "show", "x"],
    ] {
        parade(&url, args)
            .await?
            .exits(2)
            .says("run `parade migrate`");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task add --file: what a producer may set, long lines, large files

#[tokio::test]
async fn task_add_file_refuses_keys_only_the_queue_sets_naming_line_and_key() -> anyhow::Result<()>
{
    for (key, value) in [
        ("status_code", r#""in-progress""#),
        ("status", r#""done""#),
        ("num_tries", "1"),
        ("num_failures", "1"),
        ("num_signals", "1"),
        ("actor_id", r#""someone""#),
        ("action_deadline", r#""2030-01-01T00:00:00Z""#),
        (
            "performance_token",
            r#""6f1c8e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b""#,
        ),
    ] {
        let line = format!(r#"{{"id":"x3","action":"act","{key}":{value}}}"#);
        assert_file_rejected_at_line_3(&line, &format!("\"{key}\"")).await?;
    }
    Ok(())
}

#[tokio::test]
async fn task_add_file_with_a_line_over_1_mib_names_it_and_inserts_nothing() -> anyhow::Result<()> {
    let body = "b".repeat(1 << 20);
    let line = format!(r#"{{"id":"x3","action":"act","body":"{body}"}}"#);
    assert_file_rejected_at_line_3(&line, "longer than 1 MiB").await
}

/// `count` task lines `{"id":"t{n}","action":"act"}` (n from 1), with `special` lines put
/// in place of theirs (1-based line numbers).
fn numbered_lines(count: usize, special: &[(usize, String)]) -> Vec<String> {
    (1..=count)
        .map(|n| {
            special
                .iter()
                .find(|(line, _)| *line == n)
                .map(|(_, text)| text.clone())
                .unwrap_or_else(|| format!(r#"{{"id":"t{n}","action":"act"}}"#))
        })
        .collect()
}

#[tokio::test]
async fn task_add_file_inserts_a_large_file_with_successors_anywhere_in_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    let lines = numbered_lines(
        2500,
        &[
            // Forward across every batch boundary: the successor is the last line.
            (
                1,
                r#"{"id":"t1","action":"act","to_signal_after":["t2500"]}"#.into(),
            ),
            (
                1999,
                r#"{"id":"t1999","action":"act","to_signal_after":["t2500"]}"#.into(),
            ),
            (
                2500,
                r#"{"id":"t2500","action":"act","total_dependencies":3}"#.into(),
            ),
            // Backward: the successor came long before.
            (
                2400,
                r#"{"id":"t2400","action":"act","to_signal_after":["t2500","t5"]}"#.into(),
            ),
            (
                5,
                r#"{"id":"t5","action":"act","total_dependencies":1}"#.into(),
            ),
        ],
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let file = write_file(dir.path(), "large.jsonl", &lines)?;
    let added = parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(0);
    assert_eq!(added.out(), "2500");
    let ids = listed_ids(&url, &["--limit", "3000"]).await?;
    let expected: Vec<String> = (1..=2500).map(|n| format!("t{n}")).collect();
    assert_eq!(ids, expected, "every line, in file order");
    assert_eq!(
        show_json(&url, "t1").await?["to_signal_after"],
        json!(["t2500"])
    );
    Ok(())
}

#[tokio::test]
async fn task_add_file_checks_the_whole_file_before_inserting_any_of_it() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let dir = tempfile::tempdir()?;
    for (name, line, problem) in [
        (
            "late-json.jsonl",
            r#"{"id":"t2400","action":"#,
            "not a task",
        ),
        (
            "late-ghost.jsonl",
            r#"{"id":"t2400","action":"act","to_signal_after":["ghost"]}"#,
            "ghost",
        ),
        ("late-dup.jsonl", r#"{"id":"t7","action":"act"}"#, "t7"),
    ] {
        let lines = numbered_lines(2500, &[(2400, line.to_owned())]);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let file = write_file(dir.path(), name, &lines)?;
        parade(&url, &["task", "add", "--file", path_arg(&file)])
            .await?
            .exits(2)
            .says(&format!("{}:2400", file.display()))
            .says(problem)
            .says("nothing was inserted");
        assert!(listed_ids(&url, &[]).await?.is_empty(), "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn task_add_file_refused_by_the_store_after_some_batches_says_what_was_inserted(
) -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    add(&url, "taken", &[]).await?;
    let dir = tempfile::tempdir()?;
    let lines = numbered_lines(2500, &[(2200, r#"{"id":"taken","action":"act"}"#.into())]);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let file = write_file(dir.path(), "taken.jsonl", &lines)?;
    let failed = parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(2)
        .says(&format!("{}:2200", file.display()))
        .says("taken already exists")
        .says("lines 1-2000");
    assert_eq!(failed.stdout, "");
    let ids = listed_ids(&url, &["--limit", "3000"]).await?;
    assert_eq!(ids.len(), 2001, "taken and the first 2000 lines");
    assert_eq!(ids.last().map(String::as_str), Some("t2000"));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// text output: what came from the store cannot drive the terminal

/// Characters a terminal acts on: C0 and C1 controls other than tab and newline.
fn terminal_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\t' && *c != '\n')
        .collect()
}

#[tokio::test]
async fn task_list_and_show_strip_terminal_control_sequences() -> anyhow::Result<()> {
    let url = support::fresh_pg_database().await?;
    let queue = PgParade::connect(&url).await?;
    let id = "evil\x1b[2J";
    queue
        .insert_tasks(&[TaskData {
            body: Some("b\x1b[31mred\x1b[0m\u{9b}1m\x07\r".into()),
            ..TaskData::new(id, "act\x1b]0;title\x07")
        }])
        .await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("t\x1b[5m"),
            1,
            &["act\x1b]0;title\x07".to_string()],
            Some(Duration::from_secs(60)),
        )
        .await?;
    let task = owned.first().context("nothing owned")?;
    queue
        .return_task(
            &task.id,
            task.token,
            "st\x1b[1mbold\x08\x1bc",
            TaskStatusCode::Aborted,
        )
        .await?;
    let listed = parade(&url, &["task", "list"]).await?.exits(0);
    assert_eq!(
        terminal_controls(&listed.stdout),
        Vec::<char>::new(),
        "{:?}",
        listed.stdout
    );
    assert!(listed.stdout.contains("evil"), "{:?}", listed.stdout);
    assert!(listed.stdout.contains("stbold"), "{:?}", listed.stdout);
    let shown = parade(&url, &["task", "show", id]).await?.exits(0);
    assert_eq!(
        terminal_controls(&shown.stdout),
        Vec::<char>::new(),
        "{:?}",
        shown.stdout
    );
    assert!(shown.stdout.contains("body: bred\n"), "{:?}", shown.stdout);
    assert!(shown.stdout.contains("action: act\n"), "{:?}", shown.stdout);
    // JSON escapes them: the stored values come back whole.
    assert_eq!(
        show_json(&url, id).await?["status"],
        "st\x1b[1mbold\x08\x1bc"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// database passwords

#[tokio::test]
async fn database_passwords_never_reach_the_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    let in_dir = |args: &[&str]| {
        let mut command = parade_command();
        command.args(args).current_dir(dir.path());
        command
    };
    // Named in an error: a kind of store Parade does not know.
    let refused = run(in_dir(&[
        "--database",
        "mysql://u:hunter2@somewhere/db",
        "task",
        "list",
    ]))
    .await?
    .exits(2)
    .says("mysql://u:***@somewhere/db");
    assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    let migrate = run(in_dir(&[
        "--database",
        "mysql://u:hunter2@somewhere/db",
        "migrate",
    ]))
    .await?
    .exits(2);
    assert!(!migrate.stderr.contains("hunter2"), "{}", migrate.stderr);

    // Printed by `run --check`, every way a URL carries a password.
    for (url, shown) in [
        (
            "postgres://u:hunter2@db.example/parade",
            "postgres://u:***@db.example/parade",
        ),
        (
            "postgres://u:hun@t:er2@db.example/parade",
            "postgres://u:***@db.example/parade",
        ),
        (
            "postgres://u@db.example/parade?password=hunter2",
            "postgres://u@db.example/parade?password=***",
        ),
        (
            "postgresql://db.example/parade?sslmode=require&password=hunter2&user=u",
            "postgresql://db.example/parade?sslmode=require&password=***&user=u",
        ),
        (
            "postgres://u:hun%40ter2@db.example/parade",
            "postgres://u:***@db.example/parade",
        ),
    ] {
        let checked = run(in_dir(&["--database", url, "run", "--check"]))
            .await?
            .exits(0);
        for secret in ["hunter2", "hun@t", "er2@", "hun%40"] {
            assert!(
                !checked.stdout.contains(secret),
                "{url}: {}",
                checked.stdout
            );
        }
        assert!(
            checked.stdout.contains(&format!("database  {shown}\n")),
            "{url}: {}",
            checked.stdout
        );
    }
    // SQLite URLs hold no password: shown as they are.
    let checked = run(in_dir(&[
        "--database",
        "sqlite://./a:b@c.db",
        "run",
        "--check",
    ]))
    .await?
    .exits(0);
    assert!(
        checked.stdout.contains("database  sqlite://./a:b@c.db\n"),
        "{}",
        checked.stdout
    );

    // Named when the store cannot be opened.
    let failed = run(in_dir(&[
        "--database",
        "postgres://u:hunter2@127.0.0.1:1/db",
        "run",
        "--admin",
        "off",
    ]))
    .await?
    .exits(2)
    .says("postgres://u:***@127.0.0.1:1/db");
    assert!(!failed.stderr.contains("hunter2"), "{}", failed.stderr);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task add --delay / --at / run_after, and task list / show saying when a task is due

/// The stored `run_after` of task `id`, from `task show --json`.
async fn run_after_of(url: &str, id: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(serde_json::from_value(
        show_json(url, id).await?["run_after"].clone(),
    )?)
}

/// RFC 3339 to the second, as `task list` and `task show` print a time.
fn to_the_second(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn task_add_delay_and_at_hold_the_task_until_then(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let before = Utc::now();
    add(&url, "later", &["--delay", "90s"]).await?;
    let after = Utc::now();
    add(&url, "at", &["--at", "2026-12-24T19:00:00+01:00"]).await?;
    add(&url, "past", &["--at", "2000-01-01T00:00:00Z"]).await?;
    add(&url, "plain", &[]).await?;

    let later = run_after_of(&url, "later").await?.context("no run_after")?;
    let ninety = chrono::Duration::seconds(90);
    assert!(
        later >= before + ninety && later <= after + ninety,
        "--delay 90s stored {later}, added between {before} and {after}"
    );
    assert_eq!(
        run_after_of(&url, "at").await?,
        Some("2026-12-24T18:00:00Z".parse()?),
        "--at is stored in UTC"
    );
    assert_eq!(run_after_of(&url, "plain").await?, None);

    // Only the tasks that are due are offered.
    let queue = parade_host::queue::open(&url).await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("t"),
            10,
            &["act".to_string()],
            Some(Duration::from_secs(60)),
        )
        .await?;
    let mut owned: Vec<&str> = owned.iter().map(|t| t.id.as_str()).collect();
    owned.sort_unstable();
    let mut due = vec!["past", "plain"];
    if Utc::now() >= "2026-12-24T18:00:00Z".parse::<DateTime<Utc>>()? {
        due.push("at");
        due.sort_unstable();
    }
    assert_eq!(owned, due);
    Ok(())
}

#[tokio::test]
async fn task_add_refuses_a_bad_delay_or_time_naming_the_flag() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    for (args, says) in [
        (
            &["--delay", "soon"][..],
            &["--delay", "90s, 5m or 1h30m"][..],
        ),
        (&["--delay", "-5s"], &["--delay", "cannot be negative"]),
        (
            &["--at", "tomorrow"],
            &["--at", "RFC 3339", "2026-12-24T18:00:00Z"],
        ),
        (&["--at", "2026-12-24 18:00"], &["--at", "RFC 3339"]),
        (&["--at", "2026-12-24T18:00:00"], &["--at", "RFC 3339"]),
        (
            &["--delay", "90s", "--at", "2026-12-24T18:00:00Z"],
            &["--delay", "--at"],
        ),
        (
            &["--delay", "100000000years"],
            &["--delay", "too far in the future"],
        ),
    ] {
        let mut all = vec!["task", "add", "--action", "act"];
        all.extend_from_slice(args);
        let refused = parade(&url, &all).await?.exits(2);
        for text in says {
            assert!(
                refused.stderr.contains(text),
                "{args:?}: stderr does not say {text:?}:\n{}",
                refused.stderr
            );
        }
    }
    let dir = tempfile::tempdir()?;
    let file = write_file(dir.path(), "one.jsonl", &[r#"{"action":"act"}"#])?;
    for option in [&["--delay", "5s"][..], &["--at", "2026-12-24T18:00:00Z"]] {
        let mut args = vec!["task", "add", "--file", path_arg(&file)];
        args.extend_from_slice(option);
        parade(&url, &args).await?.exits(2).says(option[0]);
    }
    assert!(listed_ids(&url, &[]).await?.is_empty(), "nothing was added");
    Ok(())
}

async fn task_add_file_stores_run_after(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(
        dir.path(),
        "delayed.jsonl",
        &[
            r#"{"id":"eve","action":"act","run_after":"2026-12-24T19:00:00+01:00"}"#,
            r#"{"id":"now","action":"act","run_after":null}"#,
        ],
    )?;
    parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(0);
    assert_eq!(
        run_after_of(&url, "eve").await?,
        Some("2026-12-24T18:00:00Z".parse()?)
    );
    assert_eq!(run_after_of(&url, "now").await?, None);
    Ok(())
}

#[tokio::test]
async fn task_add_file_with_a_bad_run_after_names_line_and_key() -> anyhow::Result<()> {
    for value in [r#""tomorrow""#, r#""2026-12-24 18:00""#, "1766599200", "{}"] {
        let line = format!(r#"{{"id":"x3","action":"act","run_after":{value}}}"#);
        assert_file_rejected_at_line_3(&line, r#""run_after" must be an RFC 3339 time"#).await?;
    }
    Ok(())
}

async fn task_list_and_show_say_when_a_delayed_task_is_due(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    add(&url, "later", &["--delay", "10m"]).await?;
    add(&url, "past", &["--at", "2000-01-01T00:00:00Z"]).await?;
    add(&url, "plain", &[]).await?;
    let later = run_after_of(&url, "later").await?.context("no run_after")?;
    let when = format!("({})", to_the_second(later));

    let listed = parade(&url, &["task", "list"]).await?.exits(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "ACTION", "CODE", "TRIES", "DUE", "STATUS"]);
    let due_column = lines[0].find("DUE").context("no DUE column")?;
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{id} ")))
            .copied()
            .with_context(|| format!("no row for {id}:\n{}", listed.stdout))
    };
    let later_due = &row("later")?[due_column..];
    assert!(
        (later_due.starts_with("in 10m ") || later_due.starts_with("in 9m "))
            && later_due.trim_end().ends_with(&when),
        "{:?}",
        row("later")?
    );
    for due_now in ["past", "plain"] {
        assert_eq!(
            row(due_now)?.split_whitespace().collect::<Vec<_>>(),
            [due_now, "act", "pending", "0"],
            "a task that is due shows no time"
        );
    }

    let shown = parade(&url, &["task", "show", "later"]).await?.exits(0);
    let run_after = shown
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("run_after: "))
        .with_context(|| format!("no run_after line:\n{}", shown.stdout))?;
    assert!(
        (run_after.starts_with("in 10m") || run_after.starts_with("in 9m "))
            && run_after.ends_with(&when),
        "{run_after:?}"
    );
    let shown = parade(&url, &["task", "show", "past"]).await?.exits(0);
    assert!(
        shown.stdout.lines().any(|l| l == "run_after: now"),
        "{}",
        shown.stdout
    );
    let shown = parade(&url, &["task", "show", "plain"]).await?.exits(0);
    assert!(
        shown.stdout.lines().any(|l| l == "run_after: "),
        "{}",
        shown.stdout
    );

    // JSON keeps the stored time exactly.
    let tasks = list(&url, &[]).await?;
    assert_eq!(tasks[0].run_after, Some(later));
    assert_eq!(tasks[2].run_after, None);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task add --if-absent

async fn task_add_if_absent_reports_which_ids_were_new(backend: Backend) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    add(&url, "x", &["--body", "first"]).await?;
    let again = parade(
        &url,
        &[
            "task",
            "add",
            "--if-absent",
            "--action",
            "other",
            "--id",
            "x",
            "--body",
            "second",
        ],
    )
    .await?
    .exits(0);
    assert_eq!(again.out(), "x\talready exists");
    let row = show_json(&url, "x").await?;
    assert_eq!(
        (row["action"].clone(), row["body"].clone()),
        (json!("act"), json!("first"))
    );
    let new = parade(
        &url,
        &["task", "add", "--if-absent", "--action", "act", "--id", "y"],
    )
    .await?
    .exits(0);
    assert_eq!(new.out(), "y\tadded");

    let dir = tempfile::tempdir()?;
    let file = write_file(
        dir.path(),
        "slots.jsonl",
        &[
            r#"{"id":"x","action":"act","body":"from the file"}"#,
            r#"{"id":"z","action":"act","to_signal_after":["w"]}"#,
            r#"{"id":"y","action":"act"}"#,
            r#"{"id":"w","action":"act","total_dependencies":1}"#,
        ],
    )?;
    let added = parade(
        &url,
        &["task", "add", "--file", path_arg(&file), "--if-absent"],
    )
    .await?
    .exits(0);
    assert_eq!(
        added.out(),
        "x\talready exists\nz\tadded\ny\talready exists\nw\tadded"
    );
    assert_eq!(listed_ids(&url, &[]).await?, ["x", "y", "z", "w"]);
    assert_eq!(show_json(&url, "x").await?["body"], "first");
    // The same file again adds nothing, and says so.
    let again = parade(
        &url,
        &["task", "add", "--if-absent", "--file", path_arg(&file)],
    )
    .await?
    .exits(0);
    assert_eq!(again.stdout.matches("\talready exists\n").count(), 4);
    // Without --if-absent the file is refused, as before.
    parade(&url, &["task", "add", "--file", path_arg(&file)])
        .await?
        .exits(2)
        .says("already exists")
        .says("nothing was inserted");
    Ok(())
}

#[tokio::test]
async fn task_add_file_if_absent_still_refuses_an_id_used_twice_in_the_file() -> anyhow::Result<()>
{
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = tempfile::tempdir()?;
    let file = write_file(
        dir.path(),
        "twice.jsonl",
        &[
            r#"{"id":"a","action":"act"}"#,
            r#"{"id":"a","action":"act"}"#,
        ],
    )?;
    parade(
        &url,
        &["task", "add", "--if-absent", "--file", path_arg(&file)],
    )
    .await?
    .exits(2)
    .says(&format!("{}:2", file.display()))
    .says("already on line 1");
    assert!(listed_ids(&url, &[]).await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// task cancel

async fn task_cancel_answers_per_id_and_exits_1_if_any_was_not_found(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    add(&url, "waiting", &["--total-dependencies", "1"]).await?;
    add(&url, "pending", &["--signal-after", "waiting"]).await?;
    add(&url, "delayed", &["--delay", "1h"]).await?;
    add(&url, "done", &[]).await?;
    finish(&url, "done", TaskStatusCode::Completed).await?;

    let cancelled = parade(
        &url,
        &[
            "task",
            "cancel",
            "waiting",
            "delayed",
            "done",
            "ghost",
            "--reason",
            "bad input",
        ],
    )
    .await?
    .exits(1);
    assert_eq!(
        cancelled.out(),
        "waiting\tcancelled\ndelayed\tcancelled\ndone\talready ended as completed\nghost\tnot found"
    );
    for id in ["waiting", "delayed"] {
        let row = show_json(&url, id).await?;
        assert_eq!(row["status_code"], "aborted", "{id}");
        assert_eq!(row["status"], "cancelled: bad input", "{id}");
        assert_eq!(row["run_after"], Value::Null, "{id}");
    }
    assert_eq!(show_json(&url, "done").await?["status"], "done");
    assert_eq!(
        show_json(&url, "pending").await?["status_code"],
        "pending",
        "not listed, not cancelled"
    );

    // Every id found: exit 0, even when all had ended. Without --reason: "cancelled".
    let again = parade(&url, &["task", "cancel", "waiting", "done", "--json"])
        .await?
        .exits(0);
    let answers: Vec<Value> = again
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        answers,
        [
            json!({"id": "waiting", "outcome": "already-ended", "status_code": "aborted", "cascade": false}),
            json!({"id": "done", "outcome": "already-ended", "status_code": "completed", "cascade": false}),
        ]
    );
    parade(&url, &["task", "cancel", "pending"]).await?.exits(0);
    assert_eq!(show_json(&url, "pending").await?["status"], "cancelled");
    Ok(())
}

async fn task_cancel_cascade_reaches_the_tasks_waiting_on_it(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    add(&url, "last", &["--total-dependencies", "1"]).await?;
    add(
        &url,
        "middle",
        &["--total-dependencies", "1", "--signal-after", "last"],
    )
    .await?;
    add(&url, "first", &["--signal-after", "middle"]).await?;
    add(&url, "other", &["--total-dependencies", "1"]).await?;
    add(&url, "first-2", &["--signal-after", "other"]).await?;

    // Without --cascade a successor is signalled with a failure, and may run.
    parade(&url, &["task", "cancel", "first-2"]).await?.exits(0);
    let other = show_json(&url, "other").await?;
    assert_eq!(
        (other["status_code"].clone(), other["num_failures"].clone()),
        (json!("pending"), json!(1))
    );

    let cancelled = parade(
        &url,
        &[
            "task",
            "cancel",
            "first",
            "--cascade",
            "--reason",
            "wrong input",
        ],
    )
    .await?
    .exits(0);
    // The listed id first, then those the cascade reached (in no promised order).
    let mut lines: Vec<&str> = cancelled.out().lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"first\tcancelled"),
        "{}",
        cancelled.stdout
    );
    lines[1..].sort_unstable();
    assert_eq!(
        lines[1..],
        ["last\tcancelled (cascade)", "middle\tcancelled (cascade)"]
    );
    for id in ["first", "middle", "last"] {
        let row = show_json(&url, id).await?;
        assert_eq!(row["status_code"], "aborted", "{id}");
        assert_eq!(row["status"], "cancelled: wrong input", "{id}");
    }
    Ok(())
}

async fn task_cancel_of_a_running_task_refuses_its_late_result(
    backend: Backend,
) -> anyhow::Result<()> {
    let url = backend.fresh_url().await?;
    add(&url, "running", &["--notify", "chan"]).await?;
    let queue = parade_host::queue::open(&url).await?;
    let owned = queue
        .own_tasks(
            &ActorId::from("elsewhere"),
            1,
            &["act".to_string()],
            Some(Duration::from_secs(600)),
        )
        .await?;
    let task = owned.first().context("nothing owned")?;
    assert_eq!(
        show_json(&url, "running").await?["status_code"],
        "in-progress"
    );

    let cancelled = parade(&url, &["task", "cancel", "running", "--reason", "stop"])
        .await?
        .exits(0);
    assert_eq!(cancelled.out(), "running\tcancelled");
    let row = show_json(&url, "running").await?;
    assert_eq!(row["status_code"], "aborted");
    assert_eq!(row["status"], "cancelled: stop");
    // Its owner can neither extend nor return it any more.
    let extended = queue
        .extend_task_deadline(&task.id, task.token, Duration::from_secs(60))
        .await;
    assert!(
        matches!(
            extended,
            Err(parade_host::queue::Error::InvalidToken { .. })
        ),
        "{extended:?}"
    );
    let returned = queue
        .return_task(&task.id, task.token, "late", TaskStatusCode::Completed)
        .await;
    assert!(
        matches!(
            returned,
            Err(parade_host::queue::Error::InvalidToken { .. })
        ),
        "{returned:?}"
    );
    assert_eq!(
        show_json(&url, "running").await?["status"],
        "cancelled: stop"
    );
    // Whoever waits on it hears that it ended.
    let waited = parade(&url, &["task", "wait", "running", "--timeout", "5s"])
        .await?
        .exits(1);
    assert_eq!(waited.out(), "aborted\tcancelled: stop");
    Ok(())
}

support::on_both_backends!(
    task_add_delay_and_at_hold_the_task_until_then,
    task_add_file_stores_run_after,
    task_list_and_show_say_when_a_delayed_task_is_due,
    task_add_if_absent_reports_which_ids_were_new,
    task_cancel_answers_per_id_and_exits_1_if_any_was_not_found,
    task_cancel_cascade_reaches_the_tasks_waiting_on_it,
    task_cancel_of_a_running_task_refuses_its_late_result,
);

#[tokio::test]
async fn task_cancel_help_teaches_its_exit_codes_and_needs_an_id() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let help = parade(&url, &["task", "cancel", "--help"]).await?.exits(0);
    for text in [
        "cancelled: REASON",
        "0 if every listed id was cancelled or had already ended",
        "1 if any listed id names no task",
        "--cascade",
        "refuses its late result",
    ] {
        assert!(help.stdout.contains(text), "{text:?} in\n{}", help.stdout);
    }
    parade(&url, &["task", "cancel"])
        .await?
        .exits(2)
        .says("<ID>");
    Ok(())
}
