//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven through
//! Playwright (`tests/browser`, both installed by scripts/test.sh) against a running node.
//! The numbers it shows are checked against the store, and an operator cancels a task from
//! its page; screenshots of the overview, a task page and the cancel are kept in
//! `target/test-artifacts/`.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use parade_host::queue::{self, Parade, TaskData, TaskFilter, TaskId};
use serde_json::Value;
use support::process::{node_dir, Node};
use support::Backend;

/// The `[admin] token` of the node under test.
const OPERATOR_TOKEN: &str = "dash-operator-token";

fn task(id: &str, action: &str, body: &str) -> TaskData {
    TaskData {
        body: Some(body.into()),
        ..TaskData::new(id, action)
    }
}

/// tests/browser, with playwright-core installed there and Debian's chromium present.
fn browser_dir() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    ensure!(
        dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and tests/browser/node_modules: run \
         scripts/test.sh, which installs both"
    );
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_store_holds() -> anyhow::Result<()> {
    let browser_dir = browser_dir()?;
    let url = Backend::Sqlite.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let mut tasks: Vec<TaskData> = (0..10)
        .map(|i| task(&format!("e{i}"), "echo", "hi"))
        .collect();
    tasks.extend([
        TaskData {
            to_signal_after: vec![TaskId::from("join")],
            ..task("root", "echo", "root")
        },
        TaskData {
            to_signal_after: vec![TaskId::from("join")],
            max_tries: Some(1),
            ..task("left-bad", "word-count", "this is not JSON")
        },
        TaskData {
            total_dependencies: Some(2),
            ..task("join", "echo", "join")
        },
    ]);
    // An action no node serves: these stay pending (n1 delayed by an hour).
    let delayed_until = chrono::Utc::now() + chrono::Duration::hours(1);
    tasks.extend((0..3).map(|i| TaskData {
        run_after: (i == 1).then_some(delayed_until),
        ..task(&format!("n{i}"), "nobody", "")
    }));
    queue.insert_tasks(&tasks).await?;

    let dir = node_dir(&["echo", "json_transform"])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        format!("[admin]\ntoken = \"{OPERATOR_TOKEN}\"\n"),
    )?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = queue
            .list_tasks(&TaskFilter::default())
            .await?
            .iter()
            .filter(|t| t.action != "nobody" && !t.status_code.is_final())
            .count();
        if open == 0 {
            break;
        }
        ensure!(Instant::now() < deadline, "{open} tasks still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    // The store as the page shows it, before the browser cancels a task.
    let summary = queue.summary().await?;
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(&admin)
        .arg(&artifacts)
        .args([OPERATOR_TOKEN, "n1", "n0"])
        .output()
        .await
        .context("running node (Node.js)")?;
    ensure!(
        output.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout)?;

    // Every count the store has is on the page, and nothing else is.
    let mut shown = 0;
    for count in &summary.counts {
        let on_page = &seen["counts"][&count.action][count.status_code.as_str()];
        assert_eq!(on_page.as_u64(), Some(count.count), "{count:?} vs {seen}");
        shown += count.count;
    }
    let total_on_page: u64 = seen["counts"]
        .as_object()
        .context("no counts")?
        .values()
        .flat_map(|row| row.as_object().into_iter().flat_map(|r| r.values()))
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total_on_page, shown);
    assert_eq!(seen["counts"]["nobody"]["pending"], 3);
    assert_eq!(seen["counts"]["echo"]["completed"], 12);

    // The failure's page: its status, body, and its place in the DAG.
    assert_eq!(seen["failures"], serde_json::json!(["left-bad"]));
    let page = &seen["task"];
    assert_eq!(page["id"], "left-bad");
    assert_eq!(page["fields"]["status code"], "aborted");
    assert_eq!(page["fields"]["tries"], "1 of 1");
    assert_eq!(page["body"], "this is not JSON");
    assert_eq!(page["successors"], serde_json::json!(["join"]));
    assert_eq!(page["predecessors"], serde_json::json!([]));
    let stored = queue.get_task(&TaskId::from("left-bad")).await?.unwrap();
    assert_eq!(page["fields"]["status"].as_str(), stored.status.as_deref());
    assert_eq!(page["operator"], false, "an ended task cannot be cancelled");
    assert!(page["fields"].get("deadline").is_none(), "{page}");

    // A delayed task says when it is due.
    let due = seen["delayed"]["due"].as_str().context("no due field")?;
    let at = delayed_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        due.starts_with("in ") && due.ends_with(&format!("({at})")),
        "{due}"
    );

    // The operator's cancel: the button only once the token is entered, a confirmation,
    // the answer, the page and the store updated; the token never in a URL or a cookie.
    let cancel = &seen["cancel"];
    assert_eq!(
        cancel["beforeToken"],
        serde_json::json!({"tokenEntry": true, "cancel": false})
    );
    assert_eq!(
        cancel["afterToken"],
        serde_json::json!({"tokenEntry": false, "cancel": true})
    );
    assert_eq!(
        cancel["dialogs"].as_array().map(Vec::len),
        Some(1),
        "{cancel}"
    );
    assert!(
        cancel["dialogs"][0]
            .as_str()
            .is_some_and(|d| d.contains("n0")),
        "{cancel}"
    );
    assert_eq!(cancel["answer"], "n0: cancelled");
    assert_eq!(cancel["fields"]["status code"], "aborted");
    assert_eq!(cancel["fields"]["status"], "cancelled: from the browser");
    assert_eq!(cancel["cancelShown"], false);
    assert_eq!(cancel["tokenKept"], true);
    assert_eq!(cancel["cookies"], 0);
    assert_eq!(cancel["urlsWithToken"], serde_json::json!([]));
    let cancelled = queue
        .get_task(&TaskId::from("n0"))
        .await?
        .context("n0 is gone")?;
    assert_eq!(
        (cancelled.status_code, cancelled.status.as_deref()),
        (
            queue::TaskStatusCode::Aborted,
            Some("cancelled: from the browser")
        )
    );
    for shot in ["dashboard.png", "task.png", "cancel.png"] {
        let size = std::fs::metadata(artifacts.join(shot))?.len();
        assert!(size > 10_000, "{shot} is only {size} bytes");
    }
    node.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_warns_charts_and_acts_on_sqlite() -> anyhow::Result<()> {
    the_overview_warns_charts_and_acts(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_warns_charts_and_acts_on_postgres() -> anyhow::Result<()> {
    the_overview_warns_charts_and_acts(Backend::Postgres).await
}

/// The overview of a node whose store holds something for every warning: runnable tasks of
/// an action no node serves, a task in progress past its deadline (its owner "crashed"), a
/// plugin at its concurrency limit (another "node" holds its one task), and, once the node
/// runs, a reload it rejected. Its numbers are checked against the store, its charts against
/// `/api/history` and the node's counters, and each button with no token, a wrong one and
/// the right one. Screenshots: overview.png, overview-paused.png, overview-operator.png.
async fn the_overview_warns_charts_and_acts(backend: Backend) -> anyhow::Result<()> {
    let browser_dir = browser_dir()?;
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    // Held within echo's limit by another node until long after the test: echo (limit 1)
    // is at its limit, and this node owns none of its tasks.
    queue.insert_tasks(&[task("held", "echo", "")]).await?;
    let held = queue
        .own(&queue::OwnRequest {
            actor: &queue::ActorId::from("other-node"),
            max_tasks: 1,
            actions: &["echo".into()],
            max_duration: Some(Duration::from_secs(3600)),
            expiry_backoff: &[],
            max_in_progress: Some(1),
        })
        .await?;
    ensure!(held.len() == 1, "{held:?}");
    // In progress too, owned by a node without the limit: the limit does not count it, and
    // neither may its panel or its warning.
    queue.insert_tasks(&[task("unlimited", "echo", "")]).await?;
    let unlimited = queue
        .own_tasks(
            &queue::ActorId::from("node-without-the-limit"),
            1,
            &["echo".into()],
            Some(Duration::from_secs(3600)),
        )
        .await?;
    ensure!(unlimited.len() == 1, "{unlimited:?}");
    // Its owner stopped extending it: past its deadline, and no node serves `ghost`.
    queue.insert_tasks(&[task("lapsed", "ghost", "")]).await?;
    let crashed = queue::ActorId::from("crashed-node");
    let lapsed = queue
        .own_tasks(
            &crashed,
            1,
            &["ghost".into()],
            Some(Duration::from_millis(1)),
        )
        .await?;
    ensure!(lapsed.len() == 1, "{lapsed:?}");
    let mut tasks: Vec<TaskData> = (0..10)
        .map(|i| task(&format!("w{i}"), "word-count", r#"{"text": "a b a"}"#))
        .collect();
    tasks.push(TaskData {
        max_tries: Some(1),
        ..task("bad", "word-count", "not JSON")
    });
    tasks.extend((0..2).map(|i| task(&format!("e{i}"), "echo", "waits for the limit")));
    tasks.extend((0..3).map(|i| task(&format!("n{i}"), "nobody", "")));
    queue.insert_tasks(&tasks).await?;

    let dir = node_dir(&["echo", "json_transform"])?;
    std::fs::write(dir.path().join("plugins/echo.toml"), "concurrency = 1\n")?;
    let config = format!(
        "[admin]\ntoken = \"{OPERATOR_TOKEN}\"\n\n[[schedule]]\nname = \"tick\"\nevery = \"1h\"\n\
         action = \"word-count\"\nbody = '{{\"text\": \"tick\"}}'\n"
    );
    std::fs::write(dir.path().join("parade.toml"), &config)?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = queue
            .list_tasks(&TaskFilter {
                action: Some("word-count".into()),
                ..TaskFilter::default()
            })
            .await?
            .iter()
            .filter(|t| !t.status_code.is_final())
            .count();
        if open == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{open} word-count tasks still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A reload it must reject: an unknown key.
    std::fs::write(
        dir.path().join("parade.toml"),
        format!("{config}\n[admin.extra]\nbogus = 1\n"),
    )?;
    node.until_logged("reload rejected", Duration::from_secs(30))
        .await?;
    // A sample after the last task ended (the charts draw sampled intervals), and past the
    // grace after which runnable tasks no node owns are called unserved.
    let last_return = Instant::now();
    loop {
        let history = get_json(&format!("{admin}/api/history")).await?;
        let sampled_after = history["points"].as_array().is_some_and(|p| {
            p.last().is_some_and(|p| {
                p["at"]
                    .as_str()
                    .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok())
                    .is_some_and(|at| at > chrono::Utc::now() - last_return.elapsed())
            })
        });
        // And the store's day read after it, for the longer chart.
        let day_read_after = history["day"]["read_at"]
            .as_str()
            .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .is_some_and(|at| at > chrono::Utc::now() - last_return.elapsed());
        if sampled_after
            && day_read_after
            && last_return.elapsed() > parade_host::admin::UNSERVED_GRACE
        {
            break;
        }
        // Polls keep the unserved action's clock running, as an open page would.
        get_json(&format!("{admin}/api/overview")).await?;
        ensure!(
            last_return.elapsed() < parade_host::admin::HISTORY_INTERVAL * 3,
            "no sample after the tasks ended: {history}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts")
        .join(format!("overview-{backend:?}").to_lowercase());
    std::fs::create_dir_all(&artifacts)?;
    // The store at the moment of the check: nothing the node serves is runnable (echo waits
    // at its limit), so nothing changes until the buttons are pressed.
    let summary = queue.summary().await?;
    let metrics = support::process::http("GET", &format!("{admin}/metrics"), &[])
        .await?
        .body;
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("overview.mjs"))
        .arg(&admin)
        .arg(&artifacts)
        .args([OPERATOR_TOKEN, "word-count", "tick"])
        .output()
        .await
        .context("running node (Node.js)")?;
    ensure!(
        output.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout)?;

    // The counts table is the store's summary.
    for count in &summary.counts {
        let on_page = &seen["counts"][&count.action][count.status_code.as_str()];
        assert_eq!(on_page.as_u64(), Some(count.count), "{count:?} vs {seen}");
    }
    // A warning for each thing, with the store's numbers.
    let warning = |kind: &str, subject: &str| {
        seen["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["kind"] == kind && w["subject"] == subject)
            .cloned()
            .with_context(|| format!("no {kind} warning for {subject}: {}", seen["warnings"]))
    };
    let attention = |action: &str| summary.attention.iter().find(|a| a.action == action);
    let unserved = warning("unserved", "nobody")?;
    assert_eq!(
        unserved["count"].as_u64(),
        attention("nobody").map(|a| a.runnable)
    );
    assert_eq!(unserved["count"], 3);
    let past_deadline = warning("past-deadline", "ghost")?;
    assert_eq!(
        past_deadline["count"].as_u64(),
        attention("ghost").map(|a| a.past_deadline)
    );
    assert_eq!(past_deadline["count"], 1);
    let rejected = warning("reload-rejected", "reload")?;
    assert!(
        rejected["text"]
            .as_str()
            .is_some_and(|t| t.contains("extra")),
        "{rejected}"
    );
    let at_limit = warning("at-limit", "echo")?;
    assert_eq!(at_limit["count"], 1);
    assert_eq!(
        seen["warnings"].as_array().map(Vec::len),
        Some(4),
        "{}",
        seen["warnings"]
    );
    // Echo's limit is in use by the task the other node holds.
    let echo_in_progress = summary.within_limit(&["echo".to_owned()]);
    assert_eq!(echo_in_progress, 1);
    assert_eq!(
        seen["limits"],
        serde_json::json!([{"plugin": "echo", "scope": "store", "in_use": echo_in_progress, "limit": 1}])
    );
    // The schedule: its next slot, and its latest (no node ran it then).
    let now = chrono::Utc::now();
    let every_hour = parade_host::schedule::Timing::Every { seconds: 3600 };
    let schedule = &seen["schedules"][0];
    assert_eq!(schedule["name"], "tick");
    assert_eq!(
        schedule["next"].as_str(),
        every_hour
            .next_after(now)
            .map(parade_host::schedule::slot_text)
            .as_deref()
    );
    let latest = every_hour
        .latest_at_or_before(now)
        .map(parade_host::schedule::slot_text)
        .context("no latest slot")?;
    assert_eq!(
        schedule["last"].as_str(),
        Some(format!("{latest} not in the store").as_str())
    );

    // The charts' last points are /api/history's last sampled interval, and the intervals
    // and the time since add up to the node's counters and to the store.
    let history = &seen["history"];
    // Nothing finished before the node started: its start, the zero of its counters, is
    // before it finished its first task (else a minute turning between the two would count
    // those tasks twice, in the hour before the start and in the node's own points).
    assert_eq!(history["before_start"], serde_json::json!([]));
    let started_at: chrono::DateTime<chrono::Utc> = history["started_at"]
        .as_str()
        .context("started_at")?
        .parse()?;
    let first_finished = queue
        .list_task_page(&TaskFilter {
            action: Some("word-count".into()),
            ..TaskFilter::default()
        })
        .await?
        .tasks
        .iter()
        .filter_map(|t| t.finished_at)
        .min()
        .context("no word-count task finished")?;
    // The store keeps microseconds.
    assert!(
        started_at - chrono::TimeDelta::microseconds(1) <= first_finished,
        "the node started at {started_at}, after its first task finished at {first_finished}"
    );
    let points = history["points"].as_array().context("no points")?;
    let last = points.last().context("no sampled interval")?;
    let throughput = &seen["charts"]["throughput"]["completed word-count"];
    assert_eq!(throughput["points"].as_u64(), Some(points.len() as u64));
    let last_at: chrono::DateTime<chrono::Utc> = last["at"].as_str().context("at")?.parse()?;
    let drawn_at: chrono::DateTime<chrono::Utc> =
        throughput["lastAt"].as_str().context("lastAt")?.parse()?;
    // The page and /api/history were read moments apart; a sample may fall in between.
    if (last_at - drawn_at).num_milliseconds().abs() <= 1 {
        assert_eq!(
            throughput["lastCount"].as_u64(),
            Some(
                last["actions"]["word-count"]["completed"]
                    .as_u64()
                    .unwrap_or(0)
            )
        );
        assert_eq!(
            seen["charts"]["depth"]["pending"]["last"].as_u64(),
            last["depth"]["pending"].as_u64()
        );
    }
    let total = |what: &str| -> u64 {
        points
            .iter()
            .chain([&history["since_last"]])
            .filter_map(|p| p["actions"]["word-count"][what].as_u64())
            .sum()
    };
    let stored = |code: queue::TaskStatusCode| {
        summary
            .counts
            .iter()
            .find(|c| c.action == "word-count" && c.status_code == code)
            .map_or(0, |c| c.count)
    };
    assert_eq!(total("completed"), stored(queue::TaskStatusCode::Completed));
    assert_eq!(total("aborted"), stored(queue::TaskStatusCode::Aborted));
    assert_eq!((total("completed"), total("aborted")), (10, 1));
    // The store's last day, as drawn and as /api/history has it: every finished task.
    let day = &seen["charts"]["day"];
    assert_eq!(
        day["completed word-count"]["total"].as_u64(),
        Some(stored(queue::TaskStatusCode::Completed)),
        "{day}"
    );
    assert_eq!(
        day["aborted word-count"]["total"].as_u64(),
        Some(stored(queue::TaskStatusCode::Aborted)),
        "{day}"
    );
    let day_series = history["day"]["series"].as_array().context("no day")?;
    let day_total = |code: &str| -> u64 {
        day_series
            .iter()
            .filter(|s| s["action"] == "word-count" && s["status_code"] == code)
            .flat_map(|s| s["counts"].as_array().into_iter().flatten())
            .filter_map(serde_json::Value::as_u64)
            .sum()
    };
    assert_eq!((day_total("completed"), day_total("aborted")), (10, 1));
    // Echo's tasks wait behind its limit.
    assert_eq!(seen["counts"]["echo"]["pending"], 2);
    assert!(
        metrics.contains(&format!(
            "parade_tasks_completed_total{{action=\"word-count\"}} {}",
            total("completed")
        )),
        "{metrics}"
    );

    // The buttons: hidden and refused without a token, refused with a wrong one (which is
    // forgotten), and with the token each does what it says.
    assert_eq!(seen["unauthorized"]["tokenEntry"], true);
    assert_eq!(seen["unauthorized"]["buttons"], serde_json::json!([]));
    for (path, status) in seen["unauthorized"]["statuses"]
        .as_object()
        .context("statuses")?
    {
        assert_eq!(status, 401, "{path}");
    }
    let wrong = &seen["wrongToken"];
    assert_eq!(wrong["failed"], true, "{wrong}");
    assert!(
        wrong["answer"]
            .as_str()
            .is_some_and(|a| a.contains("wrong token")),
        "{wrong}"
    );
    assert_eq!(wrong["state"], "running");
    assert_eq!(wrong["tokenEntryAgain"], true);
    assert_eq!(seen["withToken"]["tokenEntry"], false);
    assert_eq!(
        seen["withToken"]["buttons"].as_array().map(Vec::len),
        Some(3),
        "pause for each of the two actions, run now for the schedule: {}",
        seen["withToken"]
    );
    assert_eq!(
        seen["pause"],
        serde_json::json!({"answer": "action word-count paused on this node", "failed": false, "state": "paused"})
    );
    assert_eq!(
        seen["resume"],
        serde_json::json!({"answer": "action word-count resumed on this node", "failed": false, "state": "running"})
    );
    let ran = seen["runNow"]["answer"].as_str().context("no answer")?;
    let run_id = ran
        .strip_prefix("schedule tick: task ")
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("unexpected answer {ran:?}"))?;
    assert!(run_id.starts_with("schedule:tick:now:"), "{run_id}");
    let run_task = queue
        .get_task(&TaskId::from(run_id))
        .await?
        .context("the run-now task is not in the store")?;
    assert_eq!(run_task.action, "word-count");
    assert_eq!(run_task.body.as_deref(), Some(r#"{"text": "tick"}"#));
    // Each press asked first: the wrong-token pause, pause, resume, run now.
    let dialogs = seen["dialogs"].as_array().context("dialogs")?;
    assert_eq!(dialogs.len(), 4, "{dialogs:?}");
    assert!(dialogs[3].as_str().is_some_and(|d| d.contains("tick")));
    assert_eq!(seen["tokenKept"], true);
    assert_eq!(seen["cookies"], 0);
    assert_eq!(seen["urlsWithToken"], serde_json::json!([]));
    for shot in [
        "overview.png",
        "overview-paused.png",
        "overview-operator.png",
    ] {
        let size = std::fs::metadata(artifacts.join(shot))?.len();
        assert!(size > 10_000, "{shot} is only {size} bytes");
    }
    node.stop().await?;
    Ok(())
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let response = support::process::http("GET", url, &[]).await?;
    ensure!(response.status == 200, "GET {url}: {}", response.status);
    Ok(serde_json::from_str(&response.body)?)
}

#[tokio::test]
async fn schedule_run_enqueues_one_task_now_in_the_nodes_namespace() -> anyhow::Result<()> {
    let url = Backend::Sqlite.fresh_url().await?;
    let dir = node_dir(&[])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        "[actor]\nprefix = \"team\"\n\n[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\n\
         action = \"report\"\nbody = \"all\"\nmax_tries = 2\n",
    )?;
    let (code, out, err) = support::process::run(
        dir.path(),
        &["--database", &url, "schedule", "run", "nightly"],
    )
    .await?;
    assert_eq!(code, 0, "{err}");
    let id = out.trim();
    assert!(id.starts_with("schedule:nightly:now:"), "{out}");
    let namespaced = queue::Prefixed::new(queue::open(&url).await?, "team");
    let task = namespaced
        .get_task(&TaskId::from(id))
        .await?
        .context("the task is not in the node's namespace")?;
    assert_eq!(
        (task.action.as_str(), task.body.as_deref(), task.max_tries),
        ("report", Some("all"), Some(2))
    );
    assert_eq!(task.run_after, None, "it runs now, not at a slot");

    // A name the configuration does not have: exit 2, naming the schedules it has.
    let (code, _, err) =
        support::process::run(dir.path(), &["--database", &url, "schedule", "run", "nope"]).await?;
    assert_eq!(code, 2);
    assert!(
        err.contains("no schedule \"nope\"") && err.contains("nightly"),
        "{err}"
    );
    Ok(())
}

/// s1, s2 → a → b1, b2, b3 → c → d1, d2, with x → b1 beside it (an ancestor of b1, not of
/// a) and an unrelated u: a 3-level fan-out/fan-in around `a`.
fn fan_out_fan_in(action: &str) -> Vec<TaskData> {
    let node = |id: &str, total: Option<i32>, successors: &[&str]| TaskData {
        total_dependencies: total,
        to_signal_after: successors.iter().map(|s| TaskId::from(*s)).collect(),
        ..TaskData::new(id, action)
    };
    vec![
        node("d1", Some(1), &[]),
        node("d2", Some(1), &[]),
        node("c", Some(3), &["d1", "d2"]),
        node("b1", Some(2), &["c"]),
        node("b2", Some(1), &["c"]),
        node("b3", Some(1), &["c"]),
        node("a", Some(2), &["b1", "b2", "b3"]),
        node("s1", None, &["a"]),
        node("s2", None, &["a"]),
        node("x", None, &["b1"]),
        node("u", None, &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_browser_pages_filters_and_acts_on_sqlite() -> anyhow::Result<()> {
    the_task_browser_pages_filters_and_acts(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_browser_pages_filters_and_acts_on_postgres() -> anyhow::Result<()> {
    the_task_browser_pages_filters_and_acts(Backend::Postgres).await
}

/// The task browser and task pages in Chromium (`tests/browser/browser.mjs`): 10,000 tasks
/// paged through by the "older" link without a gap or a repeat, each state filter, an action
/// with an id prefix, an enqueue-time window, a task's DAG with every ancestor and
/// descendant, and Retry, Delete and Cancel refused with a wrong token and done with the
/// right one, the cancel stopping a task the node is running (a component in an endless
/// loop). Screenshots in `target/test-artifacts/`.
async fn the_task_browser_pages_filters_and_acts(backend: Backend) -> anyhow::Result<()> {
    let browser_dir = browser_dir()?;
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let bulk: Vec<String> = (0..10_000).map(|i| format!("bulk-{i:05}")).collect();
    for chunk in bulk.chunks(2_500) {
        let tasks: Vec<TaskData> = chunk
            .iter()
            .map(|id| TaskData::new(id.as_str(), "bulk"))
            .collect();
        queue.insert_tasks(&tasks).await?;
    }
    // The DAG goes in on its own, a moment later: one enqueue time that no other task has.
    tokio::time::sleep(Duration::from_millis(30)).await;
    queue.insert_tasks(&fan_out_fan_in("dag")).await?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let now = chrono::Utc::now();
    queue
        .insert_tasks(&[
            TaskData {
                run_after: Some(now + chrono::Duration::hours(1)),
                ..TaskData::new("delayed-1", "spare")
            },
            TaskData {
                status_code: queue::TaskStatusCode::Aborted,
                status: Some("boom".into()),
                num_tries: 3,
                max_tries: Some(3),
                ..TaskData::new("failed-1", "spare")
            },
            TaskData {
                status_code: queue::TaskStatusCode::Completed,
                ..TaskData::new("done-1", "spare")
            },
            TaskData::new("doomed", "spare"),
            TaskData::new("endless", "loop"),
        ])
        .await?;
    let dag_enqueued = queue
        .list_task_page(&TaskFilter {
            id: Some(TaskId::from("a")),
            ..TaskFilter::default()
        })
        .await?
        .tasks
        .first()
        .context("no task a")?
        .enqueued_at;

    let dir = node_dir(&["misbehave"])?;
    std::fs::write(
        dir.path().join("parade.toml"),
        format!(
            "[admin]\ntoken = \"{OPERATOR_TOKEN}\"\n[manager]\nworkers = 1\nmax_duration = \"1h\"\n"
        ),
    )?;
    let node = Node::start(dir.path(), &url, &["--admin", "127.0.0.1:0"])?;
    let admin = node.admin_url().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue
        .get_task(&TaskId::from("endless"))
        .await?
        .map(|t| t.status_code)
        != Some(queue::TaskStatusCode::InProgress)
    {
        ensure!(
            Instant::now() < deadline,
            "endless never started:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artifacts")
        .join(format!("browser-{backend:?}").to_lowercase());
    std::fs::create_dir_all(&artifacts)?;
    let micros = chrono::SecondsFormat::Micros;
    let args = serde_json::json!({
        "bulkAction": "bulk",
        "pageSize": 500,
        "dagAction": "dag",
        "dagPrefix": "b",
        "dagTask": "a",
        "from": dag_enqueued.to_rfc3339_opts(micros, true),
        "to": (dag_enqueued + chrono::Duration::microseconds(1)).to_rfc3339_opts(micros, true),
        "retryId": "failed-1",
        "deleteId": "doomed",
        "cancelId": "endless",
    });
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("browser.mjs"))
        .arg(&admin)
        .arg(&artifacts)
        .arg(OPERATOR_TOKEN)
        .arg(args.to_string())
        .output()
        .await
        .context("running node (Node.js)")?;
    ensure!(
        output.status.success(),
        "the browser script failed:\n{}\nthe node's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );
    let seen: Value = serde_json::from_slice(&output.stdout)?;

    // 10,000 tasks, newest first, 500 a page: each exactly once, in order.
    let paged = &seen["paged"];
    let ids: Vec<&str> = paged["ids"]
        .as_array()
        .context("no ids")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let newest_first: Vec<&str> = bulk.iter().rev().map(String::as_str).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(ids == newest_first, "the pages skip or repeat a task");
    assert_eq!(paged["pages"], 20);
    assert_eq!(paged["endShown"], true);

    // Each state, as the form filters it.
    let filters = &seen["filters"];
    let keys = |state: &str| -> Vec<String> {
        let mut ids: Vec<String> = filters[state]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    };
    assert_eq!(keys("waiting"), ["a", "b1", "b2", "b3", "c", "d1", "d2"]);
    assert_eq!(keys("delayed"), ["delayed-1"]);
    assert_eq!(keys("in-progress"), ["endless"]);
    assert_eq!(keys("completed"), ["done-1"]);
    assert_eq!(keys("aborted"), ["failed-1"]);
    let pending = filters["pending"].as_object().context("no pending")?;
    assert_eq!(pending.len(), 50, "a full first page");
    assert!(pending.values().all(|s| s == "pending"), "{pending:?}");
    assert!(
        pending.contains_key("doomed"),
        "the newest pending task leads"
    );
    for state in ["waiting", "delayed", "in-progress", "completed", "aborted"] {
        let states = filters[state].as_object().context("no rows")?;
        assert!(states.values().all(|s| s == state), "{state}: {states:?}");
    }
    assert_eq!(
        filters["actionAndPrefix"],
        serde_json::json!(["b3", "b2", "b1"])
    );
    let filtered_url = filters["actionAndPrefixUrl"].as_str().unwrap_or("");
    assert!(
        filtered_url.contains("action=dag") && filtered_url.contains("id=b"),
        "{filtered_url}"
    );
    let mut in_window: Vec<&str> = filters["timeRange"]
        .as_array()
        .context("no window")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    in_window.sort();
    assert_eq!(
        in_window,
        ["a", "b1", "b2", "b3", "c", "d1", "d2", "s1", "s2", "u", "x"]
    );
    assert_eq!(
        filters["fromField"],
        dag_enqueued.format("%Y-%m-%dT%H:%M:%S").to_string()
    );

    // The DAG of a, opened from its row: every ancestor and descendant, nothing else.
    let dag = &seen["dag"];
    assert_eq!(dag["id"], "a");
    assert!(dag["url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/task?id=a")));
    let mut nodes: Vec<(String, i64, String)> = dag["nodes"]
        .as_array()
        .context("no nodes")?
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or("").to_owned(),
                n["depth"].as_i64().unwrap_or(99),
                n["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    nodes.sort();
    let expected: Vec<(String, i64, String)> = [
        ("a", 0, "waiting"),
        ("b1", 1, "waiting"),
        ("b2", 1, "waiting"),
        ("b3", 1, "waiting"),
        ("c", 2, "waiting"),
        ("d1", 3, "waiting"),
        ("d2", 3, "waiting"),
        ("s1", -1, "pending"),
        ("s2", -1, "pending"),
    ]
    .iter()
    .map(|(id, depth, state)| (id.to_string(), *depth, state.to_string()))
    .collect();
    assert_eq!(nodes, expected);
    let mut edges: Vec<(String, String)> = dag["edges"]
        .as_array()
        .context("no edges")?
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap_or("").into(),
                e[1].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    edges.sort();
    let expected: Vec<(String, String)> = [
        ("a", "b1"),
        ("a", "b2"),
        ("a", "b3"),
        ("b1", "c"),
        ("b2", "c"),
        ("b3", "c"),
        ("c", "d1"),
        ("c", "d2"),
        ("s1", "a"),
        ("s2", "a"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(edges, expected);
    assert_eq!(dag["more"], false);

    // The buttons: none before a token, a wrong token refused, the right one obeyed.
    let buttons = &seen["buttons"];
    assert_eq!(
        buttons["retryBeforeToken"],
        serde_json::json!({"token-entry": true, "retry": false, "delete": false, "cancel": false})
    );
    let refused = "missing or wrong token: send Authorization: Bearer TOKEN";
    for wrong in ["retryWrong", "deleteWrong", "cancelWrong"] {
        assert_eq!(buttons[wrong], refused, "{wrong}: {buttons}");
    }
    assert_eq!(
        buttons["retryAfterWrong"],
        serde_json::json!({"token-entry": true, "retry": false})
    );
    assert_eq!(
        buttons["retryWithToken"],
        serde_json::json!({"token-entry": false, "retry": true, "delete": true, "cancel": false})
    );
    assert_eq!(buttons["retry"], "task failed-1 is pending again");
    assert_eq!(
        buttons["retryFields"],
        serde_json::json!({"state": "pending", "retryShown": false})
    );
    assert_eq!(
        buttons["deleteWithKeptToken"],
        serde_json::json!({"token-entry": false, "delete": true, "retry": false})
    );
    assert_eq!(buttons["delete"], "task doomed deleted");
    assert_eq!(
        buttons["deletedButtons"],
        serde_json::json!({"delete": false, "retry": false})
    );
    assert_eq!(
        buttons["cancelBefore"],
        serde_json::json!({"state": "in-progress", "cancel": true, "retry": false, "delete": true})
    );
    assert_eq!(buttons["cancel"], "endless: cancelled");
    assert_eq!(
        buttons["cancelAfter"],
        serde_json::json!({"state": "aborted", "cancel": false, "retry": true, "delete": true})
    );
    // Each press asked first: retry twice, delete twice, cancel twice.
    let dialogs: Vec<&str> = buttons["dialogs"]
        .as_array()
        .context("no dialogs")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(dialogs.len(), 6, "{dialogs:?}");
    assert!(
        dialogs[0].starts_with("Retry task failed-1?"),
        "{dialogs:?}"
    );
    assert!(dialogs[2].starts_with("Delete task doomed?"), "{dialogs:?}");
    assert!(
        dialogs[4].starts_with("Cancel task endless?"),
        "{dialogs:?}"
    );
    assert_eq!(buttons["cookies"], 0);
    assert_eq!(buttons["urlsWithToken"], serde_json::json!([]));

    // The store agrees, and the node stopped the running component.
    let retried = queue
        .get_task(&TaskId::from("failed-1"))
        .await?
        .context("failed-1 gone")?;
    assert_eq!(
        (retried.status_code, retried.num_tries),
        (queue::TaskStatusCode::Pending, 0)
    );
    assert!(queue.get_task(&TaskId::from("doomed")).await?.is_none());
    let cancelled = queue
        .get_task(&TaskId::from("endless"))
        .await?
        .context("endless gone")?;
    assert_eq!(
        (cancelled.status_code, cancelled.status.as_deref()),
        (
            queue::TaskStatusCode::Aborted,
            Some("cancelled: stopped from the page")
        )
    );
    let stopped = |log: &str| {
        log.lines()
            .any(|l| l.contains("id=endless") && l.contains("stopped"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stopped(&node.log()) {
        ensure!(
            Instant::now() < deadline,
            "the node never stopped endless:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for shot in [
        "tasks.png",
        "tasks-filtered.png",
        "task-dag.png",
        "retry.png",
        "cancel-running.png",
    ] {
        let size = std::fs::metadata(artifacts.join(shot))?.len();
        assert!(size > 10_000, "{shot} is only {size} bytes");
    }
    node.stop().await?;
    Ok(())
}
