//! A task's DAG drawn as SVG on the server, for its page: a layered layout (each task one
//! column right of every predecessor it has in the graph, as far as cycles allow), tasks
//! coloured by state, each a link to its own page. No script and nothing fetched: the
//! picture is in the page.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::pages::escape;
use crate::queue::{TaskGraph, TaskId, TaskState};

const NODE_WIDTH: i32 = 160;
const NODE_HEIGHT: i32 = 26;
const COLUMN: i32 = 210;
const ROW: i32 = 36;
const MARGIN: i32 = 10;
/// Characters of an id shown in its box (the whole id is in its tooltip).
const LABEL_CHARS: usize = 20;

/// The fill of a task in `state`, and its legend.
pub(super) fn colour(state: TaskState) -> &'static str {
    match state {
        TaskState::Waiting => "#d9d9d9",
        TaskState::Delayed => "#f3dc8c",
        TaskState::Pending => "#a9cdfb",
        TaskState::InProgress => "#ffb65c",
        TaskState::Completed => "#97d8a4",
        TaskState::Aborted => "#f2998f",
    }
}

/// Each node's column: its BFS depth to start with, then pushed right of each predecessor
/// (longest path), at most once per node so a cycle cannot loop; columns start at 0.
fn columns(graph: &TaskGraph) -> HashMap<&TaskId, i32> {
    let mut column: HashMap<&TaskId, i32> = graph.nodes.iter().map(|n| (&n.id, n.depth)).collect();
    for _ in 0..graph.nodes.len() {
        let mut moved = false;
        for (from, to) in &graph.edges {
            let (Some(&f), Some(&t)) = (column.get(from), column.get(to)) else {
                continue;
            };
            if t <= f {
                column.insert(to, f + 1);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let first = column.values().copied().min().unwrap_or(0);
    column.values_mut().for_each(|c| *c -= first);
    column
}

/// Positions: (column, row) per node. Within a column, nodes are ordered by the mean row of
/// their predecessors in earlier columns (one sweep left to right), which keeps a fan-in's
/// lines from crossing more than they must.
fn layout(graph: &TaskGraph) -> HashMap<&TaskId, (i32, i32)> {
    let column = columns(graph);
    let width = column.values().copied().max().unwrap_or(0) + 1;
    let mut predecessors: HashMap<&TaskId, Vec<&TaskId>> = HashMap::new();
    for (from, to) in &graph.edges {
        predecessors.entry(to).or_default().push(from);
    }
    let mut at: HashMap<&TaskId, (i32, i32)> = HashMap::new();
    for c in 0..width {
        let mut in_column: Vec<(usize, &TaskId, f64)> = graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| column.get(&n.id) == Some(&c))
            .map(|(found, n)| {
                let rows: Vec<f64> = predecessors
                    .get(&n.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| at.get(p).map(|&(_, row)| f64::from(row)))
                    .collect();
                let mean = if rows.is_empty() {
                    f64::MAX
                } else {
                    rows.iter().sum::<f64>() / rows.len() as f64
                };
                (found, &n.id, mean)
            })
            .collect();
        in_column.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
        for (row, (_, id, _)) in in_column.into_iter().enumerate() {
            at.insert(id, (c, row as i32));
        }
    }
    at
}

fn label(id: &str) -> String {
    if id.chars().count() <= LABEL_CHARS {
        return id.to_owned();
    }
    let mut short: String = id.chars().take(LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

/// The graph as an `<svg id="dag">`: `g.dag-node` elements (`data-id`, `data-state`,
/// `data-depth`, `data-more` on a node with neighbours left out) and `path.dag-edge`
/// elements (`data-from`, `data-to`).
pub(super) fn svg(graph: &TaskGraph) -> String {
    let at = layout(graph);
    let columns = at.values().map(|&(c, _)| c).max().unwrap_or(0) + 1;
    let rows = at.values().map(|&(_, r)| r).max().unwrap_or(0) + 1;
    let width = MARGIN * 2 + (columns - 1) * COLUMN + NODE_WIDTH + 30;
    let height = MARGIN * 2 + (rows - 1) * ROW + NODE_HEIGHT;
    let corner = |id: &TaskId| {
        let (c, r) = at.get(id).copied().unwrap_or((0, 0));
        (MARGIN + c * COLUMN, MARGIN + r * ROW)
    };
    let mut out = format!(
        "<svg id=\"dag\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"the task's dependency graph\" font-family=\"ui-monospace,monospace\" \
         font-size=\"11\"><defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" \
         fill=\"#777\"/></marker></defs>"
    );
    for (from, to) in &graph.edges {
        let (fx, fy) = corner(from);
        let (tx, ty) = corner(to);
        let (x1, y1) = (fx + NODE_WIDTH, fy + NODE_HEIGHT / 2);
        let (x2, y2) = (tx, ty + NODE_HEIGHT / 2);
        // A backward edge (a cycle) bends out to the right of its source instead.
        let bend = ((x2 - x1).abs() / 2).max(40);
        let _ = write!(
            out,
            "<path class=\"dag-edge\" data-from=\"{}\" data-to=\"{}\" \
             d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#777\" \
             marker-end=\"url(#arrow)\"/>",
            escape(from.as_str()),
            escape(to.as_str()),
            x1 + bend,
            x2 - bend,
        );
    }
    for node in &graph.nodes {
        let (x, y) = corner(&node.id);
        let root = node.id == graph.root;
        let _ = write!(
            out,
            "<a href=\"/task?id={href}\"><g class=\"dag-node\" data-id=\"{id}\" \
             data-state=\"{state}\" data-depth=\"{depth}\"{more}><title>{id} · {action} · \
             {state}</title><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_WIDTH}\" \
             height=\"{NODE_HEIGHT}\" rx=\"4\" fill=\"{fill}\" stroke=\"{stroke}\" \
             stroke-width=\"{stroke_width}\"/><text x=\"{tx}\" y=\"{ty}\">{text}</text>{plus}</g></a>",
            href = super::pages::url_value(node.id.as_str()),
            id = escape(node.id.as_str()),
            state = node.state,
            depth = node.depth,
            more = if node.more { " data-more=\"true\"" } else { "" },
            action = escape(&node.action),
            fill = colour(node.state),
            stroke = if root { "#000" } else { "#666" },
            stroke_width = if root { 2.5 } else { 1.0 },
            tx = x + 6,
            ty = y + NODE_HEIGHT / 2 + 4,
            text = escape(&label(node.id.as_str())),
            plus = if node.more {
                format!(
                    "<text class=\"dag-more\" x=\"{}\" y=\"{}\" font-weight=\"bold\">+</text>",
                    x + NODE_WIDTH + 4,
                    y + NODE_HEIGHT / 2 + 4
                )
            } else {
                String::new()
            },
        );
    }
    out.push_str("</svg>");
    out
}

/// The colours' key, as a line of swatches.
pub(super) fn legend() -> String {
    let mut out = String::from("<p class=\"legend\" id=\"dag-legend\">");
    for state in TaskState::ALL {
        let _ = write!(
            out,
            "<span class=\"swatch\" style=\"background:{}\"></span>{state} ",
            colour(state)
        );
    }
    out.push_str("</p>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{GraphTask, TaskStatusCode};

    fn node(id: &str, depth: i32) -> GraphTask {
        GraphTask {
            id: TaskId::from(id),
            action: "a".into(),
            status_code: TaskStatusCode::Pending,
            state: TaskState::Pending,
            depth,
            more: false,
        }
    }

    fn edge(from: &str, to: &str) -> (TaskId, TaskId) {
        (TaskId::from(from), TaskId::from(to))
    }

    #[test]
    fn each_task_sits_right_of_its_predecessors_even_past_a_shortcut() {
        // a → b → c and a → c: c's BFS depth is 1, its column 2.
        let graph = TaskGraph {
            root: TaskId::from("a"),
            nodes: vec![node("a", 0), node("b", 1), node("c", 1), node("p", -1)],
            edges: vec![
                edge("p", "a"),
                edge("a", "b"),
                edge("a", "c"),
                edge("b", "c"),
            ],
            truncated: false,
        };
        let column = columns(&graph);
        let of = |id: &str| column[&TaskId::from(id)];
        assert_eq!((of("p"), of("a"), of("b"), of("c")), (0, 1, 2, 3));
    }

    #[test]
    fn a_cycle_ends_the_layout_and_every_node_is_drawn() {
        let graph = TaskGraph {
            root: TaskId::from("a"),
            nodes: vec![node("a", 0), node("b", 1)],
            edges: vec![edge("a", "b"), edge("b", "a")],
            truncated: false,
        };
        let svg = svg(&graph);
        assert_eq!(svg.matches("class=\"dag-node\"").count(), 2);
        assert_eq!(svg.matches("class=\"dag-edge\"").count(), 2);
    }

    #[test]
    fn ids_are_escaped_and_linked() {
        let graph = TaskGraph {
            root: TaskId::from("<x&y>"),
            nodes: vec![node("<x&y>", 0)],
            edges: vec![],
            truncated: false,
        };
        let svg = svg(&graph);
        assert!(svg.contains("data-id=\"&lt;x&amp;y&gt;\""), "{svg}");
        assert!(svg.contains("href=\"/task?id=%3Cx%26y%3E\""), "{svg}");
        assert!(!svg.contains("<x&y>"));
    }
}
