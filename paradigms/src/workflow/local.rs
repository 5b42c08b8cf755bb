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
use crate::bag::sh_quote as quote;
use crate::mapreduce::streaming::{Keys, Streaming};
use crate::mapreduce::{Input, MapReduce};
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
            tasks: self.tasks_dir(stage)?,
            out: self.out.clone(),
            workflow_dir: self.workflow_dir.clone(),
        };
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

    /// Creates `<out>/<stage>/tasks`, where a bag stage's commands' stdout
    /// and stderr go; returns it.
    pub fn tasks_dir(&self, stage: &str) -> Result<PathBuf, String> {
        let tasks = self.out.join(stage).join("tasks");
        fs::create_dir_all(&tasks)
            .map_err(|e| format!("cannot create {}: {e}", tasks.display()))?;
        Ok(tasks)
    }

    /// The `sh` script that runs command `i` (`line`) of bag stage `stage`
    /// as this runner would, for a worker process on this machine (a
    /// `halley worker`): stdout and stderr to `<out>/<stage>/tasks/<i>.out`
    /// and `.err`, in the output directory, with `HALLEY_OUT`,
    /// `HALLEY_STAGE` and `HALLEY_WORKFLOW_DIR` set; it exits with the
    /// command's status. [`LocalRunner::tasks_dir`] must have been created.
    pub fn bag_script(&self, stage: &str, i: usize, line: &str) -> String {
        let tasks = self.out.join(stage).join("tasks");
        let file = |ext: &str| quote(&tasks.join(format!("{i}.{ext}")).to_string_lossy());
        format!(
            "exec >{} 2>{}\ncd {} || exit 126\nexport HALLEY_OUT={} HALLEY_STAGE={} HALLEY_WORKFLOW_DIR={}\n{line}\n",
            file("out"),
            file("err"),
            quote(&self.out.to_string_lossy()),
            quote(&self.out.to_string_lossy()),
            quote(stage),
            quote(&self.workflow_dir.to_string_lossy()),
        )
    }

    /// The error of command `i` (`line`) of bag stage `stage` that ended
    /// with `status` (`exit status: 4`).
    pub fn bag_failure(&self, stage: &str, i: usize, line: &str, status: &str) -> String {
        failure(
            &self.out.join(stage).join("tasks"),
            &i.to_string(),
            line,
            status,
        )
    }

    /// Runs MapReduce stage `stage` through the space, with `slots`
    /// worker threads of this process.
    pub fn mapreduce(&self, stage: &str, job: &MapReduceStage) -> Result<(), String> {
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
            keys: Keys::default(),
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
        Err(failure(&self.tasks, i, line, &status.to_string()))
    }
}

/// The error of command `i` (`line`) that ended with `status`.
fn failure(tasks: &Path, i: &str, line: &str, status: &str) -> String {
    format!(
        "command {i} `{line}` failed ({status}); its stderr is in {}",
        tasks.join(format!("{i}.err")).display()
    )
}

/// A number no other bag job of this process uses.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use halley_substrate::EmbeddedSpace;

    use super::*;

    #[test]
    fn a_bag_script_runs_its_command_as_the_runner_would() {
        let dir = std::env::temp_dir().join(format!("halley-bag-script-{}", std::process::id()));
        let out = dir.join("it's out");
        fs::create_dir_all(&out).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runner = LocalRunner {
            space: rt.block_on(async { EmbeddedSpace::new() }),
            rt: rt.handle().clone(),
            out: out.clone(),
            workflow_dir: dir.clone(),
            slots: 1,
        };
        let tasks = runner.tasks_dir("st'age").unwrap();
        let line =
            "pwd; echo \"$HALLEY_STAGE $HALLEY_OUT $HALLEY_WORKFLOW_DIR\"; echo oops >&2; exit 3";
        let status = Command::new("sh")
            .arg("-c")
            .arg(runner.bag_script("st'age", 7, line))
            .current_dir("/")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(3));
        let stdout = fs::read_to_string(tasks.join("7.out")).unwrap();
        let (o, d) = (out.display(), dir.display());
        assert_eq!(stdout, format!("{o}\nst'age {o} {d}\n"));
        assert_eq!(fs::read_to_string(tasks.join("7.err")).unwrap(), "oops\n");
        assert_eq!(
            runner.bag_failure("st'age", 7, "exit 3", "exit status: 3"),
            format!(
                "command 7 `exit 3` failed (exit status: 3); its stderr is in {}",
                tasks.join("7.err").display()
            )
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
