//! `<out>/summary.json` and `<out>/tasks/<id>.{out,err}` of `halley run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use halley_autonomic::planner::Decision;
use halley_paradigms::bag::CommandOutput;
use halley_paradigms::master::Finished;
use serde::{Deserialize, Serialize};

use crate::cmd::verify;
use crate::cmd::workers::MachineRecord;

/// One task's line of the summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: u64,
    pub command: String,
    pub exit_code: i32,
    /// Runs of the command: the worker's retries, and again for each lease
    /// that lapsed (its worker vanished).
    pub attempts: u64,
    pub worker: String,
    pub resource: String,
    /// Seconds since the Unix epoch, on the worker's clock.
    pub started: f64,
    pub finished: f64,
    /// Killed at its `--timeout`.
    #[serde(default)]
    pub timed_out: bool,
    /// The output streams' sizes, as the command wrote them; the files
    /// hold the first `--max-output` bytes of each (`truncated`).
    #[serde(default)]
    pub stdout_bytes: u64,
    #[serde(default)]
    pub stderr_bytes: u64,
    #[serde(default)]
    pub truncated: bool,
    /// SHA-256 of `tasks/<id>.out` and `.err` as written.
    #[serde(default)]
    pub stdout_sha256: String,
    #[serde(default)]
    pub stderr_sha256: String,
}

impl TaskRecord {
    pub fn failed(&self) -> bool {
        self.exit_code != 0
    }

    /// The files this task wrote, with their SHA-256, for the manifest.
    fn files(&self) -> [(String, String); 2] {
        [
            (format!("tasks/{}.out", self.id), self.stdout_sha256.clone()),
            (format!("tasks/{}.err", self.id), self.stderr_sha256.clone()),
        ]
    }
}

/// The whole summary: the fields of CONTRACT.md, `machines` (each
/// machine's billing interval and cost), and what makes a job resumable
/// and checkable.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub tasks: Vec<TaskRecord>,
    pub makespan_s: f64,
    /// Every run of the job (`--resume` adds to the spend before it).
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
    pub decisions: Vec<Decision>,
    pub machines: Vec<MachineRecord>,
    /// This run's job id in the space.
    pub job: String,
    /// A signal stopped the job: `tasks` holds those that finished.
    pub interrupted: bool,
    pub signal: Option<String>,
    /// Tasks that exited non-zero (or timed out).
    pub failed: usize,
    /// Each output file's SHA-256, by its path in `<out>` (`halley verify`).
    pub files: BTreeMap<String, String>,
    /// `files` signed with `--sign-key`, if given.
    pub signature: Option<verify::Signature>,
}

/// Writes the files of `<out>/tasks/`.
#[derive(Debug)]
pub struct Outputs {
    tasks_dir: PathBuf,
}

impl Outputs {
    /// Creates `<out>/tasks`.
    pub fn create(out: &Path) -> anyhow::Result<Outputs> {
        let tasks_dir = out.join("tasks");
        std::fs::create_dir_all(&tasks_dir)
            .with_context(|| format!("cannot create {}", tasks_dir.display()))?;
        Ok(Outputs { tasks_dir })
    }

    /// Writes a finished task's stdout and stderr (each aside, then
    /// renamed: a killed run leaves no half file); returns its record.
    /// `id` is the task's id in the job (its line).
    pub fn record(&self, id: u64, done: &Finished, command: &str) -> anyhow::Result<TaskRecord> {
        let result = &done.result;
        let output = CommandOutput::decode(&result.payload).unwrap_or_else(|| CommandOutput {
            exit_code: -1,
            stderr: b"halley: the worker sent a malformed result\n".to_vec(),
            stderr_bytes: 43,
            ..CommandOutput::default()
        });
        let mut sums = Vec::with_capacity(2);
        for (stream, ext) in [(&output.stdout, "out"), (&output.stderr, "err")] {
            let path = self.tasks_dir.join(format!("{id}.{ext}"));
            let aside = self.tasks_dir.join(format!(".{id}.{ext}.part"));
            std::fs::write(&aside, stream)
                .and_then(|()| std::fs::rename(&aside, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
            sums.push(verify::sha256_hex(stream));
        }
        let truncated = output.stdout_truncated() || output.stderr_truncated();
        if truncated {
            say!(
                "halley: task {id}: output truncated: stdout {} of {} bytes kept, stderr {} of {} \
                 (--max-output; summary.json says \"truncated\": true)",
                output.stdout.len(),
                output.stdout_bytes,
                output.stderr.len(),
                output.stderr_bytes
            );
        }
        let [stdout_sha256, stderr_sha256]: [String; 2] =
            sums.try_into().unwrap_or_else(|_| Default::default());
        Ok(TaskRecord {
            id,
            command: command.to_owned(),
            exit_code: output.exit_code,
            attempts: done.attempts - 1 + u64::from(output.attempts),
            worker: result.worker.clone(),
            resource: result.resource.clone(),
            started: result.started_us as f64 / 1e6,
            finished: result.finished_us as f64 / 1e6,
            timed_out: output.timed_out,
            stdout_bytes: output.stdout_bytes,
            stderr_bytes: output.stderr_bytes,
            truncated,
            stdout_sha256,
            stderr_sha256,
        })
    }
}

/// The manifest of `tasks`' output files.
pub fn manifest(tasks: &[TaskRecord]) -> BTreeMap<String, String> {
    tasks.iter().flat_map(TaskRecord::files).collect()
}

impl Summary {
    /// Writes `<out>/summary.json`, pretty-printed (aside, then renamed).
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        let path = out.join("summary.json");
        let aside = out.join(".summary.json.part");
        std::fs::write(&aside, self.to_json() + "\n")
            .and_then(|()| std::fs::rename(&aside, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
