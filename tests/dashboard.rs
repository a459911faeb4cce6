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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_store_holds() -> anyhow::Result<()> {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    ensure!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and tests/browser/node_modules: run \
         scripts/test.sh, which installs both"
    );
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
