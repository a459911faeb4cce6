//! The queue's summary as the admin listener serves it: one `Parade::summary` (a `GROUP BY`
//! over every task) answers every scrape and dashboard poll for [`SUMMARY_TTL`], and
//! requests that arrive while it runs wait for it rather than starting their own. However
//! many scrapers poll, the store sees at most one such query per second. The dashboard's
//! other store reads are shared the same way ([`Cached`]).
//!
//! A read answers for [`SUMMARY_TTL`], or for [`READ_SPACING`] times as long as it took if
//! that is longer, so the store spends at most a fifth of its time on the listener's reads
//! however big it grows (the summary of a million tasks takes a few hundred milliseconds on
//! PostgreSQL, over a second on SQLite). A scrape gets a value within that time, waiting
//! for a read if there is none. A dashboard poll does too while the store answers quickly;
//! once a read takes longer than [`SLOW_READ`], a poll that finds the value expired is
//! answered with it at once while one read refreshes it in the background, so the overview
//! answers in the time it takes to render.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::queue::{Error, Parade, QueueSummary};

/// How long one summary answers for, counted from when it arrived.
pub const SUMMARY_TTL: Duration = Duration::from_secs(1);

/// A read that took longer than this is refreshed in the background for dashboard polls
/// rather than waited for.
pub const SLOW_READ: Duration = Duration::from_millis(25);

/// A read answers for at least this many times as long as it took.
pub const READ_SPACING: u32 = 4;

/// A summary, or why the store could not give one (kept as long, so a failing store is not
/// asked more often than a working one).
pub(super) type Summary = Result<Arc<QueueSummary>, Arc<Error>>;

/// The latest summary and when it arrived.
#[derive(Default)]
pub struct SummaryCache {
    latest: Cached<QueueSummary>,
}

impl SummaryCache {
    /// The summary of at most [`SUMMARY_TTL`] ago, asking `queue` if there is none.
    pub(super) async fn get(&self, queue: &dyn Parade) -> Summary {
        self.latest.get(|| queue.summary()).await
    }

    /// For a dashboard poll: as [`SummaryCache::get`] while the store answers quickly, else
    /// the latest summary at once, refreshed in the background once it has expired.
    pub(super) async fn get_for_poll(&self, queue: &Arc<dyn Parade>) -> Summary {
        let queue = queue.clone();
        self.latest
            .get_for_poll(move || async move { queue.summary().await })
            .await
    }
}

impl std::fmt::Debug for SummaryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryCache").finish_non_exhaustive()
    }
}

/// A value read from the store, or why it could not be.
type Fetched<T> = Result<Arc<T>, Arc<Error>>;

/// The latest read of one kind, shared by every request for [`SUMMARY_TTL`].
pub(super) struct Cached<T> {
    inner: Arc<CacheInner<T>>,
}

struct CacheInner<T> {
    /// The value, when it arrived, and how long reading it took.
    latest: Mutex<Option<Latest<T>>>,
    /// Held while a read runs: one at a time, and callers that must wait queue on it.
    reading: Arc<tokio::sync::Mutex<()>>,
    /// A read answers for at least `ttl`, and for `spacing` times as long as it took.
    ttl: Duration,
    spacing: u32,
}

struct Latest<T> {
    arrived: Instant,
    took: Duration,
    value: Fetched<T>,
}

impl<T> Default for Cached<T> {
    /// Answering for [`SUMMARY_TTL`], or [`READ_SPACING`] times as long as a read took.
    fn default() -> Self {
        Cached::answering_for(SUMMARY_TTL, READ_SPACING)
    }
}

impl<T> Cached<T> {
    /// A cache whose reads answer for at least `ttl`, and for `spacing` times as long as
    /// they took: the store then spends at most `1 / (spacing + 1)` of its time on them.
    pub(super) fn answering_for(ttl: Duration, spacing: u32) -> Self {
        Cached {
            inner: Arc::new(CacheInner {
                latest: Mutex::new(None),
                reading: Arc::default(),
                ttl,
                spacing,
            }),
        }
    }
}

impl<T> CacheInner<T> {
    fn latest(&self) -> std::sync::MutexGuard<'_, Option<Latest<T>>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expired(&self, latest: &Latest<T>) -> bool {
        latest.arrived.elapsed() >= self.ttl.max(latest.took * self.spacing)
    }

    /// The value if it has not expired.
    fn fresh(&self) -> Option<Fetched<T>> {
        self.latest()
            .as_ref()
            .filter(|l| !self.expired(l))
            .map(|l| l.value.clone())
    }

    /// Reads with `read` and keeps the result.
    async fn refresh<Reading>(&self, read: Reading) -> Fetched<T>
    where
        Reading: std::future::Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let value = read.await.map(Arc::new).map_err(Arc::new);
        *self.latest() = Some(Latest {
            arrived: Instant::now(),
            took: started.elapsed(),
            value: value.clone(),
        });
        value
    }
}

impl<T: Send + Sync + 'static> Cached<T> {
    /// The latest value unless it has expired, else one read with `read`; callers that
    /// arrive during a read wait for it.
    pub(super) async fn get<Read, Reading>(&self, read: Read) -> Fetched<T>
    where
        Read: FnOnce() -> Reading,
        Reading: std::future::Future<Output = Result<T, Error>>,
    {
        if let Some(value) = self.inner.fresh() {
            return value;
        }
        let _reading = self.inner.reading.lock().await;
        // Read by whoever held the lock before.
        if let Some(value) = self.inner.fresh() {
            return value;
        }
        self.inner.refresh(read()).await
    }

    /// For a dashboard poll: [`Cached::get`], unless the last read took longer than
    /// [`SLOW_READ`]: then the latest value at once, and if it has expired one read (at a
    /// time) refreshes it in the background.
    pub(super) async fn get_for_poll<Read, Reading>(&self, read: Read) -> Fetched<T>
    where
        Read: FnOnce() -> Reading + Send + 'static,
        Reading: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        let stale = {
            let latest = self.inner.latest();
            match latest.as_ref() {
                Some(l) if l.took > SLOW_READ => Some((self.inner.expired(l), l.value.clone())),
                _ => None,
            }
        };
        let Some((expired, value)) = stale else {
            return self.get(read).await;
        };
        if expired {
            self.refresh_in_background(read);
        }
        value
    }

    /// The latest value however old, never waiting: if there is none or it has expired, one
    /// read (at a time) refreshes it in the background. `None` until the first read ends.
    pub(super) fn latest_refreshing<Read, Reading>(&self, read: Read) -> Option<Fetched<T>>
    where
        Read: FnOnce() -> Reading + Send + 'static,
        Reading: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (expired, value) = {
            let latest = self.inner.latest();
            match latest.as_ref() {
                Some(l) => (self.inner.expired(l), Some(l.value.clone())),
                None => (true, None),
            }
        };
        if expired {
            self.refresh_in_background(read);
        }
        value
    }

    /// One read with `read` in a task of its own, unless one is running.
    fn refresh_in_background<Read, Reading>(&self, read: Read)
    where
        Read: FnOnce() -> Reading + Send + 'static,
        Reading: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        if let Ok(reading) = self.inner.reading.clone().try_lock_owned() {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                // Kept for the polls to come, error or not.
                let _ = inner.refresh(read()).await;
                drop(reading);
            });
        }
    }
}

impl<T> std::fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A read that counts itself, after `pause` and once `gate` lets it through.
    async fn read(
        reads: Arc<AtomicUsize>,
        pause: Duration,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> Result<usize, Error> {
        tokio::time::sleep(pause).await;
        let _pass = gate.acquire().await.expect("the gate is never closed");
        Ok(reads.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn polls_wait_for_quick_reads_and_not_for_slow_ones() {
        let reads = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(tokio::sync::Semaphore::new(1000));
        let quick: Cached<usize> = Cached::default();
        let (r, g) = (reads.clone(), open.clone());
        let first = quick.get_for_poll(move || read(r, Duration::ZERO, g)).await;
        assert_eq!(*first.unwrap(), 1);

        // A slow read: the first poll has nothing to show and waits for it.
        let slow: Cached<usize> = Cached::default();
        let (r, g) = (reads.clone(), open.clone());
        let first = slow.get_for_poll(move || read(r, SLOW_READ * 2, g)).await;
        assert_eq!(*first.unwrap(), 2);
        tokio::time::sleep(SUMMARY_TTL.max(SLOW_READ * 2 * READ_SPACING)).await;
        // Expired: answered with the old value while one refresh, held at a closed gate,
        // runs behind it (a poll that waited for it would never return).
        let closed = Arc::new(tokio::sync::Semaphore::new(0));
        for _ in 0..3 {
            let (r, g) = (reads.clone(), closed.clone());
            let poll = slow.get_for_poll(move || read(r, Duration::ZERO, g)).await;
            assert_eq!(*poll.unwrap(), 2);
        }
        closed.add_permits(1000);
        while slow.inner.fresh().is_none() {
            tokio::task::yield_now().await;
        }
        let (r, g) = (reads.clone(), open.clone());
        let refreshed = slow.get_for_poll(move || read(r, Duration::ZERO, g)).await;
        assert_eq!(*refreshed.unwrap(), 3);
        assert_eq!(
            reads.load(Ordering::SeqCst),
            3,
            "one refresh for the three polls"
        );
    }
}
