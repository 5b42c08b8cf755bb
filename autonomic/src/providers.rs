//! Providers that start real processes: `local` (worker processes on this
//! machine standing in for cloud machines, with an emulated boot time) and
//! `command` (user scripts that start and stop machines through a cloud's
//! CLI). The `simulated` provider lives with the simulator.

mod command;
mod local;

use std::ffi::OsString;
use std::process::Command;

pub use command::CommandProvider;
pub use local::LocalProvider;

/// The worker command line a provider spawns, e.g. `halley worker --peer
/// <addr>`; `--resource <class> --slots <n>` is appended per machine.
#[derive(Debug, Clone)]
pub struct WorkerLine {
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Asks a process to finish its tasks and exit (SIGTERM).
fn terminate(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(drop)
}
