//! Encodes task rows for `COPY tasks (...) FROM STDIN` in PostgreSQL's text format.
//!
//! Text format: one line per row, columns separated by tabs, `\N` for NULL, and backslash
//! escapes for backslash, tab, newline and carriage return. Arrays are written as array
//! literals (`{"a","b"}`, elements double-quoted with `"` and `\` backslash-escaped) and then
//! escaped like any other text.

use crate::queue::TaskData;

/// The COPY statement, its columns in the order [`encode_row`] writes them.
pub(super) const COPY_TASKS: &str = "COPY tasks (id, action, body, status, status_code, \
     num_tries, num_failures, max_tries, num_signals, total_dependencies, actor_id, \
     action_deadline, performance_token, to_signal_after, notify_channel_after, priority, \
     run_after) FROM STDIN";

/// Appends one task as a line of COPY text.
pub(super) fn encode_row(out: &mut String, task: &TaskData) {
    let fields: [Option<String>; 17] = [
        Some(task.id.0.clone()),
        Some(task.action.clone()),
        task.body.clone(),
        task.status.clone(),
        Some(task.status_code.as_str().to_owned()),
        Some(task.num_tries.to_string()),
        Some(task.num_failures.to_string()),
        task.max_tries.map(|n| n.to_string()),
        Some(task.num_signals.to_string()),
        task.total_dependencies.map(|n| n.to_string()),
        task.actor_id.as_ref().map(|a| a.0.clone()),
        task.action_deadline.map(|d| d.to_rfc3339()),
        task.performance_token.map(|t| t.to_string()),
        (!task.to_signal_after.is_empty())
            .then(|| array_literal(task.to_signal_after.iter().map(|id| id.as_str()))),
        task.notify_channel_after.clone(),
        Some(task.priority.to_string()),
        task.run_after.map(|d| d.to_rfc3339()),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match field {
            None => out.push_str("\\N"),
            Some(text) => escape_text(out, text),
        }
    }
    out.push('\n');
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub(super) fn array_literal<'a>(elements: impl Iterator<Item = &'a str>) -> String {
    let mut literal = String::from("{");
    for (i, element) in elements.enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in element.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{TaskData, TaskId};

    #[test]
    fn nulls_and_escapes_follow_copy_text_format() {
        let mut task = TaskData::new("a\tb", "act");
        task.body = Some("line1\nline2\\".into());
        task.to_signal_after = vec![TaskId::from("x\"y"), TaskId::from("z\\")];
        let mut out = String::new();
        encode_row(&mut out, &task);
        assert_eq!(
            out,
            "a\\tb\tact\tline1\\nline2\\\\\t\\N\tpending\t0\t0\t\\N\t0\t\\N\t\\N\t\\N\t\\N\t\
             {\"x\\\\\"y\",\"z\\\\\\\\\"}\t\\N\t0\t\\N\n"
        );
    }

    #[test]
    fn every_column_is_written() {
        let mut out = String::new();
        encode_row(&mut out, &TaskData::new("id", "action"));
        let columns = COPY_TASKS
            .split('(')
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        assert_eq!(out.split('\t').count(), columns.split(',').count());
    }
}
