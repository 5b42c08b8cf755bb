//! Providers that start real processes: `local` (worker processes on this
//! machine standing in for cloud machines, with an emulated boot time),
//! `command` (user scripts that start and stop machines through a cloud's
//! CLI) and `slurm` (batch jobs of a Slurm cluster), and [`Providers`],
//! which routes each class to its own. The
//! `simulated` provider lives with the simulator.

mod command;
mod local;
mod slurm;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Command;

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::{ProviderKind, Resource};

pub use command::CommandProvider;
pub use local::LocalProvider;
pub use slurm::{SlurmProvider, sbatch_args, script};

/// The worker command line a provider spawns, e.g. `halley worker --peer
/// <addr>`; `--resource <class> --slots <n>` is appended per machine.
#[derive(Clone)]
pub struct WorkerLine {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Environment variables to set (`Some`) or remove (`None`), e.g. the
    /// job's `HALLEY_TOKEN`: values stay out of `ps` and of [`Debug`].
    pub env: Vec<(OsString, Option<OsString>)>,
}

impl WorkerLine {
    /// Sets and removes the variables of [`WorkerLine::env`] on `command`.
    pub fn apply_env(&self, command: &mut Command) {
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
    }
}

impl std::fmt::Debug for WorkerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&OsString> = self.env.iter().map(|(name, _)| name).collect();
        f.debug_struct("WorkerLine")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .finish()
    }
}

/// One provider for a whole policy: each class's machines go to the provider
/// its `provider` key names. `static` classes are never started or stopped.
#[derive(Debug)]
pub struct Providers {
    pub local: LocalProvider,
    pub command: CommandProvider,
    pub slurm: SlurmProvider,
    kinds: BTreeMap<MachineId, ProviderKind>,
}

impl Providers {
    pub fn new(local: LocalProvider, command: CommandProvider, slurm: SlurmProvider) -> Self {
        Providers {
            local,
            command,
            slurm,
            kinds: BTreeMap::new(),
        }
    }

    /// Machines of either provider not yet seen to end: zero once
    /// everything [`Provider::stop`]ped is gone (poll [`Provider::gone`]).
    pub fn alive(&self) -> usize {
        self.local.alive() + self.command.alive() + self.slurm.alive()
    }

    fn of_machine(&self, id: MachineId) -> Option<&dyn Provider> {
        match self.kinds.get(&id)? {
            ProviderKind::Static => None,
            ProviderKind::Local => Some(&self.local),
            ProviderKind::Command => Some(&self.command),
            ProviderKind::Slurm => Some(&self.slurm),
        }
    }

    fn of(&mut self, kind: ProviderKind) -> Option<&mut dyn Provider> {
        match kind {
            ProviderKind::Static => None,
            ProviderKind::Local => Some(&mut self.local),
            ProviderKind::Command => Some(&mut self.command),
            ProviderKind::Slurm => Some(&mut self.slurm),
        }
    }
}

impl Provider for Providers {
    fn start(&mut self, id: MachineId, class: &Resource, now: Secs) -> Result<(), ProviderError> {
        let provider = self.of(class.provider).ok_or_else(|| ProviderError {
            class: class.name.clone(),
            message: "a static class has no machines to start".into(),
        })?;
        provider.start(id, class, now)?;
        self.kinds.insert(id, class.provider);
        Ok(())
    }

    fn stop(&mut self, id: MachineId, now: Secs) -> Result<(), ProviderError> {
        match self.kinds.get(&id).copied().and_then(|kind| self.of(kind)) {
            Some(provider) => provider.stop(id, now),
            None => Ok(()),
        }
    }

    fn kill(&mut self, id: MachineId, now: Secs) -> Result<(), ProviderError> {
        match self.kinds.get(&id).copied().and_then(|kind| self.of(kind)) {
            Some(provider) => provider.kill(id, now),
            None => Ok(()),
        }
    }

    fn gone(&mut self) -> Vec<MachineId> {
        let mut gone = self.local.gone();
        gone.extend(self.command.gone());
        gone.extend(self.slurm.gone());
        for id in &gone {
            self.kinds.remove(id);
        }
        gone
    }

    fn lost(&mut self) -> Vec<(MachineId, String)> {
        let mut lost = self.local.lost();
        lost.extend(self.command.lost());
        lost.extend(self.slurm.lost());
        lost
    }

    fn external_id(&self, id: MachineId) -> Option<String> {
        self.slurm
            .external_id(id)
            .or_else(|| self.command.external_id(id))
    }

    fn waiting(&self, id: MachineId) -> Option<String> {
        self.of_machine(id)?.waiting(id)
    }
}

/// Asks a process to finish its tasks and exit (SIGTERM).
fn terminate(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(drop)
}

/// Whether `provider` reports machine `id` gone within ten seconds (tests of
/// the providers that run real processes).
#[cfg(test)]
fn gone_within_10s(provider: &mut dyn Provider, id: MachineId) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if provider.gone().contains(&id) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn each_class_goes_to_its_provider() {
        let policy = Policy::parse(
            "p",
            "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\n\
             [[resources]]\nname = \"here\"\nprovider = \"local\"\nmax = 1\n\
             [[resources]]\nname = \"there\"\nprovider = \"command\"\nmax = 1\nstart = \"exit 3\"\nstop = \"true\"\n",
        )
        .unwrap();
        let worker = WorkerLine {
            program: "sh".into(),
            args: vec!["-c".into(), "exit 0".into()],
            env: Vec::new(),
        };
        let slurm = SlurmProvider::new(worker.clone(), std::env::temp_dir());
        let mut p = Providers::new(
            LocalProvider::new(worker),
            CommandProvider::new("j", "t"),
            slurm,
        );
        let err = p
            .start(MachineId(0), &policy.resources[0], 0.0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "campus: a static class has no machines to start"
        );
        p.start(MachineId(1), &policy.resources[1], 0.0).unwrap();
        p.start(MachineId(2), &policy.resources[2], 0.0).unwrap();
        assert_eq!(p.alive(), 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut gone = Vec::new();
        while gone.len() < 2 && std::time::Instant::now() < deadline {
            gone.extend(p.gone());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        gone.sort();
        assert_eq!(
            gone,
            [MachineId(1), MachineId(2)],
            "the worker exited; the start script failed"
        );
        assert_eq!(p.alive(), 0);
    }
}
