//! `parade plugin check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::runtime::{PluginLimits, Runtime};

#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Load components, check they implement the parade:actor world, and print the actions
    /// each serves (FILE, then its actions, tab-separated). Exit 2 if any is unusable.
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

pub(super) async fn run(command: &PluginCommand) -> anyhow::Result<ExitCode> {
    let PluginCommand::Check { files } = command;
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
