//! The write turn: one writer of this process at a time asks SQLite for the file's lock.
//!
//! Two writers of one process that both ask SQLite for the write lock do not queue: the
//! loser polls with SQLite's busy handler, which sleeps 1, 2, 5, 10 ms... between tries. An
//! own and a return batch colliding that way left the file idle for milliseconds while
//! both waited. Taking turns in-process first hands the lock straight to the next writer;
//! the busy timeout still covers other processes sharing the file.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::db_error;
use crate::queue::{Error, Result};

/// How long a writer waits for the file's write lock before failing.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// This process's turn to write one SQLite file.
#[derive(Debug, Default)]
pub(super) struct WriteTurn(Arc<tokio::sync::Mutex<()>>);

impl WriteTurn {
    /// Waits for this process's turn (at most [`BUSY_TIMEOUT`]), then begins an IMMEDIATE
    /// transaction, which takes the file's write lock.
    pub(super) async fn begin(&self, pool: &SqlitePool) -> Result<WriteTx> {
        let turn = tokio::time::timeout(BUSY_TIMEOUT, self.0.clone().lock_owned())
            .await
            .map_err(|_| Error::Busy {
                waited: BUSY_TIMEOUT,
            })?;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        Ok(WriteTx { tx, _turn: turn })
    }
}

/// A write transaction that holds this process's write turn until it ends.
///
/// Two writers of one process that both ask SQLite for the write lock do not queue: the
/// loser polls with SQLite's busy handler, which sleeps 1, 2, 5, 10 ms... between tries. An
/// own and a return batch colliding that way left the file idle for milliseconds while
/// both waited. Taking turns in-process first hands the lock straight to the next writer;
/// the busy timeout still covers other processes sharing the file.
pub(super) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(super) async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
