//! How long each machine's running tasks have run, from what a managed pool
//! hears: a worker's heartbeat says how many of its slots are busy, and a
//! result says one of them finished (its slot then takes the next task).
//! The autonomic manager's estimate counts these ages
//! ([`Manager::tasks_running`](halley_autonomic::manager::Manager::tasks_running)),
//! so a task that has run for 20 minutes says the mean is not 2 minutes,
//! before any such task finishes.
//!
//! The age of a slot's task is measured from when the slot was last seen
//! to start work: when its machine turned busy, or when a task of it
//! finished while it stayed busy. A lower bound of the true age, within a
//! heartbeat.

use std::collections::HashMap;

use halley_autonomic::clock::Secs;
use halley_autonomic::machine::MachineId;

/// Busy slots of each machine, with when each started its task.
#[derive(Debug, Default)]
pub struct Running {
    slots: HashMap<MachineId, Vec<Secs>>,
}

impl Running {
    /// Machine `id` reported `busy` busy slots at `now`.
    pub fn heard(&mut self, id: MachineId, busy: u32, now: Secs) {
        let slots = self.slots.entry(id).or_default();
        let busy = busy as usize;
        if slots.len() > busy {
            // Which slot went idle is not said: keep the newest starts, so
            // an age is never overstated.
            slots.sort_by(|a, b| b.total_cmp(a));
            slots.truncate(busy);
        }
        slots.resize(busy, now);
        if slots.is_empty() {
            self.slots.remove(&id);
        }
    }

    /// A task of machine `id` finished at `now`: its slot (the oldest one)
    /// starts the next task now, if the machine is still busy.
    pub fn finished(&mut self, id: MachineId, now: Secs) {
        if let Some(oldest) = self
            .slots
            .get_mut(&id)
            .and_then(|slots| slots.iter_mut().min_by(|a, b| a.total_cmp(b)))
        {
            *oldest = now;
        }
    }

    /// Forgets the machines `keep` does not keep (gone: their tasks run
    /// again elsewhere).
    pub fn retain(&mut self, keep: impl Fn(MachineId) -> bool) {
        self.slots.retain(|id, _| keep(*id));
    }

    /// Every running task: its machine and start time.
    pub fn tasks(&self) -> impl Iterator<Item = (MachineId, Secs)> + '_ {
        self.slots
            .iter()
            .flat_map(|(id, slots)| slots.iter().map(move |since| (*id, *since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(running: &Running) -> Vec<(u64, Secs)> {
        let mut tasks: Vec<(u64, Secs)> = running.tasks().map(|(id, s)| (id.0, s)).collect();
        tasks.sort_by(|a, b| a.partial_cmp(b).unwrap());
        tasks
    }

    #[test]
    fn busy_slots_age_from_when_they_were_first_seen_busy() {
        let mut running = Running::default();
        running.heard(MachineId(1), 2, 10.0);
        running.heard(MachineId(1), 2, 15.0);
        running.heard(MachineId(2), 1, 12.0);
        assert_eq!(sorted(&running), [(1, 10.0), (1, 10.0), (2, 12.0)]);
    }

    #[test]
    fn a_finished_task_restarts_its_slot_and_idle_slots_are_dropped() {
        let mut running = Running::default();
        running.heard(MachineId(1), 1, 0.0);
        running.heard(MachineId(1), 2, 5.0);
        running.finished(MachineId(1), 30.0);
        // The oldest slot (0 s) took its next task at 30 s.
        assert_eq!(sorted(&running), [(1, 5.0), (1, 30.0)]);
        running.heard(MachineId(1), 1, 40.0);
        // One slot went idle: the newest start is kept (no age overstated).
        assert_eq!(sorted(&running), [(1, 30.0)]);
        running.heard(MachineId(1), 0, 50.0);
        assert_eq!(sorted(&running), []);
        running.heard(MachineId(2), 1, 60.0);
        running.retain(|id| id != MachineId(2));
        assert_eq!(sorted(&running), []);
    }
}
