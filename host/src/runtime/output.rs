//! What a task's guest prints and logs, and how much of it reaches the node's log.
//!
//! A guest's stdout and stderr are [`CappedPipe`]s: the first [`MAX_OUTPUT`] bytes of each
//! are kept and logged, a line at a time, when the call ends; the rest is accepted and
//! discarded, so a guest that talks too much is cut short, never failed (a pipe that
//! refused writes would make Rust's `println!` panic). A task's lines — from the `log`
//! import and from stdout and stderr together — are counted by its [`LogBudget`]: past
//! [`MAX_LOG_LINES`] they are dropped. Each cut is marked once in the log.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Guest stdout and stderr kept per task, each.
pub(super) const MAX_OUTPUT: usize = 64 * 1024;
/// Lines a task may write to the node's log, through `log` and stdout and stderr together.
pub(super) const MAX_LOG_LINES: usize = 1_000;
/// The most a guest may write in one `write` call (what `check-write` grants).
const WRITE_PERMIT: usize = 64 * 1024;

/// How many more lines one task may log.
#[derive(Debug)]
pub(super) struct LogBudget {
    left: AtomicUsize,
    told: AtomicBool,
}

impl LogBudget {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(LogBudget {
            left: AtomicUsize::new(MAX_LOG_LINES),
            told: AtomicBool::new(false),
        })
    }

    /// True if one more line may be logged. The first line refused logs, once, that the
    /// rest are dropped.
    pub(super) fn admit(&self, plugin: &str, action: &str, task: &str) -> bool {
        let admitted = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !admitted && !self.told.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                plugin,
                action,
                task,
                "log lines truncated after {MAX_LOG_LINES}: the task's further lines are discarded"
            );
        }
        admitted
    }
}

/// What one stream received.
#[derive(Debug, Default)]
struct Received {
    kept: Vec<u8>,
    discarded: usize,
}

/// A guest's stdout or stderr: keeps the first [`MAX_OUTPUT`] bytes, discards the rest.
#[derive(Debug, Clone, Default)]
pub(super) struct CappedPipe {
    received: Arc<Mutex<Received>>,
}

impl CappedPipe {
    fn take(&self, bytes: &[u8]) {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_OUTPUT - received.kept.len();
        let kept = bytes.len().min(room);
        received.kept.extend_from_slice(&bytes[..kept]);
        received.discarded += bytes.len() - kept;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// A task's captured stdout and stderr, and its log budget.
pub(super) struct CapturedOutput {
    pub stdout: CappedPipe,
    pub stderr: CappedPipe,
    pub budget: Arc<LogBudget>,
}

impl CapturedOutput {
    pub(super) fn new() -> Self {
        CapturedOutput {
            stdout: CappedPipe::default(),
            stderr: CappedPipe::default(),
            budget: LogBudget::new(),
        }
    }

    /// Logs what the guest printed, a line at a time, tagged with the task, within its
    /// budget; and says so if a stream was cut.
    pub(super) fn log(&self, plugin: &str, action: &str, task: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let received = pipe.received.lock().unwrap_or_else(|e| e.into_inner());
            for line in String::from_utf8_lossy(&received.kept).lines() {
                if !self.budget.admit(plugin, action, task) {
                    break;
                }
                tracing::info!(plugin, action, task, stream, "{line}");
            }
            if received.discarded > 0 {
                tracing::warn!(
                    plugin,
                    action,
                    task,
                    stream,
                    "output truncated after {} KiB: {} more bytes discarded",
                    MAX_OUTPUT / 1024,
                    received.discarded
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_keeps_the_first_bytes_and_accepts_the_rest() {
        let mut pipe = CappedPipe::default();
        for _ in 0..3 {
            pipe.write(bytes::Bytes::from(vec![b'x'; MAX_OUTPUT / 2 + 1]))
                .unwrap();
            assert_eq!(pipe.check_write().unwrap(), WRITE_PERMIT);
        }
        let received = pipe.received.lock().unwrap();
        assert_eq!(received.kept.len(), MAX_OUTPUT);
        assert_eq!(received.discarded, 3 * (MAX_OUTPUT / 2 + 1) - MAX_OUTPUT);
    }

    #[test]
    fn a_budget_admits_its_lines_then_none() {
        let budget = LogBudget::new();
        let admitted = (0..MAX_LOG_LINES + 10)
            .filter(|_| budget.admit("p", "a", "t"))
            .count();
        assert_eq!(admitted, MAX_LOG_LINES);
    }
}
