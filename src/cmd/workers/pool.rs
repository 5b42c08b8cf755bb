//! The seam between a job of commands (`halley run`, `halley workflow`) and
//! whatever starts its workers.
//!
//! [`WorkerPool`] is what the job's loop asks for workers: it is started once the
//! space is up, told each result and, about once a second, the job's
//! counters and the workers heard from (it may start or stop workers then),
//! asked for a status for the progress line, and finished at the end, when
//! it stops every machine and accounts for them. The implementation is the
//! autonomic manager's ([`super::managed::ManagedPool`]).

use std::time::Duration;

use halley_autonomic::planner::Decision;
use halley_paradigms::master::Progress;
use halley_paradigms::task::{Heartbeat, TaskResult};

use super::managed::MachineRecord;

/// Starts and stops the workers of one job.
pub trait WorkerPool {
    /// Starts the initial workers, connected to `peer` for job `job`;
    /// returns the first decisions.
    fn start(&mut self, peer: &str, job: &str) -> anyhow::Result<Vec<Decision>>;
    /// A workflow's stages that follow the running ones on its longest
    /// chain (0 for a bag, the default): each adds a task's wait to the
    /// projected finish.
    fn stages_ahead(&mut self, stages: u32);
    /// A workflow's running stage with a deadline of its own, the one due
    /// soonest (`None` for a bag, the default): its tasks get machines
    /// for it.
    fn stage_due(&mut self, due: Option<StageDue>);
    /// Called with each task's accepted result (its machine and duration
    /// feed the manager's estimates).
    fn task_finished(&mut self, result: &TaskResult);
    /// Called about once a second with the job's counters and the workers
    /// heard from; returns the decisions taken (with their reasons).
    fn tick(&mut self, progress: &Progress, workers: &[Heartbeat]) -> Vec<Decision>;
    /// Money spent so far.
    fn spent(&mut self) -> f64;
    /// Workers by class, spend and projected finish, for the progress line.
    fn status(&mut self, progress: &Progress) -> String;
    /// The job is over (the workers were told to stop): stops every machine,
    /// waits up to `grace` for the workers to exit, kills those left.
    fn finish(&mut self, grace: Duration) -> Account;
}

/// A running stage's deadline: the time left and its tasks still to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageDue {
    pub left: Duration,
    pub tasks: usize,
}

/// What the workers of a job cost, and why.
#[derive(Debug)]
pub struct Account {
    /// Billed spend.
    pub cost: f64,
    /// Every decision of the manager, in order.
    pub decisions: Vec<Decision>,
    /// Those taken by [`WorkerPool::finish`] (the end-of-job releases),
    /// for the log.
    pub ending: Vec<Decision>,
    /// Every machine with its billing interval.
    pub machines: Vec<MachineRecord>,
}
