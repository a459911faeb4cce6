//! The TOML shapes of `parade.toml` and of a plugin's `NAME.toml`, as written, with spans so
//! errors found after parsing can still point at a line.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{ConfigError, Location, PluginSpec};
use crate::manager::{ConcurrencyLimits, ManagerProperties, MAX_RETRY_DELAY};
use crate::queue::Backoff;
use crate::runtime::{FailurePolicy, PluginLimits, MAX_PLUGIN_MEMORY};

/// Parses `text` (from `file`) into `T`; an error names the line and the key.
pub(super) fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let lines = Lines::new(file, text);
    let document =
        toml::Deserializer::parse(text).map_err(|e| lines.error(e.span(), None, e.message()))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        // Spanned values add a private segment to the path; users never wrote it.
        let path = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let key = (path != ".").then_some(path);
        let e = e.into_inner();
        lines.error(e.span(), key, e.message())
    })
}

/// Turns byte offsets of one file into line numbers.
pub(super) struct Lines<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Lines<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Lines { file, text }
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn span_location(&self, span: std::ops::Range<usize>, key: String) -> Location {
        Location {
            file: self.file.to_owned(),
            line: self.line_of(span.start),
            key,
        }
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: Option<String>,
        message: &str,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: span.map(|s| self.line_of(s.start)),
            key,
            problem: message.to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default)]
    pub manager: Manager,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub plugin: Vec<Spanned<Plugin>>,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub schedule: Vec<Spanned<Schedule>>,
    #[serde(default)]
    pub retention: Retention,
}

/// A `[[schedule]]` entry. Each value is checked as it is read (so its error names its key);
/// what concerns the entry as a whole (required keys, `cron` or `every`) in `schedule.rs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Schedule {
    pub name: Option<Spanned<ScheduleName>>,
    pub cron: Option<Spanned<CronExpression>>,
    pub every: Option<Spanned<Every>>,
    pub timezone: Option<Spanned<TimeZone>>,
    pub action: Option<Spanned<Action>>,
    pub body: Option<Body>,
    pub max_tries: Option<MaxTries>,
    pub priority: Option<i32>,
}

/// Implements `Deserialize` for a newtype read from a string by `$parse`.
macro_rules! from_text {
    ($name:ident, $parse:path) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $parse(&text).map($name).map_err(D::Error::custom)
            }
        }
    };
}

/// A schedule's name, safe inside a task id.
#[derive(Debug, Clone)]
pub(super) struct ScheduleName(pub String);
from_text!(ScheduleName, super::schedule::parse_name);

/// A cron expression as written, and parsed.
#[derive(Debug, Clone)]
pub(super) struct CronExpression(pub (String, croner::Cron));
from_text!(CronExpression, super::schedule::parse_cron);

/// An `every` period: whole seconds, at least one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Every(pub i64);
from_text!(Every, super::schedule::parse_every);

/// An IANA time zone.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeZone(pub chrono_tz::Tz);
from_text!(TimeZone, crate::schedule::parse_timezone);

/// The action of a schedule's tasks.
#[derive(Debug, Clone)]
pub(super) struct Action(pub String);
from_text!(Action, super::schedule::parse_action);

/// The body of a schedule's tasks.
#[derive(Debug, Clone)]
pub(super) struct Body(pub String);
from_text!(Body, super::schedule::parse_body);

/// `[retention]`: how long finished tasks are kept, per outcome.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Retention {
    pub completed: Option<KeepCompleted>,
    pub aborted: Option<Keep>,
}

/// How long a finished task is kept: a duration ("24h", "7d"), or "forever" (`None`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Keep(pub Option<Duration>);
from_text!(Keep, super::parse_keep);

/// How long a completed task is kept: as [`Keep`], or zero (deleted as it completes).
#[derive(Debug, Clone, Copy)]
pub(super) struct KeepCompleted(pub Option<Duration>);
from_text!(KeepCompleted, super::parse_keep_completed);

/// A task's `max_tries`: at least 1.
#[derive(Debug, Clone, Copy)]
pub(super) struct MaxTries(pub i32);

impl<'de> Deserialize<'de> for MaxTries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tries = i64::deserialize(deserializer)?;
        i32::try_from(tries)
            .ok()
            .filter(|t| *t >= 1)
            .map(MaxTries)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "max_tries must be between 1 and {} (leave it out for unlimited tries)",
                    i32::MAX
                ))
            })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    pub listen: Option<Listen>,
    pub token: Option<String>,
    #[serde(default)]
    pub hosts: Vec<AdminHost>,
}

/// "NAME" or "NAME:PORT", as browsers send it in `Host`.
#[derive(Debug, Clone)]
pub(super) struct AdminHost(pub String);

impl<'de> Deserialize<'de> for AdminHost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_admin_host(&text)
            .map(AdminHost)
            .map_err(D::Error::custom)
    }
}

/// "ADDRESS:PORT", or "off".
#[derive(Debug, Clone, Copy)]
pub(super) struct Listen(pub Option<std::net::SocketAddr>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_listen(&text)
            .map(Listen)
            .map_err(D::Error::custom)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Database {
    pub url: Option<String>,
    pub pool_size: Option<NonZeroU32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Actor {
    pub id: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manager {
    pub workers: Option<NonZeroUsize>,
    pub channel_size: Option<NonZeroUsize>,
    pub max_tasks: Option<NonZeroU32>,
    pub wait_time: Option<Dur>,
    pub err_wait_time: Option<Dur>,
    pub max_duration: Option<Dur>,
    pub heartbeat: Option<Dur>,
    pub shutdown_grace: Option<Dur>,
    pub return_batch: Option<NonZeroUsize>,
}

impl Manager {
    /// The properties, with the defaults where a key is unset.
    pub(super) fn into_properties(self) -> ManagerProperties {
        let size = |v: Option<NonZeroUsize>| v.map_or(0, NonZeroUsize::get);
        let time = |v: Option<Dur>| v.map_or(Duration::ZERO, |d| d.0);
        ManagerProperties {
            workers: size(self.workers),
            channel_size: size(self.channel_size),
            max_tasks: self.max_tasks.map_or(0, NonZeroU32::get),
            wait_time: time(self.wait_time),
            err_wait_time: time(self.err_wait_time),
            max_duration: time(self.max_duration),
            heartbeat: time(self.heartbeat),
            shutdown_grace: time(self.shutdown_grace),
            return_batch: size(self.return_batch),
        }
        .with_defaults()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Plugins {
    pub dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// A `[[plugin]]` entry, or a plugin's own `NAME.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Plugin {
    pub name: Option<Spanned<String>>,
    pub file: Option<Spanned<PathBuf>>,
    pub actions: Option<Spanned<Vec<String>>>,
    pub memory: Option<Size>,
    pub timeout: Option<Dur>,
    pub fuel: Option<NonZeroU64>,
    pub on_failure: Option<OnFailure>,
    pub retry: Option<Retry>,
    pub concurrency: Option<Concurrency>,
    pub node_concurrency: Option<Concurrency>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub dirs: Vec<Spanned<Dir>>,
    #[serde(default)]
    pub allowed_hosts: Vec<AllowedHost>,
}

type NonZeroU64 = std::num::NonZeroU64;

impl Plugin {
    /// The spec of plugin `name` whose component is `file` (and named at that location).
    /// `key` turns a field into its key path for messages.
    pub(super) fn into_spec(
        self,
        name: String,
        (file, file_origin): (PathBuf, Location),
        origin: Location,
        lines: &Lines<'_>,
        base_dir: &Path,
        key: &dyn Fn(&str) -> String,
    ) -> Result<PluginSpec, ConfigError> {
        let defaults = PluginLimits::default();
        let actions_origin = self
            .actions
            .as_ref()
            .map(|a| lines.span_location(a.span(), key("actions")));
        let actions = self.actions.map(Spanned::into_inner);
        let dir_origins = self
            .dirs
            .iter()
            .enumerate()
            .map(|(index, dir)| lines.span_location(dir.span(), key(&format!("dirs[{index}]"))))
            .collect();
        if let (Some(actions), Some(location)) = (&actions, &actions_origin) {
            if actions.is_empty() {
                return Err(ConfigError::new(
                    &location.file,
                    "lists no action; remove the key to serve every action the component exports",
                )
                .at(location));
            }
        }
        Ok(PluginSpec {
            name,
            file,
            actions,
            limits: PluginLimits {
                memory: self.memory.map_or(defaults.memory, |m| m.0),
                timeout: self.timeout.map_or(defaults.timeout, |t| t.0),
                fuel: self.fuel.map(NonZeroU64::get),
                on_failure: match self.on_failure {
                    None => defaults.on_failure,
                    Some(OnFailure::Retry) => FailurePolicy::Retry,
                    Some(OnFailure::Abort) => FailurePolicy::Abort,
                },
                retry: self.retry.map_or(defaults.retry, |r| r.0),
                concurrency: ConcurrencyLimits {
                    global: self.concurrency.map(|c| c.0),
                    node: self.node_concurrency.map(|c| c.0),
                },
            },
            grants: super::grants(self.env, self.dirs, self.allowed_hosts, base_dir),
            origin,
            file_origin,
            actions_origin,
            dir_origins,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dir {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default)]
    pub writable: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum OnFailure {
    Retry,
    Abort,
}

/// A plugin's `retry` policy: `"immediate"` (the next try at once, as in the seed), or a
/// table `{ initial = "500ms", max = "1h", multiplier = 2.0, jitter = true }` whose missing
/// keys keep [`Backoff::default`]'s values (1 s, 10 min, 2, jitter on).
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry(pub Backoff);

/// How a `retry` policy may be written, for messages.
const RETRY_FORMS: &str = "write \"immediate\", or a table such as \
     { initial = \"500ms\", max = \"1h\", multiplier = 2.0, jitter = true }";

impl<'de> Deserialize<'de> for Retry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Written;

        impl<'de> serde::de::Visitor<'de> for Written {
            type Value = Retry;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a retry policy: {RETRY_FORMS}")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Retry, E> {
                match text {
                    "immediate" => Ok(Retry(Backoff::IMMEDIATE)),
                    other => Err(E::custom(format!(
                        "unknown retry policy {other:?}: {RETRY_FORMS}"
                    ))),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Retry, A::Error> {
                // Through the map itself, so an error inside names its key (`retry.max`).
                let table =
                    RetryTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                table.into_backoff().map(Retry).map_err(A::Error::custom)
            }
        }

        deserializer.deserialize_any(Written)
    }
}

/// The table form of `retry`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryTable {
    initial: Option<Dur>,
    max: Option<Dur>,
    multiplier: Option<Multiplier>,
    jitter: Option<bool>,
}

impl RetryTable {
    /// The policy, with [`Backoff::default`]'s values for missing keys; what concerns two
    /// keys at once (`max` below `initial`) is checked here.
    fn into_backoff(self) -> Result<Backoff, String> {
        let defaults = Backoff::default();
        let backoff = Backoff {
            initial: self.initial.map_or(defaults.initial, |d| d.0),
            max: self.max.map_or(defaults.max, |d| d.0),
            multiplier: self.multiplier.map_or(defaults.multiplier, |m| m.0),
            jitter: self.jitter.unwrap_or(defaults.jitter),
        };
        if backoff.initial.is_zero() {
            return Err(
                "initial must be more than zero; for no wait at all write retry = \"immediate\""
                    .into(),
            );
        }
        if backoff.max < backoff.initial {
            let shown = |value: Duration, written: bool| {
                let text = humantime::format_duration(value).to_string();
                if written {
                    text
                } else {
                    format!("{text} (the default)")
                }
            };
            return Err(format!(
                "max {} is less than initial {}: the wait grows from initial up to max",
                shown(backoff.max, self.max.is_some()),
                shown(backoff.initial, self.initial.is_some())
            ));
        }
        if backoff.max > MAX_RETRY_DELAY {
            return Err(format!(
                "max may be at most {} days, the longest a task waits for its next try",
                MAX_RETRY_DELAY.as_secs() / 86_400
            ));
        }
        Ok(backoff)
    }
}

/// A backoff `multiplier`: a finite number, at least 1 (1 keeps the wait at `initial`).
#[derive(Debug, Clone, Copy)]
struct Multiplier(f64);

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Written;

        impl serde::de::Visitor<'_> for Written {
            type Value = Multiplier;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of at least 1, such as 2.0")
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Multiplier, E> {
                if !value.is_finite() || value < 1.0 {
                    return Err(E::custom(format!(
                        "multiplier must be a number of at least 1 (1 keeps the wait at \
                         `initial`, 2 doubles it every try), not {value}"
                    )));
                }
                Ok(Multiplier(value))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Multiplier, E> {
                self.visit_f64(value as f64)
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Multiplier, E> {
                self.visit_f64(value as f64)
            }
        }

        deserializer.deserialize_any(Written)
    }
}

/// A `concurrency` or `node_concurrency` limit: how many tasks at once, at least 1.
#[derive(Debug, Clone, Copy)]
pub(super) struct Concurrency(pub NonZeroU32);

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Written;

        impl serde::de::Visitor<'_> for Written {
            type Value = Concurrency;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a whole number of tasks between 1 and {} (leave the key out for no limit)",
                    u32::MAX
                )
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Concurrency, E> {
                u32::try_from(value)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .map(Concurrency)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Concurrency, E> {
                u32::try_from(value)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .map(Concurrency)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }
        }

        deserializer.deserialize_any(Written)
    }
}

/// A duration written as text: "250ms", "30s", "5m".
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text)
            .map(Dur)
            .map_err(D::Error::custom)
    }
}

/// An `allowed_hosts` entry (see [`HostPattern`](crate::runtime::HostPattern)).
#[derive(Debug)]
pub(super) struct AllowedHost(pub crate::runtime::HostPattern);

impl<'de> Deserialize<'de> for AllowedHost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::runtime::HostPattern::parse(&text)
            .map(AllowedHost)
            .map_err(D::Error::custom)
    }
}

/// A memory size: bytes as an integer, or text such as "64MiB".
#[derive(Debug, Clone, Copy)]
pub(super) struct Size(pub usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        let bytes = match Written::deserialize(deserializer)
            .map_err(|_| D::Error::custom("expected a size: bytes, or text such as \"64MiB\""))?
        {
            Written::Bytes(n) => usize::try_from(n).map_err(|_| D::Error::custom("too large"))?,
            Written::Text(text) => super::parse_size(&text).map_err(D::Error::custom)?,
        };
        if bytes == 0 || bytes > MAX_PLUGIN_MEMORY {
            return Err(D::Error::custom(format!(
                "memory must be between 1 byte and {} MiB",
                MAX_PLUGIN_MEMORY >> 20
            )));
        }
        Ok(Size(bytes))
    }
}
