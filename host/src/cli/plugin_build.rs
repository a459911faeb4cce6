//! `parade plugin build [DIR] [--install PLUGINS_DIR]`: builds an actor project into
//! `DIR/NAME.wasm` with its language's own tools, checks the component as `plugin check`
//! does, and can install it into a node's plugins folder.
//!
//! The language is recognised by its build manifest: `Cargo.toml` (Rust), `package.json`
//! (JavaScript), `app.py` beside `pyproject.toml` or `requirements.txt` (Python), and
//! `compile_flags.txt` beside `*.c` files (C). The component is `DIR/NAME.wasm`, NAME
//! being the package's name (Cargo, npm, pyproject), for C the one `.c` file's stem, else
//! the folder's name. Each is built with the commands
//! `docs/guests.md` gives (Rust: `cargo build --target wasm32-wasip2`). A tool that is
//! missing is named, with how to install it; only project-local steps are taken on the
//! author's behalf (`npm install`, a Python virtualenv), never system-wide installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::plugin_new::Language;

/// The componentize-py release the Python template pins (in its `requirements.txt`).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// An actor project: its folder, language and name (the component is `DIR/NAME.wasm`).
#[derive(Debug)]
pub(super) struct Project {
    pub dir: PathBuf,
    pub language: Language,
    pub name: String,
}

impl Project {
    /// Recognises the project in `dir` by its build manifest.
    pub(super) fn find(dir: &Path) -> anyhow::Result<Project> {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        let folder_name = || -> anyhow::Result<String> {
            let absolute = dir
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            let name = absolute
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "actor".into());
            component_stem(name, &absolute, "folder name")
        };
        let (language, name) = if dir.join("Cargo.toml").is_file() {
            (Language::Rust, cargo_package_name(&dir.join("Cargo.toml"))?)
        } else if dir.join("package.json").is_file() {
            (Language::Js, npm_package_name(&dir.join("package.json"))?)
        } else if dir.join("app.py").is_file() && dir.join("pyproject.toml").is_file() {
            (
                Language::Python,
                python_project_name(&dir.join("pyproject.toml"))?,
            )
        } else if dir.join("app.py").is_file() && dir.join("requirements.txt").is_file() {
            (Language::Python, folder_name()?)
        } else if dir.join("compile_flags.txt").is_file() && !c_sources(dir)?.is_empty() {
            // One source file names the actor, as `plugin new` writes it; several, the folder.
            let name = match c_sources(dir)?.as_slice() {
                [only] => component_stem(
                    only.trim_end_matches(".c").to_owned(),
                    &dir.join(only),
                    "file name",
                )?,
                _ => folder_name()?,
            };
            (Language::C, name)
        } else {
            bail!(
                "{} is not an actor project: it has no Cargo.toml (Rust), package.json \
                 (JavaScript), app.py with requirements.txt or pyproject.toml (Python), or \
                 compile_flags.txt with .c files (C); `parade plugin new NAME --lang LANG` \
                 makes one",
                dir.display()
            );
        };
        Ok(Project {
            dir: dir.to_owned(),
            language,
            name,
        })
    }

    /// Where the build puts the component.
    pub(super) fn component(&self) -> PathBuf {
        self.dir.join(format!("{}.wasm", self.name))
    }

    /// The plugin's settings beside the component, if the project has them.
    fn sidecar(&self) -> Option<PathBuf> {
        Some(self.dir.join(format!("{}.toml", self.name))).filter(|p| p.is_file())
    }

    /// Runs the language's toolchain; the component is then at [`Project::component`].
    pub(super) fn build(&self) -> anyhow::Result<()> {
        match self.language {
            Language::Rust => self.build_rust(),
            Language::Python => self.build_python(),
            Language::Js => self.build_js(),
            Language::C => self.build_c(),
        }
    }

    fn build_rust(&self) -> anyhow::Result<()> {
        let cargo = need(
            "cargo",
            "Rust actors need cargo: install Rust with rustup (https://rustup.rs), then \
             `rustup target add wasm32-wasip2`",
        )?;
        if let Some(rustup) = find_program("rustup") {
            let installed = Command::new(rustup)
                .args(["target", "list", "--installed"])
                .output()
                .context("cannot run rustup")?;
            if !String::from_utf8_lossy(&installed.stdout)
                .lines()
                .any(|t| t.trim() == "wasm32-wasip2")
            {
                bail!(
                    "Rust actors build for the wasm32-wasip2 target, which is not installed: \
                     run `rustup target add wasm32-wasip2`"
                );
            }
        }
        let mut command = Command::new(cargo);
        command
            .current_dir(&self.dir)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
            ])
            .stderr(Stdio::inherit());
        let output = command.output().context("cannot run cargo")?;
        if !output.status.success() {
            bail!(
                "cargo build failed ({}); its errors are above",
                output.status
            );
        }
        // Cargo says where it put the artefact: the target folder may be anywhere
        // (CARGO_TARGET_DIR, a workspace).
        let artefact = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter(|m| {
                m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
            })
            .flat_map(|m| {
                m["filenames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| f.as_str().map(PathBuf::from))
            })
            .find(|f| f.extension().is_some_and(|e| e == "wasm"));
        let Some(artefact) = artefact else {
            bail!(
                "cargo built no .wasm library: {}'s [lib] needs crate-type = [\"cdylib\"]",
                self.dir.join("Cargo.toml").display()
            );
        };
        copy(&artefact, &self.component())
    }

    fn build_python(&self) -> anyhow::Result<()> {
        // The programs of .venv by absolute path: a relative one would be looked up from
        // inside the project, where each step runs.
        let venv = std::path::absolute(self.dir.join(".venv"))
            .with_context(|| format!("cannot resolve {}/.venv", self.dir.display()))?;
        let venv_tool = venv.join("bin/componentize-py");
        let tool = if venv_tool.is_file() {
            venv_tool
        } else if let Some(on_path) = find_program("componentize-py") {
            on_path
        } else {
            let python = need(
                "python3",
                "Python actors are built with componentize-py, installed with Python 3.10 or \
                 newer (python3, with its venv module; Debian: `sudo apt-get install python3 \
                 python3-venv`)",
            )?;
            eprintln!("parade: installing {COMPONENTIZE_PY} into .venv (PyPI)");
            run(
                Command::new(python)
                    .current_dir(&self.dir)
                    .args(["-m", "venv", ".venv"]),
                "python3 -m venv .venv",
            )?;
            let requirements = if self.dir.join("requirements.txt").is_file() {
                vec!["-r", "requirements.txt"]
            } else {
                vec![COMPONENTIZE_PY]
            };
            run(
                Command::new(venv.join("bin/pip"))
                    .current_dir(&self.dir)
                    .args(["install", "--disable-pip-version-check", "--quiet"])
                    .args(requirements),
                ".venv/bin/pip install",
            )?;
            venv_tool
        };
        let output = format!("{}.wasm", self.name);
        run(
            Command::new(&tool).current_dir(&self.dir).args([
                "--wit-path",
                "wit",
                "--world",
                "actor",
                "componentize",
                "app",
                "--output",
                &output,
            ]),
            "componentize-py componentize",
        )
    }

    fn build_js(&self) -> anyhow::Result<()> {
        let node = need(
            "node",
            "JavaScript actors are built with componentize-js, which runs on Node.js 18 or \
             newer (https://nodejs.org; Debian: `sudo apt-get install nodejs npm`)",
        )?;
        if !self
            .dir
            .join("node_modules/@bytecodealliance/componentize-js")
            .is_dir()
        {
            let npm = need(
                "npm",
                "JavaScript actors install componentize-js with npm (Debian: `sudo apt-get \
                 install npm`)",
            )?;
            run(
                Command::new(npm).current_dir(&self.dir).args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ]),
                "npm install",
            )?;
        }
        let output = format!("{}.wasm", self.name);
        run(
            Command::new(node)
                .current_dir(&self.dir)
                .args(["build.mjs", "wit", &output]),
            "node build.mjs",
        )
    }

    fn build_c(&self) -> anyhow::Result<()> {
        const C_TOOLS: &str = "clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (Debian: \
                               `sudo apt-get install clang lld wasi-libc \
                               libclang-rt-14-dev-wasm32`)";
        let clang = need(
            "clang",
            &format!("C actors are built with clang for wasm32-wasi: install {C_TOOLS}"),
        )?;
        let wit_c = beside_parade("parade-wit-c")
            .or_else(|| find_program("parade-wit-c"))
            .context(
                "C actors need parade-wit-c for their bindings and to make the component: \
                 `cargo install --locked --path PARADE/tools/wit-c` in a Parade checkout puts \
                 it on your PATH",
            )?;
        run(
            Command::new(&wit_c).current_dir(&self.dir).args([
                "bindings", "--wit", "wit", "--world", "actor", "--out", "bindings",
            ]),
            "parade-wit-c bindings",
        )?;
        std::fs::create_dir_all(self.dir.join("target"))
            .with_context(|| format!("cannot create {}/target", self.dir.display()))?;
        let core = format!("target/{}.core.wasm", self.name);
        let mut compile = Command::new(clang);
        compile
            .current_dir(&self.dir)
            .args([
                "--target=wasm32-wasi",
                // A reactor: no main; the component's exports are the entry points.
                "-mexec-model=reactor",
                "-O2",
                "-Wall",
                "-Wl,--strip-debug",
                "-Ibindings",
            ])
            .args(c_sources(&self.dir)?)
            .args([
                "bindings/actor.c",
                "bindings/actor_component_type.o",
                "-o",
                &core,
            ]);
        run(&mut compile, "clang").with_context(|| {
            format!("if clang says a header or wasm32 library is missing, install {C_TOOLS}")
        })?;
        let output = format!("{}.wasm", self.name);
        run(
            Command::new(&wit_c).current_dir(&self.dir).args([
                "component",
                &core,
                "--output",
                &output,
            ]),
            "parade-wit-c component",
        )
    }
}

/// The `[package] name` of a Cargo.toml.
fn cargo_package_name(manifest: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", manifest.display()))?;
    table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{}: no [package] name", manifest.display()))
        .and_then(|name| component_stem(name, manifest, "[package] name"))
}

/// The `[project] name` of a pyproject.toml.
fn python_project_name(manifest: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", manifest.display()))?;
    table
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{}: no [project] name", manifest.display()))
        .and_then(|name| component_stem(name, manifest, "[project] name"))
}

/// The `name` of a package.json, without its `@scope/`.
fn npm_package_name(manifest: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", manifest.display()))?;
    let name = package["name"]
        .as_str()
        .with_context(|| format!("{}: no \"name\"", manifest.display()))?;
    let unscoped = name.rsplit('/').next().unwrap_or(name).to_owned();
    component_stem(unscoped, manifest, "\"name\"")
}

/// `name`, if it can name the component `NAME.wasm` in the project's folder and in a
/// node's plugins folder (where `--install` writes it): not empty, no path separator, and
/// not hidden (a node skips hidden files; `..` is one). Else an error naming `source` and
/// its `key`.
fn component_stem(name: String, source: &Path, key: &str) -> anyhow::Result<String> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        bail!(
            "{}: {key} {name:?} cannot name a component file (NAME.wasm): use one without \
             `/`, `\\` or a leading `.`",
            source.display()
        );
    }
    Ok(name)
}

/// The `.c` files at the top of `dir`, sorted, as paths relative to it.
fn c_sources(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut sources: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".c"))
        .collect();
    sources.sort();
    Ok(sources)
}

/// `program` on the PATH, as an absolute path (the build steps run inside the project, where
/// a relative PATH entry would point elsewhere).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .and_then(|found| std::path::absolute(found).ok())
}

/// `program` in the folder of the running `parade` (where `cargo build` puts the tools of
/// this workspace).
fn beside_parade(program: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join(program)).filter(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `program` on the PATH, or an error saying `why` it is needed and how to install it.
fn need(program: &str, why: &str) -> anyhow::Result<PathBuf> {
    find_program(program).with_context(|| format!("{program} not found on PATH. {why}"))
}

/// Runs a build step, its output on stderr (stdout stays the build's report); an error
/// names the step.
fn run(command: &mut Command, step: &str) -> anyhow::Result<()> {
    let status = command
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status}); its errors are above");
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// Writes `from` into `dir` as `name`, atomically: a hidden file first (which a node's
/// watcher skips), renamed into place, so a running node sees the whole file or none.
fn install_file(from: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let hidden = dir.join(format!(".{name}.installing"));
    let target = dir.join(name);
    let installed = copy(from, &hidden).and_then(|()| {
        std::fs::rename(&hidden, &target).with_context(|| {
            format!(
                "cannot move {} into place as {}",
                hidden.display(),
                target.display()
            )
        })
    });
    if installed.is_err() {
        // Not left to fill the folder: a node skips it, but nobody else removes it.
        let _ = std::fs::remove_file(&hidden);
    }
    installed.map(|()| target)
}

/// Builds the project in `dir`, checks its component, prints what it built, and installs
/// it into `install` if given. Returns the component.
pub(super) async fn build(dir: &Path, install: Option<&Path>) -> anyhow::Result<PathBuf> {
    let project = Project::find(dir)?;
    if let Some(plugins) = install {
        if !plugins.is_dir() {
            bail!(
                "--install {}: no such folder (a node's [plugins] dir, default plugins/ \
                 beside parade.toml)",
                plugins.display()
            );
        }
    }
    let started = std::time::Instant::now();
    project.build().with_context(|| {
        format!(
            "building the {} actor in {}",
            project.language.name(),
            dir.display()
        )
    })?;
    let component = project.component();
    // The same checks as a node's (and `plugin call`'s): its settings, then the component.
    let (_runtime, plugin) = super::plugin_call::load_like_a_node(&component, &[])
        .await
        .context("the built component is not a usable Parade actor")?;
    let size = std::fs::metadata(&component)?.len();
    println!(
        "built\t{}\t{}\t{}\t{:.1}s",
        component.display(),
        human_size(size),
        plugin.contract(),
        started.elapsed().as_secs_f64()
    );
    println!("actions\t{}", plugin.actions.join(" "));
    if let Some(plugins) = install {
        // Settings first: the node reads them when the component appears.
        if let Some(sidecar) = project.sidecar() {
            let installed = install_file(&sidecar, plugins, &format!("{}.toml", project.name))?;
            println!("installed\t{}", installed.display());
        }
        let installed = install_file(&component, plugins, &format!("{}.wasm", project.name))?;
        println!("installed\t{}", installed.display());
    }
    Ok(component)
}

/// `43.5 KiB`, `18.6 MiB`.
fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 10 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::plugin_new::new_project;

    #[test]
    fn a_new_project_is_recognised_by_its_manifest_and_named_by_it_not_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::Python, Language::Js, Language::C] {
            let folder = dir.path().join(format!("elsewhere-{}", language.name()));
            new_project("shout", language, Some(&folder), None).unwrap();
            let project = Project::find(&folder).unwrap();
            assert_eq!(project.language, language);
            assert_eq!(project.name, "shout", "{}", language.name());
            assert_eq!(project.component(), folder.join("shout.wasm"));
            assert_eq!(project.sidecar(), Some(folder.join("shout.toml")));
        }
    }

    #[test]
    fn a_package_name_that_is_not_a_plain_file_name_is_refused_naming_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let python = dir.path().join("python");
        new_project("shout", Language::Python, Some(&python), None).unwrap();
        let manifest = python.join("pyproject.toml");
        for bad in ["../../escape", ".hidden", "a\\b"] {
            std::fs::write(
                &manifest,
                format!(
                    "[project]\nname = {}\n",
                    serde_json::to_string(bad).unwrap()
                ),
            )
            .unwrap();
            let e = format!("{:#}", Project::find(&python).unwrap_err());
            assert!(
                e.contains(&format!("{}: [project] name", manifest.display()))
                    && e.contains("cannot name a component file"),
                "{bad}: {e}"
            );
        }
        let js = dir.path().join("js");
        new_project("shout", Language::Js, Some(&js), None).unwrap();
        std::fs::write(js.join("package.json"), r#"{"name": "@scope/.."}"#).unwrap();
        let e = format!("{:#}", Project::find(&js).unwrap_err());
        assert!(e.contains("package.json: \"name\""), "{e}");
    }

    #[test]
    fn an_install_that_cannot_be_moved_into_place_leaves_no_hidden_file() {
        let dir = tempfile::tempdir().unwrap();
        let built = dir.path().join("shout.wasm");
        std::fs::write(&built, "component").unwrap();
        let plugins = dir.path().join("plugins");
        // A folder in the way: the rename cannot replace it.
        std::fs::create_dir_all(plugins.join("shout.wasm/inside")).unwrap();
        let e = install_file(&built, &plugins, "shout.wasm").unwrap_err();
        assert!(e.to_string().contains("cannot move"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&plugins)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["shout.wasm"]);
    }
}
