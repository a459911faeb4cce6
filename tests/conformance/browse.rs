//! The task browser's reads: `list_task_page` (keyset pages newest first, by state, action,
//! id prefix and enqueue time) and `task_graph` (a task's ancestors and descendants, bounded).

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use parade_host::queue::{
    OnCompletion, Parade, Retention, TaskData, TaskFilter, TaskGraph, TaskId, TaskPage, TaskReturn,
    TaskState, TaskStatusCode,
};

use crate::common::*;
use crate::support::{all_pages, ids_of, Store};

/// The ids of every page of `filter`, in order.
async fn paged_ids(q: &impl Parade, filter: &TaskFilter) -> anyhow::Result<Vec<String>> {
    Ok(ids_of(&all_pages(q, filter).await?))
}

pub async fn pages_through_ten_thousand_tasks_without_gap_or_repeat(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let inserted: Vec<String> = (0..10_000).map(|i| format!("t{i:05}")).collect();
    for chunk in inserted.chunks(2_500) {
        let batch: Vec<TaskData> = chunk.iter().map(|id| task(id, "work")).collect();
        q.insert_tasks(&batch).await?;
    }
    let newest_first = TaskFilter {
        newest_first: true,
        limit: Some(97),
        ..TaskFilter::default()
    };
    let pages = all_pages(&q, &newest_first).await?;
    assert_eq!(pages.len(), 10_000usize.div_ceil(97));
    assert!(pages[..pages.len() - 1].iter().all(|p| p.tasks.len() == 97));
    let listed = ids_of(&pages);
    let mut expected = inserted.clone();
    expected.reverse();
    assert_eq!(listed, expected, "newest first, each task once");
    // Positions fall strictly along the way, and each page continues after its last one.
    let cursors: Vec<_> = pages
        .iter()
        .flat_map(|p| p.tasks.iter().map(|t| t.cursor))
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] > w[1]));
    for page in &pages[..pages.len() - 1] {
        assert_eq!(page.next, page.tasks.last().map(|t| t.cursor));
    }

    let oldest_first = TaskFilter {
        newest_first: false,
        ..newest_first.clone()
    };
    assert_eq!(paged_ids(&q, &oldest_first).await?, inserted);

    // Tasks deleted behind and ahead of the cursor neither repeat nor shift the rest.
    let first = q.list_task_page(&newest_first).await?;
    q.delete_tasks(&ids(&["t09999", "t09000", "t05000"]))
        .await?;
    let rest = paged_ids(
        &q,
        &TaskFilter {
            after: first.next,
            ..newest_first.clone()
        },
    )
    .await?;
    let expected_rest: Vec<String> = expected[97..]
        .iter()
        .filter(|id| !["t09000", "t05000"].contains(&id.as_str()))
        .cloned()
        .collect();
    assert_eq!(rest, expected_rest);
    Ok(())
}

/// A task's place in the list is its position, whatever its status does between two pages:
/// each task is listed once, on the page its position falls on, with the status it has when
/// that page is read. (A store that reads tasks of different statuses apart, say through
/// partial indexes, must merge them into this one order.)
pub async fn a_task_owned_or_finished_between_two_pages_keeps_its_place(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let batch: Vec<TaskData> = (0..10).map(|i| task(&format!("t{i}"), "work")).collect();
    q.insert_tasks(&batch).await?;
    let newest_first = TaskFilter {
        newest_first: true,
        limit: Some(4),
        ..TaskFilter::default()
    };
    let listed = |pages: &[TaskPage]| -> Vec<(String, TaskStatusCode)> {
        pages
            .iter()
            .flat_map(|p| p.tasks.iter())
            .map(|t| (t.task.id.0.clone(), t.task.status_code))
            .collect()
    };
    let first = q.list_task_page(&newest_first).await?;
    let pending = TaskStatusCode::Pending;
    assert_eq!(
        listed(std::slice::from_ref(&first)),
        [
            ("t9", pending),
            ("t8", pending),
            ("t7", pending),
            ("t6", pending)
        ]
        .map(|(id, code)| (id.to_string(), code))
    );

    // Every task goes into progress; one on the page shown and one past it finish.
    let owned = own(&q, "a", 10, &["work"], MINUTE).await?;
    assert_eq!(owned.len(), 10);
    for t in owned
        .iter()
        .filter(|t| ["t8", "t3"].contains(&t.id.as_str()))
    {
        finish(&q, t, TaskStatusCode::Completed).await?;
    }
    let rest = all_pages(
        &q,
        &TaskFilter {
            after: first.next,
            ..newest_first.clone()
        },
    )
    .await?;
    let (running, completed) = (TaskStatusCode::InProgress, TaskStatusCode::Completed);
    let expected_rest = [
        ("t5", running),
        ("t4", running),
        ("t3", completed),
        ("t2", running),
        ("t1", running),
        ("t0", running),
    ]
    .map(|(id, code)| (id.to_string(), code));
    assert_eq!(listed(&rest), expected_rest);
    assert_eq!(rest[0].tasks.len(), 4, "a whole page across both parts");

    // From the start again, the first page mixes them too.
    let again = all_pages(&q, &newest_first).await?;
    let mut expected = vec![
        ("t9".to_string(), running),
        ("t8".to_string(), completed),
        ("t7".to_string(), running),
        ("t6".to_string(), running),
    ];
    expected.extend(expected_rest.clone());
    assert_eq!(listed(&again), expected);
    let oldest_first = TaskFilter {
        newest_first: false,
        ..newest_first
    };
    expected.reverse();
    assert_eq!(listed(&all_pages(&q, &oldest_first).await?), expected);
    Ok(())
}

pub async fn each_state_filter_lists_exactly_its_tasks(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let later = Utc::now() + chrono::Duration::hours(1);
    let earlier = Utc::now() - chrono::Duration::hours(1);
    q.insert_tasks(&[
        TaskData {
            total_dependencies: Some(1),
            ..task("waiting", "work")
        },
        TaskData {
            total_dependencies: Some(1),
            run_after: Some(later),
            ..task("waiting-and-delayed", "work")
        },
        TaskData {
            to_signal_after: ids(&["waiting", "waiting-and-delayed"]),
            ..task("signaller", "other")
        },
        TaskData {
            run_after: Some(later),
            ..task("delayed", "work")
        },
        TaskData {
            run_after: Some(earlier),
            ..task("due", "work")
        },
        task("pending", "work"),
        TaskData {
            total_dependencies: Some(0),
            ..task("no-dependencies-left", "work")
        },
        task("running", "run"),
        task("done", "finish"),
        task("failed", "fail"),
    ])
    .await?;
    let running = own_one(&q, "a", &["run"], MINUTE).await?;
    let done = own_one(&q, "a", &["finish"], MINUTE).await?;
    finish(&q, &done, TaskStatusCode::Completed).await?;
    let failed = own_one(&q, "a", &["fail"], MINUTE).await?;
    finish(&q, &failed, TaskStatusCode::Aborted).await?;
    assert_eq!(running.id.as_str(), "running");

    let expected: [(TaskState, &[&str]); 6] = [
        (TaskState::Waiting, &["waiting", "waiting-and-delayed"]),
        (TaskState::Delayed, &["delayed"]),
        (
            TaskState::Pending,
            &["signaller", "due", "pending", "no-dependencies-left"],
        ),
        (TaskState::InProgress, &["running"]),
        (TaskState::Completed, &["done"]),
        (TaskState::Aborted, &["failed"]),
    ];
    let mut everything = HashSet::new();
    for (state, names) in expected {
        let filter = TaskFilter {
            state: Some(state),
            limit: Some(2),
            ..TaskFilter::default()
        };
        let pages = all_pages(&q, &filter).await?;
        let listed = ids_of(&pages);
        assert_eq!(listed, names, "{state}");
        for page in &pages {
            for t in &page.tasks {
                assert_eq!(TaskState::of(&t.task, Utc::now()), state, "{}", t.task.id);
                // A finished task says when; nothing else does.
                assert_eq!(t.finished_at.is_some(), t.task.status_code.is_final());
            }
        }
        everything.extend(listed);
    }
    assert_eq!(everything.len(), 10, "the six states cover every task once");

    // A state and a status code together are both applied.
    let none = q
        .list_task_page(&TaskFilter {
            state: Some(TaskState::Delayed),
            status_code: Some(TaskStatusCode::Completed),
            ..TaskFilter::default()
        })
        .await?;
    assert!(none.tasks.is_empty());
    Ok(())
}

pub async fn pages_filter_by_action_id_prefix_and_enqueue_time(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        task("early-1", "mail"),
        task("early-2", "resize"),
        task("early-3", "mail"),
    ])
    .await?;
    // The store's clock has moved on by the next insert.
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.insert_tasks(&[
        task("late-1", "mail"),
        task("late-2", "resize"),
        task("early-late", "mail"),
    ])
    .await?;
    let all = q.list_task_page(&TaskFilter::default()).await?;
    let at = |id: &str| {
        all.tasks
            .iter()
            .find(|t| t.task.id.as_str() == id)
            .map(|t| t.enqueued_at)
            .unwrap()
    };
    let boundary = at("late-1");
    assert!(at("early-3") < boundary);
    let names =
        |page: TaskPage| -> Vec<String> { page.tasks.into_iter().map(|t| t.task.id.0).collect() };
    let page = |filter: TaskFilter| {
        let q = q.clone();
        async move {
            q.list_task_page(&TaskFilter {
                newest_first: true,
                ..filter
            })
            .await
        }
    };

    assert_eq!(
        names(
            page(TaskFilter {
                action: Some("mail".into()),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["early-late", "late-1", "early-3", "early-1"]
    );
    assert_eq!(
        names(
            page(TaskFilter {
                id_prefix: Some("early".into()),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["early-late", "early-3", "early-2", "early-1"]
    );
    assert_eq!(
        names(
            page(TaskFilter {
                enqueued_from: Some(boundary),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["early-late", "late-2", "late-1"],
        "from is inclusive"
    );
    assert_eq!(
        names(
            page(TaskFilter {
                enqueued_before: Some(boundary),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["early-3", "early-2", "early-1"],
        "before is exclusive"
    );
    assert_eq!(
        names(
            page(TaskFilter {
                action: Some("mail".into()),
                id_prefix: Some("early-".into()),
                enqueued_from: Some(boundary),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["early-late"]
    );
    // An id is one task, exactly.
    let one = q
        .list_task_page(&TaskFilter {
            id: Some(TaskId::from("early-1")),
            ..TaskFilter::default()
        })
        .await?;
    assert_eq!(names(one), ["early-1"]);
    // A prefix is matched literally: no wildcard characters.
    q.insert_tasks(&[task("a%b", "x"), task("a_c", "x"), task("ab", "x")])
        .await?;
    assert_eq!(
        names(
            page(TaskFilter {
                id_prefix: Some("a%".into()),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["a%b"]
    );
    assert_eq!(
        names(
            page(TaskFilter {
                id_prefix: Some("a_".into()),
                ..TaskFilter::default()
            })
            .await?
        ),
        ["a_c"]
    );
    Ok(())
}

/// An id prefix pages alike whether few tasks match it or many (a store may read the two from
/// different places), and matches exactly the ids that start with it at the edges of the
/// key order: after the greatest character, and around the surrogates no string holds.
pub async fn an_id_prefix_matches_exactly_and_pages_alike_sparse_or_dense(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let top = char::MAX;
    let edge_ids = [
        format!("z{top}"),
        format!("z{top}{top}x"),
        format!("z{top}a"),
        "za".to_owned(),
        "{".to_owned(),
        format!("z{top}"), // the same id again: stored once
        "\u{D7FF}x".to_owned(),
        "\u{E000}".to_owned(),
    ];
    let mut seen = HashSet::new();
    let edge: Vec<TaskData> = edge_ids
        .iter()
        .filter(|id| seen.insert(id.to_string()))
        .map(|id| task(id, "edge"))
        .collect();
    q.insert_tasks(&edge).await?;
    let matching = |prefix: String| {
        let q = q.clone();
        async move {
            paged_ids(
                &q,
                &TaskFilter {
                    id_prefix: Some(prefix),
                    limit: Some(2),
                    ..TaskFilter::default()
                },
            )
            .await
        }
    };
    assert_eq!(
        matching(format!("z{top}")).await?,
        [
            format!("z{top}"),
            format!("z{top}{top}x"),
            format!("z{top}a")
        ]
    );
    assert_eq!(
        matching(format!("z{top}{top}")).await?,
        [format!("z{top}{top}x")]
    );
    assert_eq!(
        matching("z".into()).await?,
        [
            format!("z{top}"),
            format!("z{top}{top}x"),
            format!("z{top}a"),
            "za".into()
        ]
    );
    assert_eq!(matching("\u{D7FF}".into()).await?, ["\u{D7FF}x"]);
    assert_eq!(matching("\u{E000}".into()).await?, ["\u{E000}"]);
    assert_eq!(matching(top.to_string()).await?, Vec::<String>::new());

    // Many tasks of one prefix (more than a store would sort), with others between them.
    let mut batch = Vec::new();
    for i in 0..2_400 {
        batch.push(task(&format!("dense-{i:04}"), "work"));
        if i % 3 == 0 {
            batch.push(task(&format!("other-{i:04}"), "work"));
        }
    }
    q.insert_tasks(&batch).await?;
    let owned: HashSet<String> = owned_ids(&own(&q, "a", 5, &["work"], MINUTE).await?)
        .into_iter()
        .collect();
    for (prefix, newest_first, state) in [
        ("dense-", true, None),
        ("dense-", false, None),
        ("dense-00", true, None),
        ("dense-00", false, None),
        ("dense-000", true, Some(TaskState::Pending)),
        ("dense-", true, Some(TaskState::InProgress)),
    ] {
        let filter = TaskFilter {
            id_prefix: Some(prefix.into()),
            newest_first,
            state,
            limit: Some(37),
            ..TaskFilter::default()
        };
        let mut expected: Vec<String> = batch
            .iter()
            .map(|t| t.id.0.clone())
            .filter(|id| id.starts_with(prefix))
            .filter(|id| match state {
                None => true,
                Some(TaskState::InProgress) => owned.contains(id),
                Some(_) => !owned.contains(id),
            })
            .collect();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(
            paged_ids(&q, &filter).await?,
            expected,
            "prefix {prefix:?}, newest first {newest_first}, state {state:?}"
        );
    }
    Ok(())
}

pub async fn tasks_enqueued_together_page_by_position_without_gap_or_repeat(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let batch: Vec<TaskData> = (0..250)
        .map(|i| task(&format!("tie{i:03}"), "work"))
        .collect();
    q.insert_tasks(&batch).await?;
    let all = q.list_task_page(&TaskFilter::default()).await?;
    // One insert, one enqueue time: every task ties on it.
    let at = all.tasks[0].enqueued_at;
    assert!(all.tasks.iter().all(|t| t.enqueued_at == at));
    let window = TaskFilter {
        enqueued_from: Some(at),
        enqueued_before: Some(at + chrono::Duration::microseconds(1)),
        newest_first: true,
        limit: Some(7),
        ..TaskFilter::default()
    };
    let listed = paged_ids(&q, &window).await?;
    let mut expected: Vec<String> = batch.iter().map(|t| t.id.0.clone()).collect();
    expected.reverse();
    assert_eq!(listed, expected);
    Ok(())
}

/// A filter whose few matches lie far apart, among tens of thousands of tasks and a gap of
/// deleted ones, pages newest first through all of them in order, from any cursor; one that
/// matches nothing answers one empty last page.
pub async fn a_filter_matching_few_of_many_tasks_pages_newest_first_through_all(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let rare_at = [0, 1, 9_000, 9_001, 21_000, 33_000, 39_998];
    let mut rare = Vec::new();
    for start in (0..40_000).step_by(5_000) {
        let batch: Vec<TaskData> = (start..start + 5_000)
            .map(|i| {
                if rare_at.contains(&i) {
                    rare.push(format!("r{i:05}"));
                    task(&format!("r{i:05}"), "rare")
                } else {
                    task(&format!("c{i:05}"), "common")
                }
            })
            .collect();
        q.insert_tasks(&batch).await?;
    }
    // A gap in insertion order: the common tasks between the rare 9,001 and 21,000.
    let gap: Vec<TaskId> = (9_002..21_000)
        .map(|i| TaskId::from(format!("c{i:05}")))
        .collect();
    q.delete_tasks(&gap).await?;
    rare.reverse();

    for limit in [1, 2, 50] {
        let filter = TaskFilter {
            action: Some("rare".into()),
            newest_first: true,
            limit: Some(limit),
            ..TaskFilter::default()
        };
        let pages = all_pages(&q, &filter).await?;
        let listed = ids_of(&pages);
        assert_eq!(listed, rare, "page size {limit}");
        assert_eq!(pages.len(), rare.len().div_ceil(limit as usize).max(1));
        // From the cursor of each rare task, the page holds the ones older than it.
        let cursors: Vec<_> = pages
            .iter()
            .flat_map(|p| p.tasks.iter().map(|t| t.cursor))
            .collect();
        for (i, cursor) in cursors.iter().enumerate() {
            let page = q
                .list_task_page(&TaskFilter {
                    after: Some(*cursor),
                    ..filter.clone()
                })
                .await?;
            let ids: Vec<String> = page.tasks.iter().map(|t| t.task.id.0.clone()).collect();
            let older = &rare[i + 1..];
            assert_eq!(
                ids,
                older[..older.len().min(limit as usize)],
                "after {cursor}"
            );
            assert_eq!(page.next.is_some(), older.len() > limit as usize);
        }
    }
    // The newest of everything, and a page that crosses the gap.
    let newest = q
        .list_task_page(&TaskFilter {
            newest_first: true,
            limit: Some(3),
            ..TaskFilter::default()
        })
        .await?;
    let ids: Vec<&str> = newest.tasks.iter().map(|t| t.task.id.as_str()).collect();
    assert_eq!(ids, ["c39999", "r39998", "c39997"]);
    let across_the_gap = q
        .list_task_page(&TaskFilter {
            action: Some("common".into()),
            newest_first: true,
            limit: Some(2),
            after: q
                .list_task_page(&TaskFilter {
                    id: Some(TaskId::from("c21001")),
                    ..TaskFilter::default()
                })
                .await?
                .tasks
                .first()
                .map(|t| t.cursor),
            ..TaskFilter::default()
        })
        .await?;
    let ids: Vec<&str> = across_the_gap
        .tasks
        .iter()
        .map(|t| t.task.id.as_str())
        .collect();
    assert_eq!(ids, ["c08999", "c08998"]);
    let none = q
        .list_task_page(&TaskFilter {
            action: Some("absent".into()),
            newest_first: true,
            limit: Some(50),
            ..TaskFilter::default()
        })
        .await?;
    assert!(none.tasks.is_empty() && none.next.is_none(), "{none:?}");
    Ok(())
}

/// s1, s2 → a → b1, b2, b3 → c → d1, d2: fan-in, fan-out, fan-in, fan-out. Beside it, x → b1
/// (an ancestor of b1, not of a) and an unrelated u.
fn fan_out_fan_in() -> Vec<TaskData> {
    let node = |id: &str, total: Option<i32>, successors: &[&str]| TaskData {
        total_dependencies: total,
        to_signal_after: ids(successors),
        ..task(id, "dag")
    };
    vec![
        node("d1", Some(1), &[]),
        node("d2", Some(1), &[]),
        node("c", Some(3), &["d1", "d2"]),
        node("b1", Some(2), &["c"]),
        node("b2", Some(1), &["c"]),
        node("b3", Some(1), &["c"]),
        node("a", Some(2), &["b1", "b2", "b3"]),
        node("s1", None, &["a"]),
        node("s2", None, &["a"]),
        node("x", None, &["b1"]),
        node("u", None, &[]),
    ]
}

pub async fn task_graph_holds_every_ancestor_and_descendant(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&fan_out_fan_in()).await?;
    let s1 = own_one(&q, "a", &["dag"], MINUTE).await?;
    finish(&q, &s1, TaskStatusCode::Completed).await?;

    let graph = q.task_graph(&TaskId::from("a"), 300).await?.unwrap();
    assert_eq!(graph.root.as_str(), "a");
    assert!(!graph.truncated);
    let mut depths: Vec<(String, i32)> = graph
        .nodes
        .iter()
        .map(|n| (n.id.0.clone(), n.depth))
        .collect();
    depths.sort();
    let expected: Vec<(String, i32)> = [
        ("a", 0),
        ("b1", 1),
        ("b2", 1),
        ("b3", 1),
        ("c", 2),
        ("d1", 3),
        ("d2", 3),
        ("s1", -1),
        ("s2", -1),
    ]
    .iter()
    .map(|(id, d)| (id.to_string(), *d))
    .collect();
    assert_eq!(depths, expected);
    assert_eq!(graph.nodes[0].id.as_str(), "a", "the root comes first");
    let mut edges: Vec<(String, String)> = graph
        .edges
        .iter()
        .map(|(from, to)| (from.0.clone(), to.0.clone()))
        .collect();
    edges.sort();
    let expected_edges: Vec<(String, String)> = [
        ("a", "b1"),
        ("a", "b2"),
        ("a", "b3"),
        ("b1", "c"),
        ("b2", "c"),
        ("b3", "c"),
        ("c", "d1"),
        ("c", "d2"),
        ("s1", "a"),
        ("s2", "a"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(edges, expected_edges);
    let node = |id: &str| graph.nodes.iter().find(|n| n.id.as_str() == id).unwrap();
    assert_eq!(node("s1").state, TaskState::Completed);
    assert_eq!(node("s2").state, TaskState::Pending);
    assert_eq!(node("a").state, TaskState::Waiting);
    assert_eq!(node("a").action, "dag");
    assert!(graph.nodes.iter().all(|n| !n.more));

    // From the middle of the fan-in, the siblings are neither ancestors nor descendants.
    let graph = q.task_graph(&TaskId::from("b2"), 300).await?.unwrap();
    let mut names: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a", "b2", "c", "d1", "d2", "s1", "s2"]);

    assert!(q.task_graph(&TaskId::from("missing"), 300).await?.is_none());
    let alone = q.task_graph(&TaskId::from("u"), 300).await?.unwrap();
    assert_eq!(alone.nodes.len(), 1);
    assert!(alone.edges.is_empty());
    Ok(())
}

pub async fn task_graph_stops_at_its_bound_and_marks_what_it_left_out(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let children: Vec<String> = (0..40).map(|i| format!("child{i:02}")).collect();
    let parents: Vec<String> = (0..40).map(|i| format!("parent{i:02}")).collect();
    let mut tasks: Vec<TaskData> = children.iter().map(|id| task(id, "wide")).collect();
    let child_ids: Vec<&str> = children.iter().map(String::as_str).collect();
    tasks.push(TaskData {
        to_signal_after: ids(&child_ids),
        total_dependencies: Some(40),
        ..task("hub", "wide")
    });
    tasks.extend(parents.iter().map(|id| TaskData {
        to_signal_after: ids(&["hub"]),
        ..task(id, "wide")
    }));
    q.insert_tasks(&tasks).await?;

    let graph = q.task_graph(&TaskId::from("hub"), 25).await?.unwrap();
    assert_eq!(graph.nodes.len(), 25);
    assert!(graph.truncated);
    let hub = graph.nodes.iter().find(|n| n.id.as_str() == "hub").unwrap();
    assert!(hub.more, "the hub has neighbours the graph leaves out");
    // Each edge joins two nodes of the graph.
    let shown: HashSet<&TaskId> = graph.nodes.iter().map(|n| &n.id).collect();
    assert!(graph
        .edges
        .iter()
        .all(|(f, t)| shown.contains(f) && shown.contains(t)));
    assert_eq!(graph.edges.len(), 24);
    // Both sides get room: one level of each is read in turn.
    assert!(graph.nodes.iter().any(|n| n.depth == 1));
    assert!(graph.nodes.iter().any(|n| n.depth == -1));

    let whole = q.task_graph(&TaskId::from("hub"), 81).await?.unwrap();
    assert_eq!(whole.nodes.len(), 81);
    assert!(!whole.truncated);
    assert!(whole.nodes.iter().all(|n| !n.more));
    Ok(())
}

/// The ids of `graph`'s nodes with their depths, sorted by id.
fn depths(graph: &TaskGraph) -> Vec<(String, i32)> {
    let mut depths: Vec<(String, i32)> = graph
        .nodes
        .iter()
        .map(|n| (n.id.0.clone(), n.depth))
        .collect();
    depths.sort();
    depths
}

/// `(id, depth)` pairs as `depths` gives them.
fn expected_depths(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
    let mut pairs: Vec<(String, i32)> = pairs.iter().map(|(id, d)| (id.to_string(), *d)).collect();
    pairs.sort();
    pairs
}

/// The predecessors of `id` as the browser pages them: newest first, two to a page.
async fn predecessors_of(q: &impl Parade, id: &str) -> anyhow::Result<Vec<String>> {
    paged_ids(
        q,
        &TaskFilter {
            predecessors_of: Some(TaskId::from(id)),
            newest_first: true,
            limit: Some(2),
            ..TaskFilter::default()
        },
    )
    .await
}

pub async fn ancestors_leave_the_graph_once_deleted_pruned_or_stored_anew(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&fan_out_fan_in()).await?;
    // From a leaf, four levels of ancestors, each level whole.
    let graph = q.task_graph(&TaskId::from("d1"), 300).await?.unwrap();
    assert!(!graph.truncated);
    assert_eq!(
        depths(&graph),
        expected_depths(&[
            ("d1", 0),
            ("c", -1),
            ("b1", -2),
            ("b2", -2),
            ("b3", -2),
            ("a", -3),
            ("x", -3),
            ("s1", -4),
            ("s2", -4),
        ])
    );
    assert_eq!(predecessors_of(&q, "c").await?, ["b3", "b2", "b1"]);
    assert_eq!(predecessors_of(&q, "b1").await?, ["x", "a"]);

    // Deleted by `delete_tasks`, at completion, and by the pruner: each leaves both reads.
    q.delete_tasks(&ids(&["x"])).await?;
    assert_eq!(predecessors_of(&q, "b1").await?, ["a"]);
    let s1 = own_one(&q, "actor", &["dag"], MINUTE).await?;
    assert_eq!(s1.id.as_str(), "s1");
    let returned = TaskReturn {
        id: s1.id.clone(),
        token: s1.token,
        status: "done".into(),
        code: TaskStatusCode::Completed,
        retry_after: None,
    };
    let results = q
        .return_tasks_with(&[returned], OnCompletion::Delete)
        .await?;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(q.get_task(&TaskId::from("s1")).await?.is_none());
    assert_eq!(predecessors_of(&q, "a").await?, ["s2"]);
    let s2 = own_one(&q, "actor", &["dag"], MINUTE).await?;
    assert_eq!(s2.id.as_str(), "s2");
    finish(&q, &s2, TaskStatusCode::Completed).await?;
    // Pruning takes tasks that finished before now less the retention: let the clock move.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at_once = Retention {
        completed: Some(Duration::ZERO),
        aborted: None,
    };
    assert_eq!(q.prune_finished(&at_once, 100).await?, 1);
    assert!(predecessors_of(&q, "a").await?.is_empty());
    let graph = q.task_graph(&TaskId::from("d1"), 300).await?.unwrap();
    assert_eq!(
        depths(&graph),
        expected_depths(&[
            ("d1", 0),
            ("c", -1),
            ("b1", -2),
            ("b2", -2),
            ("b3", -2),
            ("a", -3),
        ])
    );

    // A new task under a deleted one's id is a predecessor of what it lists, and only that.
    q.insert_tasks(&[TaskData {
        to_signal_after: ids(&["d2"]),
        ..task("s1", "dag")
    }])
    .await?;
    assert!(predecessors_of(&q, "a").await?.is_empty());
    assert_eq!(predecessors_of(&q, "d2").await?, ["s1", "c"]);
    let graph = q.task_graph(&TaskId::from("a"), 300).await?.unwrap();
    assert!(graph.nodes.iter().all(|n| n.depth >= 0), "{graph:?}");
    let graph = q.task_graph(&TaskId::from("d2"), 300).await?.unwrap();
    assert_eq!(
        depths(&graph),
        expected_depths(&[
            ("d2", 0),
            ("c", -1),
            ("s1", -1),
            ("b1", -2),
            ("b2", -2),
            ("b3", -2),
            ("a", -3),
        ])
    );
    Ok(())
}
