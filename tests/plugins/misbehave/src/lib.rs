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
            "bad-utf8-log",
            "bad-utf8-status",
        ]
        .map(String::from)
        .to_vec()
    }

    fn handle(action: &str, _body: Option<&str>, _signalled_failures: u32) -> Outcome {
        match action {
            "trap" => panic!("misbehaving on purpose"),
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
