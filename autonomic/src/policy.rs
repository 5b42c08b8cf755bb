//! Policy files: the objective (deadline, budget), the scaling knobs and the
//! resource classes, as written in CONTRACT.md.
//!
//! Loading names the file, line, column and field of the first thing wrong,
//! and what was expected: `policy.toml:14:11: resources[1].billing: expected
//! "per-second" or "per-hour", found "weekly"`.

use std::path::Path;

use serde::Deserialize;

use crate::clock::Secs;
use crate::source::{self, SourceError, secs, some_secs};

/// The built-in policy, the same text as `policies/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../policies/default.toml");

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub scaling: Scaling,
    pub resources: Vec<Resource>,
}

/// What the manager aims for; with neither, it scales on the workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Finish within this long after the job starts.
    #[serde(default, deserialize_with = "some_secs")]
    pub deadline: Option<Secs>,
    /// Spend at most this on paid resources.
    pub budget: Option<f64>,
}

/// How often and how cautiously the manager acts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scaling {
    /// How often the manager re-plans.
    #[serde(deserialize_with = "secs")]
    pub interval: Secs,
    /// Release a paid machine idle this long.
    #[serde(deserialize_with = "secs")]
    pub idle_release: Secs,
    /// No scaling in the opposite direction within this long of a change.
    #[serde(deserialize_with = "secs")]
    pub cooldown: Secs,
    /// A running machine not heard from for this long is replaced.
    #[serde(deserialize_with = "secs")]
    pub heartbeat_timeout: Secs,
    /// Without an objective: aim for at most this many queued tasks per slot.
    pub queue_per_slot: f64,
    /// A prior task duration (at speed 1) used before any task has finished.
    #[serde(default, deserialize_with = "some_secs")]
    pub task_estimate: Option<Secs>,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            interval: 5.0,
            idle_release: 60.0,
            cooldown: 30.0,
            heartbeat_timeout: 30.0,
            queue_per_slot: 2.0,
            task_estimate: None,
        }
    }
}

/// One class of machines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub name: String,
    pub provider: ProviderKind,
    /// `static`: how many workers exist (default: this machine's cores).
    pub count: Option<u32>,
    /// Tasks one machine runs at once.
    #[serde(default = "one")]
    pub slots: u32,
    #[serde(default)]
    pub price_per_hour: f64,
    #[serde(default)]
    pub billing: Billing,
    #[serde(default, deserialize_with = "secs")]
    pub boot_time: Secs,
    /// `local`, `command`: at most this many machines at once.
    pub max: Option<u32>,
    /// Prior speed relative to 1.0, until measured.
    #[serde(default = "unit")]
    pub speed: f64,
    /// The provider may take a machine back at any time (spot, preemptible
    /// instances): its running tasks are lost and run again.
    #[serde(default)]
    pub preemptible: bool,
    /// With `preemptible`: how long a machine runs on average before it is
    /// taken back.
    #[serde(default, deserialize_with = "some_secs")]
    pub mean_time_to_preemption: Option<Secs>,
    /// `command`: prints the new machine's id.
    pub start: Option<String>,
    /// `command`: stops the machine named by `HALLEY_ID`.
    pub stop: Option<String>,
    /// `slurm`: the partition its jobs go to (default: the cluster's).
    pub partition: Option<String>,
    /// `slurm`: the account charged (`--account`).
    pub account: Option<String>,
    /// `slurm`: the quality of service (`--qos`).
    pub qos: Option<String>,
    /// `slurm`: the wall time of each worker job (`--time`).
    #[serde(default, deserialize_with = "some_secs")]
    pub time_limit: Option<Secs>,
    /// `slurm`: CPUs of each worker job (`--cpus-per-task`; default: `slots`).
    pub cpus_per_task: Option<u32>,
    /// `slurm`: more `sbatch` options, each one argument (`["--hold"]`).
    pub extra_args: Option<Vec<String>>,
    /// `slurm`: shell lines the job script runs before the worker
    /// (`module load ...`).
    pub setup: Option<String>,
}

/// Who starts and stops a class's machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Static,
    Local,
    Command,
    /// Each machine a Slurm batch job running `halley worker`.
    Slurm,
}

/// Billing granularity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Billing {
    #[default]
    #[serde(rename = "per-second")]
    PerSecond,
    /// Each started hour is charged in full when it starts.
    #[serde(rename = "per-hour")]
    PerHour,
}

impl Resource {
    /// Free to use: the manager fills these first.
    pub fn is_private(&self) -> bool {
        self.price_per_hour == 0.0
    }

    /// The share of a machine's billed time that does work that is kept:
    /// 1 unless preemptible; then, with machines replaced as they are taken
    /// back, each life of `mean_time_to_preemption` on average comes after
    /// a boot and loses the task it runs (half a `task` on average).
    pub fn useful(&self, task: Secs) -> f64 {
        match self.mean_time_to_preemption {
            Some(life) if self.preemptible => {
                ((life - task / 2.0) / (life + self.boot_time)).clamp(0.0, 1.0)
            }
            _ => 1.0,
        }
    }

    /// The most machines of this class that may run at once.
    pub fn limit(&self) -> u32 {
        match self.provider {
            ProviderKind::Static => self.count.unwrap_or_else(cores),
            ProviderKind::Local | ProviderKind::Command | ProviderKind::Slurm => {
                self.max.unwrap_or(0)
            }
        }
    }
}

/// This machine's cores.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The most machines a class may have at once (`max`, or a static
/// class's `count`): the planner weighs machines one at a time.
pub const MAX_MACHINES: u32 = 10_000;

/// The most task slots a machine may have.
pub const MAX_SLOTS: u32 = 1_024;

/// A policy value that is out of range, by field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Policy {
    /// Reads, parses and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, SourceError> {
        let text = source::read(path)?;
        Policy::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Policy, SourceError> {
        let policy: Policy = source::parse(file, text)?;
        policy
            .validate()
            .map_err(|e| source::invalid(file, text, &e.field, e.message))?;
        Ok(policy)
    }

    /// The built-in policy: this machine's cores, no paid resources.
    pub fn builtin() -> Policy {
        Policy::parse("policies/default.toml", DEFAULT_TOML)
            .expect("the built-in policy is valid (tested)")
    }

    /// How long a machine of class `class` may take from its request until
    /// its worker is heard from before it is released as not booting:
    /// twice its boot time and a heartbeat timeout.
    pub fn boot_limit(&self, class: usize) -> Secs {
        2.0 * self.resources[class].boot_time + self.scaling.heartbeat_timeout
    }

    /// Checks ranges and the fields each provider needs, naming the first bad one.
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |field: String, message: &str| {
            Err(Invalid {
                field,
                message: message.to_string(),
            })
        };
        if let Some(budget) = self.objective.budget
            && !(budget.is_finite() && budget >= 0.0)
        {
            return bad("objective.budget".into(), "expected a sum of 0 or more");
        }
        if self.objective.deadline == Some(0.0) {
            return bad("objective.deadline".into(), "expected a duration above 0");
        }
        let s = &self.scaling;
        if s.interval <= 0.0 {
            return bad("scaling.interval".into(), "expected a duration above 0");
        }
        if s.heartbeat_timeout <= 0.0 {
            return bad(
                "scaling.heartbeat_timeout".into(),
                "expected a duration above 0",
            );
        }
        if !(s.queue_per_slot.is_finite() && s.queue_per_slot > 0.0) {
            return bad("scaling.queue_per_slot".into(), "expected a number above 0");
        }
        if s.task_estimate == Some(0.0) {
            return bad(
                "scaling.task_estimate".into(),
                "expected a duration above 0",
            );
        }
        if self.resources.is_empty() {
            return bad(
                "resources".into(),
                "expected at least one [[resources]] class",
            );
        }
        for (i, r) in self.resources.iter().enumerate() {
            let field = |name: &str| format!("resources[{i}].{name}");
            if r.name.trim().is_empty() {
                return bad(field("name"), "expected a non-empty name");
            }
            if self.resources[..i].iter().any(|other| other.name == r.name) {
                return bad(field("name"), &format!("\"{}\" names two classes", r.name));
            }
            if r.slots == 0 || r.slots > MAX_SLOTS {
                return bad(
                    field("slots"),
                    &format!("expected 1 to {MAX_SLOTS} task slots a machine"),
                );
            }
            for (name, n) in [("max", r.max), ("count", r.count)] {
                if n.is_some_and(|n| n > MAX_MACHINES) {
                    return bad(
                        field(name),
                        &format!(
                            "expected at most {MAX_MACHINES} machines of a class \
                             (a larger fleet: split it into several classes)"
                        ),
                    );
                }
            }
            if !(r.price_per_hour.is_finite() && r.price_per_hour >= 0.0) {
                return bad(field("price_per_hour"), "expected a price of 0 or more");
            }
            if !(r.speed.is_finite() && r.speed > 0.0) {
                return bad(field("speed"), "expected a number above 0");
            }
            match r.provider {
                ProviderKind::Static => {
                    for (name, set) in [
                        ("max", r.max.is_some()),
                        ("start", r.start.is_some()),
                        ("stop", r.stop.is_some()),
                        ("price_per_hour", r.price_per_hour != 0.0),
                        ("boot_time", r.boot_time != 0.0),
                    ] {
                        if set {
                            return bad(
                                field(name),
                                "not used by provider \"static\" (workers that exist already)",
                            );
                        }
                    }
                }
                ProviderKind::Local | ProviderKind::Command | ProviderKind::Slurm => {
                    if r.count.is_some() {
                        return bad(field("count"), "only for provider \"static\"; use max");
                    }
                    if r.max.is_none() {
                        return bad(field("max"), "expected the most machines at once (max = 4)");
                    }
                }
            }
            match (r.preemptible, r.mean_time_to_preemption) {
                (true, _) if r.provider == ProviderKind::Static => {
                    return bad(
                        field("preemptible"),
                        "not used by provider \"static\" (workers that exist already)",
                    );
                }
                (true, None) => {
                    return bad(
                        field("mean_time_to_preemption"),
                        "a preemptible class needs how long a machine runs on average before \
                         it is taken back (mean_time_to_preemption = \"2h\")",
                    );
                }
                (true, Some(t)) if t <= 0.0 => {
                    return bad(
                        field("mean_time_to_preemption"),
                        "expected a duration above 0",
                    );
                }
                (false, Some(_)) => {
                    return bad(
                        field("mean_time_to_preemption"),
                        "only for a class with preemptible = true",
                    );
                }
                _ => {}
            }
            let command = r.provider == ProviderKind::Command;
            for (name, value) in [("start", &r.start), ("stop", &r.stop)] {
                match (command, value) {
                    (true, None) => {
                        return bad(
                            field(name),
                            "provider \"command\" needs a start and a stop command",
                        );
                    }
                    (true, Some(cmd)) if cmd.trim().is_empty() => {
                        return bad(field(name), "expected a command");
                    }
                    (false, Some(_)) => {
                        return bad(field(name), "only for provider \"command\"");
                    }
                    _ => {}
                }
            }
            slurm::validate(r, &field)?;
        }
        Ok(())
    }

    /// What is valid but likely not what the user meant, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let objective = &self.objective;
        let free = self
            .resources
            .iter()
            .any(|r| r.is_private() && r.limit() > 0);
        if (objective.deadline.is_some() || objective.budget.is_some())
            && !free
            && self.scaling.task_estimate.is_none()
        {
            out.push(
                "no private class and no scaling.task_estimate: nothing tells a task's duration \
                 before one has run, so the manager starts one machine of the cheapest class to \
                 learn it before planning for the objective"
                    .to_string(),
            );
        }
        out
    }

    /// The class called `name`, with its index.
    pub fn class(&self, name: &str) -> Option<(usize, &Resource)> {
        self.resources
            .iter()
            .enumerate()
            .find(|(_, r)| r.name == name)
    }
}

fn one() -> u32 {
    1
}

fn unit() -> f64 {
    1.0
}

pub(crate) mod slurm;
#[cfg(test)]
mod tests;
