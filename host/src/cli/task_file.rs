//! `parade task add --file`: a JSON-lines file of new tasks, read in two passes so that
//! neither the file nor its bodies are ever held in memory whole.
//!
//! The first pass checks every line (its length, its JSON, that it sets only what a producer
//! may set, that its id is new to the file and its successors are in the file or stored) and
//! plans the batches; nothing is inserted if any line is wrong. The second pass reads the
//! file again and inserts it in order, one transaction per batch of about [`BATCH_TASKS`]
//! tasks (or [`BATCH_BYTES`] of lines, if fewer). A batch grows past that while a task in it names a successor further down the
//! file, so every task is stored together with or after its successors: the queue refuses a
//! successor it does not know yet, and a predecessor that ran before its successor existed
//! would signal nobody. What only the store can refuse (an id stored meanwhile, say) stops
//! the second pass; its error names the line and which lines were inserted. With
//! `--if-absent` each batch goes through [`Parade::insert_tasks_if_absent`] instead, and
//! the caller learns of every task whether it was added or already stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::queue::{Error, Parade, TaskData, TaskId};

/// The longest line a task file may have, in bytes (its newline not counted).
pub(super) const MAX_LINE_BYTES: usize = 1 << 20;

/// Tasks per insert, at least: one transaction and one round trip each.
pub(super) const BATCH_TASKS: usize = 1_000;

/// Bytes of task lines per insert, at least: large bodies make smaller batches.
pub(super) const BATCH_BYTES: usize = 16 << 20;

/// The keys a task line may set.
const PRODUCER_KEYS: &str = "id, action, body, max_tries, priority, total_dependencies, \
                             to_signal_after, notify_channel_after, run_after";

/// Columns of a task row that the queue keeps: a line setting one is refused, not obeyed
/// (a task added `in-progress` with no deadline would never be offered).
const QUEUE_KEYS: [&str; 8] = [
    "status",
    "status_code",
    "num_tries",
    "num_failures",
    "num_signals",
    "actor_id",
    "action_deadline",
    "performance_token",
];

/// One line of a task file, as a producer may write it.
#[derive(Debug, Deserialize)]
struct TaskLine {
    id: Option<TaskId>,
    action: Option<String>,
    body: Option<String>,
    max_tries: Option<i32>,
    priority: Option<i32>,
    total_dependencies: Option<i32>,
    to_signal_after: Option<Vec<TaskId>>,
    notify_channel_after: Option<String>,
    /// An RFC 3339 time; read as any JSON value so that a bad one is named in our words.
    run_after: Option<Value>,
    /// Every other key, refused by name.
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

/// A line that cannot be added: where it is and what is wrong with it.
#[derive(Debug)]
pub(super) struct LineError {
    file: String,
    line: usize,
    problem: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.problem)
    }
}

impl std::error::Error for LineError {}

/// The tasks of a JSON-lines source, one line at a time; blank lines are skipped and a task
/// without an id gets a new one.
pub(super) struct TaskLines<R> {
    file: String,
    reader: R,
    line: usize,
    buffer: Vec<u8>,
}

impl<R> TaskLines<R> {
    /// The length of the line last read, in bytes.
    fn line_bytes(&self) -> usize {
        self.buffer.len()
    }
}

impl<R: BufRead> TaskLines<R> {
    /// Reads `reader`; `file` names it in errors.
    pub(super) fn new(file: &str, reader: R) -> Self {
        TaskLines {
            file: file.to_owned(),
            reader,
            line: 0,
            buffer: Vec::new(),
        }
    }

    /// The next task and its line number; `None` at the end.
    pub(super) fn next_task(&mut self) -> Result<Option<(usize, TaskData)>, LineError> {
        loop {
            self.line += 1;
            self.buffer.clear();
            // One byte past the cap tells an over-long line from one exactly at it.
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| self.error(format!("cannot read it: {e}")))?;
            if read == 0 {
                return Ok(None);
            }
            let line = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
            if line.len() > MAX_LINE_BYTES {
                return Err(self.error(format!(
                    "the line is longer than {} MiB; a task's body must be smaller",
                    MAX_LINE_BYTES >> 20
                )));
            }
            let text = std::str::from_utf8(line)
                .map_err(|e| self.error(format!("not UTF-8 text: {e}")))?;
            if text.trim().is_empty() {
                continue;
            }
            let task = parse_line(text).map_err(|problem| self.error(problem))?;
            return Ok(Some((self.line, task)));
        }
    }

    fn error(&self, problem: String) -> LineError {
        LineError {
            file: self.file.clone(),
            line: self.line,
            problem,
        }
    }
}

/// One non-blank line as a new task, or what is wrong with it.
fn parse_line(text: &str) -> Result<TaskData, String> {
    let mut json = serde_json::Deserializer::from_str(text);
    let line: TaskLine = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        if path == "." {
            format!("not a task: {e}")
        } else {
            format!("not a task: {path}: {e}")
        }
    })?;
    json.end().map_err(|e| format!("not a task: {e}"))?;
    if let Some(key) = line.other.keys().next() {
        return Err(if QUEUE_KEYS.contains(&key.as_str()) {
            format!(
                "{key:?} is kept by the queue, not set by whoever adds a task: remove it \
                 (a task line may set {PRODUCER_KEYS})"
            )
        } else {
            format!("unknown key {key:?} (a task line may set {PRODUCER_KEYS})")
        });
    }
    let Some(action) = line.action.filter(|a| !a.is_empty()) else {
        return Err("missing \"action\"".into());
    };
    let run_after = line.run_after.map(run_after).transpose()?.flatten();
    let id = line
        .id
        .filter(|id| !id.0.is_empty())
        .unwrap_or_else(|| TaskId(super::task::new_task_id()));
    Ok(TaskData {
        body: line.body,
        max_tries: line.max_tries,
        priority: line.priority.unwrap_or_default(),
        total_dependencies: line.total_dependencies,
        to_signal_after: line.to_signal_after.unwrap_or_default(),
        notify_channel_after: line.notify_channel_after,
        run_after,
        ..TaskData::new(id, action)
    })
}

/// A line's `run_after`: an RFC 3339 time, or null for none.
fn run_after(value: Value) -> Result<Option<DateTime<Utc>>, String> {
    const EXAMPLE: &str = "such as \"2026-12-24T18:00:00Z\"";
    match value {
        Value::Null => Ok(None),
        Value::String(text) => super::task::parse_time(&text)
            .map(Some)
            .map_err(|_| format!("\"run_after\" must be an RFC 3339 time {EXAMPLE}, not {text:?}")),
        other => Err(format!(
            "\"run_after\" must be an RFC 3339 time as a string {EXAMPLE}, not {other}"
        )),
    }
}

/// What the first pass found: how many tasks, and how many go into each insert.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub tasks: usize,
    pub batches: Vec<usize>,
}

/// Where a named task was first seen: its place among the file's tasks and its line.
#[derive(Debug, Clone, Copy)]
struct Seen {
    index: usize,
    line: usize,
}

/// The first pass over `lines`: every line checked, ids unique in the file, successors not
/// in the file returned (with the line first naming each) for the caller to find in the
/// store, and the batches planned.
pub(super) fn plan<R: BufRead>(
    lines: &mut TaskLines<R>,
) -> Result<(Plan, Vec<(TaskId, usize)>), LineError> {
    let mut ids: HashMap<TaskId, Seen> = HashMap::new();
    // Successors named before (or without) their own line: who named each first.
    let mut awaited: HashMap<TaskId, Seen> = HashMap::new();
    // (predecessor, successor) indexes where the successor comes later in the file.
    let mut forward: Vec<(usize, usize)> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    let mut index = 0;
    while let Some((line, task)) = lines.next_task()? {
        sizes.push(lines.line_bytes());
        let seen = Seen { index, line };
        if let Some(first) = ids.get(&task.id) {
            return Err(lines.error(format!(
                "task {} is already on line {}",
                task.id, first.line
            )));
        }
        if let Some(predecessor) = awaited.remove(&task.id) {
            forward.push((predecessor.index, index));
        }
        ids.insert(task.id, seen);
        for successor in task.to_signal_after {
            if !ids.contains_key(&successor) {
                awaited.entry(successor).or_insert(seen);
            }
        }
        index += 1;
    }
    let mut outside: Vec<(TaskId, usize)> = awaited
        .into_iter()
        .map(|(id, seen)| (id, seen.line))
        .collect();
    outside.sort_by_key(|(_, line)| *line);
    Ok((
        Plan {
            tasks: index,
            batches: batches(&sizes, forward),
        },
        outside,
    ))
}

/// Cuts tasks whose lines have these `sizes` into batches of at least [`BATCH_TASKS`] tasks
/// or [`BATCH_BYTES`] bytes (the last may be smaller), never between a predecessor and a
/// successor further down (`forward` edges).
fn batches(sizes: &[usize], mut forward: Vec<(usize, usize)>) -> Vec<usize> {
    forward.sort_unstable();
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let mut next_edge = 0;
    // The furthest successor named by the tasks so far.
    let mut reach = 0;
    for (index, size) in sizes.iter().enumerate() {
        bytes += size;
        while let Some(&(_, to)) = forward.get(next_edge).filter(|(from, _)| *from <= index) {
            reach = reach.max(to);
            next_edge += 1;
        }
        let full = index + 1 - start >= BATCH_TASKS || bytes >= BATCH_BYTES;
        if full && reach <= index {
            batches.push(index + 1 - start);
            start = index + 1;
            bytes = 0;
        }
    }
    if start < sizes.len() {
        batches.push(sizes.len() - start);
    }
    batches
}

/// What adding a file did.
#[derive(Debug)]
pub(super) struct Added {
    /// Tasks stored (with `if_absent`, those that were not stored before).
    pub count: usize,
    /// With `if_absent`: every task of the file in order, and whether it was added (`false`:
    /// it was stored already and is left as it is).
    pub tasks: Option<Vec<(TaskId, bool)>>,
}

/// Adds every task of the file at `path` to `queue`: checks it whole, then inserts it in
/// batches (see the module docs); with `if_absent`, only the tasks whose ids are not stored
/// yet. On a terminal, stderr shows how far it got.
pub(super) async fn add_file(
    path: &Path,
    queue: &dyn Parade,
    if_absent: bool,
) -> anyhow::Result<Added> {
    let mut progress = Progress {
        shown: std::io::stderr().is_terminal(),
        open: false,
    };
    let added = add_file_showing(path, queue, if_absent, &mut progress).await;
    progress.end();
    added
}

async fn add_file_showing(
    path: &Path,
    queue: &dyn Parade,
    if_absent: bool,
    progress: &mut Progress,
) -> anyhow::Result<Added> {
    let name = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    progress.show(format_args!("checking {name} ..."));
    let (plan, outside) = plan(&mut TaskLines::new(&name, BufReader::new(&mut file)))
        .map_err(|e| nothing_inserted(e.to_string()))?;
    for (successor, line) in outside {
        if queue.get_task(&successor).await?.is_none() {
            return Err(nothing_inserted(format!(
                "{name}:{line}: to_signal_after names unknown task {successor} (neither in \
                 the file nor stored)"
            )));
        }
    }
    file.rewind().with_context(|| {
        format!(
            "cannot read {name} a second time (--file needs a regular file, not a pipe); \
             nothing was inserted"
        )
    })?;
    let mut lines = TaskLines::new(&name, BufReader::new(&mut file));
    let mut inserted = Inserted {
        if_absent,
        ..Inserted::default()
    };
    let mut outcomes = if_absent.then(Vec::new);
    for &size in &plan.batches {
        let mut numbers = Vec::with_capacity(size);
        let mut tasks = Vec::with_capacity(size);
        while tasks.len() < size {
            match lines.next_task() {
                Ok(Some((number, task))) => {
                    numbers.push(number);
                    tasks.push(task);
                }
                Ok(None) => break,
                Err(e) => return Err(inserted.stopped(e.to_string())),
            }
        }
        let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
            break;
        };
        let stored = match &mut outcomes {
            None => queue.insert_tasks(&tasks).await.map(|()| tasks.len()),
            Some(outcomes) => queue.insert_tasks_if_absent(&tasks).await.map(|new| {
                let new: HashSet<TaskId> = new.into_iter().collect();
                for task in &tasks {
                    outcomes.push((task.id.clone(), new.contains(&task.id)));
                }
                new.len()
            }),
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                let refused =
                    refused_task(&e).and_then(|id| tasks.iter().position(|t| &t.id == id));
                let at = match refused {
                    Some(i) => format!("{name}:{}", numbers[i]),
                    None => format!("{name}: lines {first}-{last}"),
                };
                return Err(inserted.stopped(format!("{at}: {e}")));
            }
        };
        inserted.tasks += tasks.len();
        inserted.new += stored;
        inserted.through_line = last;
        progress.show(format_args!(
            "inserted {} of {} tasks from {name}",
            inserted.tasks, plan.tasks
        ));
    }
    match lines.next_task() {
        Ok(None) if inserted.tasks == plan.tasks => Ok(Added {
            count: inserted.new,
            tasks: outcomes,
        }),
        _ => Err(inserted.stopped(format!("{name} changed while it was being added"))),
    }
}

/// One line of progress on stderr, rewritten in place, when stderr is a terminal.
struct Progress {
    shown: bool,
    /// A line is on screen without its newline.
    open: bool,
}

impl Progress {
    fn show(&mut self, text: fmt::Arguments<'_>) {
        if self.shown {
            // Back to the line's start and clear it.
            eprint!("\r\x1b[K{text}");
            self.open = true;
        }
    }

    /// Ends the line, so what follows (an error, say) starts on its own.
    fn end(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}

/// The task a refused insert names, if it names one.
fn refused_task(e: &Error) -> Option<&TaskId> {
    match e {
        Error::DuplicateTask { task_id }
        | Error::UnknownSuccessor { task_id, .. }
        | Error::InvalidTask { task_id, .. } => Some(task_id),
        _ => None,
    }
}

fn nothing_inserted(problem: String) -> anyhow::Error {
    anyhow::anyhow!("{problem}; nothing was inserted")
}

/// How far the second pass got.
#[derive(Debug, Default)]
struct Inserted {
    /// Tasks of the lines done (with `if_absent`, added or found stored).
    tasks: usize,
    /// Of those, how many this run stored.
    new: usize,
    if_absent: bool,
    /// The last line inserted.
    through_line: usize,
}

impl Inserted {
    /// The error that stops the second pass, saying what is in the store.
    fn stopped(&self, problem: String) -> anyhow::Error {
        if self.tasks == 0 {
            return nothing_inserted(problem);
        }
        if self.if_absent {
            return anyhow::anyhow!(
                "{problem}; lines 1-{} ({} tasks) were added or already stored ({} added), \
                 nothing after them",
                self.through_line,
                self.tasks,
                self.new
            );
        }
        anyhow::anyhow!(
            "{problem}; lines 1-{} ({} tasks) were inserted, nothing after them",
            self.through_line,
            self.tasks
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every task of `bytes`, or the first line's error.
    fn all_tasks(bytes: &[u8]) -> Result<Vec<TaskData>, LineError> {
        let mut lines = TaskLines::new("f", bytes);
        let mut tasks = Vec::new();
        while let Some((_, task)) = lines.next_task()? {
            tasks.push(task);
        }
        Ok(tasks)
    }

    /// The plan of `text`'s lines.
    fn plan_of(text: &str) -> Plan {
        plan(&mut TaskLines::new("f", text.as_bytes())).unwrap().0
    }

    #[test]
    fn batches_are_cut_every_thousand_tasks_but_never_before_a_named_successor() {
        let lines = |n: usize, signals: &[(usize, usize)]| {
            (0..n)
                .map(|i| match signals.iter().find(|(from, _)| *from == i) {
                    Some((_, to)) => {
                        format!(r#"{{"id":"t{i}","action":"a","to_signal_after":["t{to}"]}}"#)
                    }
                    None => format!(r#"{{"id":"t{i}","action":"a"}}"#),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(plan_of(&lines(2500, &[])).batches, [1000, 1000, 500]);
        // Forward across the first cut: the first batch grows to take the successor in.
        assert_eq!(plan_of(&lines(2500, &[(10, 1500)])).batches, [1501, 999]);
        // Backward references cut nowhere.
        assert_eq!(
            plan_of(&lines(2500, &[(1500, 10)])).batches,
            [1000, 1000, 500]
        );
        assert_eq!(plan_of(&lines(2500, &[(0, 2499)])).batches, [2500]);
        assert_eq!(plan_of("").batches, Vec::<usize>::new());
    }

    #[test]
    fn large_lines_make_smaller_batches() {
        let mib = 1 << 20;
        assert_eq!(batches(&[mib; 40], Vec::new()), [16, 16, 8]);
        // Still never before a successor further down.
        assert_eq!(batches(&[mib; 40], vec![(0, 20)]), [21, 16, 3]);
    }

    #[test]
    fn successors_outside_the_file_are_returned_for_the_store_to_confirm() {
        let text = "{\"id\":\"a\",\"action\":\"x\",\"to_signal_after\":[\"b\",\"stored\"]}\n\
                    {\"id\":\"b\",\"action\":\"x\",\"to_signal_after\":[\"a\",\"stored\"]}";
        let (_, outside) = plan(&mut TaskLines::new("f", text.as_bytes())).unwrap();
        assert_eq!(outside, [(TaskId::from("stored"), 1)]);
    }

    #[test]
    fn a_duplicate_id_names_both_lines() {
        let text = "{\"id\":\"a\",\"action\":\"x\"}\n\n{\"id\":\"a\",\"action\":\"y\"}";
        let e = plan(&mut TaskLines::new("f", text.as_bytes())).unwrap_err();
        assert_eq!(e.to_string(), "f:3: task a is already on line 1");
    }

    #[test]
    fn a_line_at_the_cap_is_read_and_one_byte_more_is_refused() {
        let line = |body: usize| {
            let mut line = r#"{"action":"x","body":""#.to_owned();
            line.push_str(&"b".repeat(body));
            line.push_str("\"}");
            line
        };
        let overhead = line(0).len();
        let at_cap = line(MAX_LINE_BYTES - overhead);
        assert_eq!(
            all_tasks(format!("{at_cap}\n").as_bytes()).unwrap().len(),
            1
        );
        let over = line(MAX_LINE_BYTES - overhead + 1);
        let e = all_tasks(format!("{{\"action\":\"x\"}}\n{over}\n").as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f:2: the line is longer than 1 MiB"),
            "{e}"
        );
    }

    #[test]
    fn keys_the_queue_keeps_are_refused_by_name() {
        for key in QUEUE_KEYS {
            let e = all_tasks(format!("{{\"action\":\"x\",\"{key}\":1}}").as_bytes()).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("{key:?} is kept by the queue")),
                "{e}"
            );
        }
        let e = all_tasks(br#"{"action":"x","colour":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown key \"colour\""), "{e}");
    }

    #[test]
    fn run_after_is_an_rfc_3339_time_and_a_bad_one_names_the_line_and_key() {
        let tasks = all_tasks(
            b"{\"action\":\"x\",\"run_after\":\"2026-12-24T19:00:00+01:00\"}\n\
              {\"action\":\"x\",\"run_after\":null}",
        )
        .unwrap();
        assert_eq!(
            tasks[0].run_after,
            Some("2026-12-24T18:00:00Z".parse().unwrap())
        );
        assert_eq!(tasks[1].run_after, None);
        for (value, problem) in [
            ("\"tomorrow\"", "not \"tomorrow\""),
            ("\"2026-12-24 18:00\"", "not \"2026-12-24 18:00\""),
            ("1766599200", "as a string"),
        ] {
            let text = format!("{{\"action\":\"x\"}}\n{{\"action\":\"x\",\"run_after\":{value}}}");
            let e = all_tasks(text.as_bytes()).unwrap_err().to_string();
            assert!(
                e.starts_with("f:2: \"run_after\" must be an RFC 3339 time"),
                "{e}"
            );
            assert!(e.contains(problem), "{e}");
        }
    }

    proptest! {
        /// Any bytes at all: an error naming a line, or tasks that each have an id and an
        /// action; never a panic.
        #[test]
        fn task_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match all_tasks(bytes.as_slice()) {
                Ok(tasks) => {
                    for task in tasks {
                        prop_assert!(!task.id.0.is_empty() && !task.action.is_empty());
                    }
                }
                Err(e) => prop_assert!(format!("{e:#}").starts_with("f:"), "{e:#}"),
            }
        }

        /// Lines shaped like tasks, with values of any kind in their fields.
        #[test]
        fn task_like_lines_parse_or_name_their_line(
            fields in proptest::collection::vec(
                (
                    prop::sample::select(vec!["id", "action", "body", "max_tries", "priority",
                        "to_signal_after", "total_dependencies", "num_tries", "bogus"]),
                    prop::sample::select(vec!["\"x\"", "1", "-1", "null", "[]", "[\"a\"]",
                        "{}", "1e400", "\"\\u0000\"", "99999999999"]),
                ),
                0..6,
            ),
            line_count in 1usize..4,
        ) {
            let object = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let text = vec![format!("{{{object}}}"); line_count].join("\n");
            if let Err(e) = all_tasks(text.as_bytes()) {
                prop_assert!(format!("{e:#}").starts_with("f:1:"), "{e:#}");
            }
        }
    }
}
