//! An oracle lower bound: perfect knowledge of every task's duration and
//! perfect packing (work divides freely across slots), boot times counted,
//! billing per second.

use crate::clock::{HOUR, Secs};
use crate::planner::{Capacity, fluid_finish};
use crate::policy::{Policy, ProviderKind};
use crate::workload::Workload;

/// The best any policy could do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Oracle {
    /// Every class at its max from the start (machines ready after their
    /// boot), paid work no more than the budget buys.
    pub makespan: Secs,
    /// The least money to finish by the deadline (by this makespan when
    /// there is none or it cannot be met, by `fallback` when that is later).
    pub cost: f64,
}

/// Per class: (ready at, base-seconds of work per second, machines).
fn classes(policy: &Policy, workload: &Workload) -> Vec<(Secs, f64, u32, f64)> {
    policy
        .resources
        .iter()
        .map(|r| {
            let ready = match r.provider {
                ProviderKind::Static => 0.0,
                _ => r.boot_time,
            };
            let rate = r.slots as f64 * workload.speed_of(&r.name);
            (ready, rate, r.limit(), r.price_per_hour / HOUR / rate)
        })
        .collect()
}

impl Oracle {
    /// `durations` are the tasks' base durations; `fallback` the horizon for
    /// the cost when there is no deadline or it cannot be met.
    pub fn new(policy: &Policy, workload: &Workload, durations: &[Secs], fallback: Secs) -> Oracle {
        let work: f64 = durations.iter().sum();
        let classes = classes(policy, workload);
        let caps: Vec<Capacity> = classes
            .iter()
            .flat_map(|&(ready, rate, n, _)| (0..n).map(move |_| Capacity::from(ready, rate)))
            .collect();
        let fastest = classes
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| c.1)
            .fold(0.0, f64::max);
        let longest = durations.iter().copied().fold(0.0, f64::max);
        let mut makespan =
            fluid_finish(0.0, work, &caps).max(longest / fastest.max(f64::MIN_POSITIVE));
        let mut by_price: Vec<_> = classes.iter().filter(|c| c.2 > 0).collect();
        by_price.sort_by(|a, b| a.3.total_cmp(&b.3));
        if let Some(budget) = policy.objective.budget
            && let Some(cheapest) = by_price.iter().map(|c| c.3).find(|&p| p > 0.0)
        {
            let private: f64 = by_price
                .iter()
                .filter(|c| c.3 == 0.0)
                .map(|c| c.1 * c.2 as f64)
                .sum();
            let left = work - budget / cheapest;
            if left > 0.0 {
                makespan = makespan.max(left / private);
            }
        }
        let horizon = match policy.objective.deadline {
            Some(deadline) if deadline >= makespan => deadline,
            _ => fallback,
        };

        let (mut left, mut cost) = (work, 0.0);
        for &&(ready, rate, n, price) in &by_price {
            let take = left.min(n as f64 * rate * (horizon - ready).max(0.0));
            cost += take * price;
            left -= take;
        }
        if left > 0.0
            && let Some(cheapest) = by_price.iter().map(|c| c.3).find(|&p| p > 0.0)
        {
            cost += left * cheapest;
        }
        Oracle { makespan, cost }
    }
}
