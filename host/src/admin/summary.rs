//! The queue's summary as the admin listener serves it: one `Parade::summary` (a `GROUP BY`
//! over every task) answers every scrape and dashboard poll for [`SUMMARY_TTL`], and
//! requests that arrive while it runs wait for it rather than starting their own. However
//! many scrapers poll, the store sees at most one such query per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::queue::{Error, Parade, QueueSummary};

/// How long one summary answers for, counted from when it arrived.
pub const SUMMARY_TTL: Duration = Duration::from_secs(1);

/// A summary, or why the store could not give one (kept as long, so a failing store is not
/// asked more often than a working one).
pub(super) type Summary = Result<Arc<QueueSummary>, Arc<Error>>;

/// The latest summary and when it arrived.
#[derive(Default)]
pub struct SummaryCache {
    // Held across the query: concurrent callers wait for the one in flight.
    latest: Mutex<Option<(Instant, Summary)>>,
}

impl SummaryCache {
    /// The summary of at most [`SUMMARY_TTL`] ago, asking `queue` if there is none.
    pub(super) async fn get(&self, queue: &dyn Parade) -> Summary {
        let mut latest = self.latest.lock().await;
        if let Some((arrived, summary)) = latest.as_ref() {
            if arrived.elapsed() < SUMMARY_TTL {
                return summary.clone();
            }
        }
        let summary = queue.summary().await.map(Arc::new).map_err(Arc::new);
        *latest = Some((Instant::now(), summary.clone()));
        summary
    }
}

/// Any other store read the dashboard repeats, shared as the summary is: one read answers
/// every poll for [`SUMMARY_TTL`], and polls that arrive while it runs wait for it.
pub(super) struct Cached<T> {
    latest: Mutex<Option<(Instant, Result<Arc<T>, Arc<Error>>)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            latest: Mutex::new(None),
        }
    }
}

impl<T> Cached<T> {
    /// The value of at most [`SUMMARY_TTL`] ago, reading it with `read` if there is none.
    pub(super) async fn get<Read, Reading>(&self, read: Read) -> Result<Arc<T>, Arc<Error>>
    where
        Read: FnOnce() -> Reading,
        Reading: std::future::Future<Output = Result<T, Error>>,
    {
        let mut latest = self.latest.lock().await;
        if let Some((arrived, value)) = latest.as_ref() {
            if arrived.elapsed() < SUMMARY_TTL {
                return value.clone();
            }
        }
        let value = read().await.map(Arc::new).map_err(Arc::new);
        *latest = Some((Instant::now(), value.clone()));
        value
    }
}

impl<T> std::fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SummaryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryCache").finish_non_exhaustive()
    }
}
