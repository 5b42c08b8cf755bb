//! `<out>/summary.json` and `<out>/tasks/<id>.{out,err}` of `halley run`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use halley_autonomic::planner::Decision;
use halley_paradigms::bag::CommandOutput;
use halley_paradigms::master::Finished;
use serde::Serialize;

use crate::cmd::workers::MachineRecord;

/// One task's line of the summary.
#[derive(Debug, Serialize)]
pub struct TaskRecord {
    pub id: u64,
    pub command: String,
    pub exit_code: i32,
    pub attempts: u64,
    pub worker: String,
    pub resource: String,
    /// Seconds since the Unix epoch, on the worker's clock.
    pub started: f64,
    pub finished: f64,
}

/// The whole summary: the fields of CONTRACT.md, and `machines` (each
/// machine's billing interval and cost).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub tasks: Vec<TaskRecord>,
    pub makespan_s: f64,
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
    pub decisions: Vec<Decision>,
    pub machines: Vec<MachineRecord>,
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

    /// Writes a finished task's stdout and stderr; returns its record.
    pub fn record(&self, done: &Finished, command: &str) -> anyhow::Result<TaskRecord> {
        let result = &done.result;
        let output = CommandOutput::decode(&result.payload).unwrap_or_else(|| CommandOutput {
            exit_code: -1,
            stderr: b"halley: the worker sent a malformed result\n".to_vec(),
            ..CommandOutput::default()
        });
        for (stream, ext, truncated) in [
            (&output.stdout, "out", output.stdout_truncated),
            (&output.stderr, "err", output.stderr_truncated),
        ] {
            let path = self.tasks_dir.join(format!("{}.{ext}", result.id));
            std::fs::write(&path, stream)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if truncated {
                tracing::warn!(task = result.id, file = %path.display(), "output truncated to the worker's --max-output");
            }
        }
        Ok(TaskRecord {
            id: result.id,
            command: command.to_owned(),
            exit_code: output.exit_code,
            attempts: done.attempts,
            worker: result.worker.clone(),
            resource: result.resource.clone(),
            started: result.started_us as f64 / 1e6,
            finished: result.finished_us as f64 / 1e6,
        })
    }
}

impl Summary {
    /// Writes `<out>/summary.json`, pretty-printed.
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        let path = out.join("summary.json");
        std::fs::write(&path, self.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
