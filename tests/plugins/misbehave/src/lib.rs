//! Test-only actor: each action misbehaves in one way the node's sandbox must contain.

use parade_guest::{enqueue, export_actor, extend_deadline, log, Actor, NewTask, Outcome};

struct Misbehave;

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // black_box keeps the recursion from being optimised into a loop.
    std::hint::black_box(depth) + recurse(depth + 1)
}

impl Actor for Misbehave {
    fn actions() -> Vec<String> {
        [
            "trap",
            "loop",
            "hog",
            "recurse",
            "read-file",
            "read-env",
            "connect",
            "huge-status",
            "print",
            "grants",
            "snoop",
            "flood",
            "signal-forge",
            "enqueue-quota",
            "bad-utf8-log",
            "bad-utf8-status",
            "sleep",
            "shout",
            "chatter",
            "nul-status",
            "extend-deadline",
        ]
        .map(String::from)
        .to_vec()
    }

    fn handle(action: &str, _body: Option<&str>, _signalled_failures: u32) -> Outcome {
        match action {
            "trap" => panic!("misbehaving on purpose"),
            // Waits in a host call (a monotonic-clock subscription and a poll), where no
            // epoch interruption reaches it.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Outcome::Completed("slept an hour".into())
            }
            // 1 MiB to stdout, in lines of 1 KiB: far past what the node keeps.
            "shout" => {
                let line = "x".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                }
                Outcome::Completed("shouted".into())
            }
            // 5,000 lines through the log import, then 3,000 to stdout (54 KB, within what
            // the node keeps of stdout).
            "chatter" => {
                for i in 0..5_000 {
                    log::info(&format!("chatter line {i}"));
                }
                for i in 0..3_000 {
                    println!("chatter line {i}");
                }
                Outcome::Completed("chattered".into())
            }
            "nul-status" => Outcome::Completed("before\0after".into()),
            // Extends its deadline by the body's seconds; says what the host answered.
            "extend-deadline" => {
                let seconds = _body.and_then(|b| b.parse().ok()).unwrap_or(0);
                match extend_deadline(seconds) {
                    Ok(()) => Outcome::Completed("extended".into()),
                    Err(e) => Outcome::Aborted(format!("refused: {e}")),
                }
            }
            // Invalid UTF-8 where the world says `string`: in an import's argument, and in
            // the result. Only a guest that lies to its bindings can make it.
            "bad-utf8-log" => {
                let bytes = std::hint::black_box([b'o', b'k', 0xff, 0xfe]);
                // SAFETY: deliberately not UTF-8; the host must refuse to lift it.
                log::info(unsafe { std::str::from_utf8_unchecked(&bytes) });
                Outcome::Completed("the host took invalid UTF-8 in a log line".into())
            }
            // SAFETY: as above, in the status the host lifts from the result.
            "bad-utf8-status" => {
                Outcome::Completed(unsafe { String::from_utf8_unchecked(vec![b'o', 0xc3]) })
            }
            "flood" => {
                // The host's imports with hostile arguments: each must answer (an error is
                // fine), never trap the instance or harm the node.
                let huge = "x".repeat(1 << 20);
                log::info(&huge);
                log::error("line one\nline two\0with a NUL");
                let too_many: Vec<NewTask> = (0..10_001).map(|_| NewTask::new("echo")).collect();
                let many = enqueue(&too_many)
                    .err()
                    .unwrap_or_else(|| "accepted".into());
                let long_id = enqueue(&[NewTask {
                    id: Some("i".repeat(1 << 20)),
                    ..NewTask::new("echo")
                }]);
                let nul = enqueue(&[NewTask {
                    body: Some("a\0b".into()),
                    ..NewTask::new("echo")
                }])
                .err()
                .unwrap_or_else(|| "accepted".into());
                let unknown = enqueue(&[NewTask {
                    signal_after: vec!["no-such-task".into()],
                    ..NewTask::new("echo")
                }])
                .err()
                .unwrap_or_else(|| "accepted".into());
                let forever = extend_deadline(u32::MAX)
                    .err()
                    .unwrap_or_else(|| "extended".into());
                let long_id = match long_id {
                    Ok(ids) => format!("long id accepted ({} bytes)", ids[0].len()),
                    Err(e) => e,
                };
                Outcome::Completed(format!(
                    "many: {many} | long id: {long_id} | nul: {nul} | unknown: {unknown} | deadline: {forever}"
                ))
            }
            "signal-forge" => {
                // Successors it may name (tasks of the same call, tasks it enqueued earlier
                // in this run, by explicit or generated id), then the body's id, which it
                // did not create.
                let me = parade_guest::task_id();
                let said = |result: Result<Vec<String>, String>| match result {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => e,
                };
                let batch = said(enqueue(&[
                    NewTask {
                        id: Some(format!("{me}.a")),
                        signal_after: vec![format!("{me}.b")],
                        ..NewTask::new("echo")
                    },
                    NewTask {
                        id: Some(format!("{me}.b")),
                        total_dependencies: Some(1),
                        ..NewTask::new("echo")
                    },
                ]));
                let earlier = said(enqueue(&[NewTask {
                    id: Some(format!("{me}.c")),
                    signal_after: vec![format!("{me}.a")],
                    ..NewTask::new("echo")
                }]));
                let generated = match enqueue(&[NewTask::new("echo")]) {
                    Ok(ids) => said(enqueue(&[NewTask {
                        id: Some(format!("{me}.d")),
                        signal_after: ids,
                        ..NewTask::new("echo")
                    }])),
                    Err(e) => e,
                };
                let forged = said(enqueue(&[NewTask {
                    id: Some(format!("{me}.e")),
                    signal_after: vec![_body.unwrap_or_default().to_owned()],
                    ..NewTask::new("echo")
                }]));
                Outcome::Completed(format!(
                    "batch: {batch} | earlier: {earlier} | generated: {generated} | forged: {forged}"
                ))
            }
            "enqueue-quota" => {
                // Full calls until the node says no (the per-task cap, not the per-call one),
                // or until the body's number of tasks went in.
                let give_up: usize = _body.and_then(|b| b.parse().ok()).unwrap_or(1_000_000);
                let mut accepted = 0usize;
                let batch: Vec<NewTask> = (0..10_000).map(|_| NewTask::new("echo")).collect();
                let refusal = loop {
                    match enqueue(&batch) {
                        Ok(ids) => accepted += ids.len(),
                        Err(e) => break e,
                    }
                    if accepted >= give_up {
                        break "no limit".to_owned();
                    }
                };
                let one_more = enqueue(&[NewTask::new("echo")])
                    .err()
                    .unwrap_or_else(|| "accepted".into());
                Outcome::Completed(format!(
                    "accepted {accepted} | refused: {refusal} | one more: {one_more}"
                ))
            }
            "snoop" => {
                // A fresh instance's memory is all zeros beyond its data, so a large
                // allocation (fresh memory, not cleared by malloc) must read as zeros; any
                // other byte was left by an earlier task in the same pooled slot. Then it
                // leaves its own mark for the next task to find.
                const SIZE: usize = 900 * 1024;
                // The start may hold this task's own freed allocations (the host's copies
                // of the action and body); only the rest is checked.
                const CHECKED: std::ops::Range<usize> = 64 * 1024..SIZE;
                let mut buffer: Vec<u8> = Vec::with_capacity(SIZE);
                let start = buffer.as_mut_ptr();
                // Volatile, so the reads of memory never written by this task happen.
                let dirty = CHECKED
                    .filter(|&i| unsafe { std::ptr::read_volatile(start.add(i)) } != 0)
                    .count();
                for i in 0..SIZE {
                    unsafe { std::ptr::write_volatile(start.add(i), 0xAB) };
                }
                if dirty == 0 {
                    Outcome::Completed("clean".into())
                } else {
                    Outcome::Aborted(format!("saw {dirty} bytes left by an earlier task"))
                }
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Outcome::Completed(recurse(0).to_string()),
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(_) => Outcome::Completed("read /etc/passwd".into()),
                Err(e) => Outcome::Aborted(format!("denied: {e}")),
            },
            "read-env" => match std::env::vars().next() {
                Some((k, _)) => Outcome::Completed(format!("saw environment variable {k}")),
                None => Outcome::Aborted("denied: no environment".into()),
            },
            "connect" => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => Outcome::Completed("connected".into()),
                Err(e) => Outcome::Aborted(format!("denied: {e}")),
            },
            "huge-status" => Outcome::Completed("x".repeat(10 << 20)),
            "print" => {
                println!("hello from the guest");
                eprintln!("and its stderr");
                Outcome::Completed("printed".into())
            }
            "grants" => {
                let env = std::env::var("PARADE_TEST_GRANT").unwrap_or_default();
                let read = std::fs::read_to_string("/granted/hello.txt")
                    .unwrap_or_else(|e| format!("read denied: {e}"));
                let write = match std::fs::write("/granted/new.txt", "written") {
                    Ok(()) => "written".to_owned(),
                    Err(_) => "write denied".to_owned(),
                };
                Outcome::Completed(format!("env={env} read={read} write={write}"))
            }
            other => Outcome::Aborted(format!("unknown action {other}")),
        }
    }
}

export_actor!(Misbehave);
