//! The `simulated` provider: machines that boot in exactly their class's boot
//! time on the virtual clock, started and stopped by the engine.

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;

/// Records what the manager asked for; the engine turns it into events.
#[derive(Debug, Default)]
pub struct SimulatedProvider {
    /// Machines started, with when they will be ready.
    pub started: Vec<(MachineId, Secs)>,
    /// Machines asked to stop (they finish their tasks first).
    pub stopped: Vec<MachineId>,
    /// Machines stopped with their tasks.
    pub killed: Vec<MachineId>,
}

impl Provider for SimulatedProvider {
    fn start(&mut self, id: MachineId, class: &Resource, now: Secs) -> Result<(), ProviderError> {
        self.started.push((id, now + class.boot_time));
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
}
