//! `halley policy check <file>`: prints `ok` (with any warnings on stderr),
//! or exits 2 naming the file, line, field and what was expected.

use halley_autonomic::policy::Policy;

use crate::exit::{Failure, Outcome, SUCCESS};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a policy file: prints `ok` or names the bad field and line.
    Check { file: std::path::PathBuf },
}

pub fn run(command: Command) -> Outcome {
    match command {
        Command::Check { file } => {
            let policy = Policy::load(&file).map_err(Failure::bad_input)?;
            for warning in policy.warnings() {
                eprintln!("warning: {}: {warning}", file.display());
            }
            println!("ok");
            Ok(SUCCESS)
        }
    }
}
