//! Running `parade` as a real process: components built by scripts/build-plugins.sh, a
//! node's folder, and a running node whose log is kept in a file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use tokio::process::{Child, Command};

/// A component built by scripts/build-plugins.sh.
pub fn component(name: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    ensure!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    Ok(path)
}

/// A node's folder: `plugins/` holding copies of the named components.
pub fn node_dir(components: &[&str]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    for name in components {
        std::fs::copy(
            component(name)?,
            dir.path().join("plugins").join(format!("{name}.wasm")),
        )?;
    }
    Ok(dir)
}

pub fn parade(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parade"));
    command
        .current_dir(dir)
        .env_remove("PARADE_DATABASE_URL")
        .env_remove("PARADE_CONFIG")
        .env("PARADE_LOG", "info")
        .kill_on_drop(true);
    command
}

/// `parade ARGS` in `dir`, to its end: (exit code, stdout, stderr).
pub async fn run(dir: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let output = parade(dir).args(args).output().await?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A running `parade run`, its log kept in a file of its folder.
pub struct Node {
    pub child: Child,
    log: PathBuf,
}

impl Node {
    pub fn start(dir: &Path, url: &str, extra: &[&str]) -> anyhow::Result<Node> {
        let log = dir.join(format!("node-{}.log", uuid::Uuid::new_v4().simple()));
        let child = parade(dir)
            .args(["run", "--database", url])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Node { child, log })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log says `text`.
    pub async fn until_logged(&self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            ensure!(
                Instant::now() < deadline,
                "the node did not log {text:?} within {timeout:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGTERM, then its exit code and stdout.
    pub async fn stop(self) -> anyhow::Result<(i32, String)> {
        let pid = self.child.id().context("the node already exited")?;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        self.finish().await
    }

    /// SIGKILL: the node gets no chance to hand anything back.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Waits for it to exit by itself.
    pub async fn finish(self) -> anyhow::Result<(i32, String)> {
        let log = self.log.clone();
        let output = tokio::time::timeout(Duration::from_secs(60), self.child.wait_with_output())
            .await
            .context("the node did not exit")??;
        let code = output.status.code().unwrap_or(-1);
        ensure!(
            code == 0,
            "the node exited with {code}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        Ok((code, String::from_utf8_lossy(&output.stdout).into_owned()))
    }
}
