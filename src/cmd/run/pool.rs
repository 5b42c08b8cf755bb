//! The workers of `halley run`, behind the seam where the autonomic manager
//! plugs in.
//!
//! [`WorkerPool`] is what `run` asks for workers: it is started once the
//! space is up, told the job's progress at every tick (and may start or
//! stop workers then, returning its decisions for `summary.json`), and shut
//! down at the end. [`FixedPool`] is the built-in default until the
//! manager lands: a fixed number of `halley worker` processes on this
//! machine, started with the job, killed when the pool is dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use halley_paradigms::master::Progress;
use halley_paradigms::task::{Heartbeat, TaskResult};

/// Starts and stops the workers of one job.
pub trait WorkerPool {
    /// Starts the initial workers, connected to `peer` for job `job`.
    fn start(&mut self, peer: &str, job: &str) -> anyhow::Result<()>;
    /// Called with each task's accepted result (its resource and duration
    /// feed the manager's estimates).
    fn task_finished(&mut self, result: &TaskResult);
    /// Called about once a second with the job's counters and the workers
    /// heard from; returns the decisions taken (with their reasons).
    fn tick(&mut self, progress: &Progress, workers: &[Heartbeat]) -> anyhow::Result<Vec<String>>;
    /// Waits up to `grace` for the workers to exit (they were told to stop),
    /// then kills those left.
    fn shutdown(&mut self, grace: Duration);
}

/// `count` local worker processes, `halley worker --job <job> --id local-<i>`.
#[derive(Debug)]
pub struct FixedPool {
    count: usize,
    children: Vec<Child>,
}

impl FixedPool {
    pub fn new(count: usize) -> Self {
        FixedPool {
            count,
            children: Vec::new(),
        }
    }
}

impl WorkerPool for FixedPool {
    fn start(&mut self, peer: &str, job: &str) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("cannot find the halley executable")?;
        for i in 0..self.count {
            let child = Command::new(&exe)
                .args([
                    "worker",
                    "--peer",
                    peer,
                    "--job",
                    job,
                    "--resource",
                    "local",
                ])
                .args(["--id", &format!("local-{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {} worker", exe.display()))?;
            self.children.push(child);
        }
        Ok(())
    }

    /// A fixed pool learns nothing from results.
    fn task_finished(&mut self, _result: &TaskResult) {}

    /// A fixed pool never scales.
    fn tick(
        &mut self,
        _progress: &Progress,
        _workers: &[Heartbeat],
    ) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn shutdown(&mut self, grace: Duration) {
        let until = Instant::now() + grace;
        while Instant::now() < until
            && self
                .children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FixedPool {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}
