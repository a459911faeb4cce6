//! [`SqliteParade`]: the queue in an embedded SQLite file, Parade's default store.
//!
//! SQLite has no stored functions, so each operation's logic is here, in Rust over one
//! transaction. Every operation that writes starts with `BEGIN IMMEDIATE`, which takes the
//! file's write lock up front: writers (in this process or another sharing the file) are
//! serialized, so a task is never handed to two owners, and nothing needs `SKIP LOCKED`.
//! The file runs in WAL mode so readers never wait for that lock, with a busy timeout so
//! writers queue instead of failing. Writers of one process also take turns in-process
//! ([`WriteTx`]) before asking SQLite for the lock. Waiters are resolved in-process
//! ([`waiters`]).

mod waiters;

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use self::waiters::LocalWaiters;
use super::{
    check_batch, check_return_code, notify_channel, successors_outside, ActorId, Error, OwnedTask,
    OwnerCount, Parade, PerformanceToken, QueueSummary, Result, TaskCount, TaskData, TaskFilter,
    TaskHintSender, TaskHints, TaskId, TaskOutcome, TaskReturn, TaskStatusCode, Waiter,
};

/// Expired last tries aborted per `own_tasks` call (as on PostgreSQL).
const EXPIRED_ABORTS_PER_OWN: i64 = 100;
/// Rows per INSERT statement: 17 bound values each, well under SQLite's 32766.
const INSERT_CHUNK: usize = 500;
/// How long a writer waits for the file's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite checkpoints inside the commit that grows the WAL past this many pages: that commit
/// copies the WAL back into the database and syncs both files before it returns. At SQLite's
/// default of 1,000 pages that was 4-5 ms every ninetieth wake-up of an idle node (an
/// insert, its own and its return), and set the wake-up's p99 (median 3.4 ms over 12 runs of
/// 200); at 100 pages each checkpoint costs about 1 ms more than a plain commit, the p99's
/// median was 2.3 ms over 8 runs, and end-to-end throughput did not move beyond the noise.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 100;

/// Page cache per connection, in KiB.
const PAGE_CACHE_KIB: u32 = 64 * 1024;

/// The columns of a whole task, in [`task_from_row`]'s terms.
const TASK_COLUMNS: &str = "id, action, body, status, status_code, num_tries, num_failures, \
     max_tries, num_signals, total_dependencies, actor_id, action_deadline, performance_token, \
     to_signal_after, notify_channel_after, priority";

/// The runnable-task predicate of tasks_runnable_idx, minus the status. Queries name their
/// index with INDEXED BY: with statistics of a deep queue SQLite's planner may otherwise
/// prefer a scan and sort, and INDEXED BY fails loudly if the index ever stops applying.
const RUNNABLE: &str = "(total_dependencies IS NULL OR num_signals = total_dependencies) \
     AND (max_tries IS NULL OR num_tries < max_tries)";

/// The queue in a SQLite file (or in memory).
#[derive(Debug)]
pub struct SqliteParade {
    pool: SqlitePool,
    /// Held by this process's write transaction, if any; see [`WriteTx`].
    write_turn: Arc<tokio::sync::Mutex<()>>,
    waiters: Arc<LocalWaiters>,
    hints: TaskHintSender,
}

impl SqliteParade {
    /// Opens `sqlite://PATH` (created if missing) or `sqlite::memory:`, and applies the
    /// embedded migrations (`migrations/sqlite`) it lacks. Errors name the file.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, None).await
    }

    /// [`SqliteParade::open`] with at most `max_connections` connections to a file (default
    /// 8; an in-memory database always has one).
    pub async fn open_with(url: &str, max_connections: Option<u32>) -> Result<Self> {
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
        Ok(SqliteParade {
            pool,
            write_turn: Arc::default(),
            waiters: Arc::default(),
            hints: TaskHintSender::default(),
        })
    }

    /// The underlying pool, for callers that speak SQL directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Tells waiters and idle actors in this process what a committed write changed.
    fn publish(&self, effects: Effects) {
        self.waiters.announce(effects.ended);
        if effects.runnable {
            self.hints.notify();
        }
    }

    async fn begin_write(&self) -> Result<WriteTx> {
        let turn = tokio::time::timeout(BUSY_TIMEOUT, self.write_turn.clone().lock_owned())
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolTimedOut))?;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
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
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> sqlx::Result<()> {
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

fn db_error(e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            return Error::DuplicateTask(db.message().to_owned());
        }
        if db.message().starts_with("no such table") {
            return Error::ServiceUnavailable(db.message().to_owned());
        }
    }
    Error::Database(e)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros_after(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
}

/// A token as stored: 32 lower-case hex digits, as `lower(hex(randomblob(16)))` makes them.
fn stored_token(token: PerformanceToken) -> String {
    token.0.simple().to_string()
}

fn json_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::from(ids.into_iter().collect::<Vec<_>>()).to_string()
}

fn task_from_row(row: &SqliteRow) -> Result<TaskData> {
    let status_code: String = row.try_get(4)?;
    let deadline: Option<i64> = row.try_get(11)?;
    let token: Option<String> = row.try_get(12)?;
    let successors: Option<String> = row.try_get(13)?;
    let id: String = row.try_get(0)?;
    let corrupt = |what: &str| Error::InvalidTask {
        task_id: TaskId(id.clone()),
        problem: format!("stored {what} is unreadable"),
    };
    Ok(TaskData {
        action: row.try_get(1)?,
        body: row.try_get(2)?,
        status: row.try_get(3)?,
        status_code: status_code.parse()?,
        num_tries: row.try_get(5)?,
        num_failures: row.try_get(6)?,
        max_tries: row.try_get(7)?,
        num_signals: row.try_get(8)?,
        total_dependencies: row.try_get(9)?,
        actor_id: row.try_get::<Option<String>, _>(10)?.map(ActorId),
        action_deadline: deadline
            .map(|us| DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| corrupt("deadline")))
            .transpose()?,
        performance_token: token
            .map(|t| t.parse().map_err(|_| corrupt("performance token")))
            .transpose()?,
        to_signal_after: successors
            .map(|s| {
                serde_json::from_str::<Vec<TaskId>>(&s).map_err(|_| corrupt("to_signal_after"))
            })
            .transpose()?
            .unwrap_or_default(),
        notify_channel_after: row.try_get(14)?,
        priority: row.try_get(15)?,
        id: TaskId(id),
    })
}

/// The current status of each of `ids` that exists.
async fn read_outcomes(pool: &SqlitePool, ids: &[String]) -> Result<HashMap<String, TaskOutcome>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, coalesce(status, ''), status_code FROM tasks \
         WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_ids(ids.iter().map(String::as_str)))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(id, status, code)| {
            Ok((
                id,
                TaskOutcome {
                    status,
                    status_code: code.parse()?,
                },
            ))
        })
        .collect()
}

/// Signals each successor once: one more signal, and one more failure if `failed`.
/// Ids that do not exist are ignored.
async fn signal_successors(
    tx: &mut WriteTx,
    successors: Option<&str>,
    failed: bool,
) -> Result<bool> {
    let Some(successors) = successors else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE tasks SET num_signals = num_signals + 1, num_failures = num_failures + ?2 \
         WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(successors)
    .bind(i32::from(failed))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(true)
}

/// An in-progress task whose last allowed try expired.
#[derive(sqlx::FromRow)]
struct ExpiredTask {
    id: String,
    actor_id: Option<String>,
    num_tries: i32,
    max_tries: Option<i32>,
    to_signal_after: Option<String>,
    notify_channel_after: Option<String>,
}

/// Aborts tasks whose ownership expired on their last allowed try (uses
/// tasks_owned_deadline_idx); returns those with a notify channel, for their waiters.
async fn abort_expired(tx: &mut WriteTx, now: i64, effects: &mut Effects) -> Result<()> {
    let expired: Vec<ExpiredTask> = sqlx::query_as(
        "SELECT id, actor_id, num_tries, max_tries, to_signal_after, notify_channel_after \
             FROM tasks INDEXED BY tasks_owned_deadline_idx \
             WHERE status_code = 'in-progress' AND action_deadline < ?1 \
               AND max_tries IS NOT NULL AND num_tries >= max_tries \
             ORDER BY action_deadline LIMIT ?2",
    )
    .bind(now)
    .bind(EXPIRED_ABORTS_PER_OWN)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    for task in expired {
        let status = format!(
            "ownership by {} expired on try {} of {}",
            task.actor_id.as_deref().unwrap_or("an unknown actor"),
            task.num_tries,
            task.max_tries.unwrap_or(task.num_tries)
        );
        sqlx::query(
            "UPDATE tasks SET status = ?2, status_code = 'aborted', actor_id = NULL, \
             performance_token = NULL, finished_at = ?3 WHERE id = ?1",
        )
        .bind(&task.id)
        .bind(&status)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        effects.runnable |= signal_successors(tx, task.to_signal_after.as_deref(), true).await?;
        if task.notify_channel_after.is_some() {
            let status_code = TaskStatusCode::Aborted;
            effects.ended.push((
                task.id,
                TaskOutcome {
                    status,
                    status_code,
                },
            ));
        }
    }
    Ok(())
}

/// What a committed write changed that others must hear about.
#[derive(Debug, Default)]
struct Effects {
    /// Tasks that ended, with a notify channel: their waiters are resolved.
    ended: Vec<(String, TaskOutcome)>,
    /// Tasks may have become runnable: idle actors are hinted.
    runnable: bool,
}

/// The columns of a task being returned that decide what its return changes.
#[derive(sqlx::FromRow)]
struct ReturnedTask {
    id: String,
    performance_token: Option<String>,
    num_tries: i32,
    max_tries: Option<i32>,
    to_signal_after: Option<String>,
    notify_channel_after: Option<String>,
}

/// Returns owned tasks inside `tx`, each with return_task's semantics on PostgreSQL and as
/// if one at a time in order (a task returned by an earlier row has no token left for a
/// later one), in at most three statements whatever the batch's size: one read of the
/// tasks, one update of them all, one update of every successor. The outer result fails
/// only if the store failed; each inner one is that row's answer.
async fn return_batch(
    tx: &mut WriteTx,
    returns: &[TaskReturn],
    now: i64,
    effects: &mut Effects,
) -> Result<Vec<Result<()>>> {
    let mut results: Vec<Result<()>> = returns
        .iter()
        .map(|r| check_return_code(&r.id, r.code))
        .collect();
    let stored: Vec<ReturnedTask> = sqlx::query_as(
        "SELECT id, performance_token, num_tries, max_tries, to_signal_after, \
         notify_channel_after FROM tasks WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_ids(returns.iter().map(|r| r.id.as_str())))
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?;
    let mut owned: HashMap<&str, &ReturnedTask> = stored
        .iter()
        .filter(|t| t.performance_token.is_some())
        .map(|t| (t.id.as_str(), t))
        .collect();
    let mut updates = Vec::new();
    // successor -> (signals, failures)
    let mut signals: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (r, result) in returns.iter().zip(results.iter_mut()) {
        if result.is_err() {
            continue;
        }
        let token = stored_token(r.token);
        let Some(task) = owned
            .get(r.id.as_str())
            .copied()
            .filter(|t| t.performance_token.as_deref() == Some(token.as_str()))
        else {
            *result = Err(Error::InvalidToken {
                task_id: r.id.clone(),
            });
            continue;
        };
        owned.remove(r.id.as_str());
        let exhausted = task.max_tries.is_some_and(|max| task.num_tries >= max);
        let final_code = match r.code {
            TaskStatusCode::Pending if exhausted => TaskStatusCode::Aborted,
            code => code,
        };
        updates.push(serde_json::json!({
            "id": r.id.as_str(),
            "status": r.status,
            "code": final_code.as_str(),
            "finished": final_code.is_final().then_some(now),
        }));
        if !final_code.is_final() {
            effects.runnable = true;
            continue;
        }
        if let Some(successors) = &task.to_signal_after {
            effects.runnable = true;
            let successors: Vec<String> =
                serde_json::from_str(successors).map_err(|_| Error::InvalidTask {
                    task_id: r.id.clone(),
                    problem: "stored to_signal_after is unreadable".into(),
                })?;
            // Each successor once per predecessor, as on PostgreSQL.
            let unique: HashSet<String> = successors.into_iter().collect();
            for successor in unique {
                let counts = signals.entry(successor).or_default();
                counts.0 += 1;
                counts.1 += i64::from(final_code == TaskStatusCode::Aborted);
            }
        }
        if task.notify_channel_after.is_some() {
            let outcome = TaskOutcome {
                status: r.status.clone(),
                status_code: final_code,
            };
            effects.ended.push((r.id.0.clone(), outcome));
        }
    }
    if !updates.is_empty() {
        sqlx::query(
            "UPDATE tasks SET status = json_extract(r.value, '$.status'), \
             status_code = json_extract(r.value, '$.code'), actor_id = NULL, \
             performance_token = NULL, finished_at = json_extract(r.value, '$.finished') \
             FROM json_each(?1) AS r WHERE tasks.id = json_extract(r.value, '$.id')",
        )
        .bind(serde_json::Value::from(updates).to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    if !signals.is_empty() {
        let signals: Vec<serde_json::Value> = signals
            .into_iter()
            .map(|(id, (n, failed))| serde_json::json!({"id": id, "n": n, "failed": failed}))
            .collect();
        sqlx::query(
            "UPDATE tasks SET num_signals = num_signals + json_extract(s.value, '$.n'), \
             num_failures = num_failures + json_extract(s.value, '$.failed') \
             FROM json_each(?1) AS s WHERE tasks.id = json_extract(s.value, '$.id')",
        )
        .bind(serde_json::Value::from(signals).to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(results)
}

#[async_trait]
impl Parade for SqliteParade {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let outside = successors_outside(tasks);
        let stored: Vec<String> = if outside.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(?1))")
                .bind(json_ids(outside.iter().map(String::as_str)))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
        };
        check_batch(
            tasks,
            &stored.iter().map(String::as_str).collect::<HashSet<_>>(),
        )?;
        let now = now_micros();
        for chunk in tasks.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO tasks ({TASK_COLUMNS}, created_at) "
            ));
            insert.push_values(chunk, |mut row, task| {
                row.push_bind(task.id.as_str())
                    .push_bind(task.action.as_str())
                    .push_bind(task.body.as_deref())
                    .push_bind(task.status.as_deref())
                    .push_bind(task.status_code.as_str())
                    .push_bind(task.num_tries)
                    .push_bind(task.num_failures)
                    .push_bind(task.max_tries)
                    .push_bind(task.num_signals)
                    .push_bind(task.total_dependencies)
                    .push_bind(task.actor_id.as_ref().map(ActorId::as_str))
                    .push_bind(task.action_deadline.map(|d| d.timestamp_micros()))
                    .push_bind(task.performance_token.map(stored_token))
                    .push_bind(
                        (!task.to_signal_after.is_empty())
                            .then(|| json_ids(task.to_signal_after.iter().map(TaskId::as_str))),
                    )
                    .push_bind(task.notify_channel_after.as_deref())
                    .push_bind(task.priority)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.hints.notify();
        Ok(())
    }

    async fn own_tasks(
        &self,
        actor: &ActorId,
        max_tasks: u32,
        actions: &[String],
        max_duration: Option<Duration>,
    ) -> Result<Vec<OwnedTask>> {
        let now = now_micros();
        let deadline = max_duration.map(|d| micros_after(now, d));
        let wanted: Vec<&str> = {
            let mut seen = HashSet::new();
            actions
                .iter()
                .map(String::as_str)
                .filter(|a| seen.insert(*a))
                .collect()
        };
        let max = i64::from(max_tasks);
        let mut tx = self.begin_write().await?;
        let mut effects = Effects::default();
        abort_expired(&mut tx, now, &mut effects).await?;

        // Expired ownerships first, oldest deadline first (tasks_owned_deadline_idx).
        let mut chosen: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM tasks INDEXED BY tasks_owned_deadline_idx \
             WHERE status_code = 'in-progress' AND action_deadline < ?1 \
               AND action IN (SELECT value FROM json_each(?2)) AND {RUNNABLE} \
             ORDER BY action_deadline LIMIT ?3"
        ))
        .bind(now)
        .bind(json_ids(wanted.iter().copied()))
        .bind(max)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;

        // Then pending tasks: the head of each action's run of tasks_runnable_idx, merged.
        let remaining = max - chosen.len() as i64;
        if remaining > 0 {
            let mut pending: Vec<(i32, i64, String)> = Vec::new();
            for action in &wanted {
                let head: Vec<(i32, i64, String)> = sqlx::query_as(&format!(
                    "SELECT priority, rowid, id FROM tasks INDEXED BY tasks_runnable_idx \
                     WHERE action = ?1 AND status_code = 'pending' AND {RUNNABLE} \
                     ORDER BY priority DESC, rowid LIMIT ?2"
                ))
                .bind(action)
                .bind(remaining)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                pending.extend(head);
            }
            pending.sort_by_key(|(priority, rowid, _)| (std::cmp::Reverse(*priority), *rowid));
            chosen.extend(
                pending
                    .into_iter()
                    .take(remaining as usize)
                    .map(|(_, _, id)| id),
            );
        }

        // One statement for the whole batch; tokens come from SQLite's CSPRNG.
        let rows: Vec<(String, String, i32, String, Option<String>)> = sqlx::query_as(
            "UPDATE tasks SET actor_id = ?2, status_code = 'in-progress', \
             num_tries = num_tries + 1, performance_token = lower(hex(randomblob(16))), \
             action_deadline = ?3 \
             WHERE id IN (SELECT value FROM json_each(?1)) \
             RETURNING id, performance_token, num_failures, action, body",
        )
        .bind(json_ids(chosen.iter().map(String::as_str)))
        .bind(actor.as_str())
        .bind(deadline)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let order: HashMap<&str, usize> = chosen
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut owned = rows
            .into_iter()
            .map(|(id, token, num_failures, action, body)| {
                let token = token.parse().map_err(|_| Error::InvalidTask {
                    task_id: TaskId(id.clone()),
                    problem: "stored performance token is unreadable".into(),
                })?;
                Ok(OwnedTask {
                    id: TaskId(id),
                    token,
                    num_signalled_failures: num_failures,
                    action,
                    body,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        owned.sort_by_key(|t| order.get(t.id.as_str()).copied());
        tx.commit().await.map_err(db_error)?;
        self.publish(effects);
        Ok(owned)
    }

    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE tasks SET action_deadline = ?3 WHERE id = ?1 AND performance_token = ?2",
        )
        .bind(id.as_str())
        .bind(stored_token(token))
        .bind(micros_after(now_micros(), duration))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Error::InvalidToken {
                task_id: id.clone(),
            })
        }
    }

    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()> {
        let r = TaskReturn {
            id: id.clone(),
            token,
            status: status.to_owned(),
            code,
        };
        let mut results = self.return_tasks(std::slice::from_ref(&r)).await?;
        results.pop().unwrap_or(Ok(()))
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        let mut tx = self.begin_write().await?;
        let mut effects = Effects::default();
        let now = now_micros();
        let results = return_batch(&mut tx, returns, now, &mut effects).await?;
        tx.commit().await.map_err(db_error)?;
        self.publish(effects);
        Ok(results)
    }

    async fn release_tasks(&self, tasks: &[(TaskId, PerformanceToken)]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut released = 0;
        for (id, token) in tasks {
            released += sqlx::query(
                "UPDATE tasks SET status_code = 'pending', num_tries = max(num_tries - 1, 0), \
                 actor_id = NULL, performance_token = NULL, action_deadline = NULL \
                 WHERE id = ?1 AND performance_token = ?2 AND status_code = 'in-progress'",
            )
            .bind(id.as_str())
            .bind(stored_token(*token))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        if released > 0 {
            self.hints.notify();
        }
        Ok(released)
    }

    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        Ok(Some(self.hints.subscribe()))
    }

    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter> {
        let channel: Option<Option<String>> =
            sqlx::query_scalar("SELECT notify_channel_after FROM tasks WHERE id = ?1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        notify_channel(id, channel)?;
        let (waiter, handle) = Waiter::new(id.clone());
        self.waiters.register(handle.clone(), &self.pool);
        // Registered now, so a task that ends after this read resolves the waiter.
        let outcomes = read_outcomes(&self.pool, std::slice::from_ref(&id.0)).await?;
        match outcomes.get(id.as_str()) {
            Some(outcome) if outcome.status_code.is_final() => handle.finish(outcome.clone()),
            Some(_) => {}
            None => return Err(Error::TaskNotFound(id.clone())),
        }
        Ok(waiter)
    }

    async fn delete_tasks(&self, ids: &[TaskId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // Breadth first, as PostgreSQL's delete_tasks: each task is processed once, so
        // duplicates and cycles are harmless.
        let mut seen: HashSet<String> = HashSet::new();
        let mut round: VecDeque<String> = ids
            .iter()
            .filter(|id| seen.insert(id.0.clone()))
            .map(|id| id.0.clone())
            .collect();
        while let Some(id) = round.pop_front() {
            let deleted: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT status_code, to_signal_after FROM tasks WHERE id = ?1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            let Some((code, Some(successors))) = deleted else {
                continue;
            };
            // A finished task's signal was already counted: nothing changes for successors.
            if code.parse::<TaskStatusCode>()?.is_final() {
                continue;
            }
            let released: Vec<Option<String>> = sqlx::query_scalar(
                "UPDATE tasks SET total_dependencies = total_dependencies - 1 \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND total_dependencies IS NOT NULL \
                 RETURNING CASE WHEN total_dependencies = num_signals THEN id END",
            )
            .bind(&successors)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            round.extend(
                released
                    .into_iter()
                    .flatten()
                    .filter(|r| seen.insert(r.clone())),
            );
        }
        sqlx::query("DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(json_ids(seen.iter().map(String::as_str)))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskData>> {
        let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks \
             WHERE (?1 IS NULL OR status_code = ?1) {status} AND (?2 IS NULL OR action = ?2) \
               AND (?3 IS NULL OR substr(id, 1, length(?3)) = ?3) \
               AND (?5 IS NULL OR EXISTS \
                    (SELECT 1 FROM json_each(tasks.to_signal_after) WHERE value = ?5)) \
             ORDER BY rowid {order} LIMIT ?4",
            status = super::status_literal(filter)
        ))
        .bind(filter.status_code.map(TaskStatusCode::as_str))
        .bind(filter.action.as_deref())
        .bind(filter.id_prefix.as_deref())
        .bind(filter.limit.map_or(-1, i64::from))
        .bind(filter.predecessors_of.as_ref().map(TaskId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn summary(&self) -> Result<QueueSummary> {
        let counts = sqlx::query(
            "SELECT action, status_code, count(*) FROM tasks \
             GROUP BY action, status_code ORDER BY action, status_code",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| {
            Ok(TaskCount {
                action: row.get(0),
                status_code: row.get::<String, _>(1).parse()?,
                count: row.get::<i64, _>(2).try_into().unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let owners = sqlx::query(
            "SELECT actor_id, count(*) FROM tasks \
             WHERE status_code = 'in-progress' AND actor_id IS NOT NULL \
             GROUP BY actor_id ORDER BY count(*) DESC, actor_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| OwnerCount {
            actor_id: ActorId(row.get(0)),
            in_progress: row.get::<i64, _>(1).try_into().unwrap_or(0),
        })
        .collect();
        Ok(QueueSummary { counts, owners })
    }

    async fn retry_task(&self, id: &TaskId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let retried = sqlx::query(
            "UPDATE tasks SET status_code = 'pending', num_tries = 0, actor_id = NULL, \
               performance_token = NULL, action_deadline = NULL \
             WHERE id = ?1 AND status_code = 'aborted' \
               AND coalesce(json_array_length(to_signal_after), 0) = 0",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if retried == 1 {
            tx.commit().await.map_err(db_error)?;
            self.hints.notify();
            return Ok(());
        }
        let stored = sqlx::query(
            "SELECT status_code, coalesce(json_array_length(to_signal_after), 0) > 0 \
             FROM tasks WHERE id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .map(|row| -> Result<_> { Ok((row.get::<String, _>(0).parse()?, row.get(1))) })
        .transpose()?;
        Err(super::retry_refusal(id, stored))
    }
}
