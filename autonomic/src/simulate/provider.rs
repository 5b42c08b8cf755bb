//! The `simulated` provider: machines that boot in exactly their class's boot
//! time on the virtual clock — or, for a `slurm` class with a queue wait in
//! the workload, after a wait drawn from it — started and stopped by the
//! engine, which also takes preemptible machines back.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;
use crate::workload::Duration;

/// Records what the manager asked for; the engine turns it into events.
#[derive(Debug)]
pub struct SimulatedProvider {
    /// Machines started, with when they will be ready.
    pub started: Vec<(MachineId, Secs)>,
    /// Machines asked to stop (they finish their tasks first).
    pub stopped: Vec<MachineId>,
    /// Machines stopped with their tasks.
    pub killed: Vec<MachineId>,
    /// Machines taken back by the provider (preempted), with why: the
    /// manager hears of them as lost.
    pub lost: Vec<(MachineId, String)>,
    /// Queue waits by class name, drawn with `rng`.
    waits: BTreeMap<String, Duration>,
    rng: StdRng,
}

impl SimulatedProvider {
    /// Machines of the classes in `waits` wait a draw of it (seeded by
    /// `seed`); the others their class's boot time.
    pub fn new(waits: BTreeMap<String, Duration>, seed: u64) -> Self {
        SimulatedProvider {
            started: Vec::new(),
            stopped: Vec::new(),
            killed: Vec::new(),
            lost: Vec::new(),
            waits,
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Provider for SimulatedProvider {
    fn start(&mut self, id: MachineId, class: &Resource, now: Secs) -> Result<(), ProviderError> {
        let boot = match self.waits.get(&class.name) {
            Some(wait) => wait.sample(&mut self.rng),
            None => class.boot_time,
        };
        self.started.push((id, now + boot));
        Ok(())
    }

    fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        self.stopped.push(id);
        Ok(())
    }

    fn kill(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        self.killed.push(id);
        Ok(())
    }

    fn gone(&mut self) -> Vec<MachineId> {
        self.lost.iter().map(|(id, _)| *id).collect()
    }

    fn lost(&mut self) -> Vec<(MachineId, String)> {
        std::mem::take(&mut self.lost)
    }
}
