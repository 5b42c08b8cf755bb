//! The `command` provider: a class's `start` script starts a machine (it gets
//! `HALLEY_JOIN`, `HALLEY_TOKEN` (the space's key in hex, empty when it has
//! none), `HALLEY_RESOURCE`, `HALLEY_MACHINE` and `HALLEY_SLOTS`, and prints
//! the machine's id); its `stop` script stops it (`HALLEY_ID`).
//! Scripts run in the background; [`Provider::gone`] collects their ends.
//!
//! A start script's id is its first line of output, read by a thread of
//! its own: a script that leaves a background process holding its output
//! open (`worker & echo $!`) cannot stall the manager. Each start script
//! runs in a process group of its own; one still running [`GIVE_UP`] after
//! its machine was stopped, or when the job ends, is killed with its group
//! (and said so: whatever it made, Halley has no id to stop).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;

/// How long a start script may still run after its machine was stopped
/// (it did not boot in time, or the job ended) before it is killed.
pub const GIVE_UP: Duration = Duration::from_secs(60);

/// How long after its start script ended its first line may take to come.
const LINE_AFTER_EXIT: Duration = Duration::from_secs(2);

/// A machine of a `command` class.
#[derive(Debug)]
enum Remote {
    /// Its start script runs; stop it as soon as it is up if `stop_asked`
    /// (since then).
    Starting {
        script: Child,
        /// The script's first line of output, once read.
        id_line: Receiver<String>,
        class: Resource,
        stop_asked: Option<Instant>,
        /// When the script was seen to have ended.
        ended: Option<Instant>,
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
        let mut script = Command::new("sh")
            .arg("-c")
            .arg(class.start.as_deref().unwrap_or_default())
            .env("HALLEY_JOIN", &self.join)
            .env("HALLEY_TOKEN", &self.token.0)
            .env("HALLEY_RESOURCE", &class.name)
            .env("HALLEY_MACHINE", id.to_string())
            .env("HALLEY_SLOTS", class.slots.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| failed(class, format!("could not run its start command: {e}")))?;
        let id_line = first_line(script.stdout.take());
        self.machines.insert(
            id,
            Remote::Starting {
                script,
                id_line,
                class: class.clone(),
                stop_asked: None,
                ended: None,
            },
        );
        Ok(())
    }

    fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        match self.machines.get_mut(&id) {
            Some(Remote::Starting { stop_asked, .. }) => {
                stop_asked.get_or_insert_with(Instant::now);
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
        let settled: Vec<(MachineId, Settled)> = self
            .machines
            .iter_mut()
            .filter_map(|(id, remote)| match remote {
                Remote::Starting {
                    script,
                    id_line,
                    stop_asked,
                    ended,
                    ..
                } => settle(script, id_line, *stop_asked, ended).map(|s| (*id, s)),
                Remote::Up { .. } => None,
            })
            .collect();
        for (id, settled) in settled {
            let Some(Remote::Starting {
                mut script,
                class,
                stop_asked,
                ..
            }) = self.machines.remove(&id)
            else {
                continue;
            };
            match settled {
                Settled::Printed(external) if script.wait().is_ok_and(|s| s.success()) => {
                    if stop_asked.is_none() {
                        self.machines.insert(id, Remote::Up { external, class });
                    } else if let Err(e) = self.run_stop(id, &external, &class) {
                        tracing::warn!(target: "halley::autonomic", "{e}");
                        gone.push(id);
                    }
                }
                Settled::Printed(_) | Settled::NoId => {
                    let _ = script.wait();
                    tracing::warn!(target: "halley::autonomic", "{id} of {}: the start command failed or printed no id", class.name);
                    gone.push(id);
                }
                Settled::GaveUp => {
                    kill_group(&mut script);
                    tracing::warn!(
                        target: "halley::autonomic",
                        "{id} of {}: its start command still ran {}s after the machine was stopped: \
                         killed; a machine it may have made has no id to stop it by",
                        class.name,
                        GIVE_UP.as_secs()
                    );
                    gone.push(id);
                }
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

/// How a start script ended, once it has.
enum Settled {
    /// It printed this first line.
    Printed(String),
    /// It ended without printing a line (or an empty one).
    NoId,
    /// Its machine was stopped [`GIVE_UP`] ago and it still runs.
    GaveUp,
}

/// Whether the start script has settled, marking when it ended.
fn settle(
    script: &mut Child,
    id_line: &Receiver<String>,
    stop_asked: Option<Instant>,
    ended: &mut Option<Instant>,
) -> Option<Settled> {
    if ended.is_none() && !matches!(script.try_wait(), Ok(None)) {
        *ended = Some(Instant::now());
    }
    let Some(at) = *ended else {
        return stop_asked
            .is_some_and(|asked| asked.elapsed() >= GIVE_UP)
            .then_some(Settled::GaveUp);
    };
    match id_line.try_recv() {
        Ok(line) if !line.trim().is_empty() => Some(Settled::Printed(line.trim().to_string())),
        Ok(_) | Err(TryRecvError::Disconnected) => Some(Settled::NoId),
        Err(TryRecvError::Empty) => (at.elapsed() >= LINE_AFTER_EXIT).then_some(Settled::NoId),
    }
}

/// The first line `out` gives, read by a thread (which then drains the
/// rest, so the script never blocks on a full pipe).
fn first_line(out: Option<std::process::ChildStdout>) -> Receiver<String> {
    let (line, id_line) = sync_channel(1);
    if let Some(out) = out {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut first = String::new();
            if reader.read_line(&mut first).is_ok() {
                let _ = line.send(first);
            }
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
    }
    id_line
}

/// SIGKILLs `script`'s process group (it leads one) and reaps it.
fn kill_group(script: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", script.id())])
        .status();
    let _ = script.kill();
    let _ = script.wait();
}

impl Drop for CommandProvider {
    /// No start script outlives the job: one still running is killed with
    /// its process group (its machine, if it made one, has no id to stop).
    fn drop(&mut self) {
        for (id, remote) in &mut self.machines {
            if let Remote::Starting { script, class, .. } = remote
                && matches!(script.try_wait(), Ok(None))
            {
                kill_group(script);
                tracing::warn!(
                    target: "halley::autonomic",
                    "{id} of {}: its start command still ran when the job ended: killed; \
                     a machine it may have made has no id to stop it by",
                    class.name
                );
            }
        }
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
        let mut p = CommandProvider::new("/ip4/1.2.3.4", "c0ffee");
        assert!(!format!("{p:?}").contains("c0ffee"), "{p:?}");
        up_then_stopped(&mut p, MachineId(4), &class(start));
    }

    /// Starts machine `id` of `lab`, waits (10 s at most) until its start
    /// script has printed the id of a live process, stops it and checks
    /// that the stop script ended that process.
    fn up_then_stopped(p: &mut CommandProvider, id: MachineId, lab: &Resource) {
        p.start(id, lab, 0.0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            assert!(p.gone().is_empty(), "the start script succeeded");
            if let Some(Remote::Up { external, .. }) = p.machines.get(&id) {
                break external.clone();
            }
            assert!(Instant::now() < deadline, "not up within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(&pid));
        p.stop(id, 1.0).unwrap();
        assert!(super::super::gone_within_10s(p, id));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(&pid), "the stop script stopped it");
    }

    #[test]
    fn a_start_script_whose_background_process_holds_its_output_does_not_stall_the_provider() {
        // The backgrounded `sleep` keeps the script's stdout open for 30 s
        // after the script printed its pid and ended.
        let mut p = CommandProvider::new("j", "t");
        up_then_stopped(&mut p, MachineId(2), &class("sleep 30 & echo $!"));
    }

    #[test]
    fn a_start_script_still_running_when_the_job_ends_is_killed_with_its_group() {
        let mut p = CommandProvider::new("j", "t");
        p.start(MachineId(3), &class("sleep 300 & sleep 300"), 0.0)
            .unwrap();
        let Some(Remote::Starting { script, .. }) = p.machines.get(&MachineId(3)) else {
            panic!("starting");
        };
        let group = script.id();
        let in_group = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                        let fields: Vec<&str> = stat
                            .rsplit(')')
                            .next()
                            .unwrap_or("")
                            .split_whitespace()
                            .collect();
                        fields.first() != Some(&"Z")
                            && fields.get(2) == Some(&group.to_string().as_str())
                    })
                })
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_group() < 2 {
            assert!(Instant::now() < deadline, "the script and its sleep run");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(p.gone().is_empty());
        drop(p);
        assert_eq!(
            in_group(),
            0,
            "the script and its background sleep are gone"
        );
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
