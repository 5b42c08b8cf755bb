//! The stage runner of `halley workflow` on this machine.
//!
//! Every command runs in the workflow's output directory (so a stage finds
//! its parents' files by relative path), with `HALLEY_OUT` (that directory),
//! `HALLEY_STAGE` and `HALLEY_WORKFLOW_DIR` (the workflow file's directory)
//! in its environment. A bag command's stdout and stderr go to
//! `<out>/<stage>/tasks/<i>.out` and `.err`, as `halley run` does.
//!
//! A bag stage is a master-worker job (tasks and results through the space)
//! run by an in-process worker; a MapReduce stage is a streaming job whose
//! tasks also go through the space.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use halley_substrate::Space;
use tokio::runtime::Handle;

use super::schedule::StageRunner;
use super::spec::{MapReduceStage, Stage, Work};
use crate::mapreduce::{Input, MapReduce, streaming::Streaming};
use crate::master::Master;
use crate::worker::Worker;

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
    /// A bag stage is a master-worker job in the space: the master submits
    /// one task per command and collects exactly one result each, while a
    /// worker of this process with `slots` lanes runs them, one at a time
    /// per lane.
    fn bag(&self, stage: &str, commands: &[String]) -> Result<(), String> {
        let context = BagContext {
            stage: stage.to_owned(),
            tasks: self.out.join(stage).join("tasks"),
            out: self.out.clone(),
            workflow_dir: self.workflow_dir.clone(),
        };
        fs::create_dir_all(&context.tasks)
            .map_err(|e| format!("cannot create {}: {e}", context.tasks.display()))?;
        let job = format!("wf-{}-{stage}-{}", std::process::id(), unique());
        let finished = self.rt.block_on(async {
            let worker = Worker::new(self.space.clone(), job.clone())
                .slots(self.slots)
                .max_batch(1);
            let stopper = worker.stopper();
            let running = tokio::spawn(worker.run(move |payload| context.run(payload)));
            let mut master = Master::new(self.space.clone(), job);
            let payloads = commands
                .iter()
                .enumerate()
                .map(|(i, line)| format!("{i}\n{line}").into_bytes());
            let finished = match master.submit(payloads).await {
                Ok(_) => master.collect().await,
                Err(e) => Err(e),
            };
            stopper.stop();
            let _ = running.await;
            finished
        });
        let failures: Vec<String> = finished
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|f| !f.result.payload.is_empty())
            .map(|f| String::from_utf8_lossy(&f.result.payload).into_owned())
            .collect();
        match failures.as_slice() {
            [] => Ok(()),
            [only] => Err(only.clone()),
            [first, rest @ ..] => Err(format!("{first} (and {} more)", rest.len())),
        }
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

/// What a bag command needs to run in a worker: where, and with what.
#[derive(Clone, Debug)]
struct BagContext {
    stage: String,
    tasks: PathBuf,
    out: PathBuf,
    workflow_dir: PathBuf,
}

impl BagContext {
    /// Runs the command of a task payload (`<index>\n<command>`); the
    /// result is empty on success, else the error message.
    fn run(&self, payload: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(payload);
        let (index, line) = text.split_once('\n').unwrap_or(("?", &text));
        match self.run_one(index, line) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_bytes(),
        }
    }

    fn run_one(&self, i: &str, line: &str) -> Result<(), String> {
        let create = |ext: &str| {
            let path = self.tasks.join(format!("{i}.{ext}"));
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        let status = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(&self.out)
            .env("HALLEY_OUT", &self.out)
            .env("HALLEY_STAGE", &self.stage)
            .env("HALLEY_WORKFLOW_DIR", &self.workflow_dir)
            .stdout(create("out")?)
            .stderr(create("err")?)
            .status()
            .map_err(|e| format!("command {i} `{line}`: cannot start sh: {e}"))?;
        if status.success() {
            return Ok(());
        }
        Err(format!(
            "command {i} `{line}` failed ({status}); its stderr is in {}",
            self.tasks.join(format!("{i}.err")).display()
        ))
    }
}

/// A number no other bag job of this process uses.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
