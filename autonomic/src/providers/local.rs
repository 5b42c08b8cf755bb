//! The `local` provider: one worker process per machine on this machine, after
//! an emulated boot (`sleep boot_time`, then `exec` the worker). A machine of
//! a preemptible class is taken back as a cloud would: killed with its tasks
//! after an exponential time of the class's mean (seeded by the machine id),
//! and reported lost.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;
use crate::providers::{WorkerLine, terminate};

/// Worker processes standing in for cloud machines.
#[derive(Debug)]
pub struct LocalProvider {
    worker: WorkerLine,
    children: BTreeMap<MachineId, Child>,
    /// When each machine of a preemptible class is taken back.
    preempt_at: BTreeMap<MachineId, Instant>,
    /// Machines taken back, not yet reported.
    lost: Vec<(MachineId, String)>,
}

impl LocalProvider {
    pub fn new(worker: WorkerLine) -> Self {
        LocalProvider {
            worker,
            children: BTreeMap::new(),
            preempt_at: BTreeMap::new(),
            lost: Vec::new(),
        }
    }

    /// How long after it is ready machine `id` of a class with mean time to
    /// preemption `mean` runs: an exponential draw seeded by the id.
    pub fn preempted_after(id: MachineId, mean: Secs) -> Duration {
        let u: f64 = StdRng::seed_from_u64(0x5907 ^ id.0).random();
        Duration::from_secs_f64(-mean * (1.0 - u).ln())
    }

    /// Kills the preemptible machines whose time has come, as lost.
    fn preempt_due(&mut self) {
        let now = Instant::now();
        let due: Vec<MachineId> = self
            .preempt_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.preempt_at.remove(&id);
            if self.children.contains_key(&id) && self.kill(id, 0.0).is_ok() {
                if let Some(child) = self.children.get_mut(&id) {
                    // Killed: reaped at once, so `gone` sees it now.
                    let _ = child.wait();
                }
                self.lost
                    .push((id, "preempted by the provider (local, emulated)".into()));
            }
        }
    }

    /// Worker processes not yet seen to end (booting, running or draining).
    pub fn alive(&self) -> usize {
        self.children.len()
    }
}

impl Provider for LocalProvider {
    fn start(&mut self, id: MachineId, class: &Resource, _now: Secs) -> Result<(), ProviderError> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sh");
        // A group of its own: a terminal's Ctrl-C reaches the job, which
        // stops its machines, not the workers behind its back.
        command.process_group(0);
        self.worker.apply_env(&mut command);
        let child = command
            .arg("-c")
            .arg("sleep \"$0\" && exec \"$@\"")
            .arg(format!("{:.3}", class.boot_time))
            .arg(&self.worker.program)
            .args(&self.worker.args)
            .args([
                "--resource",
                &class.name,
                "--slots",
                &class.slots.to_string(),
            ])
            .env("HALLEY_MACHINE", id.to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| ProviderError {
                class: class.name.clone(),
                message: format!("could not spawn the worker: {e}"),
            })?;
        self.children.insert(id, child);
        if let Some(mean) = class.mean_time_to_preemption.filter(|_| class.preemptible) {
            let ready = Instant::now() + Duration::from_secs_f64(class.boot_time);
            self.preempt_at
                .insert(id, ready + Self::preempted_after(id, mean));
        }
        Ok(())
    }

    fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        if let Some(child) = self.children.get(&id) {
            terminate(child.id()).map_err(|e| ProviderError {
                class: "local".into(),
                message: format!("could not stop {id}: {e}"),
            })?;
        }
        Ok(())
    }

    /// SIGKILL: the worker and the tasks it runs end now; their leases
    /// lapse and the job runs them again.
    fn kill(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        if let Some(child) = self.children.get_mut(&id) {
            // The tasks first (the worker's children), then the worker.
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            child.kill().map_err(|e| ProviderError {
                class: "local".into(),
                message: format!("could not kill {id}: {e}"),
            })?;
        }
        Ok(())
    }

    fn gone(&mut self) -> Vec<MachineId> {
        self.preempt_due();
        let ended: Vec<MachineId> = self
            .children
            .iter_mut()
            .filter_map(|(id, child)| (!matches!(child.try_wait(), Ok(None))).then_some(*id))
            .collect();
        for id in &ended {
            self.children.remove(id);
            self.preempt_at.remove(id);
        }
        ended
    }

    fn lost(&mut self) -> Vec<(MachineId, String)> {
        std::mem::take(&mut self.lost)
    }
}

impl Drop for LocalProvider {
    /// No worker outlives the job.
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::Policy;

    fn class(boot: &str) -> Resource {
        let text = format!(
            "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nboot_time = \"{boot}\"\nmax = 2\n"
        );
        Policy::parse("p", &text).unwrap().resources.remove(0)
    }

    #[test]
    fn a_worker_starts_after_its_boot_time_with_its_class() {
        let out = std::env::temp_dir().join(format!("halley-local-args-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let script = format!("echo \"$@\" \"$HALLEY_TOKEN\" > {}", out.display());
        let line = WorkerLine {
            program: "sh".into(),
            args: vec!["-c".into(), script.into(), "worker".into()],
            env: vec![("HALLEY_TOKEN".into(), Some("c0ffee".into()))],
        };
        let shown = format!("{line:?}");
        assert!(
            shown.contains("HALLEY_TOKEN") && !shown.contains("c0ffee"),
            "{shown}"
        );
        let mut p = LocalProvider::new(line);
        p.start(MachineId(3), &class("300ms"), 0.0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!out.exists(), "still booting");
        assert!(super::super::gone_within_10s(&mut p, MachineId(3)));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "--resource cloud --slots 1 c0ffee\n"
        );
        let _ = std::fs::remove_file(&out);
    }

    #[test]
    fn a_preemptible_machine_is_taken_back_with_its_tasks_and_reported_lost() {
        let text = "[[resources]]\nname = \"spot\"\nprovider = \"local\"\nmax = 2\n\
                    preemptible = true\nmean_time_to_preemption = \"1s\"\n";
        let spot = Policy::parse("p", text).unwrap().resources.remove(0);
        let after = LocalProvider::preempted_after(MachineId(1), 1.0);
        assert_eq!(
            after,
            LocalProvider::preempted_after(MachineId(1), 1.0),
            "seeded"
        );
        assert!(after < Duration::from_secs(5), "{after:?}");
        let mut p = LocalProvider::new(WorkerLine {
            program: "sh".into(),
            args: vec!["-c".into(), "exec sleep 30".into()],
            env: Vec::new(),
        });
        let started = std::time::Instant::now();
        p.start(MachineId(1), &spot, 0.0).unwrap();
        assert!(super::super::gone_within_10s(&mut p, MachineId(1)));
        assert!(started.elapsed() >= after, "not before its time");
        assert_eq!(
            p.lost(),
            [(
                MachineId(1),
                "preempted by the provider (local, emulated)".to_string()
            )]
        );
        assert_eq!(p.alive(), 0);
    }

    #[test]
    fn stop_ends_a_running_worker() {
        let mut p = LocalProvider::new(WorkerLine {
            program: "sh".into(),
            args: vec!["-c".into(), "exec sleep 30".into()],
            env: Vec::new(),
        });
        p.start(MachineId(1), &class("0s"), 0.0).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(p.gone().is_empty());
        p.stop(MachineId(1), 1.0).unwrap();
        assert!(super::super::gone_within_10s(&mut p, MachineId(1)));
    }
}
