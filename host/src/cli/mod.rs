//! The `parade` command line: `parade run` is the node, `parade migrate` prepares a
//! database, `parade task ...` adds, inspects, waits for, cancels, prunes and deletes tasks,
//! `parade plugin new|build|call|check` are the plugin author's path (a project from a
//! template, its build, one task run without a store, loading components), `parade schedule
//! list` shows the periodic tasks of the configuration. Other tools script against these commands, so their output and
//! exit codes are stable: 0 success, 2 error (and 1 for `task wait` if the task ended
//! aborted, for `task cancel` if an id names no task; `plugin call` exits by the task's
//! outcome, see `plugin_call.rs`).
//!
//! The dashboard (`admin/`) shows tasks as these commands print them: it uses [`due`] for
//! when a delayed task is due, and `cancel`'s answers for `POST /api/task/cancel`.

pub(crate) mod cancel;
pub(crate) mod due;
mod plugin;
mod plugin_build;
mod plugin_call;
mod plugin_new;
mod prune;
mod redact;
mod run;
mod schedule;
mod task;
mod task_file;
mod terminal;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for any error.
const EXIT_ERROR: u8 = 2;

/// Parade: a durable task queue with a WebAssembly worker host.
#[derive(Debug, Parser)]
#[command(name = "parade", version, about, long_about = None)]
pub struct Cli {
    /// The queue's database: sqlite://PATH (created on first use) or
    /// postgres://USER@HOST/DB (run `parade migrate` first). Default: `[database] url` of
    /// the configuration, else sqlite://parade.db.
    #[arg(long, global = true, env = "PARADE_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// The node's configuration file. Default: ./parade.toml if it exists.
    #[arg(long, global = true, env = "PARADE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: own tasks of the plugins' actions and perform them, following changes
    /// to the configuration and the plugins folder live, until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Create or upgrade the queue schema in the database.
    Migrate,
    /// Add, list, show, wait for, cancel, prune and delete tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Write, build, try and check WebAssembly plugins: new, build, call, check.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// List the configuration's periodic tasks (`[[schedule]]` entries).
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node reports what it does; the other commands speak only to warn.
    let (default_level, format) = match &cli.command {
        Command::Run(args) => ("info", args.log_format),
        _ => ("warn", run::LogFormat::Text),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        run::LogFormat::Json => logs.json().init(),
        run::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("parade: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parade: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The configuration: `--config FILE`, else ./parade.toml if it exists, else the defaults.
fn node_config(file: Option<&Path>) -> anyhow::Result<crate::config::NodeConfig> {
    use crate::config::{NodeConfig, DEFAULT_CONFIG_FILE};
    match file {
        Some(file) => Ok(NodeConfig::load(file)?),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            Ok(NodeConfig::load(Path::new(DEFAULT_CONFIG_FILE))?)
        }
        None => Ok(NodeConfig::defaults(Path::new(""))),
    }
}

/// The queue's database: `--database URL` (clap fills it from `PARADE_DATABASE_URL` when
/// the flag is absent), else the configuration's `[database] url`, else
/// [`DEFAULT_DATABASE_URL`](crate::queue::DEFAULT_DATABASE_URL). A blank value is passed on
/// as it is: each command says in its own words that it cannot use it.
fn database_url(flag: Option<&str>, database: &crate::config::DatabaseConfig) -> String {
    flag.or(database.url.as_deref())
        .unwrap_or(crate::queue::DEFAULT_DATABASE_URL)
        .to_owned()
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli {
        database,
        config,
        command,
    } = cli;
    if let Command::Plugin(command) = &command {
        return plugin::run(command).await;
    }
    let config = node_config(config.as_deref())?;
    let url = || {
        let url = database_url(database.as_deref(), &config.database);
        if url.trim().is_empty() {
            anyhow::bail!(
                "no database: pass --database URL or set PARADE_DATABASE_URL \
                 (sqlite://PATH or postgres://USER@HOST/DB)"
            );
        }
        Ok(url)
    };
    // Errors may quote the database URL (a URL Parade refuses, a store it cannot open):
    // never with its password.
    match &command {
        Command::Run(args) => {
            let url = database_url(database.as_deref(), &config.database);
            run::run(args, config, database)
                .await
                .map_err(|e| redact::hide_in_error(e, &url))
        }
        Command::Migrate => {
            let url = url()?;
            crate::queue::migrate(&url)
                .await
                .map_err(|e| redact::hide_in_error(e.into(), &url))?;
            println!("migrated");
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(command) => {
            let url = url()?;
            let queue = crate::queue::open(&url)
                .await
                .map_err(|e| redact::hide_in_error(e.into(), &url))?;
            task::run(command, queue.as_ref(), &config.retention)
                .await
                .map_err(|e| redact::hide_in_error(e, &url))
        }
        Command::Plugin(command) => plugin::run(command).await,
        Command::Schedule(command) => schedule::run(command, &config, url).await,
    }
}
