//! One planning step's view of the job: the usable machines, the estimates,
//! and the projections (finish, cost) of adding or removing machines.

use crate::clock::{HOUR, Secs};
use crate::estimate::{Spread, billed, into_hour};
use crate::machine::{Machine, MachineId, MachineState, Snapshot, Tasks};
use crate::planner::project::{Capacity, fluid_finish};
use crate::policy::{Billing, Policy, ProviderKind};

/// Machines to add, per class index.
pub type Extra = Vec<u32>;

/// What a set of machines is projected to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projected {
    /// When the work left is done on average (the fluid finish: the queue
    /// drained, no task's tail counted).
    pub drain: Secs,
    /// When the last task is done, later with chance [`MISS`].
    pub finish: Secs,
    /// Total spend: billed so far and what the machines will be billed.
    pub spend: f64,
}

#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub policy: &'a Policy,
    pub snap: &'a Snapshot,
    /// Machines counting towards capacity (failed ones left out).
    pub active: Vec<&'a Machine>,
    /// Expected task duration per class, when every class has one: the
    /// larger of the class's own and the censored mean at its speed.
    pub estimates: Option<Vec<Secs>>,
    /// The shape of task durations (cautious before samples tell it).
    pub spread: Spread,
    /// The chance a projected finish is allowed to be late.
    pub miss: f64,
    /// The tasks planned for: the job's, or a stage's ([`Step::due`]).
    pub tasks: Tasks,
    /// The deadline they are planned for.
    pub deadline: Option<Secs>,
    /// Whether they are a stage's ([`Step::due`]), not the job's.
    pub stage: bool,
}

/// The chance the projected finish is allowed to be late: projections are
/// made at the `1 - MISS` quantile of the last tasks' durations.
pub const MISS: f64 = 0.2;

/// With a budget alone, once a paid machine runs or is planned, another is
/// bought only while the share of the time left it saves is at least this
/// times the share of the budget it adds: speed is bought with the budget,
/// but not at any price (a machine that costs a third of the budget must
/// take a sixth off the time left).
pub const WORTH: f64 = 0.5;

/// With a deadline, the queue is planned to drain by this share of it
/// (from the job's start) when that costs at most [`DRAIN_PREMIUM`] more
/// than the cheapest plan: a task drawn late and many times the mean long
/// then still has the other half to run in.
pub const DRAIN_SHARE: f64 = 0.5;

/// How much more an early drain ([`DRAIN_SHARE`]) may cost than the
/// deadline alone: the cheapest plan that meets it, with the per-second
/// machines it would release gone (not the fleet as it stands, which
/// earlier drains widened: the premium does not compound as the estimate
/// climbs). 0.25 does not reach the grid's s13, 0.5 loses s35 (BENCHMARKS.md).
pub const DRAIN_PREMIUM: f64 = 0.3;

impl<'a> Step<'a> {
    pub fn new(policy: &'a Policy, snap: &'a Snapshot, failed: &[MachineId]) -> Self {
        Step {
            policy,
            snap,
            active: snap
                .machines
                .iter()
                .filter(|m| m.is_active() && !failed.contains(&m.id))
                .collect(),
            // Every class's own estimate, at least the censored mean at its
            // speed; with no task finished yet, the running tasks' ages
            // alone: a lower bound that grows until the first one ends.
            estimates: match snap
                .estimates
                .iter()
                .copied()
                .collect::<Option<Vec<Secs>>>()
            {
                Some(own) => Some(
                    own.iter()
                        .zip(&policy.resources)
                        .map(|(&e, r)| snap.spread.map_or(e, |s| e.max(s.mean / r.speed)))
                        .collect(),
                ),
                None => snap
                    .spread
                    .map(|s| policy.resources.iter().map(|r| s.mean / r.speed).collect()),
            },
            spread: snap.spread.unwrap_or(Spread { mean: 1.0, cv: 1.0 }),
            miss: MISS,
            tasks: snap.tasks,
            deadline: policy.objective.deadline,
            stage: false,
        }
    }

    /// The step for the tasks due before the job's deadline (a workflow
    /// stage's): those alone, no stage after them, planned for their due
    /// time. None when the job's deadline is as soon: the job's plan,
    /// which counts them, meets it.
    pub fn due(&self) -> Option<Step<'a>> {
        let due = self.tasks.due?;
        if self.deadline.is_some_and(|d| d <= due.at) {
            return None;
        }
        let at = due.at;
        Some(Step {
            tasks: Tasks {
                queued: due.queued,
                running: due.running,
                done: self.tasks.done,
                stages_ahead: 0,
                due: None,
            },
            deadline: Some(at),
            stage: true,
            ..self.clone()
        })
    }

    /// The margin kept between the projected finish and the deadline when
    /// scaling out (twice that when scaling in): two planning intervals and
    /// a twentieth of the time left.
    pub fn margin(&self) -> Secs {
        let left = self.deadline.map_or(0.0, |d| (d - self.snap.now).max(0.0));
        2.0 * self.policy.scaling.interval + 0.05 * left
    }

    /// How long the last of the tasks left may take on `class`: the
    /// quantile at which one of them, among as many as run at once, is
    /// later with chance [`MISS`].
    pub fn tail(&self, class: usize, at_once: f64) -> Secs {
        let e = self.estimates.as_ref().map_or(0.0, |e| e[class]);
        let k = at_once.max(1.0);
        self.spread.quantile(e, 1.0 - self.miss / k).max(e)
    }

    /// How long after the fluid finish the last of `at_once` slots of
    /// `class` is done, later with chance [`MISS`].
    pub fn overrun(&self, class: usize, at_once: f64) -> Secs {
        let e = self.estimates.as_ref().map_or(0.0, |e| e[class]);
        self.spread.overrun(e, at_once, self.miss)
    }

    /// When the queue should be drained by ([`DRAIN_SHARE`] of the job's
    /// deadline), while that is still ahead: with a deadline alone (a
    /// budget keeps its money for the deadline), once a task has ended
    /// (before, the duration is a prior or the running tasks' ages: a
    /// guess to plan the deadline on, not to buy a guard with), and only
    /// for the job's last tasks (not a stage's, nor with stages ahead: its
    /// queue is not the job's).
    pub fn drain_by(&self) -> Option<Secs> {
        if self.policy.objective.budget.is_some()
            || self.snap.tasks.done == 0
            || self.tasks.stages_ahead > 0
        {
            return None;
        }
        let by = DRAIN_SHARE * self.deadline?;
        (!self.stage && by > self.snap.now).then_some(by)
    }

    /// The same step projecting at the median: a plan that meets the
    /// deadline even chance, when none meets it with chance `1 - MISS`.
    pub fn median(&self) -> Step<'a> {
        Step {
            miss: 0.5,
            ..self.clone()
        }
    }

    /// No machines added.
    pub fn none(&self) -> Extra {
        vec![0; self.policy.resources.len()]
    }

    /// Whether `cooldown` has passed since `last`.
    pub fn cooled(&self, last: Option<Secs>, cooldown: Secs) -> bool {
        last.is_none_or(|t| self.snap.now - t >= cooldown)
    }

    /// Machines of `class` it still pays for: requested, booting, running
    /// or draining (failed ones until they are gone).
    fn paying(&self, class: usize) -> u32 {
        self.snap
            .machines
            .iter()
            .filter(|m| m.class == class && m.state != MachineState::Released)
            .count() as u32
    }

    /// Slots of the active machines plus `extra`.
    pub fn slots(&self, extra: &[u32]) -> u32 {
        let r = &self.policy.resources;
        let active: u32 = self.active.iter().map(|m| r[m.class].slots).sum();
        active + extra.iter().zip(r).map(|(n, c)| n * c.slots).sum::<u32>()
    }

    /// Machines of `class` that may still be started: within its max, and
    /// while the machines added and those still booting that are ready
    /// no later than one of `class` would be have fewer slots than there
    /// are tasks queued (a new machine takes only queued tasks, and a
    /// booting one takes them as soon: more cannot help the last running
    /// ones end sooner).
    pub fn room(&self, class: usize, extra: &[u32]) -> u32 {
        let r = &self.policy.resources[class];
        let added: u32 = extra
            .iter()
            .zip(&self.policy.resources)
            .map(|(n, c)| n * c.slots)
            .sum();
        if r.provider == ProviderKind::Static
            || u64::from(added + self.booting_slots(self.snap.now + r.boot_time))
                >= self.tasks.queued
        {
            return 0;
        }
        r.limit().saturating_sub(self.paying(class) + extra[class])
    }

    /// Slots of the machines still booting that are ready by `by`.
    fn booting_slots(&self, by: Secs) -> u32 {
        let r = &self.policy.resources;
        self.active
            .iter()
            .filter(|m| m.is_booting() && m.requested_at + r[m.class].boot_time <= by)
            .map(|m| r[m.class].slots)
            .sum()
    }

    /// What one task costs on `class` (price per slot-second at its speed,
    /// and for a preemptible class the work it loses counted).
    fn cost_per_task(&self, class: usize) -> f64 {
        let r = &self.policy.resources[class];
        let duration = match &self.estimates {
            Some(e) => e[class],
            None => 1.0 / r.speed,
        };
        r.price_per_hour * duration / r.slots as f64 / self.useful(class).max(f64::MIN_POSITIVE)
    }

    /// The share of a machine of `class`'s time that does work kept: less
    /// than 1 for a preemptible class ([`Resource::useful`]).
    ///
    /// [`Resource::useful`]: crate::policy::Resource::useful
    fn useful(&self, class: usize) -> f64 {
        let task = self.estimates.as_ref().map_or(0.0, |e| e[class]);
        self.policy.resources[class].useful(task)
    }

    /// Classes that may be started, the best first: private, then by cost per
    /// task, then by speed.
    pub fn order(&self) -> Vec<usize> {
        let r = &self.policy.resources;
        let mut order: Vec<usize> = (0..r.len())
            .filter(|&c| r[c].provider != ProviderKind::Static)
            .collect();
        let rate = |c: usize| {
            r[c].slots as f64 * self.useful(c)
                / self.estimates.as_ref().map_or(1.0 / r[c].speed, |e| e[c])
        };
        order.sort_by(|&a, &b| {
            (!r[a].is_private())
                .cmp(&!r[b].is_private())
                .then(self.cost_per_task(a).total_cmp(&self.cost_per_task(b)))
                .then(rate(b).total_cmp(&rate(a)))
        });
        order
    }

    /// A machine of `class` started now can finish a task by `horizon`.
    fn helps(&self, class: usize, horizon: Secs) -> bool {
        let e = self.estimates.as_ref().map_or(0.0, |e| e[class]);
        self.snap.now + self.policy.resources[class].boot_time + e <= horizon
    }

    /// Classes with room whose boot and one task outlast the deadline.
    pub fn too_slow_to_boot(&self, deadline: Secs) -> Vec<usize> {
        let none = self.none();
        self.order()
            .into_iter()
            .filter(|&c| self.room(c, &none) > 0 && !self.helps(c, deadline))
            .collect()
    }

    /// Tasks left: the queued and half the running.
    fn work(&self) -> f64 {
        self.tasks.queued as f64 + self.tasks.running as f64 / 2.0
    }

    /// Projected finish with `extra` added and `gone` removed, every machine
    /// working to the end.
    pub fn finish(&self, extra: &[u32], gone: &[MachineId]) -> Secs {
        self.project(extra, gone, None).0
    }

    /// Projected finish and total spend with `extra` added and `gone`
    /// removed ([`Step::projection`]).
    pub fn project(&self, extra: &[u32], gone: &[MachineId], budget: Option<f64>) -> (Secs, f64) {
        let p = self.projection(extra, gone, budget);
        (p.finish, p.spend)
    }

    /// Projected drain, finish and total spend with `extra` added and `gone`
    /// removed. A preemptible machine works at the share of its rate that is kept
    /// (taken back, it is replaced). With a `budget`, paid machines stop
    /// when it runs out: per-second ones
    /// when the money left is burnt, per-hour ones at the end of the hours
    /// paid (a new one pays its first hour up front). The finish is the fluid
    /// finish plus the largest overrun of the last tasks of a class in use
    /// (among the busy slots of that class and the slower ones), and one
    /// task more for each stage ahead (it starts when the one before is
    /// done).
    pub fn projection(&self, extra: &[u32], gone: &[MachineId], budget: Option<f64>) -> Projected {
        let Some(estimates) = &self.estimates else {
            return Projected {
                drain: Secs::INFINITY,
                finish: Secs::INFINITY,
                spend: self.snap.spent,
            };
        };
        let now = self.snap.now;
        let r = &self.policy.resources;
        // (class, ready, requested at) of every machine counted.
        let mut machines: Vec<(usize, Secs, Secs)> = Vec::new();
        for m in self.active.iter().filter(|m| !gone.contains(&m.id)) {
            let ready = match m.state {
                MachineState::Running => now,
                _ => (m.requested_at + r[m.class].boot_time).max(now),
            };
            machines.push((m.class, ready, m.requested_at));
        }
        for (class, &n) in extra.iter().enumerate() {
            machines.extend((0..n).map(|_| (class, now + r[class].boot_time, now)));
        }
        let paid = |class: usize| !r[class].is_private();
        let per_second = |class: usize| paid(class) && r[class].billing == Billing::PerSecond;
        let stop = budget.map_or(Secs::INFINITY, |budget| {
            let upfront: f64 = machines
                .iter()
                .filter(|(c, _, requested)| paid(*c) && !per_second(*c) && *requested == now)
                .map(|(c, _, _)| r[*c].price_per_hour)
                .sum();
            // Per-hour machines burn their price an hour once their first
            // (paid up front or already billed) is over.
            let burn: f64 = machines
                .iter()
                .filter(|(c, _, _)| paid(*c))
                .map(|(c, _, _)| r[*c].price_per_hour / HOUR)
                .sum();
            let reserve: f64 = machines
                .iter()
                .filter(|(c, _, _)| per_second(*c))
                .map(|&(c, _, _)| self.reserve_of(c))
                .sum();
            let left = (budget - self.snap.spent - upfront - reserve).max(0.0);
            if burn > 0.0 {
                now + left / burn
            } else {
                Secs::INFINITY
            }
        });
        let until = |class: usize, requested: Secs| {
            if budget.is_none() || !paid(class) {
                Secs::INFINITY
            } else if per_second(class) {
                stop
            } else {
                // The paid hour, and the whole hours after it the money pays.
                let paid_until = now + HOUR - into_hour(requested, now);
                paid_until + ((stop - paid_until) / HOUR).floor().max(0.0) * HOUR
            }
        };
        let caps: Vec<Capacity> = machines
            .iter()
            .map(|&(class, ready, requested)| Capacity {
                ready,
                until: until(class, requested),
                rate: r[class].slots as f64 * self.useful(class) / estimates[class],
            })
            .collect();
        let work = self.work();
        let mut class_slots = vec![0.0; r.len()];
        for m in &machines {
            class_slots[m.0] += f64::from(r[m.0].slots);
        }
        let slots: f64 = class_slots.iter().sum();
        let at_once = slots.min((self.tasks.queued + self.tasks.running) as f64);
        // The busy slots of the classes as slow as `c` or slower (the slots
        // of all classes busy in proportion): a slow class's last task is
        // late among its own few slots, not among all.
        let busy = |c: usize| {
            let slower: f64 = (0..r.len())
                .filter(|&o| r[o].speed <= r[c].speed)
                .map(|o| class_slots[o])
                .sum();
            slower * at_once / slots.max(1.0)
        };
        let worst = |f: &dyn Fn(usize) -> Secs| {
            (0..r.len())
                .filter(|&c| class_slots[c] > 0.0)
                .map(f)
                .fold(0.0, f64::max)
        };
        let overrun = worst(&|c| self.overrun(c, busy(c)));
        let stages = worst(&|c| self.tail(c, at_once)) * f64::from(self.tasks.stages_ahead);
        let drain = fluid_finish(now, work, &caps);
        let finish = if work == 0.0 {
            now
        } else {
            drain + overrun + stages
        };
        let spend: f64 = machines
            .iter()
            .filter(|m| paid(m.0))
            .map(|&(class, _, requested)| {
                let end = finish.min(until(class, requested)).max(now);
                let before = if requested < now {
                    billed(&r[class], requested, now)
                } else {
                    0.0
                };
                billed(&r[class], requested, end) - before
            })
            .sum();
        Projected {
            drain,
            finish,
            spend: self.snap.spent + spend,
        }
    }

    /// The cheapest machines to add so the projected finish meets
    /// `deadline`; `false` if even all that help do not. A small search,
    /// as for a fixed fleet: machines added one at a time, the best class
    /// by cost per task first, or one class first (to its max) and then
    /// the others, or one class alone to its max. On each path the first
    /// mix that meets the deadline is a candidate, and so is any wider one
    /// after it that costs no more (more per-hour machines may pay fewer
    /// hours); of the candidates the one projected cheapest in all (boots
    /// and billing granularity counted), and of those within 2% of it the
    /// one finishing first.
    pub fn cheapest_meeting(&self, deadline: Secs) -> (Extra, bool) {
        let order = self.order();
        let mut firsts: Vec<Option<usize>> = vec![None];
        firsts.extend(order.iter().map(|&c| Some(c)));
        let mut found: Vec<(Extra, Secs, f64)> = Vec::new();
        let mut fallback = self.none();
        for first in firsts {
            let mut extra = self.none();
            // The cheapest mix of this path so far that meets the deadline.
            let mut meeting: Option<f64> = None;
            loop {
                let (finish, cost) = self.project(&extra, &[], None);
                if finish <= deadline && meeting.is_none_or(|least| cost <= least + 1e-9) {
                    meeting = Some(cost);
                    found.push((extra.clone(), finish, cost));
                }
                let pick = first
                    .into_iter()
                    .chain(order.iter().copied())
                    .find(|&c| self.room(c, &extra) > 0 && self.helps(c, deadline));
                match pick {
                    Some(c) => extra[c] += 1,
                    None => {
                        if first.is_none() && meeting.is_none() {
                            fallback = extra;
                        }
                        break;
                    }
                }
            }
        }
        let Some(least) = found.iter().map(|f| f.2).min_by(f64::total_cmp) else {
            return (fallback, false);
        };
        let best = found
            .into_iter()
            .filter(|f| f.2 <= least * 1.02 + 1e-9)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
            .map(|f| f.0)
            .unwrap_or(fallback);
        (best, true)
    }

    /// `cheapest` (which meets `deadline`) widened with per-second machines
    /// (the cheapest per task first) until the queue drains by
    /// [`Step::drain_by`], when it does not already and the wider plan's
    /// projected spend is at most [`DRAIN_PREMIUM`] more; with the drain
    /// time aimed at. Per-hour machines are not bought for it: each pays a
    /// whole hour however soon the queue drains.
    pub fn drain_early(&self, deadline: Secs, cheapest: &[u32]) -> Option<(Extra, Secs)> {
        let by = self.drain_by()?;
        let base = self.projection(cheapest, &[], None);
        if base.drain <= by {
            return None;
        }
        let r = &self.policy.resources;
        let per_second: Vec<usize> = self
            .order()
            .into_iter()
            .filter(|&c| r[c].billing == Billing::PerSecond)
            .collect();
        let mut wide = cheapest.to_vec();
        let wider = loop {
            let c = per_second
                .iter()
                .copied()
                .find(|&c| self.room(c, &wide) > 0 && self.helps(c, by))?;
            wide[c] += 1;
            let p = self.projection(&wide, &[], None);
            if p.drain <= by {
                break p;
            }
        };
        (wider.finish <= deadline && self.drain_affordable(cheapest, wider.spend))
            .then_some((wide, by))
    }

    /// Machines to add, one at a time, while each makes the projected finish
    /// (paid machines stopping when the budget runs out) earlier by 1% or more;
    /// with that finish and the projected spend. Each is of the first class
    /// by cost per task that does; once the job finishes at all and no
    /// deadline is planned for (a budget alone), of the class that saves the
    /// most time per dollar more (a per-hour machine pays its whole hour for
    /// a job of minutes), and once a paid machine is in the plan only while
    /// it saves a share of the time left at least [`WORTH`] times the share
    /// of the budget it adds.
    pub fn fastest_within(&self, budget: f64) -> (Extra, Secs, f64) {
        let limit = (budget < f64::INFINITY).then_some(budget);
        let mut extra = self.none();
        let (mut finish, mut spend) = self.project(&extra, &[], limit);
        loop {
            // Any finite finish beats never.
            let gain = if finish.is_finite() {
                1.0_f64.max(0.01 * (finish - self.snap.now))
            } else {
                0.0
            };
            let candidates = self.order().into_iter().filter_map(|c| {
                if self.room(c, &extra) == 0 || !self.helps(c, finish) {
                    return None;
                }
                let mut more = extra.clone();
                more[c] += 1;
                let (sooner, more_spend) = self.project(&more, &[], limit);
                let worth = !finish.is_finite()
                    || self.deadline.is_some()
                    || !self.pays_for_any(&extra)
                    || (finish - sooner) / (finish - self.snap.now).max(1e-9)
                        >= WORTH * (more_spend - spend) / budget;
                (sooner < finish - gain && more_spend <= budget + 1e-9 && worth)
                    .then_some((more, sooner, more_spend))
            });
            // Once the job finishes at all, and no deadline is planned
            // for: the machine that saves the most time per dollar more.
            let next = if finish.is_finite() && self.deadline.is_none() {
                let value = |&(_, sooner, more): &(Extra, Secs, f64)| {
                    (finish - sooner) / (more - spend).max(1e-9)
                };
                candidates.max_by(|a, b| value(a).total_cmp(&value(b)))
            } else {
                candidates.into_iter().next()
            };
            match next {
                Some(better) => (extra, finish, spend) = better,
                None => return (extra, finish, spend),
            }
        }
    }

    /// Whether a paid machine is active or in `extra`.
    fn pays_for_any(&self, extra: &[u32]) -> bool {
        let r = &self.policy.resources;
        self.active.iter().any(|m| !r[m.class].is_private())
            || extra.iter().zip(r).any(|(&n, c)| n > 0 && !c.is_private())
    }

    /// What the paid per-second machines (without `gone`) may still cost
    /// before a release takes effect: two planning intervals and a last task
    /// that may run three times the expected duration.
    pub fn reserve(&self, gone: &[MachineId]) -> f64 {
        self.per_second_paid(gone)
            .into_iter()
            .map(|m| self.reserve_of(m.class))
            .sum()
    }

    /// The reserve of one per-second machine of `class`.
    fn reserve_of(&self, class: usize) -> f64 {
        let task = self.estimates.as_ref().map_or(0.0, |e| e[class]);
        let price = self.policy.resources[class].price_per_hour;
        price / HOUR * (2.0 * self.policy.scaling.interval + 3.0 * task)
    }

    /// Active paid per-second machines, without `gone`.
    fn per_second_paid(&self, gone: &[MachineId]) -> Vec<&'a Machine> {
        let r = &self.policy.resources;
        self.active
            .iter()
            .copied()
            .filter(|m| {
                let c = &r[m.class];
                !gone.contains(&m.id)
                    && !c.is_private()
                    && c.billing == Billing::PerSecond
                    && c.provider != ProviderKind::Static
            })
            .collect()
    }

    /// The paid per-second machine that costs most per task (newest on ties).
    pub fn costliest_per_second(&self, gone: &[MachineId]) -> Option<&'a Machine> {
        self.per_second_paid(gone).into_iter().max_by(|a, b| {
            self.cost_per_task(a.class)
                .total_cmp(&self.cost_per_task(b.class))
                .then(a.id.cmp(&b.id))
        })
    }

    /// With a deadline and work queued: the running paid per-second
    /// machine (without `gone`) that costs most per task (newest on ties),
    /// if the projected finish without it and `gone` stays within the
    /// deadline less twice the scale-out margin (and a stage due sooner
    /// within its own); with that finish. The
    /// wider margin in than out keeps a machine released now from being
    /// bought back later, after a boot. A machine an early drain
    /// ([`Step::drain_early`]) needs is kept while the fleet costs at most
    /// [`DRAIN_PREMIUM`] more than the deadline alone and the queue would
    /// drain later than [`Step::drain_by`] less the margin without it.
    pub fn surplus(&self, gone: &[MachineId]) -> Option<(&'a Machine, Secs)> {
        self.spare(gone, true)
    }

    /// [`Step::surplus`], keeping the machines an early drain needs
    /// ([`Step::drain_by`]) if `drain`.
    fn spare(&self, gone: &[MachineId], drain: bool) -> Option<(&'a Machine, Secs)> {
        let deadline = self.deadline?;
        if self.estimates.is_none() || self.tasks.queued == 0 {
            return None;
        }
        let m = self
            .per_second_paid(gone)
            .into_iter()
            .filter(|m| m.state == MachineState::Running)
            .max_by(|a, b| {
                self.cost_per_task(a.class)
                    .total_cmp(&self.cost_per_task(b.class))
                    .then(a.id.cmp(&b.id))
            })?;
        let mut without = gone.to_vec();
        without.push(m.id);
        let slack = 2.0 * self.margin();
        let finish = self.finish(&self.none(), &without);
        let stage_spares = self.due().is_none_or(|stage| {
            let due = stage.deadline.unwrap_or(Secs::INFINITY);
            stage.tasks.queued == 0
                || stage.finish(&stage.none(), &without) <= due - 2.0 * stage.margin()
        });
        let drains = !drain
            || self.drain_by().is_none_or(|by| {
                self.projection(&self.none(), &without, None).drain <= by - self.margin()
                    || !self
                        .drain_affordable(&self.none(), self.project(&self.none(), gone, None).1)
            });
        (finish <= deadline - slack && stage_spares && drains).then_some((m, finish))
    }

    /// The per-second machines the deadline alone would release.
    fn lean(&self) -> Vec<MachineId> {
        let mut gone = Vec::new();
        while let Some((m, _)) = self.spare(&gone, false) {
            gone.push(m.id);
        }
        gone
    }

    /// Whether `spend` is at most [`DRAIN_PREMIUM`] more than the deadline
    /// alone costs: `cheapest` added and the machines it would release gone.
    fn drain_affordable(&self, cheapest: &[u32], spend: f64) -> bool {
        let alone = self.project(cheapest, &self.lean(), None).1;
        spend <= (1.0 + DRAIN_PREMIUM) * alone + 1e-9
    }

    /// Seconds until a per-hour machine's next hour is charged.
    pub fn hour_left(&self, m: &Machine) -> Secs {
        HOUR - into_hour(m.requested_at, self.snap.now)
    }

    /// How long before its next hour a per-hour machine is released: long
    /// enough that a planning step surely falls in it.
    pub fn hour_window(&self) -> Secs {
        (3.0 * self.policy.scaling.interval).max(60.0)
    }

    /// Whether a per-hour machine earns another hour: work is queued, the
    /// budget affords it, and without it the deadline (or a stage's due
    /// sooner) would be missed or nearly (within twice the scale-out
    /// margin, as per-second machines are released: a machine let go at
    /// its hour is bought back, a whole hour again, when the projection
    /// next swings up).
    pub fn needed_another_hour(&self, m: &Machine, gone: &[MachineId]) -> bool {
        self.needs_hour(m, gone) || self.due().is_some_and(|stage| stage.needs_hour(m, gone))
    }

    fn needs_hour(&self, m: &Machine, gone: &[MachineId]) -> bool {
        let objective = &self.policy.objective;
        let price = self.policy.resources[m.class].price_per_hour;
        if self.tasks.queued == 0
            || objective
                .budget
                .is_some_and(|b| self.snap.spent + price > b + 1e-9)
        {
            return false;
        }
        let mut without = gone.to_vec();
        without.push(m.id);
        self.deadline.is_none_or(|d| {
            let slack = 2.0 * self.margin();
            self.finish(&self.none(), &without) > d - slack
        })
    }

    /// How long a paid per-second machine surely runs before a release
    /// takes effect: until the step after next (a step may come late).
    pub fn guard_span(&self) -> Secs {
        2.0 * self.policy.scaling.interval
    }

    /// Paid per-second machines billing now (draining ones too), without
    /// `gone`.
    pub fn billing_per_second(&self, gone: &[MachineId]) -> Vec<&'a Machine> {
        let r = &self.policy.resources;
        self.snap
            .machines
            .iter()
            .filter(|m| {
                let c = &r[m.class];
                m.state != MachineState::Released
                    && !gone.contains(&m.id)
                    && !c.is_private()
                    && c.billing == Billing::PerSecond
            })
            .collect()
    }

    /// Money surely spent: what is billed so far (per-hour machines' whole
    /// current hour included) and the per-second machines, without
    /// `gone`, until a release can take effect.
    pub fn committed(&self, gone: &[MachineId]) -> f64 {
        let r = &self.policy.resources;
        let burn: f64 = self
            .billing_per_second(gone)
            .iter()
            .map(|m| r[m.class].price_per_hour / HOUR)
            .sum();
        self.snap.spent + burn * self.guard_span()
    }

    /// What starting one machine of `class` commits at least: its first
    /// hour, or its boot, one task and a release's delay.
    pub fn start_cost(&self, class: usize) -> f64 {
        let r = &self.policy.resources[class];
        match r.billing {
            Billing::PerHour => r.price_per_hour,
            Billing::PerSecond => {
                let task = self.estimates.as_ref().map_or(0.0, |e| e[class]);
                r.price_per_hour / HOUR * (r.boot_time + task + self.guard_span())
            }
        }
    }

    /// Trims `extra` (the costliest per task first) until starting it keeps
    /// the committed spend within the budget; how many were dropped.
    pub fn affordable(&self, extra: &mut [u32], gone: &[MachineId]) -> u32 {
        let Some(budget) = self.policy.objective.budget else {
            return 0;
        };
        let mut order = self.order();
        order.reverse();
        let mut dropped = 0;
        loop {
            let cost: f64 = extra
                .iter()
                .enumerate()
                .map(|(c, &n)| f64::from(n) * self.start_cost(c))
                .sum();
            if self.committed(gone) + cost <= budget + 1e-9 {
                return dropped;
            }
            let Some(&c) = order.iter().find(|&&c| extra[c] > 0) else {
                return dropped;
            };
            extra[c] -= 1;
            dropped += 1;
        }
    }

    /// The cheapest class that may start a machine now (by price per slot),
    /// to learn a task's duration when nothing else can.
    pub fn cheapest_to_learn(&self) -> Option<usize> {
        let r = &self.policy.resources;
        let none = self.none();
        (0..r.len())
            .filter(|&c| self.room(c, &none) > 0)
            .min_by(|&a, &b| {
                let per_slot = |c: usize| r[c].price_per_hour / f64::from(r[c].slots);
                per_slot(a).total_cmp(&per_slot(b)).then(a.cmp(&b))
            })
    }
}
