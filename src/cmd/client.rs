//! `halley out | rd | in | scan | status` (placeholder until its issue lands).

use crate::exit::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct OutArgs {}
#[derive(Debug, clap::Args)]
pub struct WaitArgs {}
#[derive(Debug, clap::Args)]
pub struct ScanArgs {}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

fn pending() -> Outcome {
    Err(Failure::bad_input(anyhow::anyhow!("not built yet")))
}
pub fn out(_: OutArgs) -> Outcome {
    pending()
}
pub fn rd(_: WaitArgs) -> Outcome {
    pending()
}
pub fn take(_: WaitArgs) -> Outcome {
    pending()
}
pub fn scan(_: ScanArgs) -> Outcome {
    pending()
}
pub fn status(_: StatusArgs) -> Outcome {
    pending()
}
