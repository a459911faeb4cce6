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

/// The Rust SDK of the checkout this binary was built from: a Rust project's default
/// `parade-guest` path (the SDK is not on crates.io).
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

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
    let files: &[TemplateFile] = match language {
        Language::Rust => &RUST,
        Language::Python => &PYTHON,
        Language::Js => &JS,
        Language::C => &C,
    };
    let version = ContractVersion::CURRENT.number();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk}}", &sdk)
            .replace("{{version}}", version)
    };
    for (path, text) in files.iter().chain(&COMMON).chain(&WIT) {
        let path = dir.join(fill(path));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, fill(text))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
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

/// `resize-image` as a Rust type: `ResizeImage`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
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
        assert_eq!(type_name("resize-image"), "ResizeImage");
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
