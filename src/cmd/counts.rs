//! Counts given on the command line, bounded as the policy bounds them
//! (`halley_autonomic::policy::{MAX_MACHINES, MAX_SLOTS}`): a typo of a few
//! zeros is an error that says the range, not ten thousand processes.

use halley_autonomic::policy::{MAX_MACHINES, MAX_SLOTS};
use halley_paradigms::mapreduce::MAX_REDUCERS;

/// Parses `text` as a whole number from `least` to `most`.
fn within(text: &str, least: u32, most: u32, what: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (least..=most).contains(&n) => Ok(n),
        _ => Err(format!("expected {least} to {most} {what}")),
    }
}

/// `--workers` / `--slots` of `run`, `mapreduce`, `workflow`: private
/// workers in place of the first `static` class's `count`.
pub fn workers(text: &str) -> Result<u32, String> {
    within(text, 0, MAX_MACHINES, "workers")
}

/// `halley worker --slots`: tasks a worker runs at once.
pub fn slots(text: &str) -> Result<u32, String> {
    within(text, 1, MAX_SLOTS, "task slots")
}

/// `halley mapreduce --reducers`: reduce tasks, each a partition.
pub fn reducers(text: &str) -> Result<usize, String> {
    let most = u32::try_from(MAX_REDUCERS).unwrap_or(u32::MAX);
    within(text, 1, most, "reducers").map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_within_their_bounds() {
        assert_eq!(workers("0"), Ok(0));
        assert_eq!(workers("10000"), Ok(10_000));
        assert_eq!(workers("10001"), Err("expected 0 to 10000 workers".into()));
        assert_eq!(workers("-1"), Err("expected 0 to 10000 workers".into()));
        assert_eq!(workers("4e9"), Err("expected 0 to 10000 workers".into()));
        assert_eq!(slots("0"), Err("expected 1 to 1024 task slots".into()));
        assert_eq!(slots("1024"), Ok(1024));
        assert_eq!(reducers("0"), Err("expected 1 to 100000 reducers".into()));
        assert_eq!(reducers("7"), Ok(7));
    }
}
