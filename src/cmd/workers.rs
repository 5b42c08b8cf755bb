//! The workers of a job of shell commands, started and stopped by the
//! autonomic manager: shared by `halley run` (a bag), `halley mapreduce`
//! (map and reduce tasks as `halley mr-task` lines) and `halley workflow`
//! (every stage's tasks).
//!
//! Who talks to whom: [`with_space`] gives the job a space its worker
//! processes reach; the job's loop submits tasks through a
//! [`halley_paradigms::master::Master`] and, through [`Results`], hands
//! results, counters and heartbeats to a [`WorkerPool`] ([`pool`]); the
//! pool is the manager's ([`managed::ManagedPool`]), which starts `halley
//! worker` processes per the policy and accounts for every machine.
//! [`progress::Display`] draws the progress line with the pool's status
//! (workers by class, spend, projected finish against the deadline).

pub mod managed;
pub mod pool;
pub mod progress;
pub mod results;

pub use managed::{MachineRecord, ManagedPool};
pub use pool::WorkerPool;
pub use progress::Display;
pub use results::{Results, with_pending};

use anyhow::anyhow;
use halley_paradigms::master::{Master, MasterError, Progress};
use halley_substrate::Space;
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::node::Node;

use crate::exit::{Failure, Outcome};

/// A job that needs a space its worker processes can reach.
pub(crate) trait SpaceJob {
    /// Runs the job on `space`, whose address for workers is `peer`.
    async fn with<S: Space>(self, space: S, peer: &str) -> Outcome;
}

/// Runs `job` on a runtime of its own (two threads: the loop and the
/// space), with the space of `peer` (reached with the key in `secret`, if
/// any), or without it an embedded space served on a free port of
/// 127.0.0.1 for the workers.
pub(crate) fn with_space(
    peer: Option<&str>,
    secret: Option<&std::path::Path>,
    job: impl SpaceJob,
) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::unreachable)?;
    runtime.block_on(async {
        match peer {
            Some(peer) => {
                let space = super::worker::connect(peer, None, secret).await?;
                job.with(space, peer).await
            }
            None => {
                let space = EmbeddedSpace::new();
                let listen = "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .map_err(Failure::unreachable)?;
                let node = Node::start(listen, space.clone()).await.map_err(|e| {
                    Failure::unreachable(anyhow!(e).context("cannot serve the embedded space"))
                })?;
                let peer = node.address().to_string();
                let outcome = job.with(space, &peer).await;
                node.stop().await;
                outcome
            }
        }
    })
}

/// One tick of a job's loop while no result came: the workers heard from
/// and the job's counters (`progress`: the master's, with the tasks still
/// to come) go to the pool, whose decisions go to the log; returns the
/// pool's status for the progress line.
pub async fn tick<S: Space>(
    master: &Master<S>,
    pool: &mut impl WorkerPool,
    display: &Display,
    progress: &Progress,
) -> Result<String, MasterError> {
    let workers = master.workers().await?;
    for decision in pool.tick(progress, &workers) {
        display.log(&decision.to_string());
    }
    Ok(pool.status(progress))
}
