//! The discrete-event engine: a virtual clock, an event queue (machine ready,
//! task done, planning tick) and the manager driving a simulated provider.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::clock::Secs;
use crate::machine::{MachineId, Tasks};
use crate::manager::Manager;
use crate::policy::Policy;
use crate::simulate::{Oracle, Report, Sample, SimulatedProvider};
use crate::workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ready(MachineId),
    Done(MachineId),
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
    busy: u32,
    ready: bool,
    draining: bool,
}

#[derive(Debug)]
pub struct Engine<'a> {
    policy: &'a Policy,
    workload: &'a Workload,
    manager: Manager,
    provider: SimulatedProvider,
    nodes: BTreeMap<MachineId, Node>,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    /// Every task's duration at speed 1.0, drawn up front (the oracle knows them).
    durations: Vec<Secs>,
    next_task: usize,
    tasks: Tasks,
    timeline: Vec<Sample>,
    peak: u32,
}

impl<'a> Engine<'a> {
    pub fn new(policy: &'a Policy, workload: &'a Workload, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let durations = (0..workload.tasks)
            .map(|_| workload.duration.sample(&mut rng))
            .collect();
        let manager = Manager::new(policy.clone());
        let mut engine = Engine {
            policy,
            workload,
            // Queue waits drawn apart from the durations: the same tasks
            // whatever the queue does.
            provider: SimulatedProvider::new(workload.queue_wait.clone(), seed ^ 0x5eed),
            nodes: BTreeMap::new(),
            events: BinaryHeap::new(),
            seq: 0,
            durations,
            next_task: 0,
            tasks: Tasks {
                queued: workload.tasks,
                running: 0,
                done: 0,
                stages_ahead: 0,
            },
            timeline: Vec::new(),
            peak: 0,
            manager,
        };
        let statics: Vec<(MachineId, usize)> =
            engine.manager.machines().map(|m| (m.id, m.class)).collect();
        for (id, class) in statics {
            engine.add_node(id, class, true);
        }
        engine
    }

    fn add_node(&mut self, id: MachineId, class: usize, ready: bool) {
        let r = &self.policy.resources[class];
        self.nodes.insert(
            id,
            Node {
                class,
                slots: r.slots,
                speed: self.workload.speed_of(&r.name),
                busy: 0,
                ready,
                draining: false,
            },
        );
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
            end = now;
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
                        self.manager.heard(id, now, 0);
                        self.dispatch(now);
                    }
                }
                Kind::Done(id) => {
                    self.task_done(id, now, event.took);
                    if self.tasks.queued == 0 && self.tasks.running == 0 {
                        finished = true;
                        break;
                    }
                    self.dispatch(now);
                }
            }
        }
        self.manager.finish(end, &mut self.provider);
        self.apply();
        self.sample(end);
        self.report(end, finished)
    }

    /// A planning step; `false` when the run is stuck (work, no way to run it).
    fn tick(&mut self, now: Secs) -> bool {
        let heard: Vec<(MachineId, u32)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ready)
            .map(|(id, n)| (*id, n.busy))
            .collect();
        for (id, busy) in heard {
            self.manager.heard(id, now, busy);
        }
        let decisions = self.manager.step(now, self.tasks, &mut self.provider);
        self.apply();
        self.sample(now);
        let can_run = self.nodes.values().any(|n| !n.draining) || self.tasks.running > 0;
        can_run || !decisions.is_empty()
    }

    /// Turns what the provider was asked into nodes and events.
    fn apply(&mut self) {
        for (id, ready_at) in std::mem::take(&mut self.provider.started) {
            let class = self
                .manager
                .machines()
                .find(|m| m.id == id)
                .map(|m| m.class);
            if let Some(class) = class {
                self.add_node(id, class, false);
                self.push(ready_at, Kind::Ready(id), 0.0);
            }
        }
        for id in std::mem::take(&mut self.provider.stopped) {
            let idle = self.nodes.get_mut(&id).is_some_and(|node| {
                node.draining = true;
                node.busy == 0
            });
            if idle {
                self.nodes.remove(&id);
            }
        }
        self.peak = self.peak.max(self.nodes.len() as u32);
    }

    fn task_done(&mut self, id: MachineId, now: Secs, took: Secs) {
        self.tasks.running -= 1;
        self.tasks.done += 1;
        self.manager.task_finished(id, took);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.busy -= 1;
        let (busy, gone) = (node.busy, node.draining && node.busy == 0);
        if gone {
            self.nodes.remove(&id);
            self.manager.released(id, now);
        } else {
            self.manager.heard(id, now, busy);
        }
    }

    /// Hands queued tasks to free slots.
    fn dispatch(&mut self, now: Secs) {
        let mut started = Vec::new();
        for (id, node) in self
            .nodes
            .iter_mut()
            .filter(|(_, n)| n.ready && !n.draining)
        {
            while node.busy < node.slots && self.tasks.queued > 0 {
                let took = self.durations[self.next_task] / node.speed;
                self.next_task += 1;
                self.tasks.queued -= 1;
                self.tasks.running += 1;
                node.busy += 1;
                started.push((*id, took));
            }
        }
        for (id, took) in started {
            self.push(now + took, Kind::Done(id), took);
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

    fn report(self, end: Secs, finished: bool) -> Report {
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
