//! Input no well-behaved client sends: huge bodies and statuses, ids of any character up to
//! the maximum length and beyond it, a task that signals itself, dependency cycles. Each has a defined outcome, and
//! nothing else stored is harmed.

use parade_host::queue::{
    Error, Parade, TaskData, TaskId, TaskStatusCode, MAX_ACTION_BYTES, MAX_CHANNEL_BYTES,
    MAX_ID_BYTES,
};

use crate::common::*;
use crate::support::Store;

pub async fn megabyte_bodies_and_statuses_round_trip(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let body: String = (0..4 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    q.insert_tasks(&[TaskData {
        body: Some(body.clone()),
        ..task("big", "work")
    }])
    .await?;
    let owned = own_one(&q, "a", &["work"], None).await?;
    assert_eq!(owned.body.as_deref().map(str::len), Some(body.len()));
    assert!(owned.body.as_deref() == Some(body.as_str()));
    let status = "é".repeat(1 << 20);
    q.return_task(&owned.id, owned.token, &status, TaskStatusCode::Completed)
        .await?;
    let stored = row(&q, "big").await?;
    assert!(stored.status.as_deref() == Some(status.as_str()));
    Ok(())
}

/// Text that does not compress: PostgreSQL's index limit applies to it in full.
fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 94) as u8)
        })
        .collect()
}

pub async fn ids_up_to_the_maximum_of_any_character_are_kept_exactly(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let odd = [
        // The longest id a namespaced store can still hold, incompressible.
        incompressible(MAX_ID_BYTES - "test.".len()),
        "tab\there, newline\nthere, cr\r".to_owned(),
        "back\\slash and \\N and \\\\. and ''quotes\"".to_owned(),
        "日本語 🦀 ünïcödé".to_owned(),
        " leading and trailing ".to_owned(),
        "comma,semicolon;{braces}[brackets]".to_owned(),
    ];
    let tasks: Vec<TaskData> = odd
        .iter()
        .enumerate()
        .map(|(i, id)| TaskData {
            body: Some(id.clone()),
            // Each signals the next, so odd ids travel through to_signal_after too.
            to_signal_after: odd
                .get(i + 1)
                .map(|n| TaskId::from(n.as_str()))
                .into_iter()
                .collect(),
            total_dependencies: Some(i32::from(i > 0)),
            ..task(id, "work")
        })
        .collect();
    q.insert_tasks(&tasks).await?;
    for id in &odd {
        let owned = own_one(&q, "a", &["work"], None).await?;
        assert!(
            owned.id.as_str() == id,
            "owned {:?}, expected {id:?}",
            owned.id
        );
        assert!(owned.body.as_deref() == Some(id.as_str()));
        finish(&q, &owned, TaskStatusCode::Completed).await?;
    }
    for (i, id) in odd.iter().enumerate() {
        let stored = row(&q, id).await?;
        assert_eq!(stored.status_code, TaskStatusCode::Completed);
        let expected: Vec<TaskId> = odd
            .get(i + 1)
            .map(|n| TaskId::from(n.as_str()))
            .into_iter()
            .collect();
        assert_eq!(stored.to_signal_after, expected);
    }
    Ok(())
}

pub async fn a_task_that_signals_itself_is_defined(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[
        // Ungated: runs once; the signal to itself on completion changes nothing.
        TaskData {
            to_signal_after: ids(&["self"]),
            ..task("self", "work")
        },
        // Gated on itself: can never run, and is never offered.
        TaskData {
            to_signal_after: ids(&["stuck"]),
            total_dependencies: Some(1),
            ..task("stuck", "work")
        },
        // A cycle of two gated tasks: neither ever runs.
        TaskData {
            to_signal_after: ids(&["ring-b"]),
            total_dependencies: Some(1),
            ..task("ring-a", "work")
        },
        TaskData {
            to_signal_after: ids(&["ring-a"]),
            total_dependencies: Some(1),
            ..task("ring-b", "work")
        },
    ])
    .await?;
    let owned = own(&q, "a", 10, &["work"], None).await?;
    assert_eq!(owned_ids(&owned), ["self"]);
    finish(&q, &owned[0], TaskStatusCode::Completed).await?;
    assert_eq!(
        row(&q, "self").await?.status_code,
        TaskStatusCode::Completed
    );
    assert!(own(&q, "a", 10, &["work"], None).await?.is_empty());
    // Deleting the cycle removes both.
    q.delete_tasks(&ids(&["ring-a"])).await?;
    assert!(q.get_task(&TaskId::from("ring-b")).await?.is_none());
    Ok(())
}

pub async fn tasks_of_an_action_nobody_performs_wait(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    q.insert_tasks(&[task("orphan", "no-such-action"), task("w", "work")])
        .await?;
    let owned = own(&q, "a", 10, &["work", "other"], None).await?;
    assert_eq!(owned_ids(&owned), ["w"]);
    let orphan = row(&q, "orphan").await?;
    assert_eq!(
        (orphan.status_code, orphan.num_tries),
        (TaskStatusCode::Pending, 0)
    );
    Ok(())
}

pub async fn overlong_names_and_unusable_channels_are_refused_naming_the_task(
    store: Store,
) -> anyhow::Result<()> {
    let q = queue(store).await?;
    let long_id = incompressible(MAX_ID_BYTES + 1);
    let cases = [
        (task(&long_id, "work"), "id is"),
        (task("act", &"a".repeat(MAX_ACTION_BYTES + 1)), "action is"),
        (
            TaskData {
                to_signal_after: vec![TaskId::from(long_id.as_str())],
                ..task("succ", "work")
            },
            "to_signal_after entry is",
        ),
        (
            TaskData {
                notify_channel_after: Some(String::new()),
                ..task("empty", "work")
            },
            "notify_channel_after is empty",
        ),
        (
            TaskData {
                notify_channel_after: Some("c".repeat(MAX_CHANNEL_BYTES + 1)),
                ..task("chan", "work")
            },
            "notify_channel_after is 64 bytes",
        ),
    ];
    for (bad, problem_starts) in cases {
        let result = q.insert_tasks(&[task("fine", "work"), bad.clone()]).await;
        match result {
            Err(Error::InvalidTask { task_id, problem }) => {
                assert!(problem.starts_with(problem_starts), "{problem}");
                let named = task_id.as_str().trim_end_matches('…');
                assert!(
                    bad.id.as_str().starts_with(named) && !named.is_empty(),
                    "the error names the task: {task_id}"
                );
                assert!(
                    task_id.as_str().len() < 300,
                    "an overlong id is not printed whole"
                );
            }
            other => panic!("expected InvalidTask for {problem_starts}, got {other:?}"),
        }
    }
    assert!(
        q.list_tasks(&Default::default()).await?.is_empty(),
        "a refused batch stores nothing"
    );
    let longest = TaskData {
        notify_channel_after: Some("c".repeat(MAX_CHANNEL_BYTES)),
        ..task("longest", &"a".repeat(MAX_ACTION_BYTES - "test.".len()))
    };
    q.insert_tasks(&[longest]).await?;
    Ok(())
}

pub async fn nul_characters_are_refused_on_insert(store: Store) -> anyhow::Result<()> {
    let q = queue(store).await?;
    for bad in [
        task("nul\0id", "work"),
        task("a", "wo\0rk"),
        TaskData {
            body: Some("x\0y".into()),
            ..task("b", "work")
        },
    ] {
        let e = q
            .insert_tasks(&[task("fine", "work"), bad])
            .await
            .expect_err("NUL must be refused");
        assert!(e.to_string().contains("NUL"), "{e}");
    }
    // All or nothing: the good task of each batch was not stored either.
    assert!(q.get_task(&TaskId::from("fine")).await?.is_none());
    Ok(())
}
