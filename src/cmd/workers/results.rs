//! A job's results as they come, the pool ticked between them: the loop
//! `halley run` and `halley mapreduce` share (a workflow's own loop also
//! waits for its MapReduce stages, and ticks with [`super::tick`]).

use std::time::Duration;

use halley_autonomic::planner::Decision;
use halley_paradigms::master::{Finished, Master, MasterError, Next, Progress};
use halley_substrate::Space;
use tokio::time::Instant;

use super::interrupt::{self, Signal};
use super::{Display, WorkerPool, tick};
use crate::exit::Failure;

/// How often the pool is ticked while no result comes.
const TICK: Duration = Duration::from_secs(1);

/// The progress line and the pool's last status.
#[derive(Debug)]
pub struct Results {
    display: Display,
    status: String,
    next_tick: Instant,
    spent: f64,
    /// Slots the workers' heartbeats say are busy.
    busy: usize,
}

impl Results {
    /// For a job of `total` tasks.
    fn new(total: usize) -> Self {
        interrupt::listen();
        Results {
            display: Display::new(total),
            status: String::new(),
            next_tick: Instant::now() + TICK,
            spent: 0.0,
            busy: 0,
        }
    }

    /// Starts `pool`'s workers on job `id` of the space at `peer`: the
    /// results of a job of `total` tasks, its first decisions logged and
    /// its first status for the job's counters `progress`.
    pub fn start(
        pool: &mut impl WorkerPool,
        peer: &str,
        id: &str,
        total: usize,
        progress: &Progress,
    ) -> Result<Self, Failure> {
        let mut results = Results::new(total);
        let first = pool.start(peer, id).map_err(Failure::unreachable)?;
        results.log(&first);
        results.status = pool.status(progress);
        Ok(results)
    }

    /// Decisions to the log.
    pub fn log(&self, decisions: &[Decision]) {
        for decision in decisions {
            self.display.log(&decision.to_string());
        }
    }

    /// The next result (the pool is told of it), ticking the pool about
    /// once a second until it comes, with `pending` tasks still to be
    /// submitted counted as queued; `None` once every task submitted to
    /// `master` has its result, or when a signal interrupted the job
    /// ([`Results::interrupted`]).
    pub async fn next<S: Space>(
        &mut self,
        master: &mut Master<S>,
        pool: &mut impl WorkerPool,
        pending: usize,
    ) -> Result<Option<Finished>, MasterError> {
        loop {
            if interrupt::signal().is_some() {
                return Ok(None);
            }
            match master.next_before(self.next_tick).await? {
                Next::Finished(done) => {
                    pool.task_finished(&done.result);
                    let progress = with_pending(master.progress(), pending);
                    if progress.done >= progress.submitted {
                        // The last one: no ETA left on the line.
                        self.status = pool.status(&progress);
                    }
                    return Ok(Some(done));
                }
                Next::Idle => {
                    self.next_tick = Instant::now() + TICK;
                    let progress = with_pending(master.progress(), pending);
                    (self.status, self.busy) = tick(master, pool, &self.display, &progress).await?;
                    self.spent = pool.spent();
                }
                Next::Complete => return Ok(None),
            }
        }
    }

    /// The signal that interrupted the job, if one did: its tasks are to
    /// be withdrawn and its machines released.
    pub fn interrupted(&self) -> Option<Signal> {
        let signal = interrupt::signal();
        if let Some(signal) = signal {
            self.display.log(&format!(
                "{}: stopping the tasks and releasing every machine (signal again to hurry)",
                signal.name()
            ));
        }
        signal
    }

    /// Money the pool spent so far.
    pub fn spent(&self) -> f64 {
        self.spent
    }

    /// Redraws the progress line: `done` results written, `failed` of them
    /// failed.
    pub fn show(&mut self, progress: &Progress, done: usize, failed: usize) {
        // Claims are seen once a second, heartbeats too: the larger count,
        // never more than the tasks left.
        let left = progress.submitted.saturating_sub(progress.done);
        let progress = Progress {
            running: progress.running.max(self.busy).min(left),
            ..*progress
        };
        self.display.update(&progress, done, failed, &self.status);
    }

    /// The end: the pool's `ending` decisions to the log, the bar cleared.
    pub fn finish(self, ending: &[Decision]) {
        self.log(ending);
        self.display.finish();
    }
}

/// The master's counters with `pending` tasks still to be submitted.
pub fn with_pending(progress: Progress, pending: usize) -> Progress {
    Progress {
        submitted: progress.submitted + pending,
        queued: progress.queued + pending,
        ..progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_to_come_count_as_queued() {
        let master = Progress {
            submitted: 20,
            queued: 5,
            done: 10,
            running: 5,
            ..Progress::default()
        };
        let p = with_pending(master, 20);
        assert_eq!((p.submitted, p.queued, p.done, p.running), (40, 25, 10, 5));
    }
}
