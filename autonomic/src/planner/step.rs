//! One planning step's view of the job: the usable machines, the estimates,
//! and the projections (finish, cost) of adding or removing machines.

use crate::clock::{HOUR, Secs};
use crate::estimate::{billed, into_hour};
use crate::machine::{Machine, MachineId, MachineState, Snapshot};
use crate::planner::project::{Capacity, fluid_finish};
use crate::policy::{Billing, Policy, ProviderKind};

/// Machines to add, per class index.
pub type Extra = Vec<u32>;

#[derive(Debug)]
pub struct Step<'a> {
    pub policy: &'a Policy,
    pub snap: &'a Snapshot,
    /// Machines counting towards capacity (failed ones left out).
    pub active: Vec<&'a Machine>,
    /// Expected task duration per class, when every class has one.
    pub estimates: Option<Vec<Secs>>,
}

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
            estimates: snap.estimates.iter().copied().collect(),
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

    fn count(&self, class: usize) -> u32 {
        self.active.iter().filter(|m| m.class == class).count() as u32
    }

    /// Slots of the active machines plus `extra`.
    pub fn slots(&self, extra: &[u32]) -> u32 {
        let r = &self.policy.resources;
        let active: u32 = self.active.iter().map(|m| r[m.class].slots).sum();
        active + extra.iter().zip(r).map(|(n, c)| n * c.slots).sum::<u32>()
    }

    /// Machines of `class` that may still be started.
    pub fn room(&self, class: usize, extra: &[u32]) -> u32 {
        let r = &self.policy.resources[class];
        if r.provider == ProviderKind::Static {
            return 0;
        }
        r.limit().saturating_sub(self.count(class) + extra[class])
    }

    /// What one task costs on `class` (price per slot-second at its speed).
    fn cost_per_task(&self, class: usize) -> f64 {
        let r = &self.policy.resources[class];
        let duration = match &self.estimates {
            Some(e) => e[class],
            None => 1.0 / r.speed,
        };
        r.price_per_hour * duration / r.slots as f64
    }

    /// Classes that may be started, the best first: private, then by cost per
    /// task, then by speed.
    pub fn order(&self) -> Vec<usize> {
        let r = &self.policy.resources;
        let mut order: Vec<usize> = (0..r.len())
            .filter(|&c| r[c].provider != ProviderKind::Static)
            .collect();
        let rate = |c: usize| {
            r[c].slots as f64 / self.estimates.as_ref().map_or(1.0 / r[c].speed, |e| e[c])
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

    /// Classes with room whose boot alone outlasts the deadline.
    pub fn too_slow_to_boot(&self, deadline: Secs) -> Vec<usize> {
        let none = self.none();
        self.order()
            .into_iter()
            .filter(|&c| self.room(c, &none) > 0 && !self.helps(c, deadline))
            .collect()
    }

    /// Tasks left: the queued and half the running.
    fn work(&self) -> f64 {
        self.snap.tasks.queued as f64 + self.snap.tasks.running as f64 / 2.0
    }

    /// Projected finish with `extra` added and `gone` removed: the fluid finish
    /// plus one task of the slowest class in use (the tail).
    pub fn finish(&self, extra: &[u32], gone: &[MachineId]) -> Secs {
        let Some(estimates) = &self.estimates else {
            return Secs::INFINITY;
        };
        let now = self.snap.now;
        let r = &self.policy.resources;
        let mut caps = Vec::new();
        let mut tail: Secs = 0.0;
        let mut add = |class: usize, ready: Secs| {
            caps.push(Capacity {
                ready,
                rate: r[class].slots as f64 / estimates[class],
            });
            tail = tail.max(estimates[class]);
        };
        for m in self.active.iter().filter(|m| !gone.contains(&m.id)) {
            let ready = match m.state {
                MachineState::Running => now,
                _ => (m.requested_at + r[m.class].boot_time).max(now),
            };
            add(m.class, ready);
        }
        for (class, &n) in extra.iter().enumerate() {
            for _ in 0..n {
                add(class, now + r[class].boot_time);
            }
        }
        let work = self.work();
        if work == 0.0 {
            return now;
        }
        fluid_finish(now, work, &caps) + tail
    }

    /// Money the paid machines (with `extra`, without `gone`) cost from now to `until`.
    pub fn future_cost(&self, extra: &[u32], gone: &[MachineId], until: Secs) -> f64 {
        let now = self.snap.now;
        let until = until.max(now);
        let r = &self.policy.resources;
        let existing: f64 = self
            .active
            .iter()
            .filter(|m| !gone.contains(&m.id) && !r[m.class].is_private())
            .map(|m| {
                billed(&r[m.class], m.requested_at, until)
                    - billed(&r[m.class], m.requested_at, now)
            })
            .sum();
        let added: f64 = extra
            .iter()
            .enumerate()
            .filter(|(c, n)| **n > 0 && !r[*c].is_private())
            .map(|(c, &n)| n as f64 * billed(&r[c], now, until))
            .sum();
        existing + added
    }

    /// The fewest, cheapest machines to add so the projected finish meets
    /// `deadline`; `false` if even all that help do not.
    pub fn cheapest_meeting(&self, deadline: Secs) -> (Extra, bool) {
        let mut extra = self.none();
        loop {
            if self.finish(&extra, &[]) <= deadline {
                return (extra, true);
            }
            let pick = self
                .order()
                .into_iter()
                .find(|&c| self.room(c, &extra) > 0 && self.helps(c, deadline));
            match pick {
                Some(c) => extra[c] += 1,
                None => return (extra, false),
            }
        }
    }

    /// Machines to add, one at a time, while each makes the finish earlier and
    /// the projected spend stays within `budget`; with the finish and spend.
    pub fn fastest_within(&self, budget: f64) -> (Extra, Secs, f64) {
        let mut extra = self.none();
        let mut finish = self.finish(&extra, &[]);
        let spend =
            |extra: &[u32], finish: Secs| self.snap.spent + self.future_cost(extra, &[], finish);
        loop {
            let next = self.order().into_iter().find_map(|c| {
                if self.room(c, &extra) == 0 || !self.helps(c, finish) {
                    return None;
                }
                let mut more = extra.clone();
                more[c] += 1;
                let sooner = self.finish(&more, &[]);
                (sooner < finish - 1e-6 && spend(&more, sooner) <= budget + 1e-9)
                    .then_some((more, sooner))
            });
            match next {
                Some((more, sooner)) => (extra, finish) = (more, sooner),
                None => return (extra.clone(), finish, spend(&extra, finish)),
            }
        }
    }

    /// The paid per-second machine that costs most per task (newest on ties).
    pub fn costliest_per_second(&self, gone: &[MachineId]) -> Option<&'a Machine> {
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
            .max_by(|a, b| {
                self.cost_per_task(a.class)
                    .total_cmp(&self.cost_per_task(b.class))
                    .then(a.id.cmp(&b.id))
            })
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
    /// budget affords it, and the deadline would be missed without it.
    pub fn needed_another_hour(&self, m: &Machine, gone: &[MachineId]) -> bool {
        let objective = &self.policy.objective;
        let price = self.policy.resources[m.class].price_per_hour;
        if self.snap.tasks.queued == 0
            || objective
                .budget
                .is_some_and(|b| self.snap.spent + price > b + 1e-9)
        {
            return false;
        }
        let mut without = gone.to_vec();
        without.push(m.id);
        objective
            .deadline
            .is_none_or(|d| self.finish(&self.none(), &without) > d)
    }
}
