//! An oracle lower bound: perfect knowledge of every task's duration and
//! perfect packing (work divides freely across slots), boot times counted
//! and billed, per-hour billing rounded to whole hours: no schedule the
//! simulator can produce costs less.

use crate::clock::{HOUR, Secs};
use crate::planner::{Capacity, fluid_finish};
use crate::policy::{Billing, Policy, ProviderKind};
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
        let horizon = policy
            .objective
            .deadline
            .map_or(fallback, |deadline| deadline.max(fallback));
        Oracle {
            makespan,
            cost: least_cost(policy, workload, work, horizon),
        }
    }
}

/// The least any schedule that does `work` (base-seconds) by `horizon`
/// can pay: work divides freely across machines, but a paid machine is
/// billed from its request, its boot included, and a per-hour one for at
/// least a whole hour. A class's machines each work at most `horizon -
/// boot`, so work `w` on class `c` needs at least `w / (rate (H - boot))`
/// machines and costs at least
///
/// - per second: `price/3600 · w/rate · H/(H - boot)` (work and boots),
/// - per hour: `price · w/(rate (H - boot)) · max(1, H/3600)` (machines ×
///   whole hours, or the billed seconds rounded up),
///
/// both linear in `w`, so filling the cheapest classes first is optimal
/// for this relaxation and the answer a true lower bound.
pub fn least_cost(policy: &Policy, workload: &Workload, work: f64, horizon: Secs) -> f64 {
    // (price per base-second, capacity in base-seconds) per usable class.
    let mut classes: Vec<(f64, f64)> = policy
        .resources
        .iter()
        .filter_map(|r| {
            let boot = match r.provider {
                ProviderKind::Static => 0.0,
                _ => r.boot_time,
            };
            let window = horizon - boot;
            let rate = f64::from(r.slots) * workload.speed_of(&r.name);
            if window <= 0.0 || r.limit() == 0 {
                return None;
            }
            let price = match r.billing {
                _ if r.is_private() => 0.0,
                Billing::PerSecond => r.price_per_hour / HOUR / rate * horizon / window,
                Billing::PerHour => r.price_per_hour / (rate * window) * (horizon / HOUR).max(1.0),
            };
            Some((price, f64::from(r.limit()) * rate * window))
        })
        .collect();
    classes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut left, mut cost) = (work, 0.0);
    for &(price, capacity) in &classes {
        let take = left.min(capacity);
        cost += take * price;
        left -= take;
    }
    if left > 0.0
        && let Some(&(price, _)) = classes.iter().find(|c| c.0 > 0.0)
    {
        cost += left * price;
    }
    cost
}
