//! The rule for `dirs` grants: a plugin may not be granted the node's own files.
//!
//! A guest with a writable directory that covers the compiled-component cache could plant a
//! `.cwasm` file the next start loads as native code; one that covers the plugins folder, a
//! plugin's component or the configuration file could install a plugin (or replace one)
//! with any grants it likes. A read-only grant of the configuration file leaks its secrets
//! (the database URL's password, the admin token); of the database, every task; of the
//! cache, the key that authenticates its entries (see `runtime/cache.rs`). So any grant,
//! writable or read-only, that *overlaps* one of these places is refused: the granted
//! directory is one of them, contains one, or lies inside one. Paths are compared after
//! resolving symbolic links (and `..`), so a link to the cache is the cache. A place that
//! does not exist yet (the cache before the first compile, a SQLite file before the first
//! start) is resolved through its nearest existing ancestor.
//!
//! Symbolic links *inside* a granted directory need no check here: the guest's view of a
//! granted directory (wasmtime-wasi, through cap-std) never follows a link out of it.
//!
//! [`check`] runs on every list of plugin specs ([`NodeConfig::plugin_specs`]), so at
//! `parade run --check`, at start and at every reload (a reload that breaks the rule is
//! rejected and the last good set of plugins keeps serving).

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use super::{ConfigError, NodeConfig, PluginSpec};

/// One of the node's own places no grant may overlap.
struct Protected {
    /// What it is, as a message names it ("the compiled-component cache (`plugins.cache_dir`)").
    what: String,
    /// Why a grant of it is dangerous.
    why: &'static str,
    /// Where it is, symbolic links resolved.
    resolved: PathBuf,
}

/// Refuses the first grant of `specs` that overlaps one of `config`'s own places: its
/// plugins folder, compiled-component cache, configuration file, SQLite database (with its
/// `-wal`, `-shm` and `-journal` files) or any plugin's component file. The error names the
/// plugin, the grant (at its file, line and key) and what it overlaps.
pub(super) fn check(config: &NodeConfig, specs: &[PluginSpec]) -> Result<(), ConfigError> {
    let protected = protected_places(config, specs);
    for spec in specs {
        for (index, grant) in spec.grants.dirs.iter().enumerate() {
            let granted = resolve(&grant.host);
            let Some((relation, place)) = protected
                .iter()
                .find_map(|place| overlap(&granted, &place.resolved).map(|r| (r, place)))
            else {
                continue;
            };
            let access = if grant.writable {
                "writable"
            } else {
                "read-only"
            };
            let shown = if granted == grant.host {
                String::new()
            } else {
                format!("; resolves to {}", granted.display())
            };
            let problem = format!(
                "plugin {:?}: granted directory {} ({access}, at {} in the guest{shown}) {relation} \
                 {} {}: {}. No grant, even read-only, may be, contain or lie inside the plugins \
                 folder, the compiled-component cache, the configuration file, the database \
                 or a plugin's component; grant a folder that holds none of them",
                spec.name,
                grant.host.display(),
                grant.guest,
                place.what,
                place.resolved.display(),
                place.why,
            );
            let error = match spec.dir_origins.get(index) {
                Some(location) => ConfigError::new(&location.file, problem).at(location),
                None => ConfigError::new(&spec.origin.file, problem),
            };
            return Err(error);
        }
    }
    Ok(())
}

/// The places of `config` (and of the plugins `specs` load) that no grant may overlap.
fn protected_places(config: &NodeConfig, specs: &[PluginSpec]) -> Vec<Protected> {
    let mut places = vec![
        Protected {
            what: "the plugins folder (`plugins.dir`)".into(),
            why: "a guest could install or change plugins, or read their settings",
            resolved: resolve(&config.plugins_dir),
        },
        Protected {
            what: "the compiled-component cache (`plugins.cache_dir`)".into(),
            why: "a guest could plant compiled code the node would run natively, or read the \
                  key that authenticates it",
            resolved: resolve(&config.cache_dir),
        },
    ];
    if let Some(file) = &config.file {
        places.push(Protected {
            what: "the configuration file".into(),
            why: "a guest could give itself any grant, or read the node's secrets",
            resolved: resolve(file),
        });
    }
    if let Some(database) = sqlite_file(config) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            places.push(Protected {
                what: "the database file (`database.url`)".into(),
                why: "a guest could read or change every task",
                resolved: resolve(Path::new(&name)),
            });
        }
    }
    for spec in specs {
        places.push(Protected {
            what: format!("the component of plugin {:?}", spec.name),
            why: "a guest could replace that plugin's code and run with its grants",
            resolved: resolve(&spec.file),
        });
    }
    places
}

/// The file of the node's SQLite database, if it has one (not PostgreSQL, not in memory).
/// A relative path is relative to the working directory, as when the node opens it.
fn sqlite_file(config: &NodeConfig) -> Option<PathBuf> {
    let url = config
        .database
        .url
        .as_deref()
        .unwrap_or(crate::queue::DEFAULT_DATABASE_URL);
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    // The same parser the store opens the URL with, so both agree on the file.
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    (!file.as_os_str().is_empty()).then(|| file.to_owned())
}

/// How `granted` overlaps `place`, as a message says it, if it does.
fn overlap(granted: &Path, place: &Path) -> Option<&'static str> {
    if granted == place {
        Some("is")
    } else if place.starts_with(granted) {
        Some("contains")
    } else if granted.starts_with(place) {
        Some("lies inside")
    } else {
        None
    }
}

/// `path` made absolute, with symbolic links and `..` resolved: canonicalized if it exists,
/// otherwise its nearest existing ancestor canonicalized and the rest appended (resolving
/// `..` and `.` in the rest by name, since nothing there exists to be a link).
pub(super) fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut resolved = canonical;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::CurDir => {}
                    other => resolved.push(other),
                }
            }
            return resolved;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_does_not_exist_resolves_through_its_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        assert_eq!(resolve(&root.join("link")), root.join("real"));
        assert_eq!(
            resolve(&root.join("link/not/yet/../there")),
            root.join("real/not/there")
        );
        assert_eq!(resolve(&root.join("link/./x")), root.join("real/x"));
    }

    #[test]
    fn overlapping_is_equal_ancestor_or_inside_by_whole_components() {
        let place = Path::new("/srv/node/.parade-cache");
        assert_eq!(
            overlap(Path::new("/srv/node/.parade-cache"), place),
            Some("is")
        );
        assert_eq!(overlap(Path::new("/srv/node"), place), Some("contains"));
        assert_eq!(overlap(Path::new("/"), place), Some("contains"));
        assert_eq!(
            overlap(Path::new("/srv/node/.parade-cache/x"), place),
            Some("lies inside")
        );
        assert_eq!(overlap(Path::new("/srv/node/.parade-cache2"), place), None);
        assert_eq!(overlap(Path::new("/srv/node/data"), place), None);
    }

    #[test]
    fn the_database_file_is_the_sqlite_url_s_path() {
        let mut config = NodeConfig::defaults(Path::new(""));
        assert_eq!(sqlite_file(&config), Some(PathBuf::from("parade.db")));
        config.database.url = Some("sqlite://data/q.db?mode=rwc".into());
        assert_eq!(sqlite_file(&config), Some(PathBuf::from("data/q.db")));
        for memory in ["sqlite::memory:", "sqlite://q.db?mode=memory"] {
            config.database.url = Some(memory.into());
            assert_eq!(sqlite_file(&config), None, "{memory}");
        }
        config.database.url = Some("postgres://parade@db/parade".into());
        assert_eq!(sqlite_file(&config), None);
    }
}
