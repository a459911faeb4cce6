//! Example actor: `word-count` reads `{"text": "..."}` and completes with
//! `{"words": N, "distinct": N, "top": [["word", count], ...]}` (the five most frequent).

use std::collections::HashMap;

use parade_guest::{export_actor, json, Actor, Outcome};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    text: String,
}

#[derive(Serialize)]
struct Counts {
    words: usize,
    distinct: usize,
    top: Vec<(String, usize)>,
}

struct WordCount;

impl Actor for WordCount {
    fn actions() -> Vec<String> {
        vec!["word-count".into()]
    }

    fn handle(_action: &str, body: Option<&str>, _signalled_failures: u32) -> Outcome {
        let input: Input = match json::parse(body) {
            Ok(input) => input,
            // Bad input never gets better: do not retry.
            Err(e) => return Outcome::Aborted(e),
        };
        let mut counts: HashMap<String, usize> = HashMap::new();
        let words = input
            .text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase);
        let mut total = 0;
        for word in words {
            total += 1;
            *counts.entry(word).or_default() += 1;
        }
        let mut top: Vec<(String, usize)> = counts.iter().map(|(w, n)| (w.clone(), *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(5);
        Outcome::Completed(json::render(&Counts {
            words: total,
            distinct: counts.len(),
            top,
        }))
    }
}

export_actor!(WordCount);
