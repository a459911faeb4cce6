//! [`SqliteParade`]: the queue in an embedded SQLite file, Parade's default store.
//!
//! SQLite has no stored functions, so each operation's logic is here, in Rust over one
//! transaction. Every operation that writes starts with `BEGIN IMMEDIATE`, which takes the
//! file's write lock up front: writers (in this process or another sharing the file) are
//! serialized, so a task is never handed to two owners, and nothing needs `SKIP LOCKED`.
//! The file runs in WAL mode so readers never wait for that lock, with a busy timeout so
//! writers queue instead of failing. Writers of one process also take turns in-process
//! ([`write_turn`]) before asking SQLite for the lock. Waiters are resolved in-process
//! ([`waiters`]). Opening the file is [`open`]; returns and expiry are [`returns`]. The
//! rules every backend shares are in [`rules`](crate::queue::rules); the semantics, in
//! `docs/queue-semantics.md`.

mod cancel;
mod listing;
mod open;
mod returns;
mod waiters;
mod write_turn;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use self::returns::{abort_expired, return_batch, Effects};
use self::waiters::LocalWaiters;
use self::write_turn::{WriteTurn, WriteTx};
use super::rules::{check_batch, check_cancel_reason, retry_refusal, successors_outside};
use super::sql::{self, in_batch_order, outcomes_from_rows};
use super::waiter::{new_waiter, WaiterHandle, WaiterRegistry};
use super::{
    ActorId, Backoff, CancelSender, Cancellation, Error, OnCompletion, OwnRequest, OwnedTask,
    Parade, PerformanceToken, QueueSummary, Result, Retention, TaskCancellations, TaskData,
    TaskFilter, TaskHintSender, TaskHints, TaskId, TaskLease, TaskOutcome, TaskReturn,
    TaskStatusCode, Waiter,
};
use super::{TaskGraph, TaskPage};

/// Rows per INSERT statement: 18 bound values each, well under SQLite's 32766.
const INSERT_CHUNK: usize = 500;

/// The columns of a whole task, in [`task_from_row`]'s terms.
const TASK_COLUMNS: &str = "id, action, body, status, status_code, num_tries, num_failures, \
     max_tries, num_signals, total_dependencies, actor_id, action_deadline, performance_token, \
     to_signal_after, notify_channel_after, priority, run_after";

/// Expired ownerships still in their backoff that owning looks past, beyond the batch.
const EXPIRED_LOOKAHEAD: i64 = 1000;

/// Due delayed tasks made runnable per `own_tasks` call (as on PostgreSQL).
const DUE_PER_OWN: i64 = 1000;

/// The runnable-task predicate of tasks_runnable_idx, minus the status and `run_after`. Queries name their
/// index with INDEXED BY: with statistics of a deep queue SQLite's planner may otherwise
/// prefer a scan and sort, and INDEXED BY fails loudly if the index ever stops applying.
const RUNNABLE: &str = "(total_dependencies IS NULL OR num_signals = total_dependencies) \
     AND (max_tries IS NULL OR num_tries < max_tries)";

/// The queue in a SQLite file (or in memory).
#[derive(Debug)]
pub struct SqliteParade {
    pool: SqlitePool,
    /// Held by this process's write transaction, if any; see [`WriteTx`].
    write_turn: WriteTurn,
    waiters: Arc<LocalWaiters>,
    hints: TaskHintSender,
    cancels: CancelSender,
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
        Ok(SqliteParade {
            pool: open::open_pool(url, max_connections).await?,
            write_turn: WriteTurn::default(),
            waiters: Arc::default(),
            hints: TaskHintSender::default(),
            cancels: CancelSender::default(),
        })
    }

    /// Stores `tasks` as [`Parade::insert_tasks`] does, or with `if_absent` only those not
    /// stored yet; returns the ids stored by an `if_absent` insert (none otherwise).
    async fn insert(&self, tasks: &[TaskData], if_absent: bool) -> Result<Vec<String>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
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
        let mut inserted = Vec::new();
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
                    .push_bind(task.run_after.map(|d| d.timestamp_micros()))
                    .push_bind(now);
            });
            if if_absent {
                insert.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                let ids: Vec<String> = insert
                    .build_query_scalar()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                inserted.extend(ids);
            } else if let Err(e) = insert.build().execute(&mut *tx).await {
                return Err(duplicate_or(e, chunk, &mut tx).await);
            }
        }
        tx.commit().await.map_err(db_error)?;
        if !if_absent || !inserted.is_empty() {
            self.hints.notify();
        }
        Ok(inserted)
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
        self.write_turn.begin(&self.pool).await
    }
}

/// Maps SQLite errors that callers act on to their [`Error`] variants.
fn db_error(e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error() {
        if db.message().starts_with("no such table") {
            return Error::NotMigrated {
                problem: db.message().to_owned(),
            };
        }
    }
    Error::from(e)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros_after(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
}

/// Each action's expiry backoff, from an [`OwnRequest`]'s parallel lists.
fn backoff_by_action<'a>(
    actions: &'a [String],
    backoff: &'a [Backoff],
) -> HashMap<&'a str, &'a Backoff> {
    actions
        .iter()
        .zip(backoff)
        .filter(|(_, b)| !b.is_immediate())
        .map(|(a, b)| (a.as_str(), b))
        .collect()
}

/// How long an expired ownership of try `try_number` of task `id` waits past its deadline.
fn expiry_wait(
    backoff: &HashMap<&str, &Backoff>,
    action: &str,
    id: &str,
    try_number: i32,
) -> Duration {
    backoff.get(action).map_or(Duration::ZERO, |b| {
        b.delay_for_task(id, u32::try_from(try_number).unwrap_or(0))
    })
}

/// How many tasks of `wanted` owned within a limit are in progress with an unexpired
/// ownership at `now` (deadline unset or not passed), counting no further than `limit`
/// (tasks_limited_in_progress_idx).
async fn count_in_progress(tx: &mut WriteTx, wanted: &[&str], now: i64, limit: u32) -> Result<u32> {
    let counted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ( \
           SELECT 1 FROM tasks INDEXED BY tasks_limited_in_progress_idx \
           WHERE action IN (SELECT value FROM json_each(?1)) AND status_code = 'in-progress' \
             AND counts_toward_limit \
             AND (action_deadline IS NULL OR action_deadline >= ?2) \
           LIMIT ?3)",
    )
    .bind(json_ids(wanted.iter().copied()))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(u32::try_from(counted).unwrap_or(limit))
}

/// `e`, or for a unique violation [`Error::DuplicateTask`] naming the stored task of `chunk`
/// it collided with (the batch's own ids are unique: [`check_batch`] saw to that).
async fn duplicate_or(e: sqlx::Error, chunk: &[TaskData], tx: &mut WriteTx) -> Error {
    if !e
        .as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        return db_error(e);
    }
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(?1)) LIMIT 1",
    )
    .bind(json_ids(chunk.iter().map(|t| t.id.as_str())))
    .fetch_optional(&mut **tx)
    .await
    .ok()
    .flatten();
    match stored {
        Some(id) => Error::DuplicateTask {
            task_id: TaskId(id),
        },
        None => db_error(e),
    }
}

/// The ids of a stored `to_signal_after` (a JSON array) of task `id`.
fn stored_successors(id: &str, successors: &str) -> Result<Vec<String>> {
    serde_json::from_str(successors).map_err(|_| Error::InvalidTask {
        task_id: TaskId::from(id),
        problem: "stored to_signal_after is unreadable".into(),
    })
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
        run_after: row
            .try_get::<Option<i64>, _>(16)?
            .map(|us| {
                DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| corrupt("run_after"))
            })
            .transpose()?,
        id: TaskId(id),
    })
}

/// The current status of each of `ids` that exists.
async fn read_outcomes(pool: &SqlitePool, ids: &[String]) -> Result<HashMap<String, TaskOutcome>> {
    let rows = sqlx::query_as(
        "SELECT id, coalesce(status, ''), status_code FROM tasks \
         WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_ids(ids.iter().map(String::as_str)))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    outcomes_from_rows(rows)
}

impl WaiterRegistry for SqliteParade {
    async fn stored_channel(&self, id: &TaskId) -> Result<Option<Option<String>>> {
        sqlx::query_scalar("SELECT notify_channel_after FROM tasks WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    /// Every waiter of this process is resolved by task id, whatever its channel.
    async fn register(&self, _channel: String, handle: WaiterHandle) -> Result<()> {
        self.waiters.register(handle, &self.pool);
        Ok(())
    }

    async fn outcome(&self, id: &TaskId) -> Result<Option<TaskOutcome>> {
        let mut outcomes = read_outcomes(&self.pool, std::slice::from_ref(&id.0)).await?;
        Ok(outcomes.remove(id.as_str()))
    }
}

#[async_trait]
impl Parade for SqliteParade {
    async fn insert_tasks(&self, tasks: &[TaskData]) -> Result<()> {
        self.insert(tasks, false).await.map(drop)
    }

    async fn insert_tasks_if_absent(&self, tasks: &[TaskData]) -> Result<Vec<TaskId>> {
        let stored = self.insert(tasks, true).await?;
        Ok(in_batch_order(tasks, stored))
    }

    async fn next_due(
        &self,
        actions: &[String],
        expiry_backoff: &[Backoff],
    ) -> Result<Option<DateTime<Utc>>> {
        let backoff = backoff_by_action(actions, expiry_backoff);
        let mut due: Option<i64> = None;
        for action in actions {
            // The action's earliest delayed task (tasks_delayed_idx) and earliest ownership
            // deadline (tasks_owned_deadline_idx), the latter plus its expiry backoff.
            let delayed: Option<i64> = sqlx::query_scalar(
                "SELECT run_after FROM tasks INDEXED BY tasks_delayed_idx \
                 WHERE action = ?1 AND status_code = 'pending' AND run_after IS NOT NULL \
                 ORDER BY run_after LIMIT 1",
            )
            .bind(action)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let owned: Option<(String, i32, i64)> = sqlx::query_as(
                "SELECT id, num_tries, action_deadline \
                 FROM tasks INDEXED BY tasks_owned_deadline_idx \
                 WHERE status_code = 'in-progress' AND action = ?1 AND action_deadline IS NOT NULL \
                 ORDER BY action_deadline LIMIT 1",
            )
            .bind(action)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            let reoffered = owned.map(|(id, tries, deadline)| {
                micros_after(deadline, expiry_wait(&backoff, action, &id, tries))
            });
            due = [due, delayed, reoffered].into_iter().flatten().min();
        }
        Ok(due.and_then(DateTime::<Utc>::from_timestamp_micros))
    }

    async fn own(&self, request: &OwnRequest<'_>) -> Result<Vec<OwnedTask>> {
        let OwnRequest {
            actor,
            max_tasks,
            actions,
            max_duration,
            ..
        } = *request;
        let now = now_micros();
        let deadline = max_duration.map(|d| micros_after(now, d));
        let backoff = backoff_by_action(actions, request.expiry_backoff);
        let wanted: Vec<&str> = {
            let mut seen = HashSet::new();
            actions
                .iter()
                .map(String::as_str)
                .filter(|a| seen.insert(*a))
                .collect()
        };
        let mut tx = self.begin_write().await?;
        let mut effects = Effects::default();
        abort_expired(&mut tx, now, &mut effects).await?;
        // Within a concurrency limit, own no more than the group's room; the write lock
        // keeps the count true until this transaction commits.
        let max_tasks = match request.max_in_progress {
            None => max_tasks,
            Some(limit) => {
                let in_use = count_in_progress(&mut tx, &wanted, now, limit).await?;
                max_tasks.min(limit.saturating_sub(in_use))
            }
        };
        if max_tasks == 0 {
            tx.commit().await.map_err(db_error)?;
            self.publish(effects);
            return Ok(Vec::new());
        }
        let max = i64::from(max_tasks);
        // Due delayed tasks of these actions join the runnable ones (tasks_delayed_idx).
        sqlx::query(
            "UPDATE tasks SET run_after = NULL WHERE rowid IN ( \
               SELECT rowid FROM tasks INDEXED BY tasks_delayed_idx \
               WHERE action IN (SELECT value FROM json_each(?1)) AND status_code = 'pending' \
                 AND run_after IS NOT NULL AND run_after <= ?2 \
               ORDER BY run_after LIMIT ?3)",
        )
        .bind(json_ids(wanted.iter().copied()))
        .bind(now)
        .bind(DUE_PER_OWN)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;

        // Expired ownerships first, oldest deadline first (tasks_owned_deadline_idx), once
        // their expiry backoff has passed. Expired tasks are few: those still backing off are
        // passed over here, up to EXPIRED_LOOKAHEAD of them.
        let expired: Vec<(i64, String, String, i32, i64)> = sqlx::query_as(&format!(
            "SELECT rowid, id, action, num_tries, action_deadline \
             FROM tasks INDEXED BY tasks_owned_deadline_idx \
             WHERE status_code = 'in-progress' AND action_deadline < ?1 \
               AND action IN (SELECT value FROM json_each(?2)) AND {RUNNABLE} \
             ORDER BY action_deadline LIMIT ?3"
        ))
        .bind(now)
        .bind(json_ids(wanted.iter().copied()))
        .bind(max + EXPIRED_LOOKAHEAD)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        // Chosen tasks by rowid (stable while this transaction holds the write lock): the
        // UPDATE below then seeks the table directly, where by id each row also cost a
        // descent of the id index (about a third of the UPDATE at 1,000,000 tasks).
        let mut chosen: Vec<i64> = expired
            .into_iter()
            .filter(|(_, id, action, tries, deadline)| {
                let wait = expiry_wait(&backoff, action, id, *tries);
                micros_after(*deadline, wait) < now
            })
            .map(|(rowid, ..)| rowid)
            .take(max_tasks as usize)
            .collect();

        // Then pending tasks: the head of each action's run of tasks_runnable_idx, merged.
        let remaining = max - chosen.len() as i64;
        if remaining > 0 {
            let mut pending: Vec<(i32, i64)> = Vec::new();
            for action in &wanted {
                let head: Vec<(i32, i64)> = sqlx::query_as(&format!(
                    "SELECT priority, rowid FROM tasks INDEXED BY tasks_runnable_idx \
                     WHERE action = ?1 AND status_code = 'pending' AND run_after IS NULL AND {RUNNABLE} \
                     ORDER BY priority DESC, rowid LIMIT ?2"
                ))
                .bind(action)
                .bind(remaining)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                pending.extend(head);
            }
            pending.sort_by_key(|(priority, rowid)| (std::cmp::Reverse(*priority), *rowid));
            chosen.extend(
                pending
                    .into_iter()
                    .take(remaining as usize)
                    .map(|(_, rowid)| rowid),
            );
        }

        // One statement for the whole batch; tokens come from SQLite's CSPRNG. A task owned
        // within a limit is marked to count toward it, from now on (as on PostgreSQL,
        // migrations/postgres/0012): only marked tasks are in the index the count reads.
        let rows: Vec<(i64, String, String, i32, String, Option<String>, i32)> = sqlx::query_as(
            "UPDATE tasks SET actor_id = ?2, status_code = 'in-progress', \
             num_tries = num_tries + 1, performance_token = lower(hex(randomblob(16))), \
             action_deadline = ?3, counts_toward_limit = (counts_toward_limit OR ?4) \
             WHERE rowid IN (SELECT value FROM json_each(?1)) \
             RETURNING rowid, id, performance_token, num_failures, action, body, num_tries",
        )
        .bind(serde_json::Value::from(chosen.as_slice()).to_string())
        .bind(actor.as_str())
        .bind(deadline)
        .bind(request.max_in_progress.is_some())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let order: HashMap<i64, usize> = chosen
            .iter()
            .enumerate()
            .map(|(i, rowid)| (*rowid, i))
            .collect();
        let mut owned = rows
            .into_iter()
            .map(
                |(rowid, id, token, num_failures, action, body, num_tries)| {
                    let token = token.parse().map_err(|_| Error::InvalidTask {
                        task_id: TaskId(id.clone()),
                        problem: "stored performance token is unreadable".into(),
                    })?;
                    let task = OwnedTask {
                        id: TaskId(id),
                        token,
                        num_signalled_failures: num_failures,
                        action,
                        body,
                        num_tries,
                    };
                    Ok((rowid, task))
                },
            )
            .collect::<Result<Vec<_>>>()?;
        owned.sort_by_key(|(rowid, _)| order.get(rowid).copied());
        let owned = owned.into_iter().map(|(_, task)| task).collect();
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
            retry_after: None,
        };
        let mut results = self.return_tasks(std::slice::from_ref(&r)).await?;
        results.pop().unwrap_or(Ok(()))
    }

    async fn return_tasks(&self, returns: &[TaskReturn]) -> Result<Vec<Result<()>>> {
        self.return_tasks_with(returns, OnCompletion::Keep).await
    }

    async fn return_tasks_with(
        &self,
        returns: &[TaskReturn],
        on_completion: OnCompletion,
    ) -> Result<Vec<Result<()>>> {
        let mut tx = self.begin_write().await?;
        let mut effects = Effects::default();
        let now = now_micros();
        let results = return_batch(&mut tx, returns, on_completion, now, &mut effects).await?;
        tx.commit().await.map_err(db_error)?;
        self.publish(effects);
        Ok(results)
    }

    async fn release_tasks(&self, tasks: &[TaskLease]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut released = 0;
        for TaskLease { id, token } in tasks {
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
        let mut tx = self.begin_write().await?;
        let mut effects = Effects::default();
        let cancelled =
            cancel::cancel_batch(&mut tx, ids, reason, cascade, now_micros(), &mut effects).await?;
        tx.commit().await.map_err(db_error)?;
        self.publish(effects);
        for id in cancelled.running {
            self.cancels.announce(id);
        }
        Ok(cancelled.answers)
    }

    async fn prune_finished(&self, retention: &Retention, max_rows: u32) -> Result<u64> {
        if retention.completed.is_none() && retention.aborted.is_none() {
            return Ok(0);
        }
        let now = now_micros();
        let cutoff =
            |keep: Option<Duration>| keep.map(|keep| now.saturating_sub(micros_after(0, keep)));
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM tasks WHERE rowid IN ( \
               SELECT rowid FROM tasks \
               WHERE finished_at IS NOT NULL AND ( \
                 (status_code = 'completed' AND ?1 IS NOT NULL AND finished_at < ?1) \
                 OR (status_code = 'aborted' AND ?2 IS NOT NULL AND finished_at < ?2)) \
               LIMIT ?3)",
        )
        .bind(cutoff(retention.completed))
        .bind(cutoff(retention.aborted))
        .bind(i64::from(max_rows))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }

    async fn task_cancellations(&self) -> Result<Option<TaskCancellations>> {
        Ok(Some(self.cancels.subscribe()))
    }

    async fn new_task_hints(&self) -> Result<Option<TaskHints>> {
        Ok(Some(self.hints.subscribe()))
    }

    async fn new_waiter(&self, id: &TaskId) -> Result<Waiter> {
        new_waiter(self, id).await
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
        let deleted: Vec<String> = seen.into_iter().collect();
        self.waiters.forget_deleted(&deleted);
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
        self.list(filter).await
    }

    async fn list_task_page(&self, filter: &TaskFilter) -> Result<TaskPage> {
        self.list_page(filter).await
    }

    async fn task_graph(&self, id: &TaskId, max_nodes: u32) -> Result<Option<TaskGraph>> {
        super::graph::explore(self, id, max_nodes, Utc::now()).await
    }

    async fn summary(&self) -> Result<QueueSummary> {
        sql::summary(&self.pool, sql::SUMMARY_COUNTS_SQLITE, db_error).await
    }

    async fn finished_by_minute(&self, since: DateTime<Utc>) -> Result<Vec<super::FinishedMinute>> {
        sql::finished_by_minute(&self.pool, sql::FINISHED_BY_MINUTE_SQLITE, since, db_error).await
    }

    async fn ping(&self) -> Result<()> {
        sql::ping(&self.pool, db_error).await
    }

    async fn retry_task(&self, id: &TaskId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let retried = sqlx::query(
            "UPDATE tasks SET status_code = 'pending', num_tries = 0, actor_id = NULL, \
               performance_token = NULL, action_deadline = NULL, run_after = NULL \
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
        Err(retry_refusal(id, stored))
    }
}
