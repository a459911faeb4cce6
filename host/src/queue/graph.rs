//! The walk behind [`Parade::task_graph`](super::Parade::task_graph): a breadth-first search
//! outwards from one task, down through `to_signal_after` (its descendants) and up through
//! the tasks that list it there (its ancestors), one level of each in turn, until both sides
//! end or the graph holds its bound of nodes. Each backend supplies two set-at-a-time reads
//! ([`GraphRows`]), so a level costs one query however wide it is.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{GraphTask, Result, TaskData, TaskGraph, TaskId, TaskState};

/// What a backend reads for the walk. Rows may leave out `body` and `status`: the graph
/// never shows them, and a body can be megabytes.
#[async_trait]
pub(super) trait GraphRows: Sync {
    /// The rows of those of `ids` that exist.
    async fn rows_by_id(&self, ids: &[TaskId]) -> Result<Vec<TaskData>>;

    /// Up to `limit` tasks that list one of `ids` in their `to_signal_after`.
    async fn predecessor_rows(&self, ids: &[TaskId], limit: u32) -> Result<Vec<TaskData>>;
}

/// The graph around `root`, at most `max_nodes` nodes (at least the root); `None` if `root`
/// does not exist.
pub(super) async fn explore(
    store: &impl GraphRows,
    root: &TaskId,
    max_nodes: u32,
    now: DateTime<Utc>,
) -> Result<Option<TaskGraph>> {
    let Some(root_row) = store
        .rows_by_id(std::slice::from_ref(root))
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let max_nodes = max_nodes.max(1) as usize;
    let mut walk = Walk::default();
    walk.add(root_row, 0);
    let mut down = vec![root.clone()];
    let mut up = vec![root.clone()];
    let mut depth = 0;
    while !down.is_empty() || !up.is_empty() {
        depth += 1;
        // While both sides go on, each level of descendants gets half the room left, so a
        // wide fan-out cannot crowd out every ancestor.
        let room = walk.room(max_nodes);
        if !down.is_empty() {
            let share = if up.is_empty() {
                room
            } else {
                room.div_ceil(2)
            };
            down = walk.descend(store, &down, depth, share).await?;
        }
        if !up.is_empty() {
            up = walk
                .ascend(store, &up, -depth, walk.room(max_nodes))
                .await?;
        }
    }
    Ok(Some(walk.into_graph(root.clone(), now)))
}

/// The nodes found so far, in the order found.
#[derive(Default)]
struct Walk {
    rows: Vec<(TaskData, i32)>,
    index: HashMap<TaskId, usize>,
    more: HashSet<TaskId>,
    truncated: bool,
}

impl Walk {
    fn add(&mut self, row: TaskData, depth: i32) -> bool {
        if self.index.contains_key(&row.id) {
            return false;
        }
        self.index.insert(row.id.clone(), self.rows.len());
        self.rows.push((row, depth));
        true
    }

    fn room(&self, max_nodes: usize) -> usize {
        max_nodes.saturating_sub(self.rows.len())
    }

    fn row(&self, id: &TaskId) -> Option<&TaskData> {
        self.index.get(id).map(|&i| &self.rows[i].0)
    }

    /// Adds up to `room` successors of `frontier` not found yet; returns those added (the
    /// next frontier).
    async fn descend(
        &mut self,
        store: &impl GraphRows,
        frontier: &[TaskId],
        depth: i32,
        room: usize,
    ) -> Result<Vec<TaskId>> {
        let mut wanted: Vec<TaskId> = Vec::new();
        let mut seen = HashSet::new();
        for id in frontier {
            for successor in self
                .row(id)
                .map(|r| r.to_signal_after.as_slice())
                .unwrap_or(&[])
            {
                if !self.index.contains_key(successor) && seen.insert(successor.clone()) {
                    wanted.push(successor.clone());
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // Successors that were never stored (or were deleted) are left out, as signalling
        // ignores them, so a few more are read than there is room for.
        let mut found = store.rows_by_id(&wanted).await?;
        let order: HashMap<&TaskId, usize> =
            wanted.iter().enumerate().map(|(i, id)| (id, i)).collect();
        found.sort_by_key(|r| order.get(&r.id).copied().unwrap_or(usize::MAX));
        let mut added = Vec::new();
        let mut left_out = HashSet::new();
        for row in found {
            if added.len() < room {
                added.push(row.id.clone());
                self.add(row, depth);
            } else {
                left_out.insert(row.id);
            }
        }
        if !left_out.is_empty() {
            self.truncated = true;
            for id in frontier {
                let row = self
                    .row(id)
                    .map(|r| r.to_signal_after.clone())
                    .unwrap_or_default();
                if row.iter().any(|s| left_out.contains(s)) {
                    self.more.insert(id.clone());
                }
            }
        }
        Ok(added)
    }

    /// Adds up to `room` predecessors of `frontier` not found yet; returns those added.
    async fn ascend(
        &mut self,
        store: &impl GraphRows,
        frontier: &[TaskId],
        depth: i32,
        room: usize,
    ) -> Result<Vec<TaskId>> {
        // Predecessors found already (a diamond above the root) come back too, so the limit
        // leaves room for them and one more, which tells whether the bound cut anything.
        let limit = u32::try_from(room + self.rows.len() + 1).unwrap_or(u32::MAX);
        let found = store.predecessor_rows(frontier, limit).await?;
        let capped = found.len() >= limit as usize;
        let mut added = Vec::new();
        let mut left_out: Vec<TaskData> = Vec::new();
        for row in found {
            if self.index.contains_key(&row.id) {
                continue;
            }
            if added.len() < room {
                added.push(row.id.clone());
                self.add(row, depth);
            } else {
                left_out.push(row);
            }
        }
        if capped || !left_out.is_empty() {
            self.truncated = true;
            for id in frontier {
                if capped || left_out.iter().any(|p| p.to_signal_after.contains(id)) {
                    self.more.insert(id.clone());
                }
            }
        }
        Ok(added)
    }

    fn into_graph(self, root: TaskId, now: DateTime<Utc>) -> TaskGraph {
        let mut edges = Vec::new();
        let mut seen = HashSet::new();
        for (row, _) in &self.rows {
            for successor in &row.to_signal_after {
                if self.index.contains_key(successor)
                    && seen.insert((row.id.clone(), successor.clone()))
                {
                    edges.push((row.id.clone(), successor.clone()));
                }
            }
        }
        let nodes = self
            .rows
            .into_iter()
            .map(|(row, depth)| GraphTask {
                more: self.more.contains(&row.id),
                state: TaskState::of(&row, now),
                id: row.id,
                action: row.action,
                status_code: row.status_code,
                depth,
            })
            .collect();
        TaskGraph {
            root,
            nodes,
            edges,
            truncated: self.truncated,
        }
    }
}
