//! Running `parade` as a real process: components built by scripts/build-plugins.sh, a
//! node's folder, and a running node whose log is kept in a file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use tokio::process::{Child, Command};

/// A component built by scripts/build-plugins.sh.
pub fn component(name: &str) -> anyhow::Result<PathBuf> {
    built("wasm32-wasip2/release", name, "scripts/build-plugins.sh")
}

/// A component written in another language, built by scripts/build-guests.sh.
pub fn guest(name: &str) -> anyhow::Result<PathBuf> {
    built("guests", name, "scripts/build-guests.sh")
}

/// `plugins/target/FOLDER/NAME.wasm`, which `script` builds.
fn built(folder: &str, name: &str, script: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target")
        .join(folder)
        .join(format!("{name}.wasm"));
    ensure!(
        path.is_file(),
        "{} is missing: run {script}",
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
        // Tests run side by side: no admin listener unless the test asks for one.
        let admin: &[&str] = if extra.contains(&"--admin") {
            &[]
        } else {
            &["--admin", "off"]
        };
        let child = parade(dir)
            .args(["run", "--database", url])
            .args(admin)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Node { child, log })
    }

    /// The file its log goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
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
        self.signal("TERM").await?;
        self.finish().await
    }

    /// Sends it a signal (`TERM`, `INT`, ...).
    pub async fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("the node already exited")?;
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -{name} {pid} failed");
        Ok(())
    }

    /// The base URL of its admin listener (started with `--admin 127.0.0.1:0`), from its log.
    pub async fn admin_url(&self) -> anyhow::Result<String> {
        self.until_logged("admin listening", Duration::from_secs(60))
            .await?;
        let log = self.log();
        let start = log
            .find("http://127.0.0.1:")
            .context("no admin URL in the log")?;
        let url: String = log[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        Ok(url.trim_end_matches('/').to_owned())
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

/// A response of [`http`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request to `url` (`http://HOST:PORT/PATH`), with extra header lines.
pub async fn http(method: &str, url: &str, headers: &[&str]) -> anyhow::Result<Response> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("http:// URLs only")?;
    let (host, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no end of headers")?;
    ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked responses are not supported here"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}
