//! The `slurm` provider: each machine is a Slurm batch job whose script
//! runs `halley worker`, driven through Slurm's command-line tools —
//! `sbatch --parsable` submits, `squeue --states=all` tells its state,
//! `scancel` releases it. A PENDING job is a booting machine, a RUNNING
//! one runs; a job that ends without our `scancel` (its time limit, a node
//! failure, preemption, someone's `scancel`) is a lost machine, reported
//! with Slurm's word for it through [`Provider::lost`].
//!
//! Every Slurm command runs as a child process polled from
//! [`Provider::gone`], so a slow controller never blocks the job's loop.
//! The job script (see [`script`]) is written to the provider's directory
//! beside the job's log; the space's key travels in the job's environment
//! (`HALLEY_TOKEN`, sbatch's default `--export=ALL`), never in the script.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clock::Secs;
use crate::machine::MachineId;
use crate::manager::{Provider, ProviderError};
use crate::policy::Resource;
use crate::policy::slurm::time_limit;
use crate::providers::WorkerLine;

/// How often `squeue` is asked about the jobs.
const POLL: Duration = Duration::from_millis(500);

/// One machine: its job, once submitted.
#[derive(Debug)]
struct Job {
    class: String,
    /// `sbatch` still running.
    submitting: Option<Child>,
    /// Slurm's job id, once `sbatch` printed it.
    id: Option<String>,
    /// Slurm's state and reason, as `squeue` last said.
    state: String,
    reason: String,
    /// We asked Slurm to end it (`scancel`): its end is a release.
    stop_asked: bool,
    /// `scancel` sent.
    cancelled: bool,
}

/// Machines that are Slurm jobs running `halley worker`.
#[derive(Debug)]
pub struct SlurmProvider {
    worker: WorkerLine,
    dir: PathBuf,
    jobs: BTreeMap<MachineId, Job>,
    /// The `squeue` running now, and when the last one started.
    poll: Option<Child>,
    polled: Option<Instant>,
    /// `scancel`s not yet reaped.
    cancels: Vec<Child>,
    lost: Vec<(MachineId, String)>,
    /// Every job id submitted, also after the job ended: for the summary.
    submitted: BTreeMap<MachineId, String>,
}

/// A Slurm state in which the job is over.
fn ended(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "CANCELLED"
            | "FAILED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "OUT_OF_MEMORY"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// `text` quoted for a POSIX shell.
fn quote(text: &OsStr) -> String {
    let text = String::from_utf8_lossy(text.as_bytes());
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The job script of machine `id` of `class`: the class's `setup` lines,
/// then the worker, which reports as `HALLEY_MACHINE`.
pub fn script(worker: &WorkerLine, class: &Resource, id: MachineId) -> String {
    let mut line: Vec<String> = std::iter::once(worker.program.as_os_str())
        .chain(worker.args.iter().map(|a| a.as_os_str()))
        .map(quote)
        .collect();
    line.extend(
        [
            "--resource",
            &class.name,
            "--slots",
            &class.slots.to_string(),
        ]
        .map(|a| quote(OsStr::new(a))),
    );
    let setup = class.setup.as_deref().unwrap_or_default();
    format!(
        "#!/bin/sh\n# A halley worker: machine {id} of class {class}, submitted by halley with sbatch.\n\
         export HALLEY_MACHINE={id}\n{setup}{newline}exec {line}\n",
        class = class.name,
        newline = if setup.is_empty() || setup.ends_with('\n') {
            ""
        } else {
            "\n"
        },
        line = line.join(" "),
    )
}

/// The `sbatch` options of `class` (before the script's path).
pub fn sbatch_args(class: &Resource, name: &str, log: &Path) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={name}"),
        format!("--output={}", log.display()),
        format!(
            "--cpus-per-task={}",
            class.cpus_per_task.unwrap_or(class.slots)
        ),
    ];
    let keys = [
        ("partition", &class.partition),
        ("account", &class.account),
        ("qos", &class.qos),
    ];
    for (key, value) in keys {
        if let Some(value) = value {
            args.push(format!("--{key}={value}"));
        }
    }
    if let Some(limit) = class.time_limit {
        args.push(format!("--time={}", time_limit(limit)));
    }
    args.extend(class.extra_args.iter().flatten().cloned());
    args
}

impl SlurmProvider {
    /// `worker`: the worker command line (`halley worker --peer <join>
    /// --job <job>`, the key in its environment); `dir`: where job scripts
    /// and the jobs' logs go (on a file system the login node shares with
    /// the cluster's nodes: the job's log is written there).
    pub fn new(worker: WorkerLine, dir: impl Into<PathBuf>) -> Self {
        SlurmProvider {
            worker,
            dir: dir.into(),
            jobs: BTreeMap::new(),
            poll: None,
            polled: None,
            cancels: Vec::new(),
            lost: Vec::new(),
            submitted: BTreeMap::new(),
        }
    }

    /// Jobs not yet seen to end.
    pub fn alive(&self) -> usize {
        self.jobs.len()
    }

    fn submit(&self, id: MachineId, class: &Resource) -> std::io::Result<Child> {
        std::fs::create_dir_all(&self.dir)?;
        let stem = format!("{}-{id}", class.name);
        let path = self.dir.join(format!("{stem}.sh"));
        std::fs::write(&path, script(&self.worker, class, id))?;
        let log = self.dir.join(format!("{stem}-%j.out"));
        let mut command = Command::new("sbatch");
        self.worker.apply_env(&mut command);
        command
            .args(sbatch_args(class, &format!("halley-{stem}"), &log))
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// `scancel` of job `job`, reaped later.
    fn cancel(&mut self, job: &str) {
        match Command::new("scancel")
            .arg(job)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(child) => self.cancels.push(child),
            Err(e) => tracing::warn!(target: "halley::autonomic", "cannot run scancel {job}: {e}"),
        }
    }

    /// Takes the job ids of `sbatch`es that ended; the failed ones are lost.
    fn collect_submits(&mut self, gone: &mut Vec<MachineId>) {
        let mut cancel = Vec::new();
        for (&id, job) in &mut self.jobs {
            let Some(child) = job.submitting.as_mut() else {
                continue;
            };
            if matches!(child.try_wait(), Ok(None)) {
                continue;
            }
            let mut child = job.submitting.take().expect("checked above");
            let (mut out, mut err) = (String::new(), String::new());
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            let ok = child.wait().is_ok_and(|s| s.success());
            // `--parsable` prints `<id>` or `<id>;<cluster>`.
            let job_id = out.trim().split(';').next().unwrap_or("").to_string();
            if !ok || job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
                let why = format!("sbatch failed: {}", err.trim());
                self.lost.push((id, why));
                gone.push(id);
                continue;
            }
            job.id = Some(job_id.clone());
            self.submitted.insert(id, job_id.clone());
            job.state = "PENDING".into();
            if job.stop_asked {
                cancel.push(job_id);
            }
        }
        for id in gone.iter() {
            self.jobs.remove(id);
        }
        for job_id in cancel {
            self.cancel(&job_id);
            if let Some(job) = self
                .jobs
                .values_mut()
                .find(|j| j.id.as_ref() == Some(&job_id))
            {
                job.cancelled = true;
            }
        }
    }

    /// Reads the last `squeue`'s answer, if it is in; starts another when
    /// [`POLL`] has passed.
    fn collect_states(&mut self, gone: &mut Vec<MachineId>) {
        if let Some(child) = self.poll.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                return;
            }
            let mut child = self.poll.take().expect("checked above");
            let mut out = String::new();
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if child.wait().is_ok_and(|s| s.success()) {
                self.apply_states(&out, gone);
            }
        }
        let ids: Vec<&str> = self.jobs.values().filter_map(|j| j.id.as_deref()).collect();
        if ids.is_empty() || self.polled.is_some_and(|t| t.elapsed() < POLL) {
            return;
        }
        let squeue = Command::new("squeue")
            .args(["-h", "--states=all", "-o", "%i|%T|%r", "-j", &ids.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        self.polled = Some(Instant::now());
        match squeue {
            Ok(child) => self.poll = Some(child),
            Err(e) => tracing::warn!(target: "halley::autonomic", "cannot run squeue: {e}"),
        }
    }

    /// Applies `squeue`'s lines (`<id>|<state>|<reason>`); a job it no
    /// longer knows has ended too (purged after Slurm's MinJobAge).
    fn apply_states(&mut self, out: &str, gone: &mut Vec<MachineId>) {
        let states: BTreeMap<&str, (&str, &str)> = out
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().splitn(3, '|');
                Some((
                    fields.next()?,
                    (fields.next()?, fields.next().unwrap_or("")),
                ))
            })
            .collect();
        for (&id, job) in &mut self.jobs {
            let Some(job_id) = job.id.as_deref() else {
                continue;
            };
            let (state, reason) = states
                .get(job_id)
                .copied()
                .unwrap_or(("GONE", "no longer known to Slurm"));
            job.state = state.to_string();
            job.reason = reason.to_string();
            if state == "GONE" || ended(state) {
                gone.push(id);
                if !job.stop_asked {
                    let why = format!(
                        "Slurm job {job_id} of {} ended on its own: {state} ({reason})",
                        job.class
                    );
                    self.lost.push((id, why));
                }
            }
        }
        for id in gone.iter() {
            self.jobs.remove(id);
        }
    }
}

impl Provider for SlurmProvider {
    fn start(&mut self, id: MachineId, class: &Resource, _now: Secs) -> Result<(), ProviderError> {
        let child = self.submit(id, class).map_err(|e| ProviderError {
            class: class.name.clone(),
            message: format!("cannot submit with sbatch: {e}"),
        })?;
        self.jobs.insert(
            id,
            Job {
                class: class.name.clone(),
                submitting: Some(child),
                id: None,
                state: "SUBMITTING".into(),
                reason: String::new(),
                stop_asked: false,
                cancelled: false,
            },
        );
        Ok(())
    }

    fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        job.stop_asked = true;
        if let Some(job_id) = job.id.clone()
            && !job.cancelled
        {
            job.cancelled = true;
            self.cancel(&job_id);
        }
        Ok(())
    }

    fn gone(&mut self) -> Vec<MachineId> {
        self.cancels
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        let mut gone = Vec::new();
        self.collect_submits(&mut gone);
        self.collect_states(&mut gone);
        gone.sort();
        gone
    }

    fn lost(&mut self) -> Vec<(MachineId, String)> {
        std::mem::take(&mut self.lost)
    }

    fn external_id(&self, id: MachineId) -> Option<String> {
        self.submitted.get(&id).cloned()
    }

    fn waiting(&self, id: MachineId) -> Option<String> {
        let job = self.jobs.get(&id)?;
        let job_id = job.id.as_deref().unwrap_or("(being submitted)");
        Some(match job.reason.as_str() {
            "" | "None" => format!("Slurm job {job_id} {}", job.state),
            reason => format!("Slurm job {job_id} {}: {reason}", job.state),
        })
    }
}

impl Drop for SlurmProvider {
    /// No worker job outlives the job: every job not seen to end is
    /// cancelled, those still being submitted once `sbatch` answers.
    fn drop(&mut self) {
        let mut ids = Vec::new();
        for job in self.jobs.values_mut() {
            if let Some(mut child) = job.submitting.take() {
                let mut out = String::new();
                if let Some(mut s) = child.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                let _ = child.wait();
                job.id = out.trim().split(';').next().map(str::to_string);
            }
            ids.extend(job.id.clone().filter(|id| !id.is_empty()));
        }
        if !ids.is_empty() {
            let _ = Command::new("scancel")
                .args(&ids)
                .stdin(Stdio::null())
                .status();
        }
        for mut child in self.cancels.drain(..).chain(self.poll.take()) {
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests;
