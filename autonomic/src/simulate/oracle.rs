//! An oracle lower bound: perfect knowledge of every task's duration and
//! perfect packing (work divides freely across slots, as far as whole tasks
//! allow), boot times counted and billed, per-hour billing rounded to whole
//! hours: no schedule the simulator can produce costs less.
//!
//! Each term of the cost bound, and why no schedule beats it:
//!
//! - **Fluid** ([`fluid_cost`]): a machine of a paid class is billed from
//!   its request, so its boot too, and works at most the horizon less its
//!   boot; a per-hour machine is billed at least a whole hour.
//! - **Whole per-hour machines** ([`whole_machines_cost`]): `K` billed hours
//!   of a class bought as `n` machines work at most `min(n (H − boot),
//!   3600 K − n boot, max H − n boot)` seconds, each at the class's rate.
//! - **Whole tasks** ([`Tasks::most_in`]): a task runs on one slot from its
//!   start to its end, so a slot that works `t` seconds at speed `s` ends
//!   tasks whose base durations add up to at most `s t` — at most the
//!   largest sum of tasks not above `s t`. That is bounded by the sum of the
//!   `m` longest tasks not above `s t`, where `m` is the most tasks whose
//!   sum fits (the `m` shortest). Machines of a class are at most `max` at
//!   once, so their slots' working times fall on `max × slots` tracks of
//!   one slot each, the machines of a track one after another, each after
//!   its boot: a track works at most `H − boot` seconds in all and ends at
//!   most that bound's worth of tasks. So a class does at most `max ×
//!   slots` times the bound at `s (H − boot)`, a machine at most `slots`
//!   times it (so a per-second class pays at least a boot per that much
//!   work), and a per-hour one no more, whatever hours it is billed. With
//!   equal durations this is exact: a 577-s window fits one 300-s task,
//!   not 1.9.
//!
//! A class whose machines wait in a queue drawn by the workload (`slurm`
//! with `queue_wait`) is counted with no boot: the wait may be shorter.

use crate::clock::{HOUR, Secs};
use crate::planner::{Capacity, fluid_finish};
use crate::policy::{Billing, Policy, ProviderKind, Resource};
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
            let ready = boot(r, workload);
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
            cost: least_cost(policy, workload, &Tasks::new(durations), horizon),
        }
    }
}

/// The least any schedule that runs `tasks` by `horizon` can pay: the
/// larger of two lower bounds, [`fluid_cost`] (work divides freely across
/// machines) and [`whole_machines_cost`] (a per-hour machine is bought
/// whole: one that does a third of an hour's work pays the hour; a slot
/// runs whole tasks).
pub fn least_cost(policy: &Policy, workload: &Workload, tasks: &Tasks, horizon: Secs) -> f64 {
    let fluid = fluid_cost(policy, workload, tasks.work(), horizon);
    whole_machines_cost(policy, workload, tasks, horizon).map_or(fluid, |whole| whole.max(fluid))
}

/// A job's tasks as the oracle sees them: base durations, shortest first,
/// with their running sums.
#[derive(Debug, Clone)]
pub struct Tasks {
    sorted: Vec<Secs>,
    /// `sums[i]`: the sum of the `i` shortest.
    sums: Vec<f64>,
}

impl Tasks {
    pub fn new(durations: &[Secs]) -> Tasks {
        let mut sorted = durations.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut sums = Vec::with_capacity(sorted.len() + 1);
        sums.push(0.0);
        for d in &sorted {
            sums.push(sums[sums.len() - 1] + d);
        }
        Tasks { sorted, sums }
    }

    /// Base-seconds of work in all.
    pub fn work(&self) -> f64 {
        self.sums[self.sums.len() - 1]
    }

    /// At least the most base-seconds of whole tasks one slot ends in
    /// `capacity` base-seconds (its working time × its speed): the sum of
    /// the `m` longest tasks that fit, `m` the most that fit together (the
    /// `m` shortest), and no more than `capacity`.
    pub fn most_in(&self, capacity: f64) -> f64 {
        if capacity <= 0.0 {
            return 0.0;
        }
        // A slot's tasks end at the horizon exactly in a run: leave room
        // for the rounding of their times.
        let room = capacity * (1.0 + 1e-9) + 1e-9;
        let fit = self.sorted.partition_point(|&d| d <= room);
        let most = self.sums.partition_point(|&s| s <= room) - 1;
        let m = most.min(fit);
        (self.sums[fit] - self.sums[fit - m]).min(capacity)
    }
}

/// A lower bound with work divided freely across machines, but a paid
/// machine billed from its request, its boot included, and a per-hour one
/// for at least a whole hour. A class's machines each work at most
/// `horizon - boot`, so work `w` on class `c` needs at least
/// `w / (rate (H - boot))` machines and costs at least
///
/// - per second: `price/3600 · w/rate · H/(H - boot)` (work and boots),
/// - per hour: `price · w/(rate (H - boot)) · max(1, H/3600)` (machines ×
///   whole hours, or the billed seconds rounded up),
///
/// both linear in `w`, so filling the cheapest classes first is optimal
/// for this relaxation and the answer a true lower bound. The grid of
/// `halley simulate --sweep` draws its budgets from this bound.
pub fn fluid_cost(policy: &Policy, workload: &Workload, work: f64, horizon: Secs) -> f64 {
    // (price per base-second, capacity in base-seconds) per usable class.
    let mut classes: Vec<(f64, f64)> = policy
        .resources
        .iter()
        .filter_map(|r| {
            let (_, window, rate) = usable(r, workload, horizon)?;
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

/// Most combinations of per-hour billed hours [`whole_machines_cost`]
/// tries; past it, it gives no bound (the fluid one stands alone).
const MOST_COMBINATIONS: u64 = 200_000;

/// A lower bound that buys per-hour machines whole: the cheapest choice
/// of billed hours `K` per per-hour class, the rest of the work on the
/// private and per-second classes as in [`fluid_cost`]. `K` hours of a
/// class bought as `n` machines (`n ≤ K`) do at most `rate · min(n (H −
/// boot), 3600 K − n boot, max H − n boot)` base-seconds of work: each
/// machine works at most the horizon less its boot and less than its
/// billed hours less its boot, and at most `max` are paid for at once.
/// `None` when the per-hour classes' choices are too many to try.
pub fn whole_machines_cost(
    policy: &Policy,
    workload: &Workload,
    tasks: &Tasks,
    horizon: Secs,
) -> Option<f64> {
    let work = tasks.work();
    // (price per base-second, capacity) of the private and per-second
    // classes, cheapest first; (price an hour, capacity of K hours for
    // K = 0, 1, …) of the per-hour ones.
    let mut linear: Vec<(f64, f64)> = Vec::new();
    let mut hourly: Vec<(f64, Vec<f64>)> = Vec::new();
    for r in &policy.resources {
        let Some((boot, window, rate)) = usable(r, workload, horizon) else {
            continue;
        };
        // The most one machine ends in whole tasks (module docs).
        let machine = f64::from(r.slots) * tasks.most_in(workload.speed_of(&r.name) * window);
        if machine <= 0.0 {
            continue;
        }
        let most = f64::from(r.limit()) * machine;
        if r.is_private() {
            linear.push((0.0, most));
        } else if r.billing == Billing::PerSecond {
            // Its work's time, and a boot per `machine` of work.
            let price = r.price_per_hour / HOUR * (1.0 / rate + boot / machine);
            linear.push((price, most));
        } else {
            hourly.push((
                r.price_per_hour,
                hours_capacity(r.limit(), rate, boot, horizon, work, machine),
            ));
        }
    }
    linear.sort_by(|a, b| a.0.total_cmp(&b.0));
    let combinations = hourly
        .iter()
        .try_fold(1_u64, |n, (_, caps)| n.checked_mul(caps.len() as u64))?;
    if combinations > MOST_COMBINATIONS {
        return None;
    }
    let rest = |mut left: f64| {
        let mut cost = 0.0;
        for &(price, capacity) in &linear {
            let take = left.min(capacity);
            cost += take * price;
            left -= take;
        }
        (left <= 1e-9).then_some(cost)
    };
    let mut best: Option<f64> = None;
    let mut hours = vec![0_usize; hourly.len()];
    loop {
        let (paid, done) = hours
            .iter()
            .zip(&hourly)
            .fold((0.0, 0.0), |(paid, done), (&k, (price, caps))| {
                (paid + k as f64 * price, done + caps[k])
            });
        if best.is_none_or(|b| paid < b)
            && let Some(cost) = rest((work - done).max(0.0))
        {
            best = Some(best.map_or(paid + cost, |b: f64| b.min(paid + cost)));
        }
        // The next combination, like an odometer.
        let mut i = 0;
        loop {
            if i == hours.len() {
                return best;
            }
            hours[i] += 1;
            if hours[i] < hourly[i].1.len() {
                break;
            }
            hours[i] = 0;
            i += 1;
        }
    }
}

/// A class's boot, the time its machines can work before `horizon`, and a
/// machine's rate (base-seconds of work a second); `None` if it can do no
/// work by then (no time left after its boot, or no machine allowed).
fn usable(r: &Resource, workload: &Workload, horizon: Secs) -> Option<(Secs, Secs, f64)> {
    let boot = boot(r, workload);
    let window = horizon - boot;
    let rate = f64::from(r.slots) * workload.speed_of(&r.name);
    (window > 0.0 && r.limit() > 0).then_some((boot, window, rate))
}

/// The time before its machines are ready that a class is sure to wait:
/// none for a static class, or a queue wait drawn by the workload (which
/// may be short), else its boot.
fn boot(r: &Resource, workload: &Workload) -> Secs {
    match r.provider {
        ProviderKind::Static => 0.0,
        _ if workload.queue_wait.contains_key(&r.name) => 0.0,
        _ => r.boot_time,
    }
}

/// The most base-seconds `K` billed hours of one per-hour class can work
/// by `horizon`, for `K` = 0, 1, … up to the first that does all of `work`
/// or adds nothing more; `machine` is the most one machine ends in whole
/// tasks.
fn hours_capacity(
    most: u32,
    rate: f64,
    boot: Secs,
    horizon: Secs,
    work: f64,
    machine: f64,
) -> Vec<f64> {
    // A machine works at most this many seconds' worth, at `rate`.
    let each = (horizon - boot).min(machine / rate);
    let of = |k: u32| {
        // min(n each, 3600 K − n boot, max H − n boot) rises then falls in
        // n: the best n is next to where the first meets another.
        let meet = (f64::from(k) * HOUR).min(f64::from(most) * horizon) / (each + boot);
        [meet.floor(), meet.ceil()]
            .into_iter()
            .map(|n| n.clamp(1.0, f64::from(k)))
            .map(|n| {
                (n * each)
                    .min(f64::from(k) * HOUR - n * boot)
                    .min(f64::from(most) * horizon - n * boot)
                    .max(0.0)
            })
            .fold(0.0, f64::max)
            * rate
    };
    let mut caps = vec![0.0];
    for k in 1.. {
        let cap = of(k);
        if cap <= caps[caps.len() - 1] + 1e-9 {
            break;
        }
        caps.push(cap);
        if cap >= work {
            break;
        }
    }
    caps
}
