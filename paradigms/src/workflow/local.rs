//! The stage runner of `halley workflow` on this machine: a bag stage's
//! commands run `slots` at a time; a MapReduce stage is a streaming job whose
//! tasks go through the space.
//!
//! Every command runs in the workflow's output directory (so a stage finds
//! its parents' files by relative path), with `HALLEY_OUT` (that directory),
//! `HALLEY_STAGE` and `HALLEY_WORKFLOW_DIR` (the workflow file's directory)
//! in its environment. A bag command's stdout and stderr go to
//! `<out>/<stage>/tasks/<i>.out` and `.err`, as `halley run` does.
//!
//! Seam: a bag stage is where the bag-of-tasks runner of `halley run` plugs
//! in, to have its commands run by the space's workers under the policy.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use halley_substrate::Space;
use tokio::runtime::Handle;

use super::schedule::StageRunner;
use super::spec::{MapReduceStage, Stage, Work};
use crate::mapreduce::{Input, MapReduce, streaming::Streaming};

/// Runs stages on this machine, MapReduce tasks through `space`.
#[derive(Debug)]
pub struct LocalRunner<S> {
    pub space: S,
    pub rt: Handle,
    /// The output directory; it must exist.
    pub out: PathBuf,
    /// The directory of the workflow file.
    pub workflow_dir: PathBuf,
    /// Commands (or MapReduce workers) at once, per stage.
    pub slots: usize,
}

impl<S: Space> StageRunner for LocalRunner<S> {
    fn run(&self, stage: &Stage) -> Result<(), String> {
        match &stage.work {
            Work::Bag(commands) => self.bag(&stage.name, commands),
            Work::MapReduce(job) => self.mapreduce(&stage.name, job),
        }
    }
}

impl<S: Space> LocalRunner<S> {
    fn command(&self, stage: &str, line: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(line)
            .current_dir(&self.out)
            .env("HALLEY_OUT", &self.out)
            .env("HALLEY_STAGE", stage)
            .env("HALLEY_WORKFLOW_DIR", &self.workflow_dir);
        command
    }

    fn bag(&self, stage: &str, commands: &[String]) -> Result<(), String> {
        let tasks = self.out.join(stage).join("tasks");
        fs::create_dir_all(&tasks)
            .map_err(|e| format!("cannot create {}: {e}", tasks.display()))?;
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..self.slots.clamp(1, commands.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(line) = commands.get(i) else { break };
                        if let Err(e) = self.run_one(stage, &tasks, i, line) {
                            failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, e));
                        }
                    }
                });
            }
        });
        let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
        failures.sort();
        match failures.first() {
            None => Ok(()),
            Some((_, first)) if failures.len() == 1 => Err(first.clone()),
            Some((_, first)) => Err(format!("{first} (and {} more)", failures.len() - 1)),
        }
    }

    fn run_one(&self, stage: &str, tasks: &Path, i: usize, line: &str) -> Result<(), String> {
        let create = |ext: &str| {
            let path = tasks.join(format!("{i}.{ext}"));
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        let status = self
            .command(stage, line)
            .stdout(create("out")?)
            .stderr(create("err")?)
            .status()
            .map_err(|e| format!("command {i} `{line}`: cannot start sh: {e}"))?;
        if status.success() {
            return Ok(());
        }
        Err(format!(
            "command {i} `{line}` failed ({status}); its stderr is in {}",
            tasks.join(format!("{i}.err")).display()
        ))
    }

    fn mapreduce(&self, stage: &str, job: &MapReduceStage) -> Result<(), String> {
        let inputs: Vec<PathBuf> = job.input.iter().map(|p| self.out.join(p)).collect();
        let input = Input::read(&inputs).map_err(|e| e.to_string())?;
        let out = self
            .out
            .join(job.out.as_deref().unwrap_or(Path::new(stage)));
        fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let streaming = Streaming {
            map: job.map.clone(),
            reduce: job.reduce.clone(),
            out,
            dir: Some(self.out.clone()),
        };
        let shape = MapReduce::new()
            .workers(self.slots)
            .reducers(job.reducers.unwrap_or(self.slots));
        streaming
            .run(&self.space, &self.rt, &input, &shape)
            .map_err(|e| e.to_string())
    }
}
