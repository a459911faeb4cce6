//! Actors in Python, JavaScript and C (built by scripts/build-guests.sh) run end to end in
//! `parade run` on both backends, beside a Rust one; outbound HTTP reaches only the hosts a
//! plugin's `allowed_hosts` grants.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;
use parade_host::queue::{self, Parade, TaskData, TaskFilter, TaskStatusCode};
use support::process::{component, guest, Node};
use support::Backend;

const TABLE: &str = "city,temp\nOslo,3.5\nRome,18\nLima,22.5\n";
const HELLO: &str = "hello from the test server\nsecond line\n";

/// An HTTP server on 127.0.0.1 serving `/table.csv` and `/hello`, counting requests by path;
/// `/elsewhere`, which redirects to `/hello` on `localhost` (the same server by a name the
/// tests do not grant); and `/unavailable`, always 503.
struct TestServer {
    port: u16,
    hits: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl TestServer {
    async fn start() -> anyhow::Result<TestServer> {
        use axum::routing::get;
        let hits: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
        let count = |path: &'static str, hits: &Arc<Mutex<BTreeMap<String, u32>>>| {
            let hits = hits.clone();
            move || {
                *hits.lock().unwrap().entry(path.to_owned()).or_default() += 1;
                std::future::ready(())
            }
        };
        let (table_hit, hello_hit) = (count("/table.csv", &hits), count("/hello", &hits));
        let app = axum::Router::new()
            .route(
                "/table.csv",
                get(move || async move {
                    table_hit().await;
                    ([("content-type", "text/csv")], TABLE)
                }),
            )
            .route(
                "/hello",
                get(move || async move {
                    hello_hit().await;
                    ([("content-type", "text/plain")], HELLO)
                }),
            )
            .route(
                "/unavailable",
                get(|| async {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("content-type", "text/plain")],
                        "try later\n",
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = app.route(
            "/elsewhere",
            get(move || async move {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", format!("http://localhost:{port}/hello"))],
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(TestServer { port, hits })
    }

    fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Compiled components are kept here across tests and runs: the Python and JavaScript
/// interpreters take seconds to compile, and a node compiles a version only once.
fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-component-cache")
}

/// A node folder with the three guests and the Rust echo actor; the two HTTP actors may
/// reach `allowed`.
fn polyglot_node_dir(allowed: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    for name in ["csv-summary", "http-get", "checksum"] {
        std::fs::copy(guest(name)?, plugins.join(format!("{name}.wasm")))?;
    }
    std::fs::copy(component("echo")?, plugins.join("echo.wasm"))?;
    for name in ["csv-summary", "http-get"] {
        std::fs::write(
            plugins.join(format!("{name}.toml")),
            format!("allowed_hosts = [{allowed:?}]\n"),
        )?;
    }
    std::fs::write(
        dir.path().join("parade.toml"),
        format!(
            "[plugins]\ncache_dir = {:?}\n",
            shared_cache_dir().display().to_string()
        ),
    )?;
    Ok(dir)
}

/// A node folder with only the JavaScript HTTP actor, which may reach `allowed`.
fn http_get_node_dir(allowed: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::copy(guest("http-get")?, plugins.join("http-get.wasm"))?;
    std::fs::write(
        plugins.join("http-get.toml"),
        format!("allowed_hosts = [{allowed:?}]\n"),
    )?;
    std::fs::write(
        dir.path().join("parade.toml"),
        format!(
            "[plugins]\ncache_dir = {:?}\n",
            shared_cache_dir().display().to_string()
        ),
    )?;
    Ok(dir)
}

fn task(id: &str, action: &str, body: &str) -> TaskData {
    TaskData {
        body: Some(body.into()),
        ..TaskData::new(id, action)
    }
}

async fn status_of(queue: &Arc<dyn Parade>, id: &str) -> anyhow::Result<(TaskStatusCode, String)> {
    let task = queue
        .list_tasks(&TaskFilter::default())
        .await?
        .into_iter()
        .find(|t| t.id.as_str() == id)
        .ok_or_else(|| anyhow::anyhow!("task {id} is gone"))?;
    Ok((task.status_code, task.status.unwrap_or_default()))
}

async fn run_node(dir: &Path, url: &str) -> anyhow::Result<String> {
    let node = Node::start(dir, url, &["--config", "parade.toml", "--until-idle"])?;
    let log = node.log_path().to_owned();
    node.finish().await?;
    Ok(std::fs::read_to_string(log)?)
}

async fn every_language_does_real_work(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let granted = format!("127.0.0.1:{}", server.port);
    // The same server by another name: reachable, but not granted.
    let refused = format!("localhost:{}", server.port);
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = polyglot_node_dir(&granted)?;
    queue
        .insert_tasks(&[
            task("rust", "echo", "hello from rust"),
            task("py-inline", "csv-summary", r#"{"csv": "a,b\n1,x\n3,y\n"}"#),
            task(
                "py-fetch",
                "csv-summary",
                &format!(r#"{{"url": "http://{granted}/table.csv"}}"#),
            ),
            task(
                "py-refused",
                "csv-summary",
                &format!(r#"{{"url": "http://{refused}/table.csv"}}"#),
            ),
            task(
                "js-fetch",
                "http-get",
                &format!(r#"{{"url": "http://{granted}/hello"}}"#),
            ),
            TaskData {
                max_tries: Some(1),
                ..task(
                    "js-refused",
                    "http-get",
                    &format!(r#"{{"url": "http://{refused}/hello"}}"#),
                )
            },
            // Redirected from a granted host to one that is not: the node does not follow
            // redirects, and neither does componentize-js's fetch; the guest sees the 302.
            TaskData {
                max_tries: Some(1),
                ..task(
                    "js-redirected",
                    "http-get",
                    &format!(r#"{{"url": "http://{granted}/elsewhere"}}"#),
                )
            },
            task("c-check", "checksum", "123456789"),
            task("c-lines", "checksum", "one\ntwo\n"),
            // A server error: both HTTP actors snooze 10 s (`retry-after-ms`) before the next
            // try; the node waits for it, and the second 503 uses up the tries.
            TaskData {
                max_tries: Some(2),
                ..task(
                    "py-later",
                    "csv-summary",
                    &format!(r#"{{"url": "http://{granted}/unavailable"}}"#),
                )
            },
            TaskData {
                max_tries: Some(2),
                ..task(
                    "js-later",
                    "http-get",
                    &format!(r#"{{"url": "http://{granted}/unavailable"}}"#),
                )
            },
        ])
        .await?;

    let started = std::time::Instant::now();
    let log = run_node(dir.path(), &url).await?;
    let took = started.elapsed();

    let expect = [
        ("rust", TaskStatusCode::Completed, "hello from rust".to_owned()),
        (
            "py-inline",
            TaskStatusCode::Completed,
            r#"{"rows": 2, "columns": {"a": {"mean": 2.0, "min": 1.0, "max": 3.0}, "b": {"distinct": 2}}}"#
                .to_owned(),
        ),
        (
            "py-fetch",
            TaskStatusCode::Completed,
            r#"{"rows": 3, "columns": {"city": {"distinct": 3}, "temp": {"mean": 14.666667, "min": 3.5, "max": 22.5}}}"#
                .to_owned(),
        ),
        (
            "py-refused",
            TaskStatusCode::Aborted,
            format!(
                "cannot fetch http://{refused}/table.csv: HttpRequestDenied (the node refused \
                 the host: it is not in this plugin's allowed_hosts)"
            ),
        ),
        (
            "js-fetch",
            TaskStatusCode::Completed,
            format!(
                "HTTP 200, text/plain, {} bytes: hello from the test server",
                HELLO.len()
            ),
        ),
        (
            "js-refused",
            TaskStatusCode::Aborted,
            format!(
                "GET http://{refused}/hello failed: NetworkError when attempting to fetch resource \
                 (the node's log says why: a refused host is logged as \"outbound HTTP refused\")"
            ),
        ),
        (
            "js-redirected",
            TaskStatusCode::Aborted,
            "HTTP 302, no content type, 0 bytes: ".to_owned(),
        ),
        (
            "c-check",
            TaskStatusCode::Completed,
            // The standard CRC-32 check value of "123456789" (and below, zlib.crc32 of the body).
            "crc32=cbf43926 bytes=9 lines=0".to_owned(),
        ),
        (
            "c-lines",
            TaskStatusCode::Completed,
            "crc32=12ba0be6 bytes=8 lines=2".to_owned(),
        ),
        (
            "py-later",
            TaskStatusCode::Aborted,
            format!("cannot fetch http://{granted}/unavailable: HTTP 503; next try in 10s"),
        ),
        (
            "js-later",
            TaskStatusCode::Aborted,
            "HTTP 503, text/plain, 10 bytes: try later".to_owned(),
        ),
    ];
    for (id, code, status) in expect {
        assert_eq!(
            status_of(&queue, id).await?,
            (code, status),
            "task {id}; node log:\n{log}"
        );
    }
    // Every guest was built against the current contract; the snoozed tasks were tried
    // twice, the second time no sooner than 10 s after the first.
    for plugin in ["csv-summary", "http-get", "checksum", "echo"] {
        ensure!(
            log.lines().any(|l| l.contains("component loaded")
                && l.contains(&format!("plugin={plugin}"))
                && l.contains("contract=parade:actor@0.2.0")),
            "{plugin} was not loaded as a parade:actor@0.2.0 component:\n{log}"
        );
    }
    for id in ["py-later", "js-later"] {
        let tried = queue
            .get_task(&id.into())
            .await?
            .ok_or_else(|| anyhow::anyhow!("task {id} is gone"))?
            .num_tries;
        assert_eq!(tried, 2, "{id}");
    }
    assert!(
        took >= Duration::from_secs(10),
        "the node stopped after {took:?}"
    );
    // Each granted fetch reached the server once; the refused ones never left the node, and
    // the redirect was not followed.
    assert_eq!(server.hits("/table.csv"), 1, "{log}");
    assert_eq!(server.hits("/hello"), 1, "{log}");
    for (plugin, task, path) in [
        ("csv-summary", "py-refused", "table.csv"),
        ("http-get", "js-refused", "hello"),
    ] {
        ensure!(
            log.lines().any(|l| l.contains("outbound HTTP refused")
                && l.contains(&format!("plugin={plugin}"))
                && l.contains(&format!("task={task}"))
                && l.contains(&format!("url=http://{refused}/{path}"))),
            "no refusal logged for {task}:\n{log}"
        );
    }
    // What each guest wrote reached the node's log with its task: the host interface's
    // log from Python and JavaScript, stdout from C.
    for (task, line) in [
        ("py-fetch", "summarising 3 rows"),
        (
            "js-fetch",
            &format!("GET http://{granted}/hello: 200") as &str,
        ),
        ("c-check", "task c-check: crc32=cbf43926 bytes=9 lines=0"),
    ] {
        let tagged = format!("task=\"{task}\"");
        ensure!(
            log.lines().any(|l| l.contains(line) && l.contains(&tagged)),
            "{task} did not log {line:?}:\n{log}"
        );
    }
    Ok(())
}

/// Without `allowed_hosts`, no request leaves the node, even to 127.0.0.1.
async fn no_host_is_granted_by_default(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = backend.fresh_url().await?;
    let queue = queue::open(&url).await?;
    let dir = polyglot_node_dir("unused.example")?;
    for name in ["csv-summary", "http-get"] {
        std::fs::remove_file(dir.path().join(format!("plugins/{name}.toml")))?;
    }
    let target = format!("http://127.0.0.1:{}", server.port);
    queue
        .insert_tasks(&[
            task(
                "py",
                "csv-summary",
                &format!(r#"{{"url": "{target}/table.csv"}}"#),
            ),
            TaskData {
                max_tries: Some(1),
                ..task("js", "http-get", &format!(r#"{{"url": "{target}/hello"}}"#))
            },
        ])
        .await?;
    let log = run_node(dir.path(), &url).await?;
    for id in ["py", "js"] {
        let (code, status) = status_of(&queue, id).await?;
        assert_eq!(code, TaskStatusCode::Aborted, "{id}: {status}");
    }
    assert!(status_of(&queue, "py")
        .await?
        .1
        .contains("HttpRequestDenied"));
    assert_eq!(
        server.hits("/table.csv") + server.hits("/hello"),
        0,
        "{log}"
    );
    Ok(())
}

support::on_both_backends!(every_language_does_real_work, no_host_is_granted_by_default);

/// Granting a host is a settings change like any other: edited live, it applies to the
/// next task without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_granted_while_running_applies_to_the_next_task() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = format!("sqlite://{}", support::fresh_sqlite_path().display());
    let queue = queue::open(&url).await?;
    let dir = polyglot_node_dir("unused.example")?;
    let sidecar = dir.path().join("plugins/http-get.toml");
    let target = format!(r#"{{"url": "http://127.0.0.1:{}/hello"}}"#, server.port);
    let node = Node::start(
        dir.path(),
        &url,
        &["--config", "parade.toml", "--admin", "127.0.0.1:0"],
    )?;
    node.until_logged("node started", Duration::from_secs(120))
        .await?;
    let admin = node.admin_url().await?;

    queue
        .insert_tasks(&[TaskData {
            max_tries: Some(1),
            ..task("before", "http-get", &target)
        }])
        .await?;
    until_ended(&queue, "before").await?;
    assert_eq!(
        status_of(&queue, "before").await?.0,
        TaskStatusCode::Aborted
    );

    std::fs::write(
        &sidecar,
        format!("allowed_hosts = [\"127.0.0.1:{}\"]\n", server.port),
    )?;
    node.until_logged("plugin replaced", Duration::from_secs(30))
        .await?;
    // The dashboard's data shows the grant.
    let overview = support::process::http("GET", &format!("{admin}/api/overview"), &[]).await?;
    ensure!(
        overview
            .body
            .contains(&format!(r#""allowed_hosts":["127.0.0.1:{}"]"#, server.port)),
        "{}",
        overview.body
    );
    queue
        .insert_tasks(&[task("after", "http-get", &target)])
        .await?;
    until_ended(&queue, "after").await?;
    let (code, status) = status_of(&queue, "after").await?;
    assert_eq!(code, TaskStatusCode::Completed, "{status}\n{}", node.log());
    assert_eq!(server.hits("/hello"), 1);
    node.stop().await?;
    Ok(())
}

async fn until_ended(queue: &Arc<dyn Parade>, id: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _) = status_of(queue, id).await?;
        if matches!(code, TaskStatusCode::Completed | TaskStatusCode::Aborted) {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "task {id} did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--check` lists each plugin's granted hosts; a bad `allowed_hosts` entry is refused at
/// start with its file, line and key.
#[tokio::test]
async fn a_bad_allowed_host_is_refused_with_its_place() -> anyhow::Result<()> {
    let dir = polyglot_node_dir("127.0.0.1:1")?;
    let (code, stdout, stderr) =
        support::process::run(dir.path(), &["run", "--check", "--config", "parade.toml"]).await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("http-get") && l.contains("http: 127.0.0.1:1  actions: http-get")),
        "{stdout}"
    );
    std::fs::write(
        dir.path().join("plugins/http-get.toml"),
        "# webhooks\nallowed_hosts = [\"hooks.example.com\", \"https://example.com/path\"]\n",
    )?;
    let (code, _, stderr) =
        support::process::run(dir.path(), &["run", "--check", "--config", "parade.toml"]).await?;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("http-get.toml:2: key `allowed_hosts[1]`: host \"https://example.com/path\": write a host"),
        "{stderr}"
    );
    Ok(())
}

/// `"*"` (and `*.domain`) mean public addresses only: checked on the address the connection
/// uses, a loopback server is out of reach unless an entry names it ("127.0.0.1:PORT" or
/// "localhost:PORT").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_grant_does_not_reach_loopback_but_a_named_one_does() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let port = server.port;
    for (allowed, host, reached) in [
        ("*".to_owned(), format!("127.0.0.1:{port}"), false),
        ("*".to_owned(), format!("localhost:{port}"), false),
        (
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{port}"),
            true,
        ),
        (
            format!("localhost:{port}"),
            format!("localhost:{port}"),
            true,
        ),
    ] {
        let url = format!("sqlite://{}", support::fresh_sqlite_path().display());
        let queue = queue::open(&url).await?;
        let dir = http_get_node_dir(&allowed)?;
        let before = server.hits("/hello");
        queue
            .insert_tasks(&[TaskData {
                max_tries: Some(1),
                ..task(
                    "get",
                    "http-get",
                    &format!(r#"{{"url": "http://{host}/hello"}}"#),
                )
            }])
            .await?;
        let log = run_node(dir.path(), &url).await?;
        let (code, status) = status_of(&queue, "get").await?;
        let hits = server.hits("/hello") - before;
        if reached {
            assert_eq!(
                code,
                TaskStatusCode::Completed,
                "{allowed} -> {host}: {status}\n{log}"
            );
            assert_eq!(hits, 1, "{allowed} -> {host}");
        } else {
            assert_eq!(
                code,
                TaskStatusCode::Aborted,
                "{allowed} -> {host}: {status}\n{log}"
            );
            assert_eq!(hits, 0, "{allowed} -> {host} reached the server");
            ensure!(
                log.lines().any(|l| l.contains("outbound HTTP refused")
                    && l.contains("not a public address")
                    && l.contains(&format!("url=http://{host}/hello"))),
                "no refusal logged for {allowed} -> {host}:\n{log}"
            );
        }
    }
    Ok(())
}
