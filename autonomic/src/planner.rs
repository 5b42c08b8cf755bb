//! Plan: what to start and what to release, and why — pure and sans-io.
//!
//! [`Planner::plan`] reads a [`Snapshot`] and the [`Policy`] and answers with
//! [`Decision`]s; its only memory is when it last scaled each way (hysteresis)
//! and which warnings it already gave. The same planner runs on the wall clock
//! in `halley run` and on the simulator's virtual clock.
//!
//! - With a deadline: the cheapest mix that meets it — private classes first,
//!   then paid classes by cost per task — counting boot times (a machine that
//!   boots after the deadline does not help); with a budget too, an infeasible
//!   pair is reported with what the deadline would cost, and the planner goes
//!   as fast as the budget allows.
//! - With a deadline alone, once a task has ended, the queue is also
//!   drained by half the deadline when per-second machines do that for at
//!   most 30% more than the deadline alone costs: a task many times the mean drawn late in the
//!   queue then still has the other half to run in (the decision says so).
//! - With a budget only: as fast as the budget allows, buying the machines
//!   that save the most time per dollar, each only while the share of the
//!   time left it saves is at least half the share of the budget it adds.
//! - With neither: a workload target of unfinished tasks per slot.
//! - Per-hour machines are kept until shortly before their next paid hour and
//!   released then unless still needed; per-second machines when idle, and
//!   with a deadline as soon as it holds without them (a quarter of the time
//!   left, and three tasks, to spare), costliest first — busy ones drain.
//! - Never out and in in one step; no scaling in within `cooldown` of scaling
//!   out, nor out within `cooldown` of scaling in.
//! - A machine that does not boot in time or stops answering is released; the
//!   capacity it leaves is planned for again at once.

mod project;
mod step;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::clock::{Secs, human};
use crate::machine::{Machine, MachineId, MachineState, Snapshot};
use crate::policy::{Billing, Policy, ProviderKind};

pub use project::{Capacity, fluid_finish};
use step::Step;

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Start `count` machines of `class`.
    Start { class: String, count: u32 },
    /// Drain and release one machine.
    Release { class: String, machine: MachineId },
    /// Release one machine now, stopping its tasks (they are queued again,
    /// a new attempt, not a failure): rather than overspend or pay another
    /// hour.
    Stop { class: String, machine: MachineId },
    /// Nothing to execute: a warning the user should read.
    Report,
}

/// One decision and the reason for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Seconds since the job started.
    pub at: Secs,
    #[serde(flatten)]
    pub action: Action,
    /// Reads on its own: "+3 cloud.small: projected 22m10s > deadline 20m00s; …".
    pub reason: String,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", human(self.at), self.reason)
    }
}

/// Projected finish and total spend of the job on its machines as they are
/// (infinite while there is no estimate): for progress lines.
pub fn projection(policy: &Policy, snap: &Snapshot) -> (Secs, f64) {
    let step = Step::new(policy, snap, &[]);
    step.project(&step.none(), &[], policy.objective.budget)
}

/// The planner's memory between steps.
#[derive(Debug, Clone, Default)]
pub struct Planner {
    last_out: Option<Secs>,
    last_in: Option<Secs>,
    reported: BTreeSet<String>,
}

impl Planner {
    pub fn new() -> Self {
        Planner::default()
    }

    /// The decisions for this moment.
    pub fn plan(&mut self, policy: &Policy, snap: &Snapshot) -> Vec<Decision> {
        let mut out = Vec::new();
        let failed = self.repair(policy, snap, &mut out);
        let step = Step::new(policy, snap, &failed);
        let mut stopped = self.hard_stops(&step, &failed, &mut out);
        let objective = &policy.objective;
        let extra = if objective.deadline.is_none()
            && objective.budget.is_none()
            && snap.tasks.due.is_none()
        {
            self.workload(&step)
        } else if step.estimates.is_none() {
            self.learn(&step, &mut out)
        } else {
            self.objective(&step, &mut out)
        };
        let started = match extra {
            Some((mut extra, why)) if step.cooled(self.last_in, policy.scaling.cooldown) => {
                let mut gone = failed.clone();
                gone.extend(&stopped);
                if step.affordable(&mut extra, &gone) > 0 {
                    let why = "the budget cannot pay for every machine the plan wants: \
                               starting only those it can"
                        .to_string();
                    self.report(&mut out, snap.now, "afford", why);
                }
                push_starts(&step, &extra, &why, &mut out)
            }
            _ => false,
        };
        if started {
            self.last_out = Some(snap.now);
        } else {
            let mut gone = self.budget_guard(&step, &stopped, &mut out);
            gone.append(&mut stopped);
            self.scale_in(&step, &mut gone, &mut out);
            if !gone.is_empty() {
                self.last_in = Some(snap.now);
            }
        }
        out
    }

    /// Releases machines that did not boot in time or stopped answering.
    fn repair(&self, policy: &Policy, snap: &Snapshot, out: &mut Vec<Decision>) -> Vec<MachineId> {
        let mut failed = Vec::new();
        for m in snap.machines.iter().filter(|m| m.is_active()) {
            let class = &policy.resources[m.class];
            let boot_limit = policy.boot_limit(m.class);
            let why = match m.state {
                MachineState::Requested | MachineState::Booting
                    if snap.now - m.requested_at > boot_limit =>
                {
                    format!("did not boot within {}", human(boot_limit))
                }
                MachineState::Running
                    if snap.now - m.last_heard > policy.scaling.heartbeat_timeout =>
                {
                    format!("not heard from for {}", human(snap.now - m.last_heard))
                }
                _ => continue,
            };
            failed.push(m.id);
            let then = match class.provider {
                ProviderKind::Static => "no longer counted",
                _ => "replacing it",
            };
            out.push(release(
                snap.now,
                &class.name,
                m.id,
                format!("{why}; {then}"),
            ));
        }
        failed
    }

    /// Stops (with their tasks) the machines that would otherwise overspend
    /// the budget before the next step can act, and the per-hour machines
    /// about to start an hour they are not kept for; returns them.
    fn hard_stops(
        &self,
        step: &Step,
        failed: &[MachineId],
        out: &mut Vec<Decision>,
    ) -> Vec<MachineId> {
        let snap = step.snap;
        let r = &step.policy.resources;
        let budget = step.policy.objective.budget;
        let span = step.guard_span();
        let mut gone: Vec<MachineId> = failed.to_vec();
        let mut stopped = Vec::new();
        let mut renewing = 0.0;
        for m in snap.machines.iter().filter(|m| !failed.contains(&m.id)) {
            let class = &r[m.class];
            if class.is_private()
                || class.billing != Billing::PerHour
                || m.state == MachineState::Released
            {
                continue;
            }
            let left = step.hour_left(m);
            if left > span {
                continue;
            }
            let why = if m.state == MachineState::Draining {
                format!(
                    "its paid hour ends in {}: not paying another for its last tasks",
                    human(left)
                )
            } else if let Some(budget) = budget
                && step.committed(&gone) + renewing + class.price_per_hour > budget + 1e-9
            {
                format!(
                    "its paid hour ends in {} and the budget ${budget:.2} cannot pay another",
                    human(left)
                )
            } else {
                // Kept: it starts another paid hour before the next step.
                renewing += class.price_per_hour;
                continue;
            };
            gone.push(m.id);
            stopped.push(m.id);
            out.push(stop(snap.now, &class.name, m.id, why));
        }
        let Some(budget) = budget else {
            return stopped;
        };
        while step.committed(&gone) + renewing > budget + 1e-9 {
            let Some(m) = step.billing_per_second(&gone).into_iter().max_by(|a, b| {
                (a.state == MachineState::Draining)
                    .cmp(&(b.state == MachineState::Draining))
                    .then(
                        r[a.class]
                            .price_per_hour
                            .total_cmp(&r[b.class].price_per_hour),
                    )
                    .then(a.id.cmp(&b.id))
            }) else {
                break;
            };
            let why = format!(
                "spent ${:.3} of the budget ${budget:.2}: it would overspend before the next step",
                snap.spent
            );
            gone.push(m.id);
            stopped.push(m.id);
            out.push(stop(snap.now, &r[m.class].name, m.id, why));
        }
        stopped
    }

    /// With an objective and no task duration known: wait for one if a
    /// machine runs tasks, else start one machine of the cheapest class to
    /// learn it (nothing else would ever run a task).
    fn learn(&mut self, step: &Step, out: &mut Vec<Decision>) -> Option<(Vec<u32>, String)> {
        let snap = step.snap;
        let waiting = "waiting for a first task to finish before planning for the objective \
                       (scaling.task_estimate gives a prior)";
        if !step.active.is_empty() || snap.tasks.running > 0 || snap.tasks.queued == 0 {
            self.report(out, snap.now, "waiting", waiting.to_string());
            return None;
        }
        let Some(class) = step.cheapest_to_learn() else {
            let why =
                "no machine runs tasks and no class may start one: nothing can run".to_string();
            self.report(out, snap.now, "nothing", why);
            return None;
        };
        let mut extra = step.none();
        extra[class] = 1;
        let why = "no task duration known yet (no private machine, no scaling.task_estimate): \
                   one machine of the cheapest class to learn it, then the plan"
            .to_string();
        Some((extra, why))
    }

    /// With neither deadline nor budget: enough slots for the unfinished tasks.
    fn workload(&self, step: &Step) -> Option<(Vec<u32>, String)> {
        let per_slot = step.policy.scaling.queue_per_slot;
        let unfinished = step.snap.tasks.queued + step.snap.tasks.running;
        let wanted = (unfinished as f64 / per_slot).ceil() as u32;
        let slots = step.slots(&step.none());
        if wanted <= slots {
            return None;
        }
        let mut extra = step.none();
        while step.slots(&extra) < wanted {
            let Some(class) = step.order().into_iter().find(|&c| step.room(c, &extra) > 0) else {
                break;
            };
            extra[class] += 1;
        }
        let why = format!("{unfinished} unfinished tasks on {slots} slots > {per_slot} per slot");
        (extra.iter().any(|&n| n > 0)).then_some((extra, why))
    }

    /// Deadline and/or budget, and a stage due sooner ([`Step::due`]):
    /// what the job's plan adds, and more of a class if the stage's wants
    /// more; with the warnings on the way.
    fn objective(&mut self, step: &Step, out: &mut Vec<Decision>) -> Option<(Vec<u32>, String)> {
        let job = self.meet(step, out);
        let Some(stage) = step.due() else {
            return job;
        };
        let Some((more, why)) = self.meet(&stage, out) else {
            return job;
        };
        let mut extra = job.as_ref().map_or_else(|| step.none(), |(e, _)| e.clone());
        if more.iter().zip(&extra).all(|(m, e)| m <= e) {
            return job;
        }
        for (e, m) in extra.iter_mut().zip(&more) {
            *e = (*e).max(*m);
        }
        Some((extra, format!("the running stage's tasks: {why}")))
    }

    /// What to add for `step`'s deadline and/or the budget.
    fn meet(&mut self, step: &Step, out: &mut Vec<Decision>) -> Option<(Vec<u32>, String)> {
        let now = step.snap.now;
        let budget = step.policy.objective.budget;
        let Some(deadline) = step.deadline else {
            let budget = budget?;
            let plan = self.fastest_within(step, budget);
            let extra = plan
                .as_ref()
                .map_or_else(|| step.none(), |(e, _)| e.clone());
            if step.project(&extra, &[], Some(budget)).0.is_infinite() {
                // What the planned machines, or one of the cheapest class,
                // would spend to finish.
                let mut some = extra.clone();
                if some.iter().all(|&n| n == 0)
                    && let Some(c) = step.order().into_iter().find(|&c| step.room(c, &some) > 0)
                {
                    some[c] = 1;
                }
                let (_, needed) = step.project(&some, &[], None);
                let why = format!(
                    "the budget ${budget:.2} cannot finish the job: about ${needed:.2} is needed"
                );
                self.report(out, now, "budget-short", why);
            }
            return plan;
        };
        let margin = step.margin();
        let before = step.finish(&step.none(), &[]);
        if before <= deadline - margin {
            let (wide, by) = step.drain_early(deadline - margin, &step.none())?;
            let (after, cost) = step.project(&wide, &[], None);
            let why = format!(
                "projected {} meets the deadline {}, but {}; with them {}, about ${cost:.2} in all",
                human(before),
                human(deadline),
                early(by),
                human(after)
            );
            return Some((wide, why));
        }
        // With the margin; else without it; else at even odds rather
        // than everything at once.
        let median = step.median();
        let (mut quantile, mut kept) = (1.0 - step::MISS, margin);
        let (extra, meets) = match step.cheapest_meeting(deadline - margin) {
            (_, false) => {
                kept = 0.0;
                match step.cheapest_meeting(deadline) {
                    (_, false) => {
                        quantile = 0.5;
                        median.cheapest_meeting(deadline)
                    }
                    met => met,
                }
            }
            met => met,
        };
        // With the margin kept, the queue drained early if that costs little more.
        let (extra, drained) = match step.drain_early(deadline - margin, &extra) {
            Some((wide, by)) if kept > 0.0 => (wide, format!("; {}", early(by))),
            _ => (extra, String::new()),
        };
        for class in step.too_slow_to_boot(deadline) {
            let r = &step.policy.resources[class];
            let task = step.estimates.as_ref().map_or(0.0, |e| e[class]);
            let why = format!(
                "{} cannot help: boot {} and a {} task > time left {}",
                r.name,
                human(r.boot_time),
                human(task),
                human(deadline - now)
            );
            self.report_on(step, out, &format!("boot:{}", r.name), why);
        }
        let planned = if quantile < 1.0 - step::MISS {
            &median
        } else {
            step
        };
        let (after, cost) = planned.project(&extra, &[], None);
        if !meets {
            let why = format!(
                "the deadline {} cannot be met: with every usable class at its max the projected finish is {}",
                human(deadline),
                human(after)
            );
            self.report_on(step, out, "unreachable", why);
        }
        match budget {
            Some(budget) if cost > budget + 1e-9 => {
                if meets {
                    let why = format!(
                        "meeting the deadline {} needs about ${cost:.2}; the budget is ${budget:.2}: \
                         going as fast as the budget allows",
                        human(deadline)
                    );
                    self.report_on(step, out, "infeasible", why);
                }
                self.fastest_within(step, budget)
            }
            _ if !meets => self.fastest_within(step, budget.unwrap_or(f64::INFINITY)),
            _ => {
                let less = if kept > 0.0 {
                    format!(" less a margin of {}", human(kept))
                } else {
                    String::new()
                };
                let why = format!(
                    "projected {} > deadline {}{less} (the last tasks at their \
                     p{:.0} duration){drained}; with them {}, about ${cost:.2} in all",
                    human(before),
                    human(deadline),
                    100.0 * quantile,
                    human(after)
                );
                extra.iter().any(|&n| n > 0).then_some((extra, why))
            }
        }
    }

    /// As fast as possible while the projected spend stays within `budget`.
    fn fastest_within(&self, step: &Step, budget: f64) -> Option<(Vec<u32>, String)> {
        let limit = (budget < f64::INFINITY).then_some(budget);
        let (before, _) = step.project(&step.none(), &[], limit);
        let (extra, after, cost) = step.fastest_within(budget);
        let within = match limit {
            Some(budget) => format!("fastest within the budget ${budget:.2}"),
            None => "as fast as possible".to_string(),
        };
        let why = format!(
            "{within}: projected {} → {}, about ${cost:.2} in all",
            human(before),
            human(after)
        );
        extra.iter().any(|&n| n > 0).then_some((extra, why))
    }

    /// Releases paid per-second machines, costliest first, once the budget
    /// cannot pay another planning interval and a last task on each;
    /// returns them.
    fn budget_guard(
        &self,
        step: &Step,
        stopped: &[MachineId],
        out: &mut Vec<Decision>,
    ) -> Vec<MachineId> {
        let Some(budget) = step.policy.objective.budget else {
            return Vec::new();
        };
        let spent = step.snap.spent;
        let mut gone: Vec<MachineId> = stopped.to_vec();
        while spent + step.reserve(&gone) > budget + 1e-9 {
            let Some(m) = step.costliest_per_second(&gone) else {
                break;
            };
            gone.push(m.id);
            let class = &step.policy.resources[m.class].name;
            let why =
                format!("spent ${spent:.3} of the budget ${budget:.2}: no more for another step");
            out.push(release(step.snap.now, class, m.id, why));
        }
        gone.retain(|id| !stopped.contains(id));
        gone
    }

    /// Releases idle machines, per-hour ones shortly before their next
    /// hour, and with a deadline the per-second ones it does not need
    /// (busy ones drain); adds them to `gone` (released already).
    fn scale_in(&self, step: &Step, gone: &mut Vec<MachineId>, out: &mut Vec<Decision>) {
        let snap = step.snap;
        let scaling = &step.policy.scaling;
        if !step.cooled(self.last_out, scaling.cooldown) {
            return;
        }
        let no_work = snap.tasks.queued == 0 && snap.tasks.running == 0;
        let running: Vec<&Machine> = step
            .active
            .iter()
            .copied()
            .filter(|m| m.state == MachineState::Running && !gone.contains(&m.id))
            .collect();
        for m in running {
            let class = &step.policy.resources[m.class];
            if class.provider == ProviderKind::Static {
                continue;
            }
            let idle = m.busy_slots == 0;
            let why = match class.billing {
                Billing::PerHour if !class.is_private() => {
                    let left = step.hour_left(m);
                    if left > step.hour_window() && !no_work {
                        continue;
                    }
                    match () {
                        _ if no_work => "no work left".to_string(),
                        // It runs one of the last tasks: stopped, the task
                        // would only run again elsewhere, from the start.
                        _ if !idle && snap.tasks.queued == 0 => continue,
                        _ if step.needed_another_hour(m, gone) => continue,
                        _ => format!(
                            "its paid hour ends in {} and it is not needed for another",
                            human(left)
                        ),
                    }
                }
                _ if idle && no_work => "no work left".to_string(),
                _ if idle
                    && snap.tasks.queued == 0
                    && m.idle_since
                        .is_some_and(|t| snap.now - t >= scaling.idle_release) =>
                {
                    format!(
                        "idle for {}",
                        human(snap.now - m.idle_since.unwrap_or(snap.now))
                    )
                }
                _ => continue,
            };
            gone.push(m.id);
            out.push(release(snap.now, &class.name, m.id, why));
        }
        while let Some((m, finish)) = step.surplus(gone) {
            let deadline = step.policy.objective.deadline.unwrap_or(finish);
            let why = format!(
                "not needed for the deadline {} (projected {} without it)",
                human(deadline),
                human(finish)
            );
            gone.push(m.id);
            out.push(release(
                snap.now,
                &step.policy.resources[m.class].name,
                m.id,
                why,
            ));
        }
    }

    /// Reports for `step`'s tasks: a stage's ([`Step::due`]) once for each
    /// due time, and saying so.
    fn report_on(&mut self, step: &Step, out: &mut Vec<Decision>, key: &str, reason: String) {
        let now = step.snap.now;
        match (step.stage, step.deadline) {
            (true, Some(due)) => {
                let key = format!("stage@{due:.0}:{key}");
                self.report(
                    out,
                    now,
                    &key,
                    format!("the running stage's tasks: {reason}"),
                );
            }
            _ => self.report(out, now, key, reason),
        }
    }

    /// Adds a warning once per `key`.
    fn report(&mut self, out: &mut Vec<Decision>, at: Secs, key: &str, reason: String) {
        if self.reported.insert(key.to_string()) {
            out.push(Decision {
                at,
                action: Action::Report,
                reason,
            });
        }
    }
}

/// Why a plan drains the queue by `by` ([`step::DRAIN_SHARE`] of the deadline).
fn early(by: Secs) -> String {
    format!(
        "the queue drained by {} ({:.0}% of the deadline, for at most {:.0}% more): \
         a task many times the mean drawn late still ends in time",
        human(by),
        100.0 * step::DRAIN_SHARE,
        100.0 * step::DRAIN_PREMIUM
    )
}

/// The decision to release `machine` of `class` because `why`.
pub(crate) fn release(at: Secs, class: &str, machine: MachineId, why: String) -> Decision {
    Decision {
        at,
        action: Action::Release {
            class: class.to_string(),
            machine,
        },
        reason: format!("-1 {class} ({machine}): {why}"),
    }
}

/// The decision to stop `machine` of `class` with its tasks because `why`.
pub(crate) fn stop(at: Secs, class: &str, machine: MachineId, why: String) -> Decision {
    Decision {
        at,
        action: Action::Stop {
            class: class.to_string(),
            machine,
        },
        reason: format!("-1 {class} ({machine}), its tasks stopped and queued again: {why}"),
    }
}

/// One start decision per class with machines to add; whether any was.
fn push_starts(step: &Step, extra: &[u32], why: &str, out: &mut Vec<Decision>) -> bool {
    let mut any = false;
    for (class, &count) in extra.iter().enumerate().filter(|(_, n)| **n > 0) {
        let name = step.policy.resources[class].name.clone();
        out.push(Decision {
            at: step.snap.now,
            reason: format!("+{count} {name}: {why}"),
            action: Action::Start { class: name, count },
        });
        any = true;
    }
    any
}
