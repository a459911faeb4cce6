//! Benchmark actor: `burn` spends CPU on each task — its body is a number of rounds of a
//! xorshift generator (about 1 ms per 1,000,000 rounds here) — and completes with the result.

use parade_guest::{export_actor, Actor, Outcome};

struct Burn;

impl Actor for Burn {
    fn actions() -> Vec<String> {
        vec!["burn".into()]
    }

    fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let rounds: u64 = match body.unwrap_or("0").trim().parse() {
            Ok(rounds) => rounds,
            Err(e) => return Outcome::Aborted(format!("body must be a number of rounds: {e}")),
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..rounds {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        Outcome::Completed(std::hint::black_box(x).to_string())
    }
}

export_actor!(Burn);
