//! The `local` provider: one worker process per machine on this machine, after
//! an emulated boot (`sleep boot_time`, then `exec` the worker).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

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
}

impl LocalProvider {
    pub fn new(worker: WorkerLine) -> Self {
        LocalProvider {
            worker,
            children: BTreeMap::new(),
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
        let ended: Vec<MachineId> = self
            .children
            .iter_mut()
            .filter_map(|(id, child)| (!matches!(child.try_wait(), Ok(None))).then_some(*id))
            .collect();
        for id in &ended {
            self.children.remove(id);
        }
        ended
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
        let dir = std::env::temp_dir().join(format!("halley-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("args");
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
