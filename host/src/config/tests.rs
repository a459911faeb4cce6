use std::path::Path;
use std::time::Duration;

use super::*;
use crate::runtime::FailurePolicy;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(Path::new("conf/parade.toml"), text)
}

fn error(text: &str) -> ConfigError {
    parse(text).expect_err("the configuration should be refused")
}

#[test]
fn an_empty_file_means_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config.database, DatabaseConfig::default());
    assert_eq!(config.actor, ActorConfig::default());
    assert_eq!(config.manager, ManagerProperties::default());
    assert_eq!(config.plugins_dir, Path::new("conf/plugins"));
    assert_eq!(config.cache_dir, Path::new("conf/.parade-cache"));
    assert!(config.plugins.is_empty());
}

#[test]
fn every_section_is_read() {
    let config = parse(
        r#"
[database]
url = "postgres://parade@localhost/parade"
pool_size = 4

[actor]
id = "node-a"
prefix = "tenant1"

[manager]
workers = 8
wait_time = "250ms"
max_duration = "90s"
shutdown_grace = "5s"

[plugins]
dir = "actors"
cache_dir = "/var/cache/parade"

[[plugin]]
name = "resize"
file = "bin/resize.wasm"
actions = ["resize", "thumbnail"]
memory = "128MiB"
timeout = "2m"
fuel = 1000000
on_failure = "abort"
env = { QUALITY = "85" }
dirs = [{ host = "images", guest = "/images" }, { host = "out", guest = "/out", writable = true }]
"#,
    )
    .unwrap();
    assert_eq!(
        config.database.url.as_deref(),
        Some("postgres://parade@localhost/parade")
    );
    assert_eq!(config.database.pool_size, Some(4));
    assert_eq!(config.actor.id.as_deref(), Some("node-a"));
    assert_eq!(config.actor.prefix.as_deref(), Some("tenant1"));
    assert_eq!(config.manager.workers, 8);
    assert_eq!(config.manager.wait_time, Duration::from_millis(250));
    assert_eq!(config.manager.max_duration, Duration::from_secs(90));
    // Unset keys keep their defaults; the heartbeat follows max_duration.
    assert_eq!(config.manager.heartbeat, Duration::from_secs(30));
    assert_eq!(config.manager.channel_size, 1000);
    assert_eq!(config.plugins_dir, Path::new("conf/actors"));
    assert_eq!(config.cache_dir, Path::new("/var/cache/parade"));

    let [plugin] = config.plugins.as_slice() else {
        panic!("one plugin expected: {:?}", config.plugins)
    };
    assert_eq!(plugin.name, "resize");
    assert_eq!(plugin.file, Path::new("conf/bin/resize.wasm"));
    assert_eq!(
        plugin.actions.as_deref(),
        Some(&["resize".to_owned(), "thumbnail".to_owned()][..])
    );
    assert_eq!(plugin.limits.memory, 128 << 20);
    assert_eq!(plugin.limits.timeout, Duration::from_secs(120));
    assert_eq!(plugin.limits.fuel, Some(1_000_000));
    assert_eq!(plugin.limits.on_failure, FailurePolicy::Abort);
    assert_eq!(plugin.grants.env, [("QUALITY".to_owned(), "85".to_owned())]);
    assert_eq!(plugin.grants.dirs.len(), 2);
    assert_eq!(plugin.grants.dirs[0].host, Path::new("conf/images"));
    assert!(!plugin.grants.dirs[0].writable);
    assert!(plugin.grants.dirs[1].writable);
    assert_eq!(plugin.origin.line, 21);
    assert_eq!(plugin.origin.key, "plugin[0].name");
    assert_eq!(plugin.file_origin.line, 22);
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let e = error("[manager]\nworkers = 2\nwrkers = 3\n");
    assert_eq!(e.file, Path::new("conf/parade.toml"));
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("manager.wrkers"));
    assert!(e.problem.contains("unknown field `wrkers`"), "{e}");
    assert!(
        e.to_string()
            .starts_with("conf/parade.toml:3: key `manager.wrkers`: unknown field"),
        "{e}"
    );

    let e = error("[[plugin]]\nfile = \"a.wasm\"\nmemroy = \"1MiB\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("plugin[0].memroy"))
    );

    let e = error("[databse]\nurl = \"sqlite://x.db\"\n");
    assert_eq!(e.line, Some(1));
    assert!(e.problem.contains("unknown field `databse`"), "{e}");
}

#[test]
fn a_bad_duration_says_how_to_write_one() {
    let e = error("[manager]\n\nwait_time = \"3 parsecs\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("manager.wait_time"))
    );
    assert!(e.problem.contains("invalid duration \"3 parsecs\""), "{e}");
    assert!(e.problem.contains("\"250ms\""), "{e}");

    let e = error("[manager]\nmax_duration = 30\n");
    assert_eq!(e.key.as_deref(), Some("manager.max_duration"));
}

#[test]
fn bad_values_are_refused_where_they_are() {
    let e = error("[manager]\nworkers = 0\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("manager.workers"))
    );

    let e = error("[[plugin]]\nfile = \"a.wasm\"\nmemory = \"64 parsecs\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("plugin[0].memory"))
    );
    assert!(e.problem.contains("unknown unit"), "{e}");

    let e = error("[[plugin]]\nfile = \"a.wasm\"\nmemory = \"4GiB\"\n");
    assert!(e.problem.contains("between 1 byte and 1024 MiB"), "{e}");

    let e = error("[[plugin]]\nfile = \"a.wasm\"\non_failure = \"explode\"\n");
    assert_eq!(e.key.as_deref(), Some("plugin[0].on_failure"));
    assert!(e.problem.contains("`retry`"), "{e}");

    let e = error("[[plugin]]\nfile = \"a.wasm\"\nactions = []\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("plugin[0].actions"))
    );

    let e = error("[manager\nworkers = 1\n");
    assert_eq!(e.line, Some(1));
}

#[test]
fn sizes_are_read_in_binary_units() {
    assert_eq!(parse_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("99999999999999999999GiB").is_err());
}

#[test]
fn plugin_entries_need_a_file_and_a_unique_name() {
    let e = error("[[plugin]]\nname = \"a\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("plugin[0]")));
    assert!(e.problem.contains("needs `file`"), "{e}");

    let e =
        error("[[plugin]]\nfile = \"x/a.wasm\"\n\n[[plugin]]\nname = \"a\"\nfile = \"y/b.wasm\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("plugin[1].name"))
    );
    assert!(e.problem.contains("declared twice"), "{e}");
    assert!(e.problem.contains("conf/parade.toml:2"), "{e}");
}

#[test]
fn a_reload_reports_an_admin_change_and_keeps_the_running_admin_settings() {
    let running = parse(
        r#"
[admin]
listen = "127.0.0.1:9187"
token = "started-with"
"#,
    )
    .unwrap();
    let mut reread = parse(
        r#"
[admin]
listen = "off"
token = "edited"

[plugins]
dir = "elsewhere"
"#,
    )
    .unwrap();

    assert_eq!(reread.restart_only_changes(&running), ["admin"]);
    assert_eq!(reread.keep_restart_only_from(&running), ["admin"]);
    assert_eq!(reread.admin, running.admin);
    // The plugins folder is live: the edit stays.
    assert_eq!(reread.plugins_dir, Path::new("conf/elsewhere"));
    assert!(reread.restart_only_changes(&running).is_empty());
}

#[test]
fn admin_hosts_are_read_in_lower_case_and_bad_ones_name_their_key() {
    assert!(parse("").unwrap().admin.hosts.is_empty());
    let config = parse("[admin]\nhosts = [\"Dash.Example.com\", \"proxy:8443\"]\n").unwrap();
    assert_eq!(config.admin.hosts, ["dash.example.com", "proxy:8443"]);
    for bad in [
        "https://dash.example.com",
        "dash.example.com/",
        "a b",
        "",
        "x:port",
    ] {
        let e = error(&format!("[admin]\nhosts = [\"ok\", {bad:?}]\n"));
        assert_eq!(e.line, Some(2), "{bad:?}: {e}");
        assert!(
            e.key
                .as_deref()
                .is_some_and(|k| k.starts_with("admin.hosts")),
            "{e}"
        );
        assert!(e.problem.contains("invalid host"), "{e}");
    }
}

#[test]
fn every_restart_only_section_is_reported_and_kept() {
    let running = parse("").unwrap();
    let mut reread = parse(
        r#"
[database]
url = "postgres://parade@localhost/parade"

[actor]
id = "node-b"

[manager]
workers = 3

[plugins]
cache_dir = "other-cache"

[admin]
token = "t"
"#,
    )
    .unwrap();

    assert_eq!(
        reread.keep_restart_only_from(&running),
        ["database", "actor", "manager", "plugins.cache_dir", "admin"]
    );
    assert_eq!(reread, running);
}

/// A folder with a parade.toml naming `file`, and the plugins folder `plugins/`.
fn folder(toml: &str) -> (tempfile::TempDir, NodeConfig) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let file = dir.path().join("parade.toml");
    std::fs::write(&file, toml).unwrap();
    let config = NodeConfig::load(&file).unwrap();
    (dir, config)
}

#[test]
fn a_missing_component_is_named_with_the_line_of_its_file_key() {
    let (dir, config) = folder("[[plugin]]\nname = \"a\"\n\nfile = \"missing.wasm\"\n");
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(e.file, dir.path().join("parade.toml"));
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(4), Some("plugin[0].file"))
    );
    assert!(e.problem.contains("missing.wasm does not exist"), "{e}");
}

#[test]
fn the_plugins_folder_adds_components_with_their_manifests() {
    let (dir, config) = folder("[[plugin]]\nfile = \"plugins/declared.wasm\"\n");
    let plugins = dir.path().join("plugins");
    for name in [
        "declared.wasm",
        "bare.wasm",
        "limited.wasm",
        ".partial.wasm",
        "notes.txt",
    ] {
        std::fs::write(plugins.join(name), b"").unwrap();
    }
    std::fs::write(
        plugins.join("limited.toml"),
        "name = \"small\"\nactions = [\"a\"]\ntimeout = \"5s\"\nenv = { K = \"v\" }\n",
    )
    .unwrap();
    let specs = config.plugin_specs().unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    // The declared component is not added a second time; hidden and other files are skipped.
    assert_eq!(names, ["declared", "bare", "small"]);
    assert_eq!(specs[1].actions, None);
    assert_eq!(specs[1].limits, PluginLimits::default());
    assert_eq!(specs[2].file, plugins.join("limited.wasm"));
    assert_eq!(specs[2].actions.as_deref(), Some(&["a".to_owned()][..]));
    assert_eq!(specs[2].limits.timeout, Duration::from_secs(5));
    assert_eq!(specs[2].grants.env, [("K".to_owned(), "v".to_owned())]);
    assert_eq!(specs[2].actions_origin.as_ref().unwrap().line, 2);
}

#[test]
fn a_bad_manifest_is_named() {
    let (dir, config) = folder("");
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("a.wasm"), b"").unwrap();
    std::fs::write(
        plugins.join("a.toml"),
        "timeout = \"5s\"\ntimout = \"6s\"\n",
    )
    .unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(e.file, plugins.join("a.toml"));
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("timout")));

    std::fs::write(plugins.join("a.toml"), "file = \"other.wasm\"\n").unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("file")));
    assert!(e.problem.contains("remove `file`"), "{e}");
}

#[test]
fn a_name_claimed_by_an_entry_and_a_dropped_component_is_refused() {
    let (dir, config) = folder("[[plugin]]\nname = \"a\"\nfile = \"elsewhere.wasm\"\n");
    std::fs::write(dir.path().join("elsewhere.wasm"), b"").unwrap();
    std::fs::write(dir.path().join("plugins/a.wasm"), b"").unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(e.file, dir.path().join("plugins/a.wasm"));
    assert!(e.problem.contains("declared twice"), "{e}");
    assert!(e.problem.contains("parade.toml:2"), "{e}");
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text: a configuration, or an error whose line is within the text.
        #[test]
        fn any_text_parses_or_names_a_line(text in ".{0,400}") {
            if let Err(e) = parse(&text) {
                let lines = text.lines().count().max(1);
                prop_assert!(e.line.is_none_or(|l| l <= lines + 1), "{e} for {text:?}");
                prop_assert_eq!(e.file, Path::new("conf/parade.toml"));
            }
        }

        /// Real keys with values of every kind.
        #[test]
        fn real_keys_with_any_values_never_panic(
            entries in proptest::collection::vec(
                (
                    prop::sample::select(vec!["[manager]", "[database]", "[admin]", "[plugins]",
                        "[[plugin]]", "[actor]", "[[schedule]]"]),
                    prop::sample::select(vec!["workers", "wait_time", "url", "pool_size",
                        "listen", "token", "dir", "file", "memory", "timeout", "fuel",
                        "on_failure", "actions", "env", "dirs", "id", "prefix", "nope",
                        "name", "cron", "every", "timezone", "action", "body", "max_tries",
                        "priority", "retry", "concurrency", "node_concurrency"]),
                    prop::sample::select(vec!["1", "0", "-5", "\"30s\"", "\"64MiB\"",
                        "\"off\"", "[]", "[\"a\"]", "{ K = \"v\" }", "true", "1.5",
                        "\"x\"", "18446744073709551616", "\"127.0.0.1:0\"",
                        "\"0 3 * * *\"", "\"*/5 * * * * *\"", "\"0 0 30 2 *\"",
                        "\"L W # ? /\"", "\"Europe/Paris\"", "\"1s\"", "\"0s\"",
                        "\"immediate\"", "{ initial = \"2s\", max = \"1s\" }",
                        "{ multiplier = 0.5 }", "{ max = \"1h\", jitter = false }"]),
                ),
                0..8,
            ),
        ) {
            let text: String = entries
                .iter()
                .map(|(table, key, value)| format!("{table}\n{key} = {value}\n"))
                .collect();
            let _ = parse(&text);
        }
    }
}

#[test]
fn a_grant_overlapping_the_node_s_files_is_refused_at_its_line_and_key() {
    let (dir, config) = folder(
        "[[plugin]]\nfile = \"bin/a.wasm\"\ndirs = [\n  { host = \"out\", guest = \"/out\", writable = true },\n  { host = \".\", guest = \"/all\" },\n]\n",
    );
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("bin/a.wasm"), b"").unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(e.file, dir.path().join("parade.toml"));
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("plugin[0].dirs[1]"))
    );
    let root = dir.path().canonicalize().unwrap();
    assert!(
        e.problem.starts_with(&format!(
            "plugin \"a\": granted directory {} (read-only, at /all in the guest) contains the \
             plugins folder (`plugins.dir`) {}: ",
            dir.path().join(".").display(),
            root.join("plugins").display()
        )),
        "{e}"
    );
    // A grant inside the cache, and one of the SQLite file's folder, are refused too.
    for (grant, overlaps) in [
        (
            ".parade-cache/x",
            "lies inside the compiled-component cache",
        ),
        ("db", "contains the database file"),
    ] {
        std::fs::create_dir_all(dir.path().join(grant)).unwrap();
        let mut config = config.clone();
        config.database.url = Some(format!("sqlite://{}/db/q.db", root.display()));
        config.plugins[0].grants.dirs[1].host = dir.path().join(grant);
        let e = config.plugin_specs().unwrap_err();
        assert!(e.problem.contains(overlaps), "{grant}: {e}");
    }
    // Without the second grant, all is well.
    let mut config = config;
    config.plugins[0].grants.dirs.truncate(1);
    assert_eq!(config.plugin_specs().unwrap().len(), 1);
}

#[test]
fn schedule_entries_are_read_with_their_defaults() {
    let config = parse(
        r#"
[[schedule]]
name = "heartbeat"
every = "30s"
action = "ping"

[[schedule]]
name = "nightly-report.v2"
cron = "0 3 * * MON-FRI"
timezone = "Europe/Paris"
action = "report"
body = '{"kind": "daily"}'
max_tries = 3
priority = 5
"#,
    )
    .unwrap();
    let [heartbeat, report] = config.schedules.as_slice() else {
        panic!("two schedules expected: {:?}", config.schedules)
    };
    assert_eq!(heartbeat.name, "heartbeat");
    assert_eq!(
        heartbeat.timing,
        crate::schedule::Timing::Every { seconds: 30 }
    );
    assert_eq!(heartbeat.action, "ping");
    assert_eq!(
        (
            heartbeat.body.as_deref(),
            heartbeat.max_tries,
            heartbeat.priority
        ),
        (None, None, 0)
    );
    assert_eq!(
        (heartbeat.origin.line, heartbeat.origin.key.as_str()),
        (3, "schedule[0].name")
    );
    assert_eq!(
        report.timing.to_string(),
        "cron \"0 3 * * MON-FRI\" in Europe/Paris"
    );
    assert_eq!(report.timing.timezone(), chrono_tz::Tz::Europe__Paris);
    assert_eq!(report.body.as_deref(), Some(r#"{"kind": "daily"}"#));
    assert_eq!((report.max_tries, report.priority), (Some(3), 5));
    // Without `timezone`, cron is read in UTC.
    let config =
        parse("[[schedule]]\nname = \"a\"\ncron = \"0 3 * * *\"\naction = \"x\"\n").unwrap();
    assert_eq!(config.schedules[0].timing.timezone(), chrono_tz::Tz::UTC);
}

/// The error for a `[[schedule]]` entry with `lines` (after the table header, line 1).
fn schedule_error(lines: &str) -> ConfigError {
    error(&format!("[[schedule]]\n{lines}"))
}

#[test]
fn bad_schedule_values_are_refused_at_their_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "name = \"a\"\naction = \"x\"\ncron = \"61 * * * *\"\n",
            4,
            "schedule[0].cron",
            "invalid cron expression \"61 * * * *\"",
        ),
        (
            "name = \"a\"\naction = \"x\"\ncron = \"* * * *\"\n",
            4,
            "schedule[0].cron",
            "write 5 fields",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"500ms\"\n",
            4,
            "schedule[0].every",
            "a whole number of seconds, at least 1s",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"0s\"\n",
            4,
            "schedule[0].every",
            "at least 1s",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"soon\"\n",
            4,
            "schedule[0].every",
            "invalid duration \"soon\"",
        ),
        (
            "name = \"a\"\naction = \"x\"\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n",
            5,
            "schedule[0].timezone",
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            "name = \"a b\"\naction = \"x\"\nevery = \"1m\"\n",
            2,
            "schedule[0].name",
            "invalid schedule name \"a b\"",
        ),
        (
            "name = \"\"\naction = \"x\"\nevery = \"1m\"\n",
            2,
            "schedule[0].name",
            "invalid schedule name \"\"",
        ),
        (
            "name = \"a:b\"\naction = \"x\"\nevery = \"1m\"\n",
            2,
            "schedule[0].name",
            "letters, digits, '-', '_' or '.'",
        ),
        (
            "name = \"a\"\naction = \"\"\nevery = \"1m\"\n",
            3,
            "schedule[0].action",
            "the action cannot be empty",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"1m\"\nbody = \"a\\u0000b\"\n",
            5,
            "schedule[0].body",
            "NUL",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"1m\"\nmax_tries = 0\n",
            5,
            "schedule[0].max_tries",
            "max_tries must be between 1 and",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"1m\"\npriority = \"high\"\n",
            5,
            "schedule[0].priority",
            "expected i32",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"1m\"\nevry = \"1m\"\n",
            5,
            "schedule[0].evry",
            "unknown field `evry`",
        ),
    ];
    for (lines, line, key, says) in cases {
        let e = schedule_error(lines);
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(*line), Some(*key)),
            "{lines:?}: {e}"
        );
        assert!(
            e.problem.contains(says),
            "{lines:?}: expected {says:?} in {e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("conf/parade.toml:{line}: key `{key}`: ")),
            "{e}"
        );
    }
}

#[test]
fn a_schedule_entry_needs_a_name_an_action_and_one_timing() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "action = \"x\"\nevery = \"1m\"\n",
            1,
            "schedule[0]",
            "needs `name`",
        ),
        (
            "name = \"a\"\nevery = \"1m\"\n",
            1,
            "schedule[0]",
            "needs `action`",
        ),
        (
            "name = \"a\"\naction = \"x\"\n",
            1,
            "schedule[0]",
            "needs `cron` (e.g. \"0 3 * * *\") or `every`",
        ),
        (
            "name = \"a\"\naction = \"x\"\ncron = \"0 3 * * *\"\nevery = \"1h\"\n",
            5,
            "schedule[0].every",
            "either `cron` or `every`, not both",
        ),
        (
            "name = \"a\"\naction = \"x\"\nevery = \"1h\"\ntimezone = \"Europe/Paris\"\n",
            5,
            "schedule[0].timezone",
            "`timezone` applies to `cron` schedules only",
        ),
        (
            "name = \"a\"\naction = \"x\"\ncron = \"0 0 30 2 *\"\n",
            4,
            "schedule[0].cron",
            "never falls due",
        ),
    ];
    for (lines, line, key, says) in cases {
        let e = schedule_error(lines);
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(*line), Some(*key)),
            "{lines:?}: {e}"
        );
        assert!(
            e.problem.contains(says),
            "{lines:?}: expected {says:?} in {e}"
        );
    }
}

#[test]
fn a_schedule_name_used_twice_is_refused_naming_both() {
    let e = error(
        "[[schedule]]\nname = \"a\"\naction = \"x\"\nevery = \"1m\"\n\n\
         [[schedule]]\nname = \"a\"\naction = \"y\"\nevery = \"2m\"\n",
    );
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(7), Some("schedule[1].name"))
    );
    assert!(
        e.problem.contains("schedule \"a\" is declared twice"),
        "{e}"
    );
    assert!(
        e.problem
            .contains("conf/parade.toml:2: key `schedule[0].name`"),
        "{e}"
    );
}

#[test]
fn schedules_are_live_not_restart_only() {
    let running = parse("").unwrap();
    let mut reread = parse("[[schedule]]\nname = \"a\"\naction = \"x\"\nevery = \"1m\"\n").unwrap();
    assert!(reread.keep_restart_only_from(&running).is_empty());
    assert_eq!(reread.schedules.len(), 1);
}

/// The one plugin of a `[[plugin]]` entry whose other lines are `lines`.
fn plugin_with(lines: &str) -> PluginSpec {
    let config = parse(&format!("[[plugin]]\nfile = \"a.wasm\"\n{lines}")).unwrap();
    config.plugins.into_iter().next().unwrap()
}

#[test]
fn a_plugin_s_retry_policy_is_read_with_the_defaults_for_missing_keys() {
    use crate::queue::Backoff;

    assert_eq!(plugin_with("").limits.retry, Backoff::default());
    assert_eq!(
        plugin_with("retry = \"immediate\"\n").limits.retry,
        Backoff::IMMEDIATE
    );
    assert_eq!(
        plugin_with(
            "retry = { initial = \"500ms\", max = \"1h\", multiplier = 3, jitter = false }\n"
        )
        .limits
        .retry,
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(3600),
            multiplier: 3.0,
            jitter: false,
        }
    );
    assert_eq!(
        plugin_with("[plugin.retry]\nmax = \"1h\"\n").limits.retry,
        Backoff {
            max: Duration::from_secs(3600),
            ..Backoff::default()
        }
    );
    assert_eq!(plugin_with("retry = {}\n").limits.retry, Backoff::default());
}

#[test]
fn a_bad_retry_policy_is_named_with_its_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "retry = { multiplier = 0.5 }",
            3,
            "plugin[0].retry.multiplier",
            "at least 1",
        ),
        (
            "retry = { multiplier = -2.0 }",
            3,
            "plugin[0].retry.multiplier",
            "at least 1",
        ),
        (
            "retry = { multiplier = \"double\" }",
            3,
            "plugin[0].retry.multiplier",
            "expected a number of at least 1",
        ),
        (
            "retry = { initial = \"5s\", max = \"1s\" }",
            3,
            "plugin[0].retry",
            "max 1s is less than initial 5s",
        ),
        (
            "retry = { max = \"500ms\" }",
            3,
            "plugin[0].retry",
            "max 500ms is less than initial 1s (the default)",
        ),
        (
            "retry = { initial = \"0s\" }",
            3,
            "plugin[0].retry",
            "retry = \"immediate\"",
        ),
        (
            "retry = { max = \"90days\" }",
            3,
            "plugin[0].retry",
            "at most 30 days",
        ),
        (
            "retry = { initial = \"soon\" }",
            3,
            "plugin[0].retry.initial",
            "invalid duration",
        ),
        (
            "retry = { intial = \"1s\" }",
            3,
            "plugin[0].retry.intial",
            "unknown field `intial`",
        ),
        (
            "retry = \"never\"",
            3,
            "plugin[0].retry",
            "unknown retry policy \"never\"",
        ),
        (
            "retry = 5",
            3,
            "plugin[0].retry",
            "\"immediate\", or a table",
        ),
    ];
    for (line_text, line, key, says) in cases {
        let e = error(&format!("[[plugin]]\nfile = \"a.wasm\"\n{line_text}\n"));
        assert_eq!(
            (e.file.as_path(), e.line, e.key.as_deref()),
            (Path::new("conf/parade.toml"), Some(*line), Some(*key)),
            "{line_text}: {e}"
        );
        assert!(
            e.problem.contains(says),
            "{line_text}: expected {says:?} in {e}"
        );
    }
}

#[test]
fn a_sidecar_manifest_sets_retry_and_its_errors_name_the_manifest() {
    use crate::queue::Backoff;

    let (dir, config) = folder("");
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("a.wasm"), b"").unwrap();
    std::fs::write(plugins.join("a.toml"), "retry = \"immediate\"\n").unwrap();
    let specs = config.plugin_specs().unwrap();
    assert_eq!(specs[0].limits.retry, Backoff::IMMEDIATE);

    std::fs::write(
        plugins.join("a.toml"),
        "timeout = \"5s\"\n\n[retry]\ninitial = \"1s\"\nmultiplier = 0\n",
    )
    .unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(
        (e.file.clone(), e.line, e.key.as_deref()),
        (plugins.join("a.toml"), Some(5), Some("retry.multiplier")),
        "{e}"
    );
}

#[test]
fn a_changed_retry_policy_is_a_changed_plugin() {
    let before = plugin_with("");
    let after = plugin_with("retry = \"immediate\"\n");
    assert!(!before.same_settings(&after));
    assert!(before.same_settings(&plugin_with("")));
}

#[test]
fn a_plugin_s_concurrency_limits_are_read() {
    use crate::manager::ConcurrencyLimits;
    use std::num::NonZeroU32;

    assert_eq!(
        plugin_with("").limits.concurrency,
        ConcurrencyLimits::default()
    );
    assert_eq!(
        plugin_with("concurrency = 3\nnode_concurrency = 1\n")
            .limits
            .concurrency,
        ConcurrencyLimits {
            global: NonZeroU32::new(3),
            node: NonZeroU32::new(1),
        }
    );
    assert_eq!(
        plugin_with("node_concurrency = 2\n").limits.concurrency,
        ConcurrencyLimits {
            global: None,
            node: NonZeroU32::new(2),
        }
    );
}

#[test]
fn a_bad_concurrency_limit_is_named_with_its_line_and_key() {
    for (line_text, key) in [
        ("concurrency = 0", "plugin[0].concurrency"),
        ("concurrency = -3", "plugin[0].concurrency"),
        ("concurrency = 2.5", "plugin[0].concurrency"),
        ("concurrency = \"3\"", "plugin[0].concurrency"),
        (
            "node_concurrency = 4294967296",
            "plugin[0].node_concurrency",
        ),
        ("node_concurrency = 0", "plugin[0].node_concurrency"),
    ] {
        let e = error(&format!("[[plugin]]\nfile = \"a.wasm\"\n{line_text}\n"));
        assert_eq!(
            (e.file.as_path(), e.line, e.key.as_deref()),
            (Path::new("conf/parade.toml"), Some(3), Some(key)),
            "{line_text}: {e}"
        );
        assert!(
            e.problem.contains("a whole number of tasks between 1 and"),
            "{line_text}: {e}"
        );
    }
}

#[test]
fn a_sidecar_manifest_sets_concurrency_and_its_errors_name_the_manifest() {
    let (dir, config) = folder("");
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("a.wasm"), b"").unwrap();
    std::fs::write(plugins.join("a.toml"), "concurrency = 5\n").unwrap();
    let specs = config.plugin_specs().unwrap();
    assert_eq!(
        specs[0].limits.concurrency.global,
        std::num::NonZeroU32::new(5)
    );

    std::fs::write(
        plugins.join("a.toml"),
        "timeout = \"5s\"\nnode_concurrency = 0\n",
    )
    .unwrap();
    let e = config.plugin_specs().unwrap_err();
    assert_eq!(
        (e.file.clone(), e.line, e.key.as_deref()),
        (plugins.join("a.toml"), Some(2), Some("node_concurrency")),
        "{e}"
    );
}

#[test]
fn a_changed_concurrency_limit_is_a_changed_plugin() {
    let before = plugin_with("concurrency = 3\n");
    assert!(!before.same_settings(&plugin_with("concurrency = 4\n")));
    assert!(!before.same_settings(&plugin_with("concurrency = 3\nnode_concurrency = 1\n")));
    assert!(before.same_settings(&plugin_with("concurrency = 3\n")));
}

#[test]
fn retention_defaults_to_a_day_for_completed_and_a_week_for_aborted() {
    assert_eq!(parse("").unwrap().retention, DEFAULT_RETENTION);
    assert_eq!(
        DEFAULT_RETENTION,
        Retention {
            completed: Some(Duration::from_secs(86_400)),
            aborted: Some(Duration::from_secs(7 * 86_400)),
        }
    );
    let config = parse("[retention]\ncompleted = \"10s\"\n").unwrap();
    assert_eq!(
        config.retention,
        Retention {
            completed: Some(Duration::from_secs(10)),
            aborted: DEFAULT_RETENTION.aborted,
        }
    );
    let config = parse("[retention]\ncompleted = \"forever\"\naborted = \"30d\"\n").unwrap();
    assert_eq!(
        config.retention,
        Retention {
            completed: None,
            aborted: Some(Duration::from_secs(30 * 86_400)),
        }
    );
}

#[test]
fn a_completed_retention_of_zero_deletes_completed_tasks_at_completion() {
    for zero in ["0", "0s", " 0ms "] {
        let config = parse(&format!("[retention]\ncompleted = \"{zero}\"\n")).unwrap();
        assert_eq!(config.retention.completed, Some(Duration::ZERO), "{zero:?}");
        assert_eq!(
            crate::queue::OnCompletion::for_retention(&config.retention),
            crate::queue::OnCompletion::Delete
        );
    }
    assert_eq!(
        crate::queue::OnCompletion::for_retention(&parse("").unwrap().retention),
        crate::queue::OnCompletion::Keep
    );
}

#[test]
fn a_bad_retention_is_refused_at_its_line_and_key() {
    let e = error("[retention]\n\naborted = \"a fortnight\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("retention.aborted"))
    );
    assert!(e.problem.contains("\"forever\""), "{e}");
    let e = error("[retention]\naborted = \"0s\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("retention.aborted"))
    );
    assert!(e.problem.contains("kept a while"), "{e}");
    let e = error("[retention]\ncompleted = 10\n");
    assert_eq!(e.key.as_deref(), Some("retention.completed"));
    let e = error("[retention]\npending = \"1h\"\n");
    assert!(e.problem.contains("unknown field `pending`"), "{e}");
    assert!(e.to_string().starts_with("conf/parade.toml:2"), "{e}");
}

#[test]
fn retention_is_live_not_restart_only() {
    let running = parse("").unwrap();
    let mut reread = parse("[retention]\ncompleted = \"1h\"\n").unwrap();
    assert!(reread.keep_restart_only_from(&running).is_empty());
    assert_eq!(reread.retention.completed, Some(Duration::from_secs(3600)));
}
