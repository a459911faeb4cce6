//! The `parade` command line: `parade migrate` prepares a database, `parade task ...` adds,
//! inspects, waits for and deletes tasks, `parade plugin check` loads components. Other
//! tools script against these commands, so their output and exit codes are stable: 0
//! success, 2 error (and for `task wait`, 1 if the task ended aborted).

mod plugin;
mod task;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for any error.
const EXIT_ERROR: u8 = 2;

/// Parade: a durable task queue with a WebAssembly worker host.
#[derive(Debug, Parser)]
#[command(name = "parade", version, about, long_about = None)]
pub struct Cli {
    /// The queue's database: sqlite://PATH (created on first use) or
    /// postgres://USER@HOST/DB (run `parade migrate` first).
    #[arg(
        long,
        global = true,
        env = "PARADE_DATABASE_URL",
        value_name = "URL",
        default_value = crate::queue::DEFAULT_DATABASE_URL
    )]
    database: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the queue schema in the database.
    Migrate,
    /// Add, list, show, wait for and delete tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Check WebAssembly plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARADE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Plugin(command) = &cli.command {
        return plugin::run(command).await;
    }
    let url = cli.database.as_str();
    if url.trim().is_empty() {
        anyhow::bail!(
            "no database: pass --database URL or set PARADE_DATABASE_URL \
             (sqlite://PATH or postgres://USER@HOST/DB)"
        );
    }
    match &cli.command {
        Command::Migrate => {
            crate::queue::migrate(url).await?;
            println!("migrated");
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(command) => {
            let queue = crate::queue::open(url).await?;
            task::run(command, queue.as_ref()).await
        }
        Command::Plugin(command) => plugin::run(command).await,
    }
}
