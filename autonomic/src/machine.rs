//! Machines and the snapshot of a job that the planner reads.
//!
//! A machine goes requested → booting → running → draining → released, as a
//! VM does in OpenNebula. Released machines leave the snapshot; what they cost
//! stays in [`Snapshot::spent`].

use serde::Serialize;

use crate::clock::Secs;
use crate::estimate::Spread;

/// A machine, numbered by the manager in the order it asked for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MachineId(pub u64);

impl std::fmt::Display for MachineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// Where a machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Asked of the provider, not yet acknowledged.
    Requested,
    /// Acknowledged, not yet serving.
    Booting,
    /// Its worker takes tasks.
    Running,
    /// Finishing its tasks, taking no new ones.
    Draining,
    /// Stopped; no longer billed.
    Released,
}

/// One machine as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: MachineId,
    /// Index of its class in `Policy::resources`.
    pub class: usize,
    pub state: MachineState,
    /// When it was asked for: its billing clock starts here.
    pub requested_at: Secs,
    /// Tasks it runs now.
    pub busy_slots: u32,
    /// Since when it has run no task (`None` while busy).
    pub idle_since: Option<Secs>,
    /// When its worker was last heard from.
    pub last_heard: Secs,
}

impl Machine {
    /// Requested or booting: its worker not heard from yet.
    pub fn is_booting(&self) -> bool {
        matches!(self.state, MachineState::Requested | MachineState::Booting)
    }

    /// Counts towards capacity: not draining, not released.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            MachineState::Requested | MachineState::Booting | MachineState::Running
        )
    }
}

/// Task counters of the job.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tasks {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    /// Stages on the longest chain still to start after the running ones
    /// (a workflow's; 0 for a bag): each waits for the last task of the one
    /// before, so each adds a tail to the finish.
    pub stages_ahead: u32,
    /// Part of the work due before the job's deadline (a workflow stage
    /// with a deadline of its own), planned for as well.
    pub due: Option<Due>,
}

/// Tasks of the job due at a time of their own: a running workflow stage's
/// unfinished tasks and its deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Due {
    /// Seconds since the job started.
    pub at: Secs,
    pub queued: u64,
    pub running: u64,
}

/// Everything the planner knows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Seconds since the job started.
    pub now: Secs,
    pub tasks: Tasks,
    /// Machines not yet released.
    pub machines: Vec<Machine>,
    /// Expected task duration on one slot of each class (`None`: no idea yet).
    pub estimates: Vec<Option<Secs>>,
    /// The shape of task durations at speed 1, running tasks counted for
    /// their age (`None`: no idea yet).
    pub spread: Option<Spread>,
    /// Money spent so far, released machines included.
    pub spent: f64,
}
