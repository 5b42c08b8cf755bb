//! Baselines a policy is compared with, on the same simulated world: a
//! fixed fleet started at t=0 (the cheapest that meets the deadline, found
//! by search), and a queue-driven autoscaler — add a machine while queued
//! tasks per slot exceed 1, remove one idle for 60 s, up to `max` — which
//! is what Ray's and Dask's autoscalers do.

use serde::Serialize;

use crate::estimate::billed;
use crate::machine::{MachineState, Snapshot};
use crate::planner::{Action, Decision, release};
use crate::policy::{Policy, ProviderKind};
use crate::simulate::{Report, run_with};
use crate::workload::Workload;

/// What drives a simulated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The policy's planner (what `halley run` does).
    Planner,
    /// These many machines of each class started at t=0, each released
    /// once no work is queued and it is idle.
    Fixed(Vec<u32>),
    /// The queue-driven autoscaler.
    Queue,
}

/// A baseline to simulate in place of the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// The cheapest fixed fleet started at t=0 that meets the deadline.
    Fixed,
    /// Add a machine while queued tasks per slot > 1, remove after 60 s idle.
    Queue,
}

/// How long a machine of the queue baseline idles before it is removed.
const QUEUE_IDLE: f64 = 60.0;

impl Control {
    /// The decisions of a baseline for this moment (never for `Planner`).
    pub(crate) fn decide(&self, policy: &Policy, snap: &Snapshot) -> Vec<Decision> {
        let r = &policy.resources;
        let mut out = Vec::new();
        let paid_running = snap.machines.iter().filter(|m| {
            r[m.class].provider != ProviderKind::Static && m.state == MachineState::Running
        });
        match self {
            Control::Planner => {}
            Control::Fixed(counts) => {
                if snap.now == 0.0 {
                    for (class, &count) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                        out.push(start(snap, &r[class].name, count, "the fixed fleet"));
                    }
                } else if snap.tasks.queued == 0 {
                    for m in paid_running.filter(|m| m.busy_slots == 0) {
                        out.push(release(
                            snap.now,
                            &r[m.class].name,
                            m.id,
                            "no work left".into(),
                        ));
                    }
                }
            }
            Control::Queue => {
                let slots: u32 = snap
                    .machines
                    .iter()
                    .filter(|m| m.is_active())
                    .map(|m| r[m.class].slots)
                    .sum();
                let mut order: Vec<usize> = (0..r.len())
                    .filter(|&c| r[c].provider != ProviderKind::Static)
                    .collect();
                order.sort_by(|&a, &b| {
                    let per_slot = |c: usize| r[c].price_per_hour / f64::from(r[c].slots);
                    per_slot(a).total_cmp(&per_slot(b))
                });
                let mut added = vec![0u32; r.len()];
                let mut more = 0;
                'add: while snap.tasks.queued as f64 > f64::from(slots + more) {
                    for &c in &order {
                        let paying = snap
                            .machines
                            .iter()
                            .filter(|m| m.class == c && m.state != MachineState::Released)
                            .count() as u32;
                        if paying + added[c] < r[c].limit() {
                            added[c] += 1;
                            more += r[c].slots;
                            continue 'add;
                        }
                    }
                    break;
                }
                for (class, &count) in added.iter().enumerate().filter(|(_, n)| **n > 0) {
                    out.push(start(
                        snap,
                        &r[class].name,
                        count,
                        "queued tasks per slot > 1",
                    ));
                }
                for m in paid_running.filter(|m| {
                    m.idle_since.is_some_and(|t| snap.now - t >= QUEUE_IDLE)
                        && snap.tasks.queued == 0
                }) {
                    out.push(release(
                        snap.now,
                        &r[m.class].name,
                        m.id,
                        "idle for 60s".into(),
                    ));
                }
            }
        }
        out
    }
}

fn start(snap: &Snapshot, class: &str, count: u32, why: &str) -> Decision {
    Decision {
        at: snap.now,
        action: Action::Start {
            class: class.to_string(),
            count,
        },
        reason: format!("+{count} {class}: {why}"),
    }
}

/// The cheapest fixed fleet (one paid class, or every class at its max)
/// that meets the deadline: per class, every count while it could still
/// cost less than the cheapest found (`n` machines cost at least `n` times
/// one billed for its boot: a whole hour if billed by the hour) — with
/// hourly billing more machines inside one hour cost less than fewer for
/// two, so the fewest that meet it is not the cheapest. With a budget and
/// no deadline, the fleet that finishes first within it (the most
/// machines within the budget, by binary search). `None` if no fleet
/// does.
pub fn fixed_search(policy: &Policy, workload: &Workload, seed: u64) -> Option<(Vec<u32>, Report)> {
    let r = &policy.resources;
    let paid: Vec<usize> = (0..r.len())
        .filter(|&c| r[c].provider != ProviderKind::Static && r[c].limit() > 0)
        .collect();
    let objective = &policy.objective;
    let good = |rep: &Report| match (objective.deadline, objective.budget) {
        (Some(_), _) => rep.deadline_met == Some(true),
        (None, Some(_)) => rep.finished && rep.budget_met == Some(true),
        (None, None) => rep.finished,
    };
    let better = |a: &Report, b: &Report| match objective.deadline {
        Some(_) => a.cost < b.cost,
        None => a.makespan_s < b.makespan_s,
    };
    let fleet = |class: usize, n: u32| {
        let mut counts = vec![0; r.len()];
        counts[class] = n;
        counts
    };
    let mut best: Option<(Vec<u32>, Report)> = None;
    let mut consider = |counts: Vec<u32>, rep: Report| {
        if good(&rep) && best.as_ref().is_none_or(|(_, b)| better(&rep, b)) {
            best = Some((counts, rep));
        }
    };
    let max: Vec<u32> = (0..r.len())
        .map(|c| if paid.contains(&c) { r[c].limit() } else { 0 })
        .collect();
    consider(
        max.clone(),
        run_with(policy, workload, seed, &Control::Fixed(max)),
    );
    for &class in &paid {
        if objective.deadline.is_some() {
            // Every count, cheapest kept: whether a fleet meets the deadline
            // is not monotone in its size, nor its cost, once tasks and
            // hours are whole. `n` machines cost at least `n` times one
            // billed for its boot (a whole hour if billed by the hour), so
            // the scan stops where that reaches the cheapest found.
            let least = billed(&r[class], 0.0, r[class].boot_time);
            let mut cheapest = f64::INFINITY;
            for n in 0..=r[class].limit() {
                if f64::from(n) * least >= cheapest {
                    break;
                }
                let rep = run_with(policy, workload, seed, &Control::Fixed(fleet(class, n)));
                if good(&rep) {
                    cheapest = cheapest.min(rep.cost);
                    consider(fleet(class, n), rep);
                }
            }
            continue;
        }
        // The most within the budget, by binary search.
        let (mut lo, mut hi) = (0, r[class].limit());
        let mut found: Option<(u32, Report)> = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let rep = run_with(policy, workload, seed, &Control::Fixed(fleet(class, mid)));
            if good(&rep) {
                found = Some((mid, rep));
                lo = mid + 1;
            } else {
                if mid == 0 {
                    break;
                }
                hi = mid - 1;
            }
        }
        if let Some((n, rep)) = found {
            consider(fleet(class, n), rep);
        }
    }
    best
}
