//! The statement for pending work of own_tasks (`own_tasks_with_backoff`), as installed: read from the function's source
//! (PL/pgSQL does not let EXPLAIN see inside a function) with its variables bound, and
//! explained. Shared by the queue benchmark (which reports the plan) and the tests (which
//! hold owning to its index), so both follow the migrations.

use std::time::Duration;

use anyhow::Context;

/// `EXPLAIN (ANALYZE, BUFFERS)` of own_tasks' last `RETURN QUERY` (pending work) for
/// `action`, `batch` tasks and a lease of `lease`, in a transaction rolled back afterwards:
/// the plan's lines.
pub async fn explain_own_pending(
    pool: &sqlx::PgPool,
    action: &str,
    batch: u32,
    lease: Duration,
) -> anyhow::Result<Vec<String>> {
    let source: String =
        sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = 'own_tasks_with_backoff'")
            .fetch_one(pool)
            .await?;
    let start = source
        .rfind("RETURN QUERY")
        .context("own_tasks has no RETURN QUERY")?
        + "RETURN QUERY".len();
    let end = start
        + source[start..]
            .find(';')
            .context("RETURN QUERY without ';'")?;
    let mut statement = source[start..end].to_owned();
    for (variable, value) in [
        ("wanted", format!("ARRAY['{action}']::varchar[]")),
        ("max_tasks", batch.to_string()),
        ("owned", "0".to_owned()),
        ("owner_id", "'plan'".to_owned()),
        (
            "max_duration",
            format!("interval '{} seconds'", lease.as_secs()),
        ),
    ] {
        statement = replace_variable(&statement, variable, &value);
    }
    let mut tx = pool.begin().await?;
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {statement}"))
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(plan)
}

/// Replaces the PL/pgSQL variable `word` (a whole identifier, not a column `x.word`).
fn replace_variable(text: &str, word: &str, value: &str) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().last().or_else(|| out.chars().last());
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| is_ident(c) || c == '.') || after.is_some_and(is_ident) {
            out.push_str(word);
        } else {
            out.push_str(value);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}
