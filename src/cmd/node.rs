//! `halley node` (placeholder until its issue lands).

use crate::exit::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Outcome {
    Err(Failure::bad_input(anyhow::anyhow!(
        "`halley node` is not built yet"
    )))
}
