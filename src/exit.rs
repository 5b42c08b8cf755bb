//! Exit codes of CONTRACT.md and the error that carries one.
//!
//! A command returns `Ok(SUCCESS)` or `Ok(NOT_FOUND)` when it ran, and a
//! [`Failure`] (bad input, unreachable space) when it could not.

/// The operation ran and succeeded.
pub const SUCCESS: u8 = 0;
/// The operation ran and found nothing / did not finish in time.
pub const NOT_FOUND: u8 = 1;
/// Bad input: unreadable file, syntax error, invalid policy, unknown flag.
pub const BAD_INPUT: u8 = 2;
/// Could not reach the space or peer, or the node failed.
pub const UNREACHABLE: u8 = 3;

/// A command that could not run, with the exit code that says why.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: BAD_INPUT,
            error: error.into(),
        }
    }

    pub fn unreachable(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: UNREACHABLE,
            error: error.into(),
        }
    }
}

/// What every command returns: an exit code when it ran.
pub type Outcome = Result<u8, Failure>;
