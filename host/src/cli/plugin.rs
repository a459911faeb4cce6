//! `parade plugin check|new|build|call`: the plugin author's commands. `check` loads
//! components here; `new` is `plugin_new.rs` (projects from templates), `build` is
//! `plugin_build.rs` (each language's toolchain, then the same check), `call` is
//! `plugin_call.rs` (one task, in a node's sandbox, with no store).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::plugin_new::Language;
use crate::runtime::{PluginLimits, Runtime};

#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Load components, check they implement the parade:actor world, and print the actions
    /// each serves (FILE, then its actions, tab-separated). Exit 2 if any is unusable.
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Make a new actor project: a working actor serving the action NAME, the node's WIT,
    /// the language's build manifest, its plugin settings (NAME.toml) and a README.
    ///
    /// Rust depends on the SDK (parade-guest, not on crates.io) by path: the guest-sdk
    /// folder of the checkout this parade was built from, or --sdk; its Cargo.lock pins the
    /// SDK's dependencies, and its .cargo/config.toml builds into the target folder every
    /// Rust project shares (~/.cache/parade/rust-target), so they compile once. Python pins
    /// componentize-py, JavaScript componentize-js, and C builds with clang, wasi-libc and
    /// parade-wit-c. Refuses a folder that exists and is not empty.
    New {
        /// The actor's name: its action, component file and package name (lower-case
        /// letters, digits and hyphens).
        name: String,
        /// The language to write it in.
        #[arg(long = "lang", value_enum)]
        language: Language,
        /// Where to write it (default: ./NAME).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Rust only: the guest-sdk folder of a Parade checkout.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build an actor project into DIR/NAME.wasm with its language's tools, check it as
    /// `check` does, and print it (`built`, FILE, SIZE, CONTRACT, TIME), its actions, and
    /// with --install the files written. Exit 2 on any error.
    ///
    /// The language is recognised by its manifest: Cargo.toml (cargo build --target
    /// wasm32-wasip2), package.json (npm install if needed, node build.mjs), app.py with
    /// pyproject.toml or requirements.txt (componentize-py from .venv or PATH, or a new
    /// .venv), or
    /// compile_flags.txt with .c files (parade-wit-c bindings, clang, parade-wit-c
    /// component). A missing tool is named with how to install it.
    Build {
        /// The project folder.
        #[arg(default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// Also write NAME.wasm (and NAME.toml, if the project has it) into this plugins
        /// folder, each as a hidden file renamed into place: a running node reloads it.
        #[arg(long, value_name = "PLUGINS_DIR")]
        install: Option<PathBuf>,
    },
    /// Run one task in a component, in the sandbox and with the limits a node gives it, with
    /// no store: print its log lines, what it enqueued, its code and status.
    #[command(after_help = super::plugin_call::AFTER_HELP)]
    Call(super::plugin_call::CallArgs),
}

pub(super) async fn run(command: &PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Check { files } => check(files).await,
        PluginCommand::New {
            name,
            language,
            dir,
            sdk,
        } => {
            let dir =
                super::plugin_new::new_project(name, *language, dir.as_deref(), sdk.as_deref())?;
            println!("{}", dir.display());
            eprintln!(
                "parade: a {} actor serving {name:?} is in {}; next: `parade plugin build {}`",
                language.name(),
                dir.display(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Build { dir, install } => {
            super::plugin_build::build(dir, install.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Call(args) => super::plugin_call::run(args).await,
    }
}

async fn check(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(None)?;
    let mut all_good = true;
    for file in files {
        match runtime.load_file(file, PluginLimits::default()).await {
            Ok(plugin) => println!("{}\t{}", file.display(), plugin.actions.join(" ")),
            Err(e) => {
                eprintln!("parade: {e:#}");
                all_good = false;
            }
        }
    }
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_ERROR)
    })
}
