//! The discrete-event engine: a virtual clock, an event queue (machine ready,
//! task done, machine preempted, planning tick) and the manager driving a
//! simulated provider.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::clock::Secs;
use crate::estimate::billed;
use crate::machine::{MachineId, Tasks};
use crate::manager::Manager;
use crate::policy::Policy;
use crate::simulate::{Control, Oracle, Report, Sample, SimulatedProvider, Spending};
use crate::workload::Workload;

/// Virtual time after which a run is given up as stuck (30 days).
const HORIZON: Secs = 30.0 * 24.0 * 3600.0;

/// Every task's duration at speed 1.0, as a run with `seed` draws them.
pub fn durations(workload: &Workload, seed: u64) -> Vec<Secs> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..workload.tasks)
        .map(|_| workload.duration.sample(&mut rng))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ready(MachineId),
    /// Task (index) done on a machine, unless the machine was stopped first.
    Done(MachineId, usize),
    /// A preemptible machine taken back by the provider, with its tasks.
    Preempt(MachineId),
    Tick,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at: Secs,
    seq: u64,
    kind: Kind,
    /// For `Done`: how long the task took.
    took: Secs,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.total_cmp(&other.at).then(self.seq.cmp(&other.seq))
    }
}

/// A machine as the simulated world knows it.
#[derive(Debug)]
struct Node {
    class: usize,
    slots: u32,
    speed: f64,
    /// Tasks it runs (indices), with when each started.
    running: Vec<(usize, Secs)>,
    ready: bool,
    draining: bool,
    /// When it was asked for (its billing starts) and when it was ready.
    requested: Secs,
    ready_at: Option<Secs>,
    /// Slot-seconds of tasks it ran to the end, and of tasks stopped or
    /// taken back with it.
    kept: Secs,
    lost: Secs,
}

#[derive(Debug)]
pub struct Engine<'a> {
    policy: &'a Policy,
    workload: &'a Workload,
    manager: Manager,
    control: Control,
    provider: SimulatedProvider,
    nodes: BTreeMap<MachineId, Node>,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    /// Every task's duration at speed 1.0, drawn up front (the oracle knows them).
    durations: Vec<Secs>,
    next_task: usize,
    /// Tasks stopped with their machine, to run again first.
    requeued: Vec<usize>,
    /// How many times a task was stopped and queued again.
    stopped_tasks: u64,
    /// When each preemptible machine is taken back, drawn apart from the
    /// durations.
    preemption: StdRng,
    /// Machines taken back.
    preemptions: u64,
    tasks: Tasks,
    timeline: Vec<Sample>,
    peak: u32,
    /// Where the money of the machines gone so far went.
    spending: Spending,
    /// Per class: whether one of its machines was released while tasks
    /// were queued (a machine started after that is bought back).
    released: Vec<bool>,
    /// The time up to which idle slots are counted in `spending.idle_tail`.
    counted_to: Secs,
}

impl<'a> Engine<'a> {
    pub fn new(policy: &'a Policy, workload: &'a Workload, seed: u64, control: Control) -> Self {
        let durations = durations(workload, seed);
        let manager = Manager::new(policy.clone());
        let mut engine = Engine {
            policy,
            workload,
            control,
            // Queue waits drawn apart from the durations: the same tasks
            // whatever the queue does.
            provider: SimulatedProvider::new(workload.queue_wait.clone(), seed ^ 0x5eed),
            nodes: BTreeMap::new(),
            events: BinaryHeap::new(),
            seq: 0,
            durations,
            next_task: 0,
            requeued: Vec::new(),
            stopped_tasks: 0,
            preemption: StdRng::seed_from_u64(seed ^ 0x5907),
            preemptions: 0,
            tasks: Tasks {
                queued: workload.tasks,
                running: 0,
                done: 0,
                stages_ahead: 0,
                due: None,
            },
            timeline: Vec::new(),
            peak: 0,
            spending: Spending::default(),
            released: vec![false; policy.resources.len()],
            counted_to: 0.0,
            manager,
        };
        let statics: Vec<(MachineId, usize)> =
            engine.manager.machines().map(|m| (m.id, m.class)).collect();
        for (id, class) in statics {
            engine.add_node(id, class, Some(0.0), 0.0);
        }
        engine
    }

    /// A machine asked for at `requested`; `ready_at` if it is already.
    fn add_node(&mut self, id: MachineId, class: usize, ready_at: Option<Secs>, requested: Secs) {
        let r = &self.policy.resources[class];
        self.nodes.insert(
            id,
            Node {
                class,
                slots: r.slots,
                speed: self.workload.speed_of(&r.name),
                running: Vec::new(),
                ready: ready_at.is_some(),
                draining: false,
                requested,
                ready_at,
                kept: 0.0,
                lost: 0.0,
            },
        );
    }

    /// Machine `id` is gone at `now`: what it was billed is added to
    /// [`Engine::spending`].
    fn gone(&mut self, id: MachineId, now: Secs) -> Option<Node> {
        let node = self.nodes.remove(&id)?;
        let r = &self.policy.resources[node.class];
        let per_second = r.price_per_hour / crate::clock::HOUR;
        let ready = node.ready_at.unwrap_or(now).min(now);
        let slots = f64::from(node.slots);
        let work = per_second * node.kept / slots;
        let lost = per_second * node.lost / slots;
        let s = &mut self.spending;
        s.work += work;
        s.lost += lost;
        s.boot += per_second * (ready - node.requested);
        s.idle += per_second * (now - ready) - work - lost;
        s.unused_hour += billed(r, node.requested, now) - per_second * (now - node.requested);
        if node.kept == 0.0 {
            s.unused_machines += billed(r, node.requested, now);
        }
        Some(node)
    }

    /// Counts the paid slots idle since the last event while no task is
    /// queued (the state is constant between events).
    fn count_idle(&mut self, now: Secs) {
        let span = now - self.counted_to;
        self.counted_to = now;
        if self.tasks.queued > 0 || span <= 0.0 {
            return;
        }
        let r = &self.policy.resources;
        let idle: f64 = self
            .nodes
            .values()
            .filter(|n| n.ready_at.is_some())
            .map(|n| {
                let per_slot = r[n.class].price_per_hour / crate::clock::HOUR / f64::from(n.slots);
                per_slot * f64::from(n.slots - n.running.len() as u32)
            })
            .sum();
        self.spending.idle_tail += idle * span;
    }

    fn push(&mut self, at: Secs, kind: Kind, took: Secs) {
        self.seq += 1;
        self.events.push(Reverse(Event {
            at,
            seq: self.seq,
            kind,
            took,
        }));
    }

    pub fn run(mut self) -> Report {
        self.push(0.0, Kind::Tick, 0.0);
        self.dispatch(0.0);
        let mut finished = self.tasks.queued == 0;
        let mut end = 0.0;
        while let Some(Reverse(event)) = self.events.pop() {
            let now = event.at;
            if now > HORIZON {
                break;
            }
            end = now;
            self.count_idle(now);
            match event.kind {
                Kind::Tick => {
                    if !self.tick(now) {
                        break;
                    }
                    self.push(now + self.policy.scaling.interval, Kind::Tick, 0.0);
                }
                Kind::Ready(id) => {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.ready = true;
                        node.ready_at = Some(now);
                        let class = node.class;
                        self.manager.heard(id, now, 0);
                        self.arm_preemption(id, class, now);
                        self.dispatch(now);
                    }
                }
                Kind::Preempt(id) => {
                    if self.preempt(id, now) {
                        self.dispatch(now);
                    }
                }
                Kind::Done(id, task) => {
                    if !self.task_done(id, task, now, event.took) {
                        continue;
                    }
                    if self.tasks.queued == 0 && self.tasks.running == 0 {
                        finished = true;
                        break;
                    }
                    self.dispatch(now);
                }
            }
        }
        self.manager.finish(end, &mut self.provider);
        self.apply(end);
        self.sample(end);
        self.report(end, finished)
    }

    /// A planning step; `false` when the run is stuck (work, no way to run it).
    fn tick(&mut self, now: Secs) -> bool {
        let heard: Vec<(MachineId, u32)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ready)
            .map(|(id, n)| (*id, n.running.len() as u32))
            .collect();
        for (id, busy) in heard {
            self.manager.heard(id, now, busy);
        }
        let running: Vec<(MachineId, Secs)> = self
            .nodes
            .iter()
            .flat_map(|(id, n)| n.running.iter().map(move |&(_, started)| (*id, started)))
            .collect();
        self.manager.tasks_running(running);
        let decisions = match &self.control {
            Control::Planner => self.manager.step(now, self.tasks, &mut self.provider),
            baseline => {
                let snap = self.manager.snapshot(now, self.tasks);
                let decisions = baseline.decide(self.policy, &snap);
                self.manager.execute(now, decisions, &mut self.provider)
            }
        };
        self.apply(now);
        // Tasks stopped with their machine run again on a free slot.
        self.dispatch(now);
        self.sample(now);
        let can_run = self.nodes.values().any(|n| !n.draining) || self.tasks.running > 0;
        can_run || !decisions.is_empty()
    }

    /// Turns what the provider was asked at `now` into nodes and events.
    fn apply(&mut self, now: Secs) {
        for (id, ready_at) in std::mem::take(&mut self.provider.started) {
            let class = self
                .manager
                .machines()
                .find(|m| m.id == id)
                .map(|m| m.class);
            if let Some(class) = class {
                self.spending.rebought += u32::from(self.released[class]);
                self.add_node(id, class, None, now);
                self.push(ready_at, Kind::Ready(id), 0.0);
            }
        }
        let stopped = std::mem::take(&mut self.provider.stopped);
        let killed = std::mem::take(&mut self.provider.killed);
        if self.tasks.queued > 0 {
            for id in stopped.iter().chain(&killed) {
                if let Some(node) = self.nodes.get(id) {
                    self.released[node.class] = true;
                }
            }
        }
        for id in stopped {
            let idle = self.nodes.get_mut(&id).is_some_and(|node| {
                node.draining = true;
                node.running.is_empty()
            });
            if idle {
                self.gone(id, now);
            }
        }
        for id in killed {
            if let Some(node) = self.lose(id, now) {
                self.requeue(&node);
            }
        }
        self.peak = self.peak.max(self.nodes.len() as u32);
    }

    /// Machine `id` is gone at `now` with the tasks it runs (their time
    /// counted as lost).
    fn lose(&mut self, id: MachineId, now: Secs) -> Option<Node> {
        let node = self.nodes.get_mut(&id)?;
        node.lost += node.running.iter().map(|&(_, at)| now - at).sum::<Secs>();
        self.gone(id, now)
    }

    /// The tasks of a machine stopped with them run again first.
    fn requeue(&mut self, node: &Node) {
        let n = node.running.len() as u64;
        self.tasks.running -= n;
        self.tasks.queued += n;
        self.stopped_tasks += n;
        self.requeued
            .extend(node.running.iter().rev().map(|&(task, _)| task));
    }

    /// Draws when a machine of a preemptible class, ready now, is taken
    /// back: an exponential time of the class's mean.
    fn arm_preemption(&mut self, id: MachineId, class: usize, now: Secs) {
        let r = &self.policy.resources[class];
        let Some(mean) = r.mean_time_to_preemption.filter(|_| r.preemptible) else {
            return;
        };
        let u: f64 = self.preemption.random();
        self.push(now - mean * (1.0 - u).ln(), Kind::Preempt(id), 0.0);
    }

    /// The provider takes machine `id` back: its tasks are queued again
    /// (an attempt, not a failure) and the manager hears it is lost;
    /// `false` if it was gone already.
    fn preempt(&mut self, id: MachineId, now: Secs) -> bool {
        let Some(node) = self.lose(id, now) else {
            return false;
        };
        self.requeue(&node);
        self.preemptions += 1;
        self.provider
            .lost
            .push((id, "preempted by the provider".to_string()));
        self.manager.collect_gone(now, &mut self.provider);
        true
    }

    /// Task `task` ended on machine `id`; `false` if the machine was
    /// stopped with it first (it is queued again).
    fn task_done(&mut self, id: MachineId, task: usize, now: Secs, took: Secs) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(at) = node.running.iter().position(|&(t, _)| t == task) else {
            return false;
        };
        node.running.swap_remove(at);
        node.kept += took;
        let busy = node.running.len() as u32;
        let gone = node.draining && busy == 0;
        self.tasks.running -= 1;
        self.tasks.done += 1;
        self.manager.task_finished(id, took);
        if gone {
            self.gone(id, now);
            self.manager.released(id, now);
        } else {
            self.manager.heard(id, now, busy);
        }
        true
    }

    /// Hands queued tasks to free slots.
    fn dispatch(&mut self, now: Secs) {
        let mut started = Vec::new();
        for (id, node) in self
            .nodes
            .iter_mut()
            .filter(|(_, n)| n.ready && !n.draining)
        {
            while (node.running.len() as u32) < node.slots && self.tasks.queued > 0 {
                let task = self.requeued.pop().unwrap_or_else(|| {
                    self.next_task += 1;
                    self.next_task - 1
                });
                let took = self.durations[task] / node.speed;
                self.tasks.queued -= 1;
                self.tasks.running += 1;
                node.running.push((task, now));
                started.push((*id, task, took));
            }
        }
        for (id, task, took) in started {
            self.push(now + took, Kind::Done(id, task), took);
        }
    }

    fn sample(&mut self, at: Secs) {
        let mut workers = vec![0; self.policy.resources.len()];
        for node in self.nodes.values() {
            workers[node.class] += 1;
        }
        self.timeline.push(Sample {
            at,
            workers,
            queued: self.tasks.queued,
        });
    }

    fn report(mut self, end: Secs, finished: bool) -> Report {
        let left: Vec<MachineId> = self.nodes.keys().copied().collect();
        for id in left {
            self.lose(id, end);
        }
        let objective = &self.policy.objective;
        let cost = self.manager.spent(end);
        let oracle = Oracle::new(self.policy, self.workload, &self.durations, end);
        Report {
            tasks: self.workload.tasks,
            finished,
            makespan_s: end,
            cost,
            deadline_met: objective.deadline.map(|d| finished && end <= d),
            budget_met: objective.budget.map(|b| cost <= b + 1e-9),
            peak_workers: self.peak,
            stopped_tasks: self.stopped_tasks,
            preemptions: self.preemptions,
            spending: self.spending,
            oracle_cost: oracle.cost,
            oracle_makespan_s: oracle.makespan,
            decisions: self.manager.decisions().to_vec(),
            timeline: self.timeline,
            classes: self
                .policy
                .resources
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        }
    }
}
