//! `parade plugin new NAME --lang rust|python|js|c`: a ready actor project, from the
//! templates under `host/templates/` (embedded in the binary) and the node's own `wit/`.
//!
//! Every project builds with `parade plugin build` (`plugin_build.rs`) and runs with `parade
//! plugin call` (`plugin_call.rs`) as it is: a test builds each template, so they never rot.
//! The WIT written is the very files the host's runtime is generated from, so a project
//! always speaks the node's current contract.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::runtime::ContractVersion;

/// The languages a project can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Language {
    Rust,
    Python,
    Js,
    C,
}

impl Language {
    /// The language's name in messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
            Language::C => "C",
        }
    }
}

/// One file of a template: its path in the project (`{{name}}` is replaced) and its text.
type TemplateFile = (&'static str, &'static str);

/// The world every project gets in `wit/`: the host's own files.
const WIT: [TemplateFile; 8] = [
    ("wit/actor.wit", include_str!("../../../wit/actor.wit")),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// What every project gets besides its language's files.
const COMMON: [TemplateFile; 2] = [
    (
        "{{name}}.toml",
        include_str!("../../templates/common/plugin.toml"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/common/gitignore"),
    ),
];

const RUST: [TemplateFile; 3] = [
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    ("README.md", include_str!("../../templates/rust/README.md")),
];

const PYTHON: [TemplateFile; 4] = [
    ("app.py", include_str!("../../templates/python/app.py")),
    (
        "pyproject.toml",
        include_str!("../../templates/python/pyproject.toml"),
    ),
    (
        "requirements.txt",
        include_str!("../../templates/python/requirements.txt"),
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
];

const JS: [TemplateFile; 4] = [
    ("actor.js", include_str!("../../templates/js/actor.js")),
    ("build.mjs", include_str!("../../templates/js/build.mjs")),
    (
        "package.json",
        include_str!("../../templates/js/package.json"),
    ),
    ("README.md", include_str!("../../templates/js/README.md")),
];

const C: [TemplateFile; 3] = [
    ("{{name}}.c", include_str!("../../templates/c/actor.c.tmpl")),
    (
        "compile_flags.txt",
        include_str!("../../templates/c/compile_flags.txt"),
    ),
    ("README.md", include_str!("../../templates/c/README.md")),
];

/// A Rust project's `.cargo/config.toml`, written when the user has a cache folder: the
/// target folder every Rust project shares.
const RUST_CARGO_CONFIG: TemplateFile = (
    ".cargo/config.toml",
    include_str!("../../templates/rust/cargo-config.toml"),
);

/// The Rust SDK of the checkout this binary was built from: a Rust project's default
/// `parade-guest` path (the SDK is not on crates.io).
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// The guest workspace's lock file: the versions of the SDK's dependencies that
/// `scripts/build-plugins.sh` builds and the tests run. A Rust project's `Cargo.lock` is
/// cut from it ([`rust_lockfile`]).
const GUEST_LOCK: &str = include_str!("../../../plugins/Cargo.lock");

/// Writes a new project for actor `name` in `language` into `dir` (default `./NAME`), which
/// must be missing or empty. `sdk` is the Rust SDK's folder (default [`BUILT_FROM_SDK`]).
/// Returns the folder written.
pub(super) fn new_project(
    name: &str,
    language: Language,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_owned);
    if let Ok(mut entries) = std::fs::read_dir(&dir) {
        if entries.next().is_some() {
            bail!(
                "{} is not empty: `plugin new` writes only into a missing or empty folder \
                 (give another with --dir)",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!("{} exists and is not a folder", dir.display());
    }
    let sdk = match language {
        Language::Rust => rust_sdk(sdk)?,
        _ => String::new(),
    };
    let mut files: Vec<TemplateFile> = match language {
        Language::Rust => RUST.to_vec(),
        Language::Python => PYTHON.to_vec(),
        Language::Js => JS.to_vec(),
        Language::C => C.to_vec(),
    };
    // Shared by every Rust project of this user (see the template's comment); without a
    // cache folder, cargo's own default, a target/ per project.
    let rust_target = super::plugin_call::author_cache_home().map(|home| home.join("rust-target"));
    if language == Language::Rust && rust_target.is_some() {
        files.push(RUST_CARGO_CONFIG);
    }
    let rust_target = rust_target.map_or_else(String::new, |t| t.to_string_lossy().into_owned());
    let version = ContractVersion::CURRENT.number();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk}}", &sdk)
            .replace("{{sdk_toml}}", &toml_string(&sdk))
            .replace("{{rust_target_toml}}", &toml_string(&rust_target))
            .replace("{{version}}", version)
    };
    let mut written: Vec<(PathBuf, String)> = files
        .iter()
        .chain(&COMMON)
        .chain(&WIT)
        .map(|(path, text)| (dir.join(fill(path)), fill(text)))
        .collect();
    if language == Language::Rust {
        written.push((dir.join("Cargo.lock"), rust_lockfile(name)?));
    }
    for (path, text) in written {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

/// `text` as a TOML basic string, quotes included. (JSON's escapes are TOML's, and
/// serde_json writes no other.)
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The `Cargo.lock` of a new Rust project `name`: its own entry, and the SDK's with its
/// dependencies' as [`GUEST_LOCK`] pins them, each entry's text as it is there. So the first
/// build resolves nothing (no registry index is fetched, and once the crates are
/// downloaded it builds offline), and every project gets the versions the tests build,
/// which the shared target folder then compiles once for all of them. (A `--sdk` of another
/// checkout with other dependencies is resolved again by cargo, as any stale lock is.)
fn rust_lockfile(name: &str) -> anyhow::Result<String> {
    const ENTRY: &str = "\n[[package]]\n";
    let broken = || anyhow::anyhow!("the embedded plugins/Cargo.lock is not a Cargo lock file");
    let mut entries = GUEST_LOCK.split(ENTRY);
    let header = entries.next().ok_or_else(broken)?;
    // Each entry: (name, version, the specs of its dependencies: "NAME" or "NAME VERSION
    // ..."), its text.
    let mut parsed = Vec::new();
    for text in entries {
        let table: toml::Table = toml::from_str(text).map_err(|_| broken())?;
        let field = |key: &str| {
            table
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        };
        let dependencies: Vec<String> = table
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .map(|specs| {
                specs
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let name = field("name").ok_or_else(broken)?;
        let version = field("version").ok_or_else(broken)?;
        parsed.push(((name, version, dependencies), text));
    }
    // The entries the SDK needs, by following dependencies from it.
    let mut needed = vec![false; parsed.len()];
    let mut to_visit = vec!["parade-guest".to_owned()];
    while let Some(spec) = to_visit.pop() {
        let mut words = spec.split(' ');
        let wanted_name = words.next().unwrap_or_default();
        let wanted_version = words.next();
        let found = parsed.iter().position(|((name, version, _), _)| {
            name == wanted_name && wanted_version.is_none_or(|v| v == version)
        });
        let Some(index) = found else {
            bail!("the embedded plugins/Cargo.lock has no entry for {spec:?}");
        };
        if !std::mem::replace(&mut needed[index], true) {
            to_visit.extend(parsed[index].0 .2.iter().cloned());
        }
    }
    let own = format!(
        "name = {}\nversion = \"0.1.0\"\ndependencies = [\n \"parade-guest\",\n]\n",
        toml_string(name)
    );
    // Cargo keeps its entries sorted by name: the project's goes before the first after it.
    let mut lock = header.to_owned();
    let mut own_written = false;
    for (((entry_name, _, _), text), _) in parsed.iter().zip(&needed).filter(|(_, n)| **n) {
        if !own_written && entry_name.as_str() > name {
            lock.push_str(ENTRY);
            lock.push_str(&own);
            own_written = true;
        }
        lock.push_str(ENTRY);
        lock.push_str(text);
    }
    if !own_written {
        lock.push_str(ENTRY);
        lock.push_str(&own);
    }
    Ok(lock)
}

/// An actor's name is its action, its component's file stem and its package's name in every
/// language: lower-case letters, digits and inner hyphens, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let fits = name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !fits || name.len() > 64 {
        bail!(
            "invalid actor name {name:?}: use lower-case letters, digits and single inner \
             hyphens, starting with a letter, at most 64 characters (it names the action, \
             the component file and the package)"
        );
    }
    Ok(())
}

/// The Rust type of actor `resize-image`: `ResizeImageActor`. The suffix keeps every name
/// from shadowing a type the template uses (`actor` would be the SDK's `Actor`, `string`
/// Rust's `String`) or being a keyword (`Self`).
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .chain(["Actor".to_owned()])
        .collect()
}

/// The SDK folder a Rust project depends on, as Cargo.toml writes it: `sdk`, else the
/// checkout this binary was built from; it must hold the `parade-guest` crate.
fn rust_sdk(sdk: Option<&Path>) -> anyhow::Result<String> {
    let chosen = sdk.unwrap_or(Path::new(BUILT_FROM_SDK));
    let manifest = chosen.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest)
        .is_ok_and(|text| text.contains("name = \"parade-guest\""));
    if !is_sdk {
        bail!(
            "{} is not Parade's Rust SDK (no parade-guest Cargo.toml there): the SDK is not on \
             crates.io, so a Rust actor depends on the guest-sdk folder of a Parade checkout; \
             pass it with --sdk PATH/TO/parade/guest-sdk",
            chosen.display()
        );
    }
    let absolute = chosen
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", chosen.display()))?;
    Ok(absolute.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_every_language_or_are_refused() {
        for good in ["resize", "resize-image", "a1"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Resize", "1up", "-a", "a-", "a--b", "a_b", "a.b", "a/b"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid actor name"), "{bad}: {e}");
        }
        assert_eq!(type_name("resize-image"), "ResizeImageActor");
    }

    #[test]
    fn a_project_is_written_only_into_an_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let e = new_project("shout", Language::Python, Some(dir.path()), None).unwrap_err();
        assert!(e.to_string().contains("is not empty"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_project_carries_the_hosts_wit_and_no_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::Python, Language::Js, Language::C] {
            let project = dir.path().join(language.name());
            new_project("shout", language, Some(&project), None).unwrap();
            assert_eq!(
                std::fs::read_to_string(project.join("wit/actor.wit")).unwrap(),
                include_str!("../../../wit/actor.wit")
            );
            for entry in walk(&project) {
                let text = std::fs::read_to_string(&entry).unwrap();
                assert!(
                    !text.contains("{{"),
                    "{} keeps a placeholder",
                    entry.display()
                );
            }
            assert!(project.join("shout.toml").is_file());
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
