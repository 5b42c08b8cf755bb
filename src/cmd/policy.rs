//! `halley policy` (placeholder until its issue lands).

use crate::exit::{Failure, Outcome};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a policy file: prints `ok` or names the bad field and line.
    Check { file: std::path::PathBuf },
}

pub fn run(_command: Command) -> Outcome {
    Err(Failure::bad_input(anyhow::anyhow!(
        "`halley policy` is not built yet"
    )))
}
