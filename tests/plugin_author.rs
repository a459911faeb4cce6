//! The plugin author's path, end to end with the real binary and real toolchains: `parade
//! plugin new` in each language, `plugin build` (with `--install` into a running node's
//! plugins folder), `plugin call`, and a real task completing in the node. Also what `plugin
//! call` says of a component that traps, loops, hogs memory or tries what its sandbox
//! forbids, and the errors of `new` and `build`.
//!
//! The toolchains are the ones scripts/build-guests.sh installs (componentize-py in the
//! virtualenv target/guest-tools/componentize-py-*, which a Python project uses as its
//! `.venv`, componentize-js in plugins/http-get-js/node_modules, Debian's clang
//! and wasi-libc, parade-wit-c beside `parade`), and the Rust guest workspace's target folder
//! (plugins/target) keeps the SDK's dependencies compiled between runs. Each language is
//! built once per run: its one test builds straight into the node's folder.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context};
use support::process::{component, Node};
use tokio::process::Command;

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What one run of `parade` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn exits(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn prints(self, line: &str) -> Self {
        assert!(
            self.stdout.lines().any(|l| l == line),
            "stdout has no line {line:?}:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    fn says(self, text: &str) -> Self {
        assert!(
            self.stderr.contains(text),
            "stderr does not say {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// The compile cache `plugin build` and `plugin call` share in these tests (theirs is the
/// user's, `$XDG_CACHE_HOME/parade/components`): one per test process.
fn cache_home() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("creating a temporary directory"))
        .path()
}

/// `parade ARGS` in `dir` (at most 10 minutes: a cold Python or JavaScript build takes one
/// or two).
async fn parade_in(dir: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parade"));
    command
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("plugins/target"))
        .env("XDG_CACHE_HOME", cache_home())
        .env_remove("PARADE_DATABASE_URL")
        .env_remove("PARADE_CONFIG")
        .env_remove("PARADE_LOG")
        .kill_on_drop(true);
    run(command).await
}

async fn run(mut command: Command) -> anyhow::Result<Run> {
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .context("parade did not exit within 10 minutes")??;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `plugin new NAME --lang LANGUAGE`, `plugin build --install` into a running node's
/// plugins folder, `plugin call`, then a task of the node's that completes.
async fn new_build_call_and_run_in_a_node(language: &str) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let name = format!("shout-{language}");
    let project = work.path().join(&name);
    parade_in(work.path(), &["plugin", "new", &name, "--lang", language])
        .await?
        .exits(0)
        .prints(&name);
    if language == "js" {
        // The exact componentize-js that the template pins, as scripts/build-guests.sh
        // installed it for the JavaScript example: no registry needed.
        let installed = repo().join("plugins/http-get-js/node_modules");
        ensure!(
            installed.is_dir(),
            "{} is missing: run scripts/build-guests.sh js",
            installed.display()
        );
        std::os::unix::fs::symlink(installed, project.join("node_modules"))?;
    }
    if language == "python" {
        // The project's own .venv, which `plugin build` would make and use: here the one
        // scripts/build-guests.sh installed componentize-py into (no registry needed).
        let installed = repo().join("target/guest-tools/componentize-py-0.25.1");
        ensure!(
            installed.join("bin/componentize-py").is_file(),
            "{} is missing: run scripts/build-guests.sh python",
            installed.display()
        );
        std::os::unix::fs::symlink(installed, project.join(".venv"))?;
    }

    if language == "rust" {
        // The template's unit test runs natively, against the SDK's test double.
        let mut test = Command::new("cargo");
        test.current_dir(&project)
            .args(["test", "--quiet"])
            .env("CARGO_TARGET_DIR", repo().join("plugins/target"))
            .kill_on_drop(true);
        let tested = run(test).await?;
        assert_eq!(
            tested.code, 0,
            "cargo test of the Rust template:\n{}{}",
            tested.stdout, tested.stderr
        );
        assert!(tested.stdout.contains("1 passed"), "{}", tested.stdout);
    }

    let node_dir = work.path().join("node");
    std::fs::create_dir_all(node_dir.join("plugins"))?;
    let url = format!("sqlite://{}", node_dir.join("queue.db").display());
    let node = Node::start(&node_dir, &url, &[])?;
    // Generous bounds here and below: the full tier runs this beside other builds on 2 cores.
    node.until_logged("node started", Duration::from_secs(300))
        .await?;

    let plugins = node_dir.join("plugins");
    let built = parade_in(
        work.path(),
        &[
            "plugin",
            "build",
            &name,
            "--install",
            &plugins.to_string_lossy(),
        ],
    )
    .await?
    .exits(0)
    .prints(&format!("actions\t{name}"))
    .prints(&format!(
        "installed\t{}",
        plugins.join(format!("{name}.toml")).display()
    ))
    .prints(&format!(
        "installed\t{}",
        plugins.join(format!("{name}.wasm")).display()
    ));
    let built_line = built
        .stdout
        .lines()
        .find(|l| l.starts_with("built\t"))
        .context("no built line")?;
    let wasm = format!("{name}/{name}.wasm");
    assert!(
        built_line.starts_with(&format!("built\t{wasm}\t"))
            && built_line.contains("parade:actor@0.2.0"),
        "{built_line}"
    );

    parade_in(
        work.path(),
        &[
            "plugin",
            "call",
            &wasm,
            &name,
            "--body",
            "{\"w\":64}",
            "--id",
            "t-1",
            "--try",
            "2",
        ],
    )
    .await?
    .exits(0)
    .prints(&format!(
        "log\tinfo\t{name}: task t-1 (try 2), 8 bytes of body"
    ))
    .prints("code\tcompleted")
    .prints(&format!("status\t{name} done: {{\"w\":64}}"));

    let (code, id, stderr) = support::process::run(
        &node_dir,
        &[
            "task",
            "add",
            "--database",
            &url,
            "--action",
            &name,
            "--body",
            "from the node",
        ],
    )
    .await?;
    ensure!(code == 0, "task add failed: {stderr}");
    // The node compiles the new component first: an interpreter takes seconds, and a minute
    // or more on a loaded machine.
    let (code, waited, stderr) = support::process::run(
        &node_dir,
        &[
            "task",
            "wait",
            "--database",
            &url,
            id.trim(),
            "--timeout",
            "600s",
        ],
    )
    .await?;
    ensure!(
        code == 0,
        "task wait exited {code}: {waited}{stderr}\nnode log:\n{}",
        node.log()
    );
    assert_eq!(
        waited.trim_end(),
        format!("completed\t{name} done: from the node")
    );
    node.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_rust_actor_goes_from_plugin_new_to_a_task_done_in_a_running_node() -> anyhow::Result<()>
{
    new_build_call_and_run_in_a_node("rust").await
}

#[tokio::test]
async fn a_python_actor_goes_from_plugin_new_to_a_task_done_in_a_running_node() -> anyhow::Result<()>
{
    new_build_call_and_run_in_a_node("python").await
}

#[tokio::test]
async fn a_javascript_actor_goes_from_plugin_new_to_a_task_done_in_a_running_node(
) -> anyhow::Result<()> {
    new_build_call_and_run_in_a_node("js").await
}

#[tokio::test]
async fn a_c_actor_goes_from_plugin_new_to_a_task_done_in_a_running_node() -> anyhow::Result<()> {
    new_build_call_and_run_in_a_node("c").await
}

#[tokio::test]
async fn a_rust_project_builds_whatever_its_name_shadows() -> anyhow::Result<()> {
    // Names whose type (`Actor`, `String`, ...) is one the template uses from the SDK or
    // Rust's prelude, or a keyword (`Self`).
    let work = tempfile::tempdir()?;
    for name in ["actor", "outcome", "string", "option", "vec", "self"] {
        parade_in(work.path(), &["plugin", "new", name, "--lang", "rust"])
            .await?
            .exits(0);
        parade_in(work.path(), &["plugin", "build", name])
            .await?
            .exits(0)
            .prints(&format!("actions\t{name}"));
    }
    Ok(())
}

#[tokio::test]
async fn a_new_rust_project_is_locked_to_the_sdks_dependencies_and_shares_their_build(
) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    parade_in(work.path(), &["plugin", "new", "resize", "--lang", "rust"])
        .await?
        .exits(0);
    // Cargo as the author runs it: no CARGO_TARGET_DIR, no registry.
    let mut metadata = Command::new("cargo");
    metadata
        .current_dir(work.path().join("resize"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .env_remove("CARGO_TARGET_DIR")
        .env("XDG_CACHE_HOME", cache_home())
        .kill_on_drop(true);
    let described = run(metadata).await?;
    assert_eq!(
        described.code, 0,
        "cargo metadata --locked --offline: {}",
        described.stderr
    );
    let metadata: serde_json::Value = serde_json::from_str(&described.stdout)?;
    assert_eq!(
        Path::new(
            metadata["target_directory"]
                .as_str()
                .context("no target_directory")?
        ),
        cache_home().join("parade/rust-target"),
        "every project made here compiles the SDK's dependencies once, in one target folder"
    );
    Ok(())
}

/// The test-only `misbehave` component in `dir`, with node settings `settings`.
fn misbehave_in(dir: &Path, settings: &str) -> anyhow::Result<PathBuf> {
    let file = dir.join("misbehave.wasm");
    std::fs::copy(component("misbehave")?, &file)?;
    std::fs::write(dir.join("misbehave.toml"), settings)?;
    Ok(file)
}

#[tokio::test]
async fn plugin_call_reports_how_an_instance_failed_under_its_settings_limits() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    // Only the loop meets the short timeout: on a loaded machine a hog could meet it before
    // its memory limit.
    for (action, limit, kind, status) in [
        (
            "trap",
            "timeout = \"5m\"",
            "unreachable",
            "trapped: unreachable code",
        ),
        ("loop", "timeout = \"1s\"", "timeout", "timed out after 1s"),
        ("loop", "fuel = 1000000", "out_of_fuel", "ran out of fuel"),
        (
            "hog",
            "timeout = \"5m\"",
            "out_of_memory",
            "out of memory (limit 16 MiB)",
        ),
        (
            "recurse",
            "timeout = \"5m\"",
            "stack_overflow",
            "stack overflow",
        ),
    ] {
        let file = misbehave_in(dir.path(), &format!("{limit}\nmemory = \"16MiB\"\n"))?;
        let file = file.to_string_lossy();
        let called = parade_in(dir.path(), &["plugin", "call", &file, action])
            .await?
            .exits(4)
            .prints(&format!("failed\t{kind}"))
            // on_failure = "retry" (the default): the node would try it again.
            .prints("code\tpending");
        assert!(
            called
                .stdout
                .contains(&format!("status\tplugin misbehave: {status}")),
            "{action}: {}",
            called.stdout
        );
    }
    Ok(())
}

#[tokio::test]
async fn plugin_call_gives_a_hostile_component_nothing_its_settings_do_not_grant(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = misbehave_in(dir.path(), "on_failure = \"abort\"\n")?;
    let file = file.to_string_lossy();
    for action in ["read-env", "read-file", "connect"] {
        let called = parade_in(dir.path(), &["plugin", "call", &file, action])
            .await?
            .exits(1)
            .prints("code\taborted");
        assert!(
            called.stdout.contains("status\tdenied: "),
            "{action}: {}",
            called.stdout
        );
    }
    // A grant on the command line is one more setting, as in misbehave.toml.
    parade_in(
        dir.path(),
        &[
            "plugin",
            "call",
            &file,
            "read-env",
            "--grant",
            "env:PARADE_SECRET=granted",
        ],
    )
    .await?
    .exits(0)
    .prints("code\tcompleted");
    // Forged successors are refused by the same rules as in a node.
    parade_in(dir.path(), &["plugin", "call", &file, "signal-forge"])
        .await?
        .exits(0);
    Ok(())
}

#[tokio::test]
async fn plugin_call_prints_what_the_guest_enqueued_and_stores_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fan_out = component("fan_out")?;
    let called = parade_in(
        dir.path(),
        &[
            "plugin",
            "call",
            &fan_out.to_string_lossy(),
            "fan-out",
            "--body",
            "{\"children\": 2}",
            "--id",
            "p",
        ],
    )
    .await?
    .exits(0)
    .prints("code\tcompleted");
    let enqueued: Vec<&str> = called
        .stdout
        .lines()
        .filter(|l| l.starts_with("enqueued\t"))
        .collect();
    assert_eq!(
        enqueued,
        [
            "enqueued\tp.child-0\techo\t{\"body\":\"child 0 of p\",\"signal_after\":[\"p.join\"]}",
            "enqueued\tp.child-1\techo\t{\"body\":\"child 1 of p\",\"signal_after\":[\"p.join\"]}",
            "enqueued\tp.join\techo\t{\"body\":\"joined 2 children of p\",\"notify_channel\":\"p.done\",\"total_dependencies\":2}",
        ],
        "{}",
        called.stdout
    );
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "plugin call wrote nothing (no database) in its folder"
    );
    let cached = std::fs::read_dir(cache_home().join("parade/components"))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".cwasm"));
    assert!(cached, "the compiled component is kept for the next call");
    Ok(())
}

#[tokio::test]
async fn plugin_call_refuses_a_grant_of_the_compile_cache_as_a_node_does() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = misbehave_in(dir.path(), "")?;
    let cache = cache_home().join("parade/components");
    std::fs::create_dir_all(&cache)?;
    parade_in(
        dir.path(),
        &[
            "plugin",
            "call",
            &file.to_string_lossy(),
            "read-file",
            "--grant",
            &format!("dir:{}=/cache", cache_home().display()),
        ],
    )
    .await?
    .exits(2)
    .says("compiled-component cache");
    Ok(())
}

#[tokio::test]
async fn plugin_call_exits_3_for_a_retry_and_passes_the_try_number() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let flaky = component("flaky")?;
    let flaky = flaky.to_string_lossy();
    let body = "{\"failures\": 1, \"retry_after_ms\": 5000}";
    parade_in(
        dir.path(),
        &["plugin", "call", &flaky, "flaky", "--body", body],
    )
    .await?
    .exits(3)
    .prints("code\tpending")
    .prints("retry_after\t5s");
    parade_in(
        dir.path(),
        &[
            "plugin", "call", &flaky, "flaky", "--body", body, "--try", "2",
        ],
    )
    .await?
    .exits(0)
    .prints("status\tsucceeded on try 2");
    Ok(())
}

#[tokio::test]
async fn plugin_call_of_an_action_the_component_does_not_serve_exits_2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let echo = component("echo")?;
    parade_in(
        dir.path(),
        &["plugin", "call", &echo.to_string_lossy(), "resize"],
    )
    .await?
    .exits(2)
    .says("does not serve action \"resize\": it serves echo");
    Ok(())
}

#[tokio::test]
async fn plugin_new_refuses_a_folder_that_is_not_empty() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("resize"))?;
    std::fs::write(dir.path().join("resize/notes.txt"), "mine")?;
    parade_in(dir.path(), &["plugin", "new", "resize", "--lang", "python"])
        .await?
        .exits(2)
        .says("resize is not empty");
    assert_eq!(std::fs::read_dir(dir.path().join("resize"))?.count(), 1);
    parade_in(dir.path(), &["plugin", "new", "Resize!", "--lang", "c"])
        .await?
        .exits(2)
        .says("invalid actor name \"Resize!\"");
    Ok(())
}

#[tokio::test]
async fn plugin_build_names_the_missing_tool_and_how_to_install_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (language, says) in [
        ("rust", "cargo not found on PATH. Rust actors need cargo: install Rust with rustup"),
        ("c", "clang not found on PATH. C actors are built with clang for wasm32-wasi: install clang, lld, wasi-libc"),
        ("js", "node not found on PATH. JavaScript actors are built with componentize-js"),
        ("python", "python3 not found on PATH. Python actors are built with componentize-py, installed with Python 3.10 or newer"),
    ] {
        let name = format!("no-tools-{language}");
        parade_in(dir.path(), &["plugin", "new", &name, "--lang", language])
            .await?
            .exits(0);
        // A PATH with none of the tools on it.
        let mut command = Command::new(env!("CARGO_BIN_EXE_parade"));
        command
            .current_dir(dir.path())
            .args(["plugin", "build", &name])
            .env("PATH", dir.path())
            .env_remove("PARADE_LOG");
        run(command).await?.exits(2).says(says);
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty)?;
    parade_in(dir.path(), &["plugin", "build", "empty"])
        .await?
        .exits(2)
        .says("empty is not an actor project: it has no Cargo.toml (Rust), package.json");
    Ok(())
}
