//! The values that travel through the queue: task ids, actor ids, performance tokens, status
//! codes, whole task rows and owned tasks. Field names follow the columns of the `tasks`
//! table, so JSON produced or read by the CLI uses the same names as SQL.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Error;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// Identifies a task. Any string; callers usually generate a random one.
    TaskId
);
string_id!(
    /// Identifies an actor (a node, or one owner inside it) that owns tasks.
    ActorId
);

/// The secret handed to the owner of a task. Extending or returning the task requires it,
/// so an owner whose ownership expired and was taken over cannot overwrite the new owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerformanceToken(pub Uuid);

impl fmt::Display for PerformanceToken {
    /// Lower-case 8-4-4-4-12 hex, as PostgreSQL prints a uuid.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for PerformanceToken {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a task is in its life. `Aborted` and `Completed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatusCode {
    /// Waiting to be owned: new, or returned to be tried again.
    #[default]
    Pending,
    /// Owned by an actor until its deadline.
    InProgress,
    /// Ended in failure; never offered again.
    Aborted,
    /// Ended in success; never offered again.
    Completed,
}

impl TaskStatusCode {
    /// Every code, in lifecycle order.
    pub const ALL: [TaskStatusCode; 4] = [
        TaskStatusCode::Pending,
        TaskStatusCode::InProgress,
        TaskStatusCode::Aborted,
        TaskStatusCode::Completed,
    ];

    /// The name stored in the database (`task_status_code_value`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatusCode::Pending => "pending",
            TaskStatusCode::InProgress => "in-progress",
            TaskStatusCode::Aborted => "aborted",
            TaskStatusCode::Completed => "completed",
        }
    }

    /// True for `aborted` and `completed`: the task will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatusCode::Aborted | TaskStatusCode::Completed)
    }
}

impl fmt::Display for TaskStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for TaskStatusCode {
    type Err = Error;

    /// Parses a code case-insensitively, as the seed's scanner did; anything else is
    /// [`Error::BadStatus`] (the seed silently turned it into an "invalid" code).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatusCode::ALL
            .into_iter()
            .find(|code| code.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::BadStatus(s.to_owned()))
    }
}

/// A whole task row: every column of the seed's `tasks` table, plus Parade's `priority` and
/// `run_after`.
///
/// Build one with [`TaskData::new`] and set what differs; the rest has the column defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskData {
    pub id: TaskId,
    pub action: String,
    pub body: Option<String>,
    /// Free text set by the actor that returned the task.
    pub status: Option<String>,
    pub status_code: TaskStatusCode,
    /// Times the task was owned.
    pub num_tries: i32,
    /// Direct predecessors that ended aborted.
    pub num_failures: i32,
    /// Cap on `num_tries`; `None` is unlimited.
    pub max_tries: Option<i32>,
    /// Signals received from predecessors.
    pub num_signals: i32,
    /// Signals required before the task may run; `None` means no gating.
    pub total_dependencies: Option<i32>,
    pub actor_id: Option<ActorId>,
    pub action_deadline: Option<DateTime<Utc>>,
    pub performance_token: Option<PerformanceToken>,
    /// Successors to signal when this task ends.
    pub to_signal_after: Vec<TaskId>,
    /// Channel to notify (with this task's id as payload) when this task ends.
    pub notify_channel_after: Option<String>,
    /// Higher runs first; equal priorities run in insertion order.
    pub priority: i32,
    /// A pending task is not offered before this time; `None`: due now. The queue clears it
    /// when the task becomes due.
    pub run_after: Option<DateTime<Utc>>,
}

impl TaskData {
    /// A pending task with this id and action and every other column at its default.
    pub fn new(id: impl Into<TaskId>, action: impl Into<String>) -> Self {
        TaskData {
            id: id.into(),
            action: action.into(),
            ..TaskData::default()
        }
    }
}

/// A task handed to an actor by `own_tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedTask {
    pub id: TaskId,
    pub token: PerformanceToken,
    /// Direct predecessors that ended aborted (the task's `num_failures`).
    pub num_signalled_failures: i32,
    /// The full stored action name.
    pub action: String,
    pub body: Option<String>,
    /// Which try this ownership is: 1 the first time the task is owned (its `num_tries`).
    pub num_tries: i32,
}

/// How long a task waits before its next try: `initial × multiplier^(try − 1)` after try
/// number `try`, at most `max`; with `jitter`, a uniformly random share of that ("full
/// jitter", so retries of many tasks that failed together spread out).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: bool,
}

impl Backoff {
    /// No wait: the next try is offered at once (the seed's behaviour).
    pub const IMMEDIATE: Backoff = Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
        multiplier: 1.0,
        jitter: false,
    };

    /// True if this backoff never waits.
    pub fn is_immediate(&self) -> bool {
        self.initial.is_zero() || self.max.is_zero()
    }

    /// The longest wait after try number `try_number` (1 for the first try).
    pub fn ceiling(&self, try_number: u32) -> Duration {
        if self.is_immediate() {
            return Duration::ZERO;
        }
        // Past 64 doublings every sane policy has long reached its cap.
        let exponent = try_number.saturating_sub(1).min(64) as i32;
        let seconds = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(seconds.min(self.max.as_secs_f64())).unwrap_or(self.max)
    }

    /// The wait after try number `try_number`: [`Backoff::ceiling`], or with jitter a
    /// random share of it.
    pub fn delay(&self, try_number: u32) -> Duration {
        let ceiling = self.ceiling(try_number);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        ceiling.mul_f64(random_fraction())
    }
}

impl Backoff {
    /// [`Backoff::delay`] for task `id`, with the jitter drawn from the id and try rather
    /// than at random, so every reader of the store computes the same time (expiry backoff:
    /// PostgreSQL's `expiry_backoff` does the same with its own hash).
    pub fn delay_for_task(&self, id: &str, try_number: u32) -> Duration {
        let ceiling = self.ceiling(try_number);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{id}/{try_number}").as_bytes());
        let share = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / 65536.0;
        ceiling.mul_f64(share)
    }
}

impl Default for Backoff {
    /// Exponential from 1 s, doubling per try, at most 10 minutes, with full jitter.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

/// A uniformly random number in [0, 1), from the operating system's generator.
fn random_fraction() -> f64 {
    let bits = Uuid::new_v4().as_u64_pair().0 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// What [`Parade::own`](super::Parade::own) is asked for.
#[derive(Debug, Clone, Copy)]
pub struct OwnRequest<'a> {
    /// The owner recorded on the tasks.
    pub actor: &'a ActorId,
    /// At most this many tasks.
    pub max_tasks: u32,
    /// Of these actions.
    pub actions: &'a [String],
    /// Owned until this long from now (`None`: forever).
    pub max_duration: Option<Duration>,
    /// Per action, in the order of `actions`: how long an ownership of this try waits past
    /// its deadline, if it expires, before the task is offered again. An action without an
    /// entry (or with [`Backoff::IMMEDIATE`]) is offered again at once.
    pub expiry_backoff: &'a [Backoff],
    /// A concurrency limit shared by `actions` together, across every owner of the store:
    /// after this own at most this many of their tasks are in progress with an unexpired
    /// ownership (deadline unset or not passed), so it owns at most the room left. Owners of
    /// one group are serialized for the count; `None`, no limit and no count (the path
    /// every unlimited own takes).
    pub max_in_progress: Option<u32>,
}

impl OwnedTask {
    /// The task's id and token: what extending, returning or releasing it takes.
    pub fn lease(&self) -> TaskLease {
        TaskLease {
            id: self.id.clone(),
            token: self.token,
        }
    }
}

/// An owned task as its owner names it to the queue: its id and the performance token it
/// was owned with. For [`Parade::release_tasks`](super::Parade::release_tasks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskLease {
    pub id: TaskId,
    pub token: PerformanceToken,
}

/// One task's result, for [`Parade::return_tasks`](super::Parade::return_tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReturn {
    pub id: TaskId,
    pub token: PerformanceToken,
    pub status: String,
    pub code: TaskStatusCode,
    /// For a `Pending` return that leaves the task tries: offer it again only this long
    /// from now (`None`: at once).
    pub retry_after: Option<Duration>,
}

/// What a return that completes a task does with its row, for
/// [`Parade::return_tasks_with`](super::Parade::return_tasks_with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnCompletion {
    /// The row is kept, `completed`, until the pruner's retention has passed.
    #[default]
    Keep,
    /// The row is deleted as the task completes (after signalling its successors), unless
    /// the task has a notify channel: then it is kept as with `Keep`, so that its waiters
    /// read its outcome. `[retention] completed = "0s"`.
    Delete,
}

impl OnCompletion {
    /// What a node with `retention` does: `Delete` when completed tasks are kept for zero.
    pub fn for_retention(retention: &Retention) -> OnCompletion {
        match retention.completed {
            Some(keep) if keep.is_zero() => OnCompletion::Delete,
            _ => OnCompletion::Keep,
        }
    }
}

/// How long finished tasks are kept, per outcome (`None`: forever), for
/// [`Parade::prune_finished`](super::Parade::prune_finished). A `completed` of zero means
/// deleted as they complete ([`OnCompletion::Delete`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub completed: Option<Duration>,
    pub aborted: Option<Duration>,
}

/// What cancelling one task did, for [`Parade::cancel_tasks`](super::Parade::cancel_tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancellation {
    pub id: TaskId,
    pub outcome: CancelOutcome,
}

/// Whether a task was cancelled, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "status_code")]
pub enum CancelOutcome {
    /// It was pending, waiting or running, and is aborted now.
    Cancelled,
    /// It had already ended, with this code; nothing changed.
    AlreadyEnded(TaskStatusCode),
    /// No such task.
    NotFound,
}

/// What a finished (or, for a waiter that was woken early, current) task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    /// The status text its last owner returned (empty if none).
    pub status: String,
    pub status_code: TaskStatusCode,
}

/// Which tasks `list_tasks` and `list_task_page` return, in insertion order (or newest
/// first). Every field set narrows the list; unset fields do not.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status_code: Option<TaskStatusCode>,
    /// Only tasks in this state: finer than `status_code`, since it tells the pending tasks
    /// that can run now from those that wait for a time or for their dependencies.
    pub state: Option<TaskState>,
    pub action: Option<String>,
    /// Only the task with this id (a primary-key lookup).
    pub id: Option<TaskId>,
    /// Only ids that start with this.
    pub id_prefix: Option<String>,
    /// Only tasks enqueued at or after this time (the store's `created_at`).
    pub enqueued_from: Option<DateTime<Utc>>,
    /// Only tasks enqueued before this time.
    pub enqueued_before: Option<DateTime<Utc>>,
    /// At most this many tasks (`None`: all).
    pub limit: Option<u32>,
    /// Newest first instead of insertion order.
    pub newest_first: bool,
    /// Only tasks past this position in the list's order (older ones when `newest_first`):
    /// the `next` of the previous [`TaskPage`]. A position, not an offset, so a page costs the
    /// same however deep it is, and tasks inserted or deleted meanwhile shift nothing.
    pub after: Option<TaskCursor>,
    /// Only the predecessors of this task: tasks listing it in `to_signal_after`.
    pub predecessors_of: Option<TaskId>,
}

/// Where a task is, as an operator asks about it: the four stored status codes, with
/// `pending` split by what the task waits for. Computed from the row (`status_code`,
/// `total_dependencies`, `num_signals`, `run_after`) and the clock; nothing stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Pending and runnable now: its dependencies are met and it waits for no time.
    Pending,
    /// Pending, its dependencies met, with a `run_after` still in the future.
    Delayed,
    /// Pending with dependencies not met: its signals differ from `total_dependencies`
    /// (owning requires them equal, whatever its `run_after`).
    Waiting,
    InProgress,
    Completed,
    Aborted,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Waiting,
        TaskState::Delayed,
        TaskState::Pending,
        TaskState::InProgress,
        TaskState::Completed,
        TaskState::Aborted,
    ];

    /// The state of `task` at `now`.
    pub fn of(task: &TaskData, now: DateTime<Utc>) -> TaskState {
        match task.status_code {
            TaskStatusCode::InProgress => TaskState::InProgress,
            TaskStatusCode::Completed => TaskState::Completed,
            TaskStatusCode::Aborted => TaskState::Aborted,
            TaskStatusCode::Pending => {
                if task
                    .total_dependencies
                    .is_some_and(|total| total != task.num_signals)
                {
                    TaskState::Waiting
                } else if task.run_after.is_some_and(|at| at > now) {
                    TaskState::Delayed
                } else {
                    TaskState::Pending
                }
            }
        }
    }

    /// Its name in URLs and JSON: `pending`, `delayed`, `waiting`, `in-progress`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Delayed => "delayed",
            TaskState::Waiting => "waiting",
            TaskState::InProgress => "in-progress",
            TaskState::Completed => "completed",
            TaskState::Aborted => "aborted",
        }
    }

    /// The stored status code of every task in this state.
    pub fn status_code(self) -> TaskStatusCode {
        match self {
            TaskState::Pending | TaskState::Delayed | TaskState::Waiting => TaskStatusCode::Pending,
            TaskState::InProgress => TaskStatusCode::InProgress,
            TaskState::Completed => TaskStatusCode::Completed,
            TaskState::Aborted => TaskStatusCode::Aborted,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = Error;

    /// Parses a state name case-insensitively; anything else is [`Error::InvalidArgument`]
    /// naming the states there are.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument {
                what: format!("task state {s:?}"),
                problem: format!(
                    "not a state: use one of {}",
                    TaskState::ALL.map(TaskState::as_str).join(", ")
                ),
            })
    }
}

/// A task's position in the store's insertion order (`seq` on PostgreSQL, the rowid on
/// SQLite): what a [`TaskPage`] continues from. Written as its decimal number in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskCursor(pub i64);

impl fmt::Display for TaskCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(TaskCursor)
            .map_err(|_| Error::InvalidArgument {
                what: format!("page cursor {s:?}"),
                problem: "not a cursor: pass the `next` of the previous page".into(),
            })
    }
}

impl Serialize for TaskCursor {
    /// As a string: JSON numbers past 2^53 lose digits in a browser.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A task as a listing shows it: its row, and what the store keeps about it besides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedTask {
    pub task: TaskData,
    /// When it was inserted (the store's `created_at`).
    pub enqueued_at: DateTime<Utc>,
    /// When it ended, if it has (`None` too for a task stored as ended by plain SQL).
    pub finished_at: Option<DateTime<Utc>>,
    /// Its position in insertion order.
    pub cursor: TaskCursor,
}

/// One page of [`Parade::list_task_page`](super::Parade::list_task_page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskPage {
    pub tasks: Vec<ListedTask>,
    /// The `after` of the next page; `None` when this page is the last.
    pub next: Option<TaskCursor>,
}

impl TaskPage {
    /// The page of a listing that read up to one task more than `limit`: that one is not
    /// shown, and says that a next page starts after the page's last task.
    pub(crate) fn cut(mut tasks: Vec<ListedTask>, limit: Option<u32>) -> Self {
        let next = match limit {
            Some(limit) if tasks.len() > limit as usize => {
                tasks.truncate(limit as usize);
                tasks.last().map(|t| t.cursor)
            }
            _ => None,
        };
        TaskPage { tasks, next }
    }
}

/// A task's DAG: the task, every ancestor (tasks that signal it, transitively) and every
/// descendant (tasks it signals, transitively), up to a bound; from
/// [`Parade::task_graph`](super::Parade::task_graph).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskGraph {
    pub root: TaskId,
    /// The root first, then ancestors and descendants level by level outwards.
    pub nodes: Vec<GraphTask>,
    /// (predecessor, successor): each `to_signal_after` entry between two nodes of the graph.
    pub edges: Vec<(TaskId, TaskId)>,
    /// The bound cut the graph short: some node has `more` neighbours than shown.
    pub truncated: bool,
}

/// A task in a [`TaskGraph`]: what drawing it takes, not its whole row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphTask {
    pub id: TaskId,
    pub action: String,
    pub status_code: TaskStatusCode,
    pub state: TaskState,
    /// Steps from the root: negative for ancestors, positive for descendants.
    pub depth: i32,
    /// It has neighbours (on its side of the root) the bound left out.
    pub more: bool,
}

/// How many tasks of one action have one status code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskCount {
    pub action: String,
    pub status_code: TaskStatusCode,
    pub count: u64,
}

/// An actor and how many tasks it owns now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerCount {
    pub actor_id: ActorId,
    pub in_progress: u64,
}

/// How many tasks of one action ended with one code within one minute, for
/// [`Parade::finished_by_minute`](super::Parade::finished_by_minute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedMinute {
    /// The minute's start (UTC).
    pub minute: DateTime<Utc>,
    pub action: String,
    /// `Completed` or `Aborted`.
    pub status_code: TaskStatusCode,
    pub count: u64,
}

/// The tasks of one action that an operator may need to look at: pending tasks that can be
/// owned now (due, their dependencies met, tries left), tasks in progress whose ownership
/// deadline has passed (their owner stopped extending it), and the ownerships a concurrency
/// limit counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionAttention {
    pub action: String,
    /// Pending tasks any owner of the action could own now.
    pub runnable: u64,
    /// Tasks in progress past their deadline, by the store's clock.
    pub past_deadline: u64,
    /// Unexpired ownerships made within a concurrency limit: what a limit on the action
    /// counts (docs/queue-semantics.md, "Concurrency limits").
    pub within_limit: u64,
}

/// The queue at a glance: task counts by action and status, and who owns work now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// By action, then status code name.
    pub counts: Vec<TaskCount>,
    /// Most tasks first.
    pub owners: Vec<OwnerCount>,
    /// By action, only actions with a runnable task or one past its deadline.
    pub attention: Vec<ActionAttention>,
}

impl QueueSummary {
    /// The unexpired ownerships a concurrency limit over `actions` counts now.
    pub fn within_limit(&self, actions: &[String]) -> u64 {
        self.attention
            .iter()
            .filter(|a| actions.contains(&a.action))
            .map(|a| a.within_limit)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_parse_case_insensitively() {
        for (text, code) in [
            ("pending", TaskStatusCode::Pending),
            ("PENdiNG", TaskStatusCode::Pending),
            ("in-progress", TaskStatusCode::InProgress),
            ("IN-ProgRESS", TaskStatusCode::InProgress),
            ("completed", TaskStatusCode::Completed),
            ("COMPLETED", TaskStatusCode::Completed),
            ("aborted", TaskStatusCode::Aborted),
        ] {
            assert_eq!(text.parse::<TaskStatusCode>().unwrap(), code, "{text}");
        }
    }

    #[test]
    fn unknown_status_codes_are_errors() {
        for text in ["", "huh?", "[invalid]", "-17"] {
            assert!(matches!(
                text.parse::<TaskStatusCode>(),
                Err(Error::BadStatus(t)) if t == text
            ));
        }
    }

    #[test]
    fn task_json_uses_column_names_and_rejects_unknown_keys() {
        let task: TaskData = serde_json::from_str(
            r#"{"id":"a","action":"x","max_tries":3,"to_signal_after":["b"],"status_code":"in-progress"}"#,
        )
        .unwrap();
        assert_eq!(task.max_tries, Some(3));
        assert_eq!(task.status_code, TaskStatusCode::InProgress);
        assert_eq!(task.to_signal_after, vec![TaskId::from("b")]);
        assert!(serde_json::from_str::<TaskData>(r#"{"id":"a","action":"x","colour":1}"#).is_err());
    }

    #[test]
    fn backoff_doubles_per_try_up_to_its_cap() {
        let backoff = Backoff {
            jitter: false,
            ..Backoff::default()
        };
        let seconds: Vec<u64> = (1..=12).map(|t| backoff.delay(t).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(600));
        assert_eq!(Backoff::IMMEDIATE.delay(5), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_under_the_ceiling_and_varies() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = (0..50).map(|_| backoff.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(delays.windows(2).any(|w| w[0] != w[1]), "{delays:?}");
    }

    #[test]
    fn performance_token_prints_lowercase_hyphenated() {
        let token: PerformanceToken = "6F1C8E2A-3B4D-4E5F-8A9B-0C1D2E3F4A5B".parse().unwrap();
        assert_eq!(token.to_string(), "6f1c8e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b");
    }
}
