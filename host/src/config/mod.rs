//! `parade.toml` and plugin manifests: parsing, validation and defaults.
//!
//! [`NodeConfig::load`] reads the node's configuration (every key optional, unknown keys
//! refused); [`NodeConfig::plugin_specs`] then lists the plugins it describes: its
//! `[[plugin]]` entries, and every `NAME.wasm` in the plugins folder, each with the
//! `NAME.toml` beside it if there is one, and checks that no plugin is granted a directory
//! overlapping the node's own files (`grants.rs`). Its `[[schedule]]` entries become
//! [`ScheduleSpec`]s (`schedule.rs`), which the [`schedule`](crate::schedule) module runs.
//! Every error names the file, the line and the key.

mod grants;
mod raw;
mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manager::ManagerProperties;
use crate::queue::Retention;
use crate::runtime::{DirGrant, PluginGrants, PluginLimits};

pub use schedule::{ScheduleSpec, MAX_SCHEDULE_NAME_BYTES};

/// The file `parade run` reads when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "parade.toml";
/// The plugins folder when the configuration names none.
pub const DEFAULT_PLUGINS_DIR: &str = "plugins";
/// Where compiled components are kept when the configuration names no place.
pub const DEFAULT_CACHE_DIR: &str = ".parade-cache";

/// A configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// The line (1-based), when the problem is at one.
    pub line: Option<usize>,
    /// The key, as a path (`manager.wait_time`, `plugin[1].file`).
    pub key: Option<String>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(file: &Path, problem: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: None,
            key: None,
            problem: problem.into(),
        }
    }

    fn at(mut self, location: &Location) -> Self {
        self.line = Some(location.line);
        self.key = Some(location.key.clone());
        self
    }
}

/// Where a value was written: a file, a line and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: key `{}`",
            self.file.display(),
            self.line,
            self.key
        )
    }
}

/// How long finished tasks are kept when `[retention]` does not say: completed ones a day,
/// aborted ones (failed or cancelled, which someone may want to look into) a week, as River
/// keeps its completed and discarded jobs.
pub const DEFAULT_RETENTION: Retention = Retention {
    completed: Some(Duration::from_secs(24 * 60 * 60)),
    aborted: Some(Duration::from_secs(7 * 24 * 60 * 60)),
};

/// `[database]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`; `None` means the default, `sqlite://parade.db`.
    pub url: Option<String>,
    /// Most connections the node opens.
    pub pool_size: Option<u32>,
}

/// `[actor]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorConfig {
    /// The owner recorded on tasks; default the host name and process id.
    pub id: Option<String>,
    /// Namespace of this node's tasks and actions (the seed's ParadePrefix).
    pub prefix: Option<String>,
}

/// Where the admin listener (health, metrics, dashboard) listens by default: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9187";

/// `[admin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None`: the default address (a busy port there is a warning, not an error);
    /// `Some(None)`: off; `Some(Some(address))`: this address (a busy port is an error).
    pub listen: Option<Option<std::net::SocketAddr>>,
    /// Operator actions (retry, delete, pause) need `Authorization: Bearer TOKEN`; without a
    /// token they are refused.
    pub token: Option<String>,
    /// `hosts`: names (lower case, `NAME` or `NAME:PORT`) the listener answers to besides its
    /// own address, e.g. behind a reverse proxy; a request naming any other `Host` is
    /// refused (DNS rebinding).
    pub hosts: Vec<String>,
}

/// Parses "127.0.0.1:9187", "[::1]:9187" or "off".
pub fn parse_listen(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| {
        format!("invalid address {text:?}: write ADDRESS:PORT (e.g. \"127.0.0.1:9187\") or \"off\"")
    })
}

/// Checks one `[admin] hosts` entry, "dash.example.com" or "dash.example.com:9187", and
/// returns it in lower case.
pub fn parse_admin_host(text: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "invalid host {text:?}: write a name as browsers send it in Host, e.g. \
             \"dash.example.com\" or \"dash.example.com:9187\""
        )
    };
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !name_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(refuse());
    }
    Ok(text.to_ascii_lowercase())
}

/// A node's configuration: `parade.toml`, or the defaults where there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    pub database: DatabaseConfig,
    pub actor: ActorConfig,
    /// `[manager]`, the ActionManager's properties (unset keys keep their defaults).
    pub manager: ManagerProperties,
    /// `[plugins] dir`: the folder scanned for `NAME.wasm` (and `NAME.toml`).
    pub plugins_dir: PathBuf,
    /// `[plugins] cache_dir`: compiled components, kept across restarts.
    pub cache_dir: PathBuf,
    /// `[[plugin]]` entries.
    pub plugins: Vec<PluginSpec>,
    pub admin: AdminConfig,
    /// `[[schedule]]` entries: periodic tasks, in the order written.
    pub schedules: Vec<ScheduleSpec>,
    /// `[retention]`: how long finished tasks are kept before the node's pruner deletes
    /// them ([`DEFAULT_RETENTION`] for unset keys).
    pub retention: Retention,
}

/// One plugin to load: its component and how it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    /// The component file.
    pub file: PathBuf,
    /// The actions it serves, if its manifest limits them; otherwise its `actions()`.
    pub actions: Option<Vec<String>>,
    pub limits: PluginLimits,
    pub grants: PluginGrants,
    /// Where it is declared: its `[[plugin]]` entry or sidecar manifest (key `name`), or,
    /// for a bare component in the plugins folder, the component itself (line 0).
    pub origin: Location,
    /// Where its component file is named (`origin` for a component in the plugins folder).
    pub file_origin: Location,
    /// Where its `actions` are listed, if they are.
    pub actions_origin: Option<Location>,
    /// Where each of its `grants.dirs` is written, in the same order.
    pub dir_origins: Vec<Location>,
}

impl PluginSpec {
    /// Everything that decides how the plugin behaves (not where it was declared): two
    /// specs with equal settings and equal component bytes make the same plugin.
    pub fn same_settings(&self, other: &PluginSpec) -> bool {
        (
            &self.name,
            &self.file,
            &self.actions,
            &self.limits,
            &self.grants,
        ) == (
            &other.name,
            &other.file,
            &other.actions,
            &other.limits,
            &other.grants,
        )
    }
}

/// Settings given on the command line, which win over the configuration file's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub database_url: Option<String>,
    /// `--admin ADDRESS|off`.
    pub admin_listen: Option<Option<std::net::SocketAddr>>,
    pub plugins_dir: Option<PathBuf>,
    pub workers: Option<usize>,
}

impl NodeConfig {
    /// This configuration with `overrides` applied.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Self {
        if let Some(url) = &overrides.database_url {
            self.database.url = Some(url.clone());
        }
        if let Some(dir) = &overrides.plugins_dir {
            self.plugins_dir = dir.clone();
        }
        if let Some(listen) = overrides.admin_listen {
            self.admin.listen = Some(listen);
        }
        if let Some(workers) = overrides.workers {
            self.manager.workers = workers;
        }
        self
    }

    /// The defaults, as if `parade.toml` were empty, relative to `base_dir`.
    pub fn defaults(base_dir: &Path) -> Self {
        NodeConfig {
            file: None,
            database: DatabaseConfig::default(),
            actor: ActorConfig::default(),
            manager: ManagerProperties::default(),
            plugins_dir: base_dir.join(DEFAULT_PLUGINS_DIR),
            cache_dir: base_dir.join(DEFAULT_CACHE_DIR),
            plugins: Vec::new(),
            admin: AdminConfig::default(),
            schedules: Vec::new(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// Reads `file`. Relative paths in it are relative to its folder.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(file, format!("cannot read it: {e}")))?;
        Self::parse(file, &text)
    }

    /// Parses `text` as if read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let base_dir = file.parent().unwrap_or(Path::new("")).to_owned();
        let raw: raw::Config = raw::parse(file, text)?;
        let lines = raw::Lines::new(file, text);
        let mut config = NodeConfig::defaults(&base_dir);
        config.file = Some(file.to_owned());
        config.database = DatabaseConfig {
            url: raw.database.url,
            pool_size: raw.database.pool_size.map(std::num::NonZeroU32::get),
        };
        config.actor = ActorConfig {
            id: raw.actor.id,
            prefix: raw.actor.prefix,
        };
        config.manager = raw.manager.into_properties();
        config.admin = AdminConfig {
            listen: raw.admin.listen.map(|l| l.0),
            token: raw.admin.token.filter(|t| !t.is_empty()),
            hosts: raw.admin.hosts.into_iter().map(|h| h.0).collect(),
        };
        if let Some(dir) = raw.plugins.dir {
            config.plugins_dir = base_dir.join(dir);
        }
        if let Some(dir) = raw.plugins.cache_dir {
            config.cache_dir = base_dir.join(dir);
        }
        config.schedules = schedule::schedules(file, raw.schedule, &lines)?;
        config.retention = Retention {
            completed: raw
                .retention
                .completed
                .map_or(DEFAULT_RETENTION.completed, |k| k.0),
            aborted: raw
                .retention
                .aborted
                .map_or(DEFAULT_RETENTION.aborted, |k| k.0),
        };
        let mut names: HashMap<String, Location> = HashMap::new();
        for (index, entry) in raw.plugin.into_iter().enumerate() {
            let key = |field: &str| format!("plugin[{index}].{field}");
            let entry_location = lines.span_location(entry.span(), format!("plugin[{index}]"));
            let entry = entry.into_inner();
            let Some(file_value) = entry.file.clone() else {
                return Err(ConfigError::new(
                    file,
                    "a [[plugin]] entry needs `file`, the component to load",
                )
                .at(&entry_location));
            };
            let component = base_dir.join(file_value.get_ref());
            let name = match &entry.name {
                Some(name) => name.get_ref().clone(),
                None => file_stem(&component),
            };
            let origin = match &entry.name {
                Some(name) => lines.span_location(name.span(), key("name")),
                None => lines.span_location(file_value.span(), key("file")),
            };
            if let Some(earlier) = names.get(&name) {
                return Err(ConfigError::new(
                    file,
                    format!("plugin {name:?} is declared twice (first at {earlier})"),
                )
                .at(&origin));
            }
            names.insert(name.clone(), origin.clone());
            let file_origin = lines.span_location(file_value.span(), key("file"));
            let spec = entry.into_spec(
                name,
                (component, file_origin),
                origin,
                &lines,
                &base_dir,
                &key,
            )?;
            config.plugins.push(spec);
        }
        Ok(config)
    }

    /// Every plugin this configuration describes: the `[[plugin]]` entries, then each
    /// `NAME.wasm` in the plugins folder that no entry names, with its `NAME.toml` if any.
    /// Component files are checked to exist; their contents are the loader's business. No
    /// plugin may be granted a directory that overlaps the plugins folder, the component
    /// cache, the configuration file, the SQLite database or a component (see `grants.rs`).
    pub fn plugin_specs(&self) -> Result<Vec<PluginSpec>, ConfigError> {
        let mut specs = Vec::new();
        for spec in &self.plugins {
            if !spec.file.is_file() {
                return Err(ConfigError::new(
                    &spec.file_origin.file,
                    format!("component {} does not exist", spec.file.display()),
                )
                .at(&spec.file_origin));
            }
            specs.push(spec.clone());
        }
        let declared: Vec<PathBuf> = self.plugins.iter().map(|s| canonical(&s.file)).collect();
        for component in components_in(&self.plugins_dir)? {
            if declared.contains(&canonical(&component)) {
                continue;
            }
            let spec = sidecar_spec(&component)?;
            if let Some(other) = specs.iter().find(|s: &&PluginSpec| s.name == spec.name) {
                return Err(ConfigError::new(
                    &spec.origin.file,
                    format!(
                        "plugin {:?} is declared twice: here and at {}",
                        spec.name, other.origin
                    ),
                )
                .at(&spec.origin));
            }
            specs.push(spec);
        }
        grants::check(self, &specs)?;
        Ok(specs)
    }

    /// Refuses a `dirs` grant of `specs` that overlaps one of this configuration's own places
    /// (see `grants.rs`); for plugins loaded outside [`NodeConfig::plugin_specs`], as
    /// `parade plugin call` loads one.
    pub fn check_grants(&self, specs: &[PluginSpec]) -> Result<(), ConfigError> {
        grants::check(self, specs)
    }

    /// The sections that differ from `other` and that only take effect on a restart (the
    /// ones `RESTART_ONLY_SECTIONS` lists), named as warnings name them.
    pub fn restart_only_changes(&self, other: &NodeConfig) -> Vec<&'static str> {
        self.clone().keep_restart_only_from(other)
    }

    /// Puts `running`'s restart-only sections back into this re-read configuration, so it
    /// describes what the node runs until it restarts, and returns the names of those that
    /// differed (as [`NodeConfig::restart_only_changes`] would).
    pub fn keep_restart_only_from(&mut self, running: &NodeConfig) -> Vec<&'static str> {
        let mut differed = Vec::new();
        for (section, keep_running) in RESTART_ONLY_SECTIONS {
            if keep_running(self, running) {
                differed.push(section);
            }
        }
        differed
    }
}

/// Puts a restart-only section of a running configuration into a re-read one; says whether
/// they differed.
type KeepRunning = fn(&mut NodeConfig, &NodeConfig) -> bool;

/// The settings a node reads only when it starts, named as warnings name them. Live reload
/// applies everything else (the plugins, the plugins folder, the schedules and the
/// retention); these it keeps as they were and reports as needing a restart. The one list both
/// [`NodeConfig::restart_only_changes`] and [`NodeConfig::keep_restart_only_from`] read.
const RESTART_ONLY_SECTIONS: [(&str, KeepRunning); 5] = [
    ("database", |config, running| {
        put_back(&mut config.database, &running.database)
    }),
    ("actor", |config, running| {
        put_back(&mut config.actor, &running.actor)
    }),
    ("manager", |config, running| {
        put_back(&mut config.manager, &running.manager)
    }),
    ("plugins.cache_dir", |config, running| {
        put_back(&mut config.cache_dir, &running.cache_dir)
    }),
    ("admin", |config, running| {
        put_back(&mut config.admin, &running.admin)
    }),
];

/// Replaces `section` with `running` if they differ; says whether they did.
fn put_back<T: Clone + PartialEq>(section: &mut T, running: &T) -> bool {
    let differed = section != running;
    if differed {
        *section = running.clone();
    }
    differed
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// The `*.wasm` files of `dir`, sorted; none if it does not exist. Hidden files are
/// skipped: editors and copy tools write those while a file is in progress.
fn components_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::new(
                dir,
                format!("cannot read the plugins folder: {e}"),
            ))
        }
    };
    let mut components: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "wasm")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && path.is_file()
        })
        .collect();
    components.sort();
    Ok(components)
}

/// The spec of a component dropped into the plugins folder, from its `NAME.toml` if any
/// (also how `parade plugin call` and `plugin build` read a component's settings).
pub fn sidecar_spec(component: &Path) -> Result<PluginSpec, ConfigError> {
    let name = file_stem(component);
    let manifest = component.with_extension("toml");
    let itself = Location {
        file: component.to_owned(),
        line: 0,
        key: "(component)".into(),
    };
    let bare = PluginSpec {
        name: name.clone(),
        file: component.to_owned(),
        actions: None,
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
        origin: itself.clone(),
        file_origin: itself.clone(),
        actions_origin: None,
        dir_origins: Vec::new(),
    };
    let text = match std::fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bare),
        Err(e) => return Err(ConfigError::new(&manifest, format!("cannot read it: {e}"))),
    };
    let entry: raw::Plugin = raw::parse(&manifest, &text)?;
    let lines = raw::Lines::new(&manifest, &text);
    if let Some(file) = &entry.file {
        return Err(ConfigError::new(
            &manifest,
            format!(
                "a plugin manifest describes the component beside it ({}); remove `file`",
                component.display()
            ),
        )
        .at(&lines.span_location(file.span(), "file".into())));
    }
    let (name, origin) = match &entry.name {
        Some(n) => (
            n.get_ref().clone(),
            lines.span_location(n.span(), "name".into()),
        ),
        None => (
            name,
            Location {
                file: manifest.clone(),
                line: 1,
                key: "name".into(),
            },
        ),
    };
    let base_dir = manifest.parent().unwrap_or(Path::new("")).to_owned();
    entry.into_spec(
        name,
        (component.to_owned(), itself),
        origin,
        &lines,
        &base_dir,
        &|field: &str| field.to_owned(),
    )
}

/// Parses "64MiB", "512 KiB", "1GiB", "1048576" (bytes).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| {
        format!("invalid size {text:?}: expected a number of bytes, or e.g. \"64MiB\"")
    })?;
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Parses a `[retention]` value of aborted tasks: "forever" (`None`), or a duration of more
/// than zero such as "10s", "24h" or "7d".
pub fn parse_keep(text: &str) -> Result<Option<Duration>, String> {
    let keep = parse_keep_completed(text)?;
    if keep.is_some_and(|keep| keep.is_zero()) {
        return Err(format!(
            "invalid retention {text:?}: an aborted task must be kept a while (its waiters and \
             operators read why it failed); write e.g. \"1h\", or \"forever\""
        ));
    }
    Ok(keep)
}

/// Parses `[retention] completed`: as [`parse_keep`], and zero ("0" or "0s") too, which
/// deletes completed tasks as they complete (see [`OnCompletion`](crate::queue::OnCompletion)).
pub fn parse_keep_completed(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "forever" {
        return Ok(None);
    }
    // humantime wants a unit, but a bare zero is unambiguous.
    if text == "0" {
        return Ok(Some(Duration::ZERO));
    }
    let keep = humantime::parse_duration(text).map_err(|e| {
        format!(
            "invalid retention {text:?} ({e}); write a duration such as \"24h\" or \"7d\", \
             or \"forever\" (completed tasks also \"0s\": deleted as they complete)"
        )
    })?;
    Ok(Some(keep))
}

/// Parses "250ms", "30s", "5m", "1h 30m".
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"250ms\", \"30s\" or \"5m\"")
    })
}

fn grants(
    env: BTreeMap<String, String>,
    dirs: Vec<toml::Spanned<raw::Dir>>,
    allowed_hosts: Vec<raw::AllowedHost>,
    base_dir: &Path,
) -> PluginGrants {
    PluginGrants {
        allowed_hosts: allowed_hosts.into_iter().map(|h| h.0).collect(),
        env: env.into_iter().collect(),
        dirs: dirs
            .into_iter()
            .map(toml::Spanned::into_inner)
            .map(|d| DirGrant {
                host: base_dir.join(d.host),
                guest: d.guest,
                writable: d.writable,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
