//! Opening a SQLite store: the connection settings (WAL, busy timeout, page cache,
//! checkpoints), the checks that name the file when it cannot be used, and migrating it.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::write_turn::BUSY_TIMEOUT;
use crate::queue::{Error, Result};

/// SQLite checkpoints inside the commit that grows the WAL past this many pages: that commit
/// copies the WAL back into the database and syncs both files before it returns. At SQLite's
/// default of 1,000 pages that was 4-5 ms every ninetieth wake-up of an idle node (an
/// insert, its own and its return), and set the wake-up's p99 (median 3.4 ms over 12 runs of
/// 200); at 100 pages each checkpoint costs about 1 ms more than a plain commit, the p99's
/// median was 2.3 ms over 8 runs, and end-to-end throughput did not move beyond the noise.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 100;

/// Page cache per connection, in KiB.
const PAGE_CACHE_KIB: u32 = 64 * 1024;

/// A pool on `sqlite://PATH` (created if missing) or `sqlite::memory:`, with the embedded
/// migrations (`migrations/sqlite`) applied. Errors name the file.
pub(super) async fn open_pool(url: &str, max_connections: Option<u32>) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| Error::BadUrl {
        url: url.to_owned(),
        problem: e.to_string(),
    })?;
    let path = options.get_filename().to_owned();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let store_error = |problem: String| Error::OpenStore {
        location: path.display().to_string(),
        problem,
    };
    if path.is_dir() {
        return Err(store_error("is a directory, not a SQLite file".into()));
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        // SQLite's default page cache is 2 MiB per connection; the hot indexes of a
        // deep queue outgrow it and every own would read pages back from the OS.
        .pragma("cache_size", format!("-{}", PAGE_CACHE_KIB))
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
    // An in-memory database lives as long as its one connection.
    let pool_options = if in_memory {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new()
            .max_connections(max_connections.unwrap_or(8))
            .before_acquire(|conn, _| Box::pin(discard_if_in_transaction(conn)))
    };
    let pool = pool_options.connect_with(options).await.map_err(|e| {
        // SQLite says only "unable to open database file" when it cannot create the
        // WAL's shared-memory file beside a database on a read-only file system.
        match std::fs::OpenOptions::new().append(true).open(&path) {
            Err(io) if path.exists() => store_error(format!("it cannot be written ({io}; {e})")),
            _ => store_error(e.to_string()),
        }
    })?;
    // Fail now, naming the file, rather than at the first write: write once and roll back
    // (taking the lock alone succeeds on a read-only file).
    let writable: std::result::Result<(), sqlx::Error> = async {
        let mut probe = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("PRAGMA user_version = 0")
            .execute(&mut *probe)
            .await?;
        probe.rollback().await
    }
    .await;
    if let Err(e) = writable {
        return Err(store_error(format!("it cannot be written ({e})")));
    }
    sqlx::migrate!("../migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => store_error(format!(
                "it was written by a newer Parade (migration {version} is unknown to this \
                 version); upgrade parade"
            )),
            other => store_error(format!("applying migrations: {other}")),
        })?;
    Ok(pool)
}

/// Keeps a connection out of use while sqlx still counts it inside a transaction.
///
/// A write that fails with SQLITE_FULL (a full disk) or SQLITE_IOERR can make SQLite roll
/// its transaction back by itself; the `ROLLBACK` sqlx then sends fails ("no transaction is
/// active"), its transaction depth stays at 1, and every later `BEGIN` on the connection
/// would fail for as long as the node runs. Such a connection is closed instead (closing
/// also ends a transaction SQLite did keep open), and the pool opens a fresh one.
async fn discard_if_in_transaction(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<bool> {
    use sqlx::sqlite::SqliteTransactionManager;
    use sqlx::{Connection, TransactionManager};
    if SqliteTransactionManager::get_transaction_depth(conn) == 0 {
        return Ok(true);
    }
    // The rollback of a dropped transaction may still be queued: let it run first.
    conn.ping().await?;
    let clean = SqliteTransactionManager::get_transaction_depth(conn) == 0;
    if !clean {
        tracing::warn!("closing a SQLite connection left inside a failed transaction");
    }
    Ok(clean)
}
