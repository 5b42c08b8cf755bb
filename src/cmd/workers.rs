//! The workers of a job of shell commands, started and stopped by the
//! autonomic manager: shared by `halley run` (a bag) and `halley workflow`
//! (each bag stage's commands).
//!
//! Who talks to whom: the command's loop submits tasks through a
//! [`halley_paradigms::master::Master`] and hands results, counters and
//! heartbeats to a [`WorkerPool`] ([`pool`]); the pool is the manager's
//! ([`managed::ManagedPool`]), which starts `halley worker` processes per
//! the policy and accounts for every machine. [`progress::Display`] draws
//! the progress line with the pool's status (workers by class, spend,
//! projected finish against the deadline).

pub mod managed;
pub mod pool;
pub mod progress;

pub use managed::{MachineRecord, ManagedPool};
pub use pool::WorkerPool;
pub use progress::Display;

use halley_paradigms::master::{Master, MasterError};
use halley_substrate::Space;

/// One tick of a job's loop while no result came: the workers heard from
/// and the job's counters go to the pool, whose decisions go to the log;
/// returns the pool's status for the progress line.
pub async fn tick<S: Space>(
    master: &Master<S>,
    pool: &mut impl WorkerPool,
    display: &Display,
) -> Result<String, MasterError> {
    let workers = master.workers().await?;
    let progress = master.progress();
    for decision in pool.tick(&progress, &workers) {
        display.log(&decision.to_string());
    }
    Ok(pool.status(&progress))
}
