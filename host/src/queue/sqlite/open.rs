//! Opening a SQLite store: the connection settings (WAL, busy timeout, page cache), the
//! background checkpoints, the checks that name the file when it cannot be used, and
//! migrating it.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::mpsc::Receiver;

use super::write_turn::BUSY_TIMEOUT;
use crate::queue::{Error, Result};

/// Checkpoints run behind the writers, on a connection of their own ([`checkpoint_behind`]),
/// this long after a connection went back to the pool: no caller's commit waits for one.
///
/// SQLite's own checkpoint runs inside the commit that grows the WAL past its threshold: that
/// commit copies the WAL back into the database and syncs both files before it returns. At
/// the default of 1,000 pages that was 4-5 ms every ninetieth wake-up of an idle node, and at
/// 100 pages owning in a store of 1,000,000 tasks, 900,000 of them delayed, paid for one in
/// most commits: an own there dirties 29 pages (the due tasks lie one in ten among the
/// delayed), against 13 with all due, and its median commit took 4.1 ms against 0.2 ms
/// (per-statement timing, 20 interleaved cycles). In the background the copy and the syncs
/// overlap the next writers instead.
const CHECKPOINT_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// The WAL size at which a commit still checkpoints itself, should the background checkpoints
/// fall behind (SQLite's default): it bounds the WAL, and is not reached while they keep up.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1000;

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
    // A connection back in the pool may have committed: the checkpointer hears of it.
    let (released, released_rx) = tokio::sync::mpsc::channel::<()>(1);
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
            .after_release(move |_, _| {
                // Full: a checkpoint is due already.
                let _ = released.try_send(());
                Box::pin(async { Ok(true) })
            })
    };
    let pool = pool_options
        .connect_with(options.clone())
        .await
        .map_err(|e| {
            // SQLite says only "unable to open database file" when it cannot create the
            // WAL's shared-memory file beside a database on a read-only file system.
            match std::fs::OpenOptions::new().append(true).open(&path) {
                Err(io) if path.exists() => {
                    store_error(format!("it cannot be written ({io}; {e})"))
                }
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
    if !in_memory {
        let checkpointer = options
            .connect()
            .await
            .map_err(|e| store_error(format!("opening its checkpoint connection: {e}")))?;
        tokio::spawn(checkpoint_behind(checkpointer, released_rx));
    }
    Ok(pool)
}

/// Checkpoints the WAL on `conn` [`CHECKPOINT_DELAY`] after a pool connection is released,
/// until the pool is dropped.
///
/// PASSIVE: it takes no lock that writers or readers wait for, and copies what no reader
/// still needs; a later one copies the rest. Checkpointing a WAL copied already does nothing.
async fn checkpoint_behind(mut conn: SqliteConnection, mut released: Receiver<()>) {
    // A full disk fails every checkpoint until space comes back: say so once, and when over.
    let mut failing = false;
    while released.recv().await.is_some() {
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("background checkpoints of the SQLite WAL are failing: {e}");
            }
            Ok(_) if failing => {
                failing = false;
                tracing::info!("background checkpoints of the SQLite WAL succeed again");
            }
            _ => {}
        }
    }
    let _ = conn.close().await;
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
    use sqlx::TransactionManager;
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
