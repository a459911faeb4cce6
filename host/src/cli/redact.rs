//! Database URLs without their passwords, for everything the command line prints or logs:
//! `run --check`'s summary, the node's log and dashboard (which are handed the redacted
//! form), and errors that quote the URL (a refused URL, a store that cannot be opened).
//!
//! A password hides in the user info (`postgres://USER:PASSWORD@HOST/DB`, where it may hold
//! `@`, `:`, `/` or `?` written as they are) or in a `password=` / `sslpassword=` parameter
//! of the query (or of a `key=value` connection string). SQLite URLs name a file and hold no
//! password: they are shown as they are, even when the path has `:` and `@` in it.

use std::ops::Range;

/// Parameters whose value is a secret.
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

/// Secrets shorter than this are not searched for in messages on their own (they would
/// match ordinary words); the whole URL always is.
const MIN_SCRUBBED_SECRET: usize = 4;

/// `url` with each password replaced by `***`.
pub(super) fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut shown = 0;
    for secret in secrets(url) {
        out.push_str(&url[shown..secret.start]);
        out.push_str("***");
        shown = secret.end;
    }
    out.push_str(&url[shown..]);
    out
}

/// `error` as it will be printed, with `url` and its passwords hidden wherever it quotes
/// them; the error itself when it quotes neither.
pub(super) fn hide_in_error(error: anyhow::Error, url: &str) -> anyhow::Error {
    let shown = format!("{error:#}");
    let hidden = scrub(&shown, url);
    if hidden == shown {
        error
    } else {
        anyhow::anyhow!(hidden)
    }
}

/// `message` with `url` replaced by its redacted form and each of its passwords (as written,
/// percent-decoded, or escaped as `{:?}` shows it) by `***`.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact(url));
    for secret in secrets(url) {
        let written = &url[secret];
        let decoded = percent_decoded(written);
        let escaped = format!("{written:?}");
        for form in [written, decoded.as_str(), &escaped[1..escaped.len() - 1]] {
            if form.len() >= MIN_SCRUBBED_SECRET {
                out = out.replace(form, "***");
            }
        }
    }
    out
}

/// The byte ranges of `url` that are passwords, in order.
fn secrets(url: &str) -> Vec<Range<usize>> {
    if url.starts_with("sqlite:") {
        return Vec::new();
    }
    let mut found = Vec::new();
    let (start, separators): (usize, &[char]) = match url.find("://") {
        Some(scheme) => (scheme + 3, &['?', '&', '#']),
        // Not a URL: perhaps a `host=... password=...` connection string.
        None => (0, &[' ', '\t', '\n']),
    };
    let mut user_info = None;
    if start > 0 {
        let rest = &url[start..];
        if let Some(at) = user_info_end(rest) {
            if let Some(colon) = rest[..at].find(':') {
                user_info = Some(start + colon + 1..start + at);
            }
        }
    }
    // Parameters are looked for everywhere but inside the user info's password, so one is
    // found even after an `@` in an earlier parameter.
    let mut at = start;
    for piece in url[start..].split(separators) {
        let inside_password = user_info
            .as_ref()
            .is_some_and(|p| at < p.end && p.start < at + piece.len());
        if let Some((key, _)) = piece.split_once('=') {
            if !inside_password && SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                found.push(at + key.len() + 1..at + piece.len());
            }
        }
        // Every separator is one byte.
        at += piece.len() + 1;
    }
    found.extend(user_info);
    found.sort_by_key(|r| r.start);
    found
}

/// Where the user info of `rest` (a URL after its `scheme://`) ends: at the last `@` before
/// the first `/`, `?` or `#` that follows its first `@`, so that a password may hold any of
/// these; `None` without an `@`.
fn user_info_end(rest: &str) -> Option<usize> {
    let first = rest.find('@')?;
    let host_end = rest[first..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| first + i);
    rest[..host_end].rfind('@')
}

/// `text` with `%XX` escapes decoded (invalid ones kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_user_info_is_hidden() {
        assert_eq!(
            redact("postgres://parade:hunter2@db.example:5432/parade"),
            "postgres://parade:***@db.example:5432/parade"
        );
    }

    #[test]
    fn a_password_holding_at_signs_and_colons_is_hidden_whole() {
        assert_eq!(
            redact("postgres://parade:p@ss:w@rd@db.example/parade?sslmode=require"),
            "postgres://parade:***@db.example/parade?sslmode=require"
        );
        assert_eq!(
            redact("postgres://parade:pa/ss?w@db.example/parade"),
            "postgres://parade:***@db.example/parade"
        );
    }

    #[test]
    fn password_parameters_are_hidden() {
        assert_eq!(
            redact("postgres://parade@db.example/parade?password=hunter2"),
            "postgres://parade@db.example/parade?password=***"
        );
        assert_eq!(
            redact("postgresql:///parade?host=/run/pg&password=hunter2&sslpassword=key2&user=u"),
            "postgresql:///parade?host=/run/pg&password=***&sslpassword=***&user=u"
        );
        assert_eq!(
            redact("postgres://db/p?PassWord=hunter2#frag"),
            "postgres://db/p?PassWord=***#frag"
        );
        assert_eq!(
            redact("postgres://db/p?application_name=a@b&password=hunter2"),
            "postgres://db/p?application_name=a@b&password=***"
        );
    }

    #[test]
    fn percent_encoded_passwords_are_hidden() {
        assert_eq!(
            redact("postgres://parade:hun%40ter%3A2@db.example/parade"),
            "postgres://parade:***@db.example/parade"
        );
        assert_eq!(
            redact("postgres://db.example/parade?password=hun%26ter2&user=u"),
            "postgres://db.example/parade?password=***&user=u"
        );
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for url in [
            "postgres://parade@db.example/parade",
            "postgres://db.example/parade?user=parade&application_name=a@b",
            "postgres://db.example/parade@odd",
            "postgres://db.example/parade?passwords=none",
            "mysql://somewhere/db",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn sqlite_urls_are_unchanged() {
        for url in [
            "sqlite://parade.db",
            "sqlite://./a:b@c.db",
            "sqlite:///var/lib/x:y@z.db?mode=rwc",
            "sqlite::memory:",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn other_schemes_and_connection_strings_hide_passwords_too() {
        assert_eq!(
            redact("mysql://u:hunter2@somewhere/db"),
            "mysql://u:***@somewhere/db"
        );
        assert_eq!(
            redact("host=db user=u password=hunter2 dbname=p"),
            "host=db user=u password=*** dbname=p"
        );
    }

    #[test]
    fn errors_quoting_the_url_or_its_password_are_scrubbed() {
        let url = "mysql://u:hun%40ter2@somewhere/db";
        assert_eq!(
            scrub(
                &format!("bad database URL {url:?}: no; hun@ter2 hun%40ter2"),
                url
            ),
            "bad database URL \"mysql://u:***@somewhere/db\": no; *** ***"
        );
        // A short password is hidden in the URL, not searched for in every word.
        assert_eq!(
            scrub(
                "cannot open postgres://u:a@h/db: bad auth",
                "postgres://u:a@h/db"
            ),
            "cannot open postgres://u:***@h/db: bad auth"
        );
    }
}
