//! The simulator: the same [`Manager`](crate::manager::Manager) and planner on a virtual clock, with a
//! workload model, seeded (same seed, same result), machine boot times and
//! billing — "what would this policy do, cost and finish?" before anyone pays,
//! compared with an oracle lower bound.

mod baseline;
mod engine;
mod forecast;
pub mod oracle;
mod plot;
mod provider;
pub mod sweep;

use serde::Serialize;

use crate::clock::Secs;
use crate::planner::Decision;
use crate::policy::Policy;
use crate::workload::Workload;

pub use baseline::{Baseline, Control, fixed_search};
pub use forecast::{Forecast, MOST_RUNS, forecast};
pub use oracle::Oracle;
pub use plot::svg;
pub use provider::SimulatedProvider;

/// What a simulated run did, cost and finished.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub tasks: u64,
    /// All tasks ran (false: the policy left work with no machine to run it).
    pub finished: bool,
    pub makespan_s: Secs,
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
    /// Most machines up (booting or running) at once.
    pub peak_workers: u32,
    /// Tasks stopped with their machine and run again (rather than overspend
    /// or pay another hour): attempts, not failures.
    pub stopped_tasks: u64,
    /// Preemptible machines the provider took back (their tasks ran again).
    pub preemptions: u64,
    /// Where the money went.
    pub spending: Spending,
    /// The least any policy could pay to finish by the deadline (or, without
    /// one, as soon as this run did): perfect knowledge, perfect packing.
    pub oracle_cost: f64,
    /// The soonest any policy could finish with every class at its max.
    pub oracle_makespan_s: Secs,
    pub decisions: Vec<Decision>,
    /// Workers by class and queue length over time, for plots.
    #[serde(skip)]
    pub timeline: Vec<Sample>,
    /// Class names, in policy order (the columns of `Sample::workers`).
    #[serde(skip)]
    pub classes: Vec<String>,
}

/// Where a run's money went, in dollars: the paid machines' billed time
/// split into the slot time of tasks run to the end (`work`), of tasks
/// stopped or taken back with their machine (`lost`), boots (`boot`),
/// slots up and idle (`idle`), and per-hour time paid after a machine was
/// released (`unused_hour`). They add up to the run's cost. Besides, what
/// a part of them went on: of `idle`, the slots idle while no task was
/// queued (`idle_tail`: the last tasks running elsewhere); of the cost,
/// the machines that ended no task (`unused_machines`: their whole
/// billing); and how many machines were started of a class after one of
/// it was released while tasks were queued (`rebought`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spending {
    pub work: f64,
    pub lost: f64,
    pub boot: f64,
    pub idle: f64,
    pub unused_hour: f64,
    pub idle_tail: f64,
    pub unused_machines: f64,
    pub rebought: u32,
}

impl Spending {
    pub fn total(&self) -> f64 {
        self.work + self.lost + self.boot + self.idle + self.unused_hour
    }
}

/// The state of a simulated run at one planning step.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Secs,
    /// Machines up per class (booting, running or draining).
    pub workers: Vec<u32>,
    pub queued: u64,
}

/// Simulates `workload` under `policy` with the random seed `seed`.
pub fn run(policy: &Policy, workload: &Workload, seed: u64) -> Report {
    run_with(policy, workload, seed, &Control::Planner)
}

/// Simulates `workload` under `policy`'s classes and objective, driven by
/// `control` (the planner or a baseline), with the random seed `seed`.
pub fn run_with(policy: &Policy, workload: &Workload, seed: u64, control: &Control) -> Report {
    engine::Engine::new(policy, workload, seed, control.clone()).run()
}

#[cfg(test)]
mod tests;
