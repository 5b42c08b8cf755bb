//! What a policy will cost and when its job will finish, before anyone
//! pays: the same workload simulated with several seeds (each draws its
//! own task durations, boots and preemptions), summed up as quantiles.

use serde::Serialize;

use crate::clock::Secs;
use crate::policy::Policy;
use crate::simulate::run;
use crate::simulate::sweep::quantile;
use crate::workload::Workload;

/// Most runs a forecast makes: each is a whole simulated job.
pub const MOST_RUNS: u32 = 1000;

/// The spread of outcomes over seeded runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Runs made, with seeds `first_seed` to `first_seed + runs - 1`.
    pub runs: u32,
    pub first_seed: u64,
    /// Cost at p10, p50 and p90 (nearest rank).
    pub cost: [f64; 3],
    /// Finish (makespan) at p10, p50 and p90; infinite for runs that did
    /// not finish.
    pub finish: [Secs; 3],
    /// Runs that ran every task.
    pub finished: u32,
    /// Runs that met the deadline, if there is one.
    pub deadline_met: Option<u32>,
    /// Runs that kept the budget, if there is one.
    pub budget_kept: Option<u32>,
}

/// Simulates `workload` under `policy` with seeds `first_seed`, … (`runs`
/// of them, 1 to [`MOST_RUNS`]).
pub fn forecast(policy: &Policy, workload: &Workload, first_seed: u64, runs: u32) -> Forecast {
    let runs = runs.clamp(1, MOST_RUNS);
    let reports: Vec<_> = (0..u64::from(runs))
        .map(|i| run(policy, workload, first_seed.wrapping_add(i)))
        .collect();
    let mut costs: Vec<f64> = reports.iter().map(|r| r.cost).collect();
    let mut finishes: Vec<Secs> = reports
        .iter()
        .map(|r| {
            if r.finished {
                r.makespan_s
            } else {
                Secs::INFINITY
            }
        })
        .collect();
    let count = |met: &dyn Fn(&crate::simulate::Report) -> Option<bool>| {
        reports
            .iter()
            .map(met)
            .try_fold(0, |n, m| m.map(|m| n + u32::from(m)))
    };
    let at = |xs: &mut Vec<f64>| [0.1, 0.5, 0.9].map(|q| quantile(xs, q));
    Forecast {
        runs,
        first_seed,
        cost: at(&mut costs),
        finish: at(&mut finishes),
        finished: reports.iter().filter(|r| r.finished).count() as u32,
        deadline_met: count(&|r| r.deadline_met),
        budget_kept: count(&|r| r.budget_met),
    }
}
