//! The `command` provider: a class's `start` script starts a machine (it gets
//! `HALLEY_JOIN`, `HALLEY_TOKEN` (the space's key in hex, empty when it has
//! none), `HALLEY_RESOURCE`, `HALLEY_MACHINE` and `HALLEY_SLOTS`, and prints
//! the machine's id); its `stop` script stops it (`HALLEY_ID`).
//! Scripts run in the background; [`Provider::gone`] collects their ends.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;

/// A machine of a `command` class.
#[derive(Debug)]
enum Remote {
    /// Its start script runs; stop it as soon as it is up if `stop_asked`.
    Starting {
        script: Child,
        class: Resource,
        stop_asked: bool,
    },
    /// Started: the id its start script printed.
    Up { external: String, class: Resource },
}

/// Machines started and stopped by user scripts.
#[derive(Debug)]
pub struct CommandProvider {
    join: String,
    token: Token,
    machines: BTreeMap<MachineId, Remote>,
    /// Stop scripts still running.
    stopping: Vec<(MachineId, Child)>,
}

impl CommandProvider {
    /// `join`: the address workers join; `token`: the job's secret (the
    /// private overlay's key in hex; empty when the space has none).
    pub fn new(join: impl Into<String>, token: impl Into<String>) -> Self {
        CommandProvider {
            join: join.into(),
            token: Token(token.into()),
            machines: BTreeMap::new(),
            stopping: Vec::new(),
        }
    }

    /// Machines whose start or stop script has not yet been seen to end,
    /// or that are up and not yet stopped.
    pub fn alive(&self) -> usize {
        self.machines.len() + self.stopping.len()
    }

    fn run_stop(
        &mut self,
        id: MachineId,
        external: &str,
        class: &Resource,
    ) -> Result<(), ProviderError> {
        let script = Command::new("sh")
            .arg("-c")
            .arg(class.stop.as_deref().unwrap_or_default())
            .env("HALLEY_ID", external)
            .env("HALLEY_RESOURCE", &class.name)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| failed(class, format!("could not run its stop command: {e}")))?;
        self.stopping.push((id, script));
        Ok(())
    }
}

/// The job's secret, kept out of [`Debug`] output (and so out of logs).
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "none"
        } else {
            "<hidden>"
        })
    }
}

fn failed(class: &Resource, message: String) -> ProviderError {
    ProviderError {
        class: class.name.clone(),
        message,
    }
}

impl Provider for CommandProvider {
    fn start(&mut self, id: MachineId, class: &Resource, _now: Secs) -> Result<(), ProviderError> {
        let script = Command::new("sh")
            .arg("-c")
            .arg(class.start.as_deref().unwrap_or_default())
            .env("HALLEY_JOIN", &self.join)
            .env("HALLEY_TOKEN", &self.token.0)
            .env("HALLEY_RESOURCE", &class.name)
            .env("HALLEY_MACHINE", id.to_string())
            .env("HALLEY_SLOTS", class.slots.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| failed(class, format!("could not run its start command: {e}")))?;
        self.machines.insert(
            id,
            Remote::Starting {
                script,
                class: class.clone(),
                stop_asked: false,
            },
        );
        Ok(())
    }

    fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        match self.machines.get_mut(&id) {
            Some(Remote::Starting { stop_asked, .. }) => {
                *stop_asked = true;
                Ok(())
            }
            Some(Remote::Up { .. }) => match self.machines.remove(&id) {
                Some(Remote::Up { external, class }) => self.run_stop(id, &external, &class),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn gone(&mut self) -> Vec<MachineId> {
        let mut gone = Vec::new();
        let started: Vec<MachineId> = self
            .machines
            .iter_mut()
            .filter_map(|(id, remote)| match remote {
                Remote::Starting { script, .. } => {
                    (!matches!(script.try_wait(), Ok(None))).then_some(*id)
                }
                Remote::Up { .. } => None,
            })
            .collect();
        for id in started {
            let Some(Remote::Starting {
                mut script,
                class,
                stop_asked,
            }) = self.machines.remove(&id)
            else {
                continue;
            };
            let mut printed = String::new();
            if let Some(mut stdout) = script.stdout.take() {
                let _ = stdout.read_to_string(&mut printed);
            }
            let ok = script.wait().is_ok_and(|s| s.success());
            let external = printed.lines().next().unwrap_or("").trim().to_string();
            if !ok || external.is_empty() {
                tracing::warn!(target: "halley::autonomic", "{id} of {}: the start command failed or printed no id", class.name);
                gone.push(id);
            } else if stop_asked {
                if let Err(e) = self.run_stop(id, &external, &class) {
                    tracing::warn!(target: "halley::autonomic", "{e}");
                    gone.push(id);
                }
            } else {
                self.machines.insert(id, Remote::Up { external, class });
            }
        }
        self.stopping
            .retain_mut(|(id, script)| match script.try_wait() {
                Ok(None) => true,
                _ => {
                    gone.push(*id);
                    false
                }
            });
        gone.sort();
        gone
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::policy::Policy;

    /// A class whose scripts start and stop real local worker processes
    /// (`sleep`), the machine id being the process id.
    fn class(start: &str) -> Resource {
        let text = format!(
            "[[resources]]\nname = \"lab\"\nprovider = \"command\"\nmax = 2\nstart = '{start}'\nstop = 'kill $HALLEY_ID'\n"
        );
        Policy::parse("p", &text).unwrap().resources.remove(0)
    }

    /// Running, not a zombie left for its adopter to reap.
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn start_and_stop_scripts_run_a_real_worker_with_the_environment() {
        let start = "test \"$HALLEY_JOIN\" = /ip4/1.2.3.4 && test \"$HALLEY_RESOURCE\" = lab && \
                     test \"$HALLEY_MACHINE\" = m4 && test \"$HALLEY_TOKEN\" = c0ffee && test \"$HALLEY_SLOTS\" = 1 && \
                     (exec sleep 30 >/dev/null 2>&1 & echo $!)";
        let lab = class(start);
        let mut p = CommandProvider::new("/ip4/1.2.3.4", "c0ffee");
        assert!(!format!("{p:?}").contains("c0ffee"), "{p:?}");
        p.start(MachineId(4), &lab, 0.0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            assert!(p.gone().is_empty(), "the start script succeeded");
            if let Some(Remote::Up { external, .. }) = p.machines.get(&MachineId(4)) {
                break external.clone();
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(&pid));
        p.stop(MachineId(4), 1.0).unwrap();
        assert!(super::super::gone_within_10s(&mut p, MachineId(4)));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(&pid), "the stop script stopped it");
    }

    #[test]
    fn a_start_script_that_fails_is_gone() {
        let mut p = CommandProvider::new("j", "t");
        p.start(MachineId(1), &class("echo no quota >&2; exit 1"), 0.0)
            .unwrap();
        assert!(super::super::gone_within_10s(&mut p, MachineId(1)));
        assert!(p.machines.is_empty());
    }
}
