//! [`PgParade`]: the queue on PostgreSQL.
//!
//! The queue's logic lives in the SQL functions of `migrations/postgres` (`own_tasks`,
//! `return_task`, `delete_tasks`, ...), which keep the seed's names and signatures so SQL
//! clients written for parade work unchanged; this module calls them, after the input rules
//! every backend shares ([`rules`](super::rules)). `migrations/postgres/schema.sql` is the
//! current schema in one file; `docs/queue-semantics.md` the rules it implements. Inserts
//! stream through one COPY per call, and waiters share one listening connection
//! ([`listener`]).

mod copy;
mod listener;
mod listing;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::OnceCell;
use uuid::Uuid;

use self::listener::NotificationHub;
use super::rules::{
    check_batch, check_cancel_reason, check_return, check_returns, retry_refusal,
    successors_outside,
};
use super::sql::{self, in_batch_order, outcomes_from_rows};
use super::waiter::{new_waiter, WaiterHandle, WaiterRegistry};
use super::{
    ActorId, Backoff, CancelOutcome, Cancellation, Error, OnCompletion, OwnRequest, OwnedTask,
    Parade, PerformanceToken, QueueSummary, Result, Retention, TaskCancellations, TaskData,
    TaskFilter, TaskHints, TaskId, TaskLease, TaskOutcome, TaskReturn, TaskStatusCode, Waiter,
};
use super::{TaskGraph, TaskPage};

/// `duration` as PostgreSQL's `interval` holds it: whole microseconds (sqlx refuses to send a
/// finer one, and jittered delays are computed to the nanosecond).
fn interval(duration: Duration) -> Duration {
    Duration::from_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// Per-action backoff policies as the SQL functions take them: one array per field, in the
/// order of the actions (NULL where an action has none, or an immediate one).
struct BackoffArrays {
    initial: Vec<Option<Duration>>,
    max: Vec<Option<Duration>>,
    multiplier: Vec<Option<f64>>,
    jitter: Vec<Option<bool>>,
}

impl BackoffArrays {
    fn new(actions: &[String], backoff: &[Backoff]) -> Self {
        let policies: Vec<Option<&Backoff>> = (0..actions.len())
            .map(|i| backoff.get(i).filter(|b| !b.is_immediate()))
            .collect();
        BackoffArrays {
            initial: policies
                .iter()
                .map(|b| b.map(|b| interval(b.initial)))
                .collect(),
            max: policies
                .iter()
                .map(|b| b.map(|b| interval(b.max)))
                .collect(),
            multiplier: policies.iter().map(|b| b.map(|b| b.multiplier)).collect(),
            jitter: policies.iter().map(|b| b.map(|b| b.jitter)).collect(),
        }
    }
}

/// Whether an insert stores every task (refusing a batch with a stored id) or only those not
/// stored yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertMode {
    All,
    IfAbsent,
}

/// Rows of COPY text sent per message.
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Batches up to this size are one INSERT of bound arrays rather than a COPY: one round trip
/// instead of two, which is most of a single enqueue's wait on an idle cluster. Larger
/// batches are faster as COPY text.
const INSERT_MAX_ROWS: usize = 64;

/// Owning without a concurrency limit: `own_tasks_with_backoff`, committed without waiting
/// for the WAL flush (see [`PgParade::own`]).
const OWN_UNLIMITED: &str =
    "SELECT task_id::text, token, num_failures, action::text, body, num_tries \
     FROM set_config('synchronous_commit', 'off', true), \
          own_tasks_with_backoff($1, $2::varchar[], $3::varchar, $4, $5, $6, $7, $8)";

/// Owning within a concurrency limit (`$9`): `own_tasks_limited`, which counts the group's
/// tasks in progress through `tasks_limited_in_progress_idx` (migration 0012).
const OWN_LIMITED: &str =
    "SELECT task_id::text, token, num_failures, action::text, body, num_tries \
     FROM set_config('synchronous_commit', 'off', true), \
          own_tasks_limited($1, $2::varchar[], $3::varchar, $4, $5, $6, $7, $8, $9)";

/// One batch of [`Parade::return_tasks_with`]: the ids, tokens, statuses, codes and retry
/// delays of the returns, and whether a completed task without a channel is deleted
/// (migration 0013; its rows are found through tasks_pkey).
const RETURN_BATCH: &str = "SELECT num_updated FROM return_tasks_with_delay($1::varchar[], $2, \
     $3, $4::text[]::task_status_code_value[], $5, $6)";

/// The lock every pruner of the store takes for its transaction (see
/// [`PgParade::prune_finished`]), keyed as migration 0011 keys its concurrency limits.
const PRUNE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('parade prune finished', 0))";

/// One batch of [`Parade::prune_finished`]: `$1`/`$2` the retention of completed/aborted
/// tasks (NULL: forever), `$3` the most rows. No index on finished_at (it would cost every
/// completion an index entry): the scan meets the oldest rows first, and stops at `$3`.
const PRUNE_BATCH: &str = "DELETE FROM tasks WHERE ctid = ANY(ARRAY( \
       SELECT ctid FROM tasks \
       WHERE finished_at IS NOT NULL AND ( \
         (status_code = 'completed' AND $1::interval IS NOT NULL \
            AND finished_at < now() - $1::interval) \
         OR (status_code = 'aborted' AND $2::interval IS NOT NULL \
            AND finished_at < now() - $2::interval)) \
       LIMIT $3 FOR UPDATE SKIP LOCKED))";

/// The columns of a whole task, in [`task_from_row`]'s terms.
const TASK_COLUMNS: &str = "id::text, action::text, body, status, status_code::text, \
     num_tries, num_failures, max_tries, num_signals, total_dependencies, actor_id::text, \
     action_deadline, performance_token, to_signal_after::text[], notify_channel_after::text, \
     priority, run_after";

/// The queue on a PostgreSQL database. Cheap to share behind an `Arc`; one pool of
/// connections plus, once the first waiter is created, one listening connection.
#[derive(Debug)]
pub struct PgParade {
    pool: PgPool,
    hub: OnceCell<NotificationHub>,
}

impl PgParade {
    /// Connects to `url`. Does not touch the schema: see [`PgParade::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, None).await
    }

    /// [`PgParade::connect`] with at most `max_connections` connections (default 16).
    pub async fn connect_with(url: &str, max_connections: Option<u32>) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(16))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool (it needs room for one extra connection once waiters are used).
    pub fn from_pool(pool: PgPool) -> Self {
        PgParade {
            pool,
            hub: OnceCell::new(),
        }
    }

    /// The underlying pool, for callers that speak SQL directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the embedded migrations (`migrations/postgres`) that this database lacks.
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores `tasks` as [`Parade::insert_tasks`] does, or with `IfAbsent` only those not
    /// stored yet (returning their ids).
    async fn insert(&self, tasks: &[TaskData], mode: InsertMode) -> Result<Vec<String>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let outside = successors_outside(tasks);
        if outside.is_empty() {
            check_batch(tasks, &HashSet::new())?;
            // A lone statement is a transaction of its own (every row or none), two round
            // trips shorter than BEGIN ... COMMIT around it: what a single enqueue waits for.
            let mut conn = self.pool.acquire().await?;
            let stored = store_rows(&mut conn, tasks, mode).await;
            drop(conn);
            return match stored {
                Ok(ids) => Ok(ids),
                Err(e) => Err(insert_error(&self.pool, tasks, e).await),
            };
        }
        // The successors named outside the batch must exist when the batch commits, so the
        // lookup and the rows share a transaction.
        let mut tx = self.pool.begin().await?;
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT id::text FROM tasks WHERE id = ANY($1)")
                .bind(&outside)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
        check_batch(
            tasks,
            &stored.iter().map(String::as_str).collect::<HashSet<_>>(),
        )?;
        let stored = match store_rows(&mut tx, tasks, mode).await {
            Ok(ids) => tx.commit().await.map_err(db_error).map(|()| ids),
            Err(e) => Err(e),
        };
        match stored {
            Ok(ids) => Ok(ids),
            Err(e) => Err(insert_error(&self.pool, tasks, e).await),
        }
    }

    async fn hub(&self) -> Result<&NotificationHub> {
        self.hub
            .get_or_try_init(|| NotificationHub::start(self.pool.clone()))
            .await
    }
}

/// Maps PostgreSQL errors that callers act on to their [`Error`] variants.
fn db_error(e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error() {
        // undefined_function, undefined_table, undefined_object: schema not migrated.
        if let Some("42883" | "42P01" | "42704") = db.code().as_deref() {
            return Error::NotMigrated {
                problem: db.message().to_owned(),
            };
        }
    }
    Error::from(e)
}

/// [`store_rows`]' error, with a unique violation named by the stored task it collided
/// with (the batch's own ids are unique: [`check_batch`] saw to that).
async fn insert_error(pool: &PgPool, tasks: &[TaskData], e: Error) -> Error {
    let Error::Database(db) = &e else { return e };
    if !db
        .sqlx()
        .as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        return e;
    }
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    match sqlx::query_scalar::<_, String>("SELECT id::text FROM tasks WHERE id = ANY($1) LIMIT 1")
        .bind(&ids)
        .fetch_optional(pool)
        .await
    {
        Ok(Some(id)) => Error::DuplicateTask {
            task_id: TaskId(id),
        },
        _ => e,
    }
}

/// Stores `tasks` on `conn` in one statement: a COPY, or for a few tasks, or for `IfAbsent`,
/// an INSERT. Returns the ids stored by an `IfAbsent` insert (none for `All`).
async fn store_rows(
    conn: &mut sqlx::PgConnection,
    tasks: &[TaskData],
    mode: InsertMode,
) -> Result<Vec<String>> {
    if tasks.len() <= INSERT_MAX_ROWS || mode == InsertMode::IfAbsent {
        return insert_rows(conn, tasks, mode).await;
    }
    let mut copy = conn.copy_in_raw(copy::COPY_TASKS).await.map_err(db_error)?;
    let mut chunk = String::with_capacity(COPY_CHUNK_BYTES + 4096);
    for task in tasks {
        copy::encode_row(&mut chunk, task);
        if chunk.len() >= COPY_CHUNK_BYTES {
            copy.send(chunk.as_bytes()).await.map_err(db_error)?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk.as_bytes()).await.map_err(db_error)?;
    }
    copy.finish().await.map_err(db_error)?;
    Ok(Vec::new())
}

/// Stores `tasks` on `conn` with one INSERT of one bound array per column (the same
/// columns as [`copy::COPY_TASKS`]; successor lists travel as array literals, since `unnest`
/// cannot spread ragged arrays). `IfAbsent` skips ids already stored and returns the others.
async fn insert_rows(
    conn: &mut sqlx::PgConnection,
    tasks: &[TaskData],
    mode: InsertMode,
) -> Result<Vec<String>> {
    fn column<'a, T>(tasks: &'a [TaskData], f: impl Fn(&'a TaskData) -> T) -> Vec<T> {
        tasks.iter().map(f).collect()
    }
    let on_conflict = match mode {
        InsertMode::All => "",
        InsertMode::IfAbsent => " ON CONFLICT (id) DO NOTHING RETURNING id::text",
    };
    sqlx::query_scalar(&format!(
        "INSERT INTO tasks (id, action, body, status, status_code, num_tries, num_failures, \
             max_tries, num_signals, total_dependencies, actor_id, action_deadline, \
             performance_token, to_signal_after, notify_channel_after, priority, run_after) \
         SELECT id, action, body, status, status_code::task_status_code_value, num_tries, \
             num_failures, max_tries, num_signals, total_dependencies, actor_id, \
             action_deadline, performance_token, to_signal_after::varchar[], \
             notify_channel_after, priority, run_after \
         FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::text[], $5::text[], \
             $6::int4[], $7::int4[], $8::int4[], $9::int4[], $10::int4[], $11::varchar[], \
             $12::timestamptz[], $13::uuid[], $14::text[], $15::varchar[], $16::int4[], \
             $17::timestamptz[]) \
             AS t(id, action, body, status, status_code, num_tries, num_failures, max_tries, \
                  num_signals, total_dependencies, actor_id, action_deadline, \
                  performance_token, to_signal_after, notify_channel_after, priority, run_after)\
         {on_conflict}"
    ))
    .bind(column(tasks, |t| t.id.as_str()))
    .bind(column(tasks, |t| t.action.as_str()))
    .bind(column(tasks, |t| t.body.as_deref()))
    .bind(column(tasks, |t| t.status.as_deref()))
    .bind(column(tasks, |t| t.status_code.as_str()))
    .bind(column(tasks, |t| t.num_tries))
    .bind(column(tasks, |t| t.num_failures))
    .bind(column(tasks, |t| t.max_tries))
    .bind(column(tasks, |t| t.num_signals))
    .bind(column(tasks, |t| t.total_dependencies))
    .bind(column(tasks, |t| t.actor_id.as_ref().map(ActorId::as_str)))
    .bind(column(tasks, |t| t.action_deadline))
    .bind(column(tasks, |t| t.performance_token.map(|p| p.0)))
    .bind(column(tasks, |t| {
        (!t.to_signal_after.is_empty())
            .then(|| copy::array_literal(t.to_signal_after.iter().map(TaskId::as_str)))
    }))
    .bind(column(tasks, |t| t.notify_channel_after.as_deref()))
    .bind(column(tasks, |t| t.priority))
    .bind(column(tasks, |t| t.run_after))
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

fn task_from_row(row: &PgRow) -> Result<TaskData> {
    let status_code: String = row.try_get(4)?;
    let actor_id: Option<String> = row.try_get(10)?;
    let token: Option<Uuid> = row.try_get(12)?;
    let successors: Option<Vec<String>> = row.try_get(13)?;
    Ok(TaskData {
        id: TaskId(row.try_get(0)?),
        action: row.try_get(1)?,
        body: row.try_get(2)?,
        status: row.try_get(3)?,
        status_code: status_code.parse()?,
        num_tries: row.try_get(5)?,
        num_failures: row.try_get(6)?,
        max_tries: row.try_get(7)?,
        num_signals: row.try_get(8)?,
        total_dependencies: row.try_get(9)?,
        actor_id: actor_id.map(ActorId),
        action_deadline: row.try_get(11)?,
        performance_token: token.map(PerformanceToken),
        to_signal_after: successors
            .unwrap_or_default()
            .into_iter()
            .map(TaskId)
            .collect(),
        notify_channel_after: row.try_get(14)?,
        priority: row.try_get(15)?,
        run_after: row.try_get(16)?,
    })
}

/// The current status of each of `ids` that exists.
async fn read_outcomes(pool: &PgPool, ids: &[String]) -> Result<HashMap<String, TaskOutcome>> {
    let rows = sqlx::query_as(
        "SELECT id::text, coalesce(status, ''), status_code::text FROM tasks WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    outcomes_from_rows(rows)
}

impl WaiterRegistry for PgParade {
    async fn stored_channel(&self, id: &TaskId) -> Result<Option<Option<String>>> {
        sqlx::query_scalar("SELECT notify_channel_after::text FROM tasks WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn register(&self, channel: String, handle: WaiterHandle) -> Result<()> {
        self.hub().await?.register(channel, handle).await
    }

    async fn outcome(&self, id: &TaskId) -> Result<Option<TaskOutcome>> {
        let mut outcomes = read_outcomes(&self.pool, std::slice::from_ref(&id.0)).await?;
        Ok(outcomes.remove(id.as_str()))
    }
}

#[async_trait]
impl Parade for PgParade {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()> {
        self.insert(tasks, InsertMode::All).await.map(drop)
    }

    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> Result<Vec<TaskId>> {
        let stored = self.insert(tasks, InsertMode::IfAbsent).await?;
        Ok(in_batch_order(tasks, stored))
    }

    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[Backoff],
    ) -> Result<Option<DateTime<Utc>>> {
        let policy = BackoffArrays::new(actions, expiry_backoff);
        sqlx::query_scalar("SELECT next_due_time($1::varchar[], $2, $3, $4, $5)")
            .bind(actions)
            .bind(&policy.initial)
            .bind(&policy.max)
            .bind(&policy.multiplier)
            .bind(&policy.jitter)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>> {
        let policy = BackoffArrays::new(request.actions, request.expiry_backoff);
        let max_tasks = i32::try_from(request.max_tasks).unwrap_or(i32::MAX);
        // Owning commits without waiting for its WAL to reach the disk. Ownership is a lease:
        // if PostgreSQL or its machine goes down before the WAL is flushed (a fraction of a
        // second later), the tasks come back pending and run again, as when a lease expires,
        // and the node's results for them are refused for their stale tokens. Returns still
        // wait for the flush, which makes every earlier ownership durable too. This takes a
        // disk flush off every batch the fetch loop owns and off every wake-up.
        // A limited group counts its tasks in progress under a lock of its own
        // (own_tasks_limited, migrations/postgres/0011 and 0012); an unlimited own runs exactly the
        // statement it always has.
        let statement = match request.max_in_progress {
            None => OWN_UNLIMITED,
            Some(_) => OWN_LIMITED,
        };
        let mut query = sqlx::query(statement)
            .bind(max_tasks)
            .bind(request.actions)
            .bind(request.actor.as_str())
            .bind(request.max_duration.map(interval))
            .bind(&policy.initial)
            .bind(&policy.max)
            .bind(&policy.multiplier)
            .bind(&policy.jitter);
        if let Some(limit) = request.max_in_progress {
            query = query.bind(i32::try_from(limit).unwrap_or(i32::MAX));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(OwnedTask {
                    id: TaskId(row.try_get(0)?),
                    token: PerformanceToken(row.try_get(1)?),
                    num_signalled_failures: row.try_get(2)?,
                    action: row.try_get(3)?,
                    body: row.try_get(4)?,
                    num_tries: row.try_get(5)?,
                })
            })
            .collect()
    }

    async fn extend_task_deadline(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        duration: Duration,
    ) -> Result<()> {
        let extended: Option<bool> =
            sqlx::query_scalar("SELECT extend_task_deadline($1::varchar, $2, $3)")
                .bind(id.as_str())
                .bind(token.0)
                .bind(interval(duration))
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        match extended {
            Some(true) => Ok(()),
            _ => Err(Error::InvalidToken {
                task_id: id.clone(),
            }),
        }
    }

    async fn return_task(
        &self,
        id: &TaskId,
        token: PerformanceToken,
        status: &str,
        code: TaskStatusCode,
    ) -> Result<()> {
        check_return(&TaskReturn {
            id: id.clone(),
            token,
            status: status.to_owned(),
            code,
            retry_after: None,
        })?;
        let updated: i32 = sqlx::query_scalar(
            "SELECT return_task($1::varchar, $2, $3, $4::task_status_code_value)",
        )
        .bind(id.as_str())
        .bind(token.0)
        .bind(status)
        .bind(code.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        if updated == 1 {
            Ok(())
        } else {
            Err(Error::InvalidToken {
                task_id: id.clone(),
            })
        }
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        self.return_tasks_with(returns, OnCompletion::Keep).await
    }

    async fn return_tasks_with(
        &self,
        returns: &[TaskReturn],
        on_completion: OnCompletion,
    ) -> Result<Vec<Result<()>>> {
        // Refused here, one row at a time: in SQL a bad row would fail the whole batch.
        let checked = check_returns(returns);
        let valid: Vec<&TaskReturn> = returns
            .iter()
            .zip(&checked)
            .filter_map(|(r, c)| c.is_ok().then_some(r))
            .collect();
        let ids: Vec<&str> = valid.iter().map(|r| r.id.as_str()).collect();
        let tokens: Vec<Uuid> = valid.iter().map(|r| r.token.0).collect();
        let statuses: Vec<&str> = valid.iter().map(|r| r.status.as_str()).collect();
        let codes: Vec<&str> = valid.iter().map(|r| r.code.as_str()).collect();
        let delays: Vec<Option<Duration>> =
            valid.iter().map(|r| r.retry_after.map(interval)).collect();
        let updated: Vec<i32> = if valid.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(RETURN_BATCH)
                .bind(&ids)
                .bind(&tokens)
                .bind(&statuses)
                .bind(&codes)
                .bind(&delays)
                .bind(on_completion == OnCompletion::Delete)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
        };
        let mut updated = updated.into_iter();
        Ok(returns
            .iter()
            .zip(checked)
            .map(|(r, checked)| {
                checked?;
                match updated.next() {
                    Some(1) => Ok(()),
                    _ => Err(Error::InvalidToken {
                        task_id: r.id.clone(),
                    }),
                }
            })
            .collect())
    }

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        if tasks.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = tasks.iter().map(|lease| lease.id.as_str()).collect();
        let tokens: Vec<Uuid> = tasks.iter().map(|lease| lease.token.0).collect();
        let released: i32 = sqlx::query_scalar("SELECT release_tasks($1::varchar[], $2)")
            .bind(&ids)
            .bind(&tokens)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(released).unwrap_or(0))
    }

    async fn cancel_tasks(
        &self,
        ids: &[TaskId],
        reason: &str,
        cascade: bool,
    ) -> Result<Vec<Cancellation>> {
        check_cancel_reason(reason)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT task_id::text, outcome FROM cancel_tasks($1::varchar[], $2, $3)",
        )
        .bind(&ids)
        .bind(reason)
        .bind(cascade)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, outcome)| {
                let outcome = match outcome.as_str() {
                    "cancelled" => CancelOutcome::Cancelled,
                    "not found" => CancelOutcome::NotFound,
                    ended => CancelOutcome::AlreadyEnded(
                        ended.strip_prefix("ended:").unwrap_or(ended).parse()?,
                    ),
                };
                Ok(Cancellation {
                    id: TaskId(id),
                    outcome,
                })
            })
            .collect()
    }

    async fn prune_finished(&self, retention: &Retention, max_rows: u32) -> Result<u64> {
        if retention.completed.is_none() && retention.aborted.is_none() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        // One pruner at a time across every node and `parade task prune`: a second one waits
        // for the first one's batch (one short transaction) rather than skipping, so every
        // call's count is a real answer. The delete's snapshot is taken after the wait, so
        // it does not see the rows the first one deleted.
        sqlx::query(PRUNE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let deleted = sqlx::query(PRUNE_BATCH)
            .bind(retention.completed.map(interval))
            .bind(retention.aborted.map(interval))
            .bind(i64::from(max_rows))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn task_cancellations(&self) -> Result<Option<TaskCancellations>> {
        Ok(Some(self.hub().await?.cancellations()))
    }

    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        Ok(Some(self.hub().await?.hints()))
    }

    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter> {
        new_waiter(self, id).await
    }

    async fn delete_tasks(&self, ids: &[TaskId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let work_table = format!("delete_tasks_{}", Uuid::new_v4().simple());
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE \"{work_table}\" \
             (id VARCHAR NOT NULL, mark tasks_recurse_value NOT NULL DEFAULT 'new') \
             ON COMMIT DROP"
        ))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(&format!(
            "INSERT INTO \"{work_table}\" (id) SELECT unnest($1::varchar[])"
        ))
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("SELECT delete_tasks($1)")
            .bind(&work_table)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // Waiters of deleted tasks (in any process) re-read their tasks and fail at once.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(listener::DELETED_CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<TaskData>> {
        let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskData>> {
        self.list(filter).await
    }

    async fn list_task_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        self.list_page(filter).await
    }

    async fn task_graph(&self, id: &TaskId, max_nodes: u32) -> Result<Option<TaskGraph>> {
        super::graph::explore(self, id, max_nodes, Utc::now()).await
    }

    async fn summary(&self) -> Result<QueueSummary> {
        sql::summary(&self.pool, sql::SUMMARY_COUNTS_POSTGRES, db_error).await
    }

    async fn finished_by_minute(&self, since: DateTime<Utc>) -> Result<Vec<super::FinishedMinute>> {
        sql::finished_by_minute(
            &self.pool,
            sql::FINISHED_BY_MINUTE_POSTGRES,
            since,
            db_error,
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        sql::ping(&self.pool, db_error).await
    }

    async fn retry_task(&self, id: &TaskId) -> Result<()> {
        let retried = sqlx::query(
            "WITH retried AS ( \
               UPDATE tasks SET status_code = 'pending', num_tries = 0, actor_id = NULL, \
                 performance_token = NULL, action_deadline = NULL, run_after = NULL \
               WHERE id = $1 AND status_code = 'aborted' \
                 AND coalesce(cardinality(to_signal_after), 0) = 0 \
               RETURNING id) \
             SELECT pg_notify('parade_tasks', '') FROM retried",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if retried.is_some() {
            return Ok(());
        }
        let stored = sqlx::query(
            "SELECT status_code::text, coalesce(cardinality(to_signal_after), 0) > 0 \
             FROM tasks WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(|row| -> Result<_> { Ok((row.get::<String, _>(0).parse()?, row.get(1))) })
        .transpose()?;
        Err(retry_refusal(id, stored))
    }
}
