//! One released stage of `halley workflow` while its tasks run: what its
//! tasks are (bag commands as [`LocalRunner::bag_script`]s, or a MapReduce
//! stage's map then reduce tasks as `halley mr-task` lines), how many
//! results are still to come, and why it failed. [`super::stages`] submits
//! the tasks and hands the results in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use halley_paradigms::bag::CommandOutput;
use halley_paradigms::mapreduce::Input;
use halley_paradigms::master::Finished;
use halley_paradigms::workflow::{LocalRunner, MapReduceStage, Stage, Work};
use halley_substrate::Space;
use serde::Serialize;
use tokio::time::Instant;

use crate::cmd::mapreduce::task::KeyArgs;
use crate::cmd::mapreduce::{self, drive::failure, task::Lines};

/// What a stage's tasks are now.
#[derive(Debug)]
pub enum Phase {
    Bag,
    /// A MapReduce stage's maps; the reduces follow.
    Map {
        reduces: Vec<String>,
        shuffle: PathBuf,
    },
    Reduce {
        shuffle: PathBuf,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Bag => "bag",
            Phase::Map { .. } => "map",
            Phase::Reduce { .. } => "reduce",
        }
    }

    /// Reduce tasks still to be submitted.
    pub fn later(&self) -> usize {
        match self {
            Phase::Map { reduces, .. } => reduces.len(),
            _ => 0,
        }
    }
}

/// A released stage whose results are coming in.
#[derive(Debug)]
pub struct Running {
    pub released: Duration,
    pub began: Instant,
    pub phase: Phase,
    /// Results still to come in this phase.
    pub left: usize,
    /// `(index, message)` of the tasks that failed.
    pub failures: Vec<(usize, String)>,
}

/// How a stage's tasks are made.
#[derive(Debug)]
pub struct Maker<'a, S> {
    pub runner: &'a LocalRunner<S>,
    /// This program, for `mr-task` lines.
    pub exe: &'a Path,
    /// Splits a MapReduce stage asks for, at least.
    pub split_hint: usize,
}

impl<S: Space> Maker<'_, S> {
    /// The first tasks of `stage` and its phase (an error fails the
    /// stage before any task).
    pub fn first(&self, stage: &Stage) -> Result<(Vec<String>, Phase), String> {
        match &stage.work {
            Work::Bag(lines) => {
                self.runner.tasks_dir(&stage.name)?;
                let scripts = lines.iter().enumerate();
                let scripts = scripts.map(|(i, l)| self.runner.bag_script(&stage.name, i, l));
                Ok((scripts.collect(), Phase::Bag))
            }
            Work::MapReduce(job) => self.mapreduce(&stage.name, job),
        }
    }

    fn mapreduce(&self, stage: &str, job: &MapReduceStage) -> Result<(Vec<String>, Phase), String> {
        let work = &self.runner.out;
        let inputs: Vec<PathBuf> = job.input.iter().map(|p| work.join(p)).collect();
        let input = Input::read(&inputs).map_err(|e| e.to_string())?;
        let out = work.join(job.out.as_deref().unwrap_or(Path::new(stage)));
        let shuffle = out.join(format!("_shuffle-{}", std::process::id()));
        std::fs::create_dir_all(&shuffle)
            .map_err(|e| format!("cannot create {}: {e}", shuffle.display()))?;
        let lines = Lines {
            exe: self.exe,
            map: &job.map,
            reduce: &job.reduce,
            reducers: job.reducers.unwrap_or(self.runner.slots).max(1),
            shuffle: &shuffle,
            out: &out,
            dir: Some(work),
            keys: KeyArgs::default(),
            store: None,
        };
        let splits = mapreduce::splits(self.split_hint, &input);
        let (maps, reduces) = lines.of(&input, splits).map_err(|e| format!("{e:#}"))?;
        if maps.is_empty() {
            // No input: the reducers write empty parts.
            return Ok((reduces, Phase::Reduce { shuffle }));
        }
        Ok((maps, Phase::Map { reduces, shuffle }))
    }
}

impl Running {
    /// Task `index` of this stage (`stage`, run by `runner`) is done;
    /// its failure, if any, is kept.
    pub fn done<S: Space>(
        &mut self,
        runner: &LocalRunner<S>,
        stage: &Stage,
        index: usize,
        done: &Finished,
    ) {
        self.left -= 1;
        let why = match (&self.phase, &stage.work) {
            (Phase::Bag, Work::Bag(lines)) => {
                let code = CommandOutput::decode(&done.result.payload).map_or(-1, |o| o.exit_code);
                (code != 0).then(|| {
                    let status = format!("exit status: {code}");
                    runner.bag_failure(&stage.name, index, &lines[index], &status)
                })
            }
            (phase, _) => {
                failure(done).map(|why| format!("{} task {index} failed: {why}", phase.name()))
            }
        };
        if let Some(why) = why {
            self.failures.push((index, why));
        }
    }

    /// With every result of the phase in: the next phase's tasks, or none
    /// when the stage is over (then its shuffle files are removed).
    pub fn next_phase(&mut self) -> Vec<String> {
        let phase = std::mem::replace(&mut self.phase, Phase::Bag);
        match phase {
            Phase::Map { reduces, shuffle } if self.failures.is_empty() => {
                self.left = reduces.len();
                self.phase = Phase::Reduce { shuffle };
                reduces
            }
            Phase::Map { shuffle, .. } | Phase::Reduce { shuffle } => {
                if let Err(e) = std::fs::remove_dir_all(&shuffle) {
                    tracing::warn!(error = %e, dir = %shuffle.display(), "could not remove the shuffle files");
                }
                Vec::new()
            }
            Phase::Bag => Vec::new(),
        }
    }

    /// The stage's outcome: its first failed task and a count of the rest.
    pub fn outcome(&mut self) -> Result<(), String> {
        self.failures.sort();
        match self.failures.as_slice() {
            [] => Ok(()),
            [(_, only)] => Err(only.clone()),
            [(_, first), rest @ ..] => Err(format!("{first} (and {} more)", rest.len())),
        }
    }
}

/// One task's line of `workflow.json`.
#[derive(Debug, Serialize)]
pub struct TaskRecord {
    pub stage: String,
    /// `bag`, `map` or `reduce`.
    pub phase: &'static str,
    /// The command's index in the stage's `commands`, the split or the
    /// partition.
    pub index: usize,
    /// A bag's command line; a MapReduce stage's map or reduce command.
    pub command: String,
    pub exit_code: i32,
    pub attempts: u64,
    pub worker: String,
    pub resource: String,
}

impl TaskRecord {
    pub fn new(stage: &Stage, phase: &Phase, index: usize, done: &Finished) -> Self {
        let result = &done.result;
        let command = match (&stage.work, phase) {
            (Work::Bag(lines), _) => lines[index].clone(),
            (Work::MapReduce(job), Phase::Map { .. }) => job.map.clone(),
            (Work::MapReduce(job), _) => job.reduce.clone(),
        };
        TaskRecord {
            stage: stage.name.clone(),
            phase: phase.name(),
            index,
            command,
            exit_code: CommandOutput::decode(&result.payload).map_or(-1, |o| o.exit_code),
            attempts: done.attempts,
            worker: result.worker.clone(),
            resource: result.resource.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(failures: Vec<(usize, String)>) -> Running {
        Running {
            released: Duration::ZERO,
            began: Instant::now(),
            phase: Phase::Bag,
            left: 0,
            failures,
        }
    }

    #[test]
    fn a_stage_fails_with_its_first_task_and_a_count_of_the_rest() {
        assert_eq!(running(Vec::new()).outcome(), Ok(()));
        assert_eq!(running(vec![(3, "c3".into())]).outcome(), Err("c3".into()));
        let three = vec![(5, "c5".into()), (2, "c2".into()), (9, "c9".into())];
        assert_eq!(running(three).outcome(), Err("c2 (and 2 more)".into()));
    }

    #[test]
    fn the_reduces_follow_the_maps_unless_one_failed() {
        let dir = std::env::temp_dir().join(format!("halley-phase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let map = |failures| Running {
            phase: Phase::Map {
                reduces: vec!["r0".into(), "r1".into()],
                shuffle: dir.clone(),
            },
            ..running(failures)
        };
        let mut ok = map(Vec::new());
        assert_eq!(ok.phase.later(), 2);
        assert_eq!(ok.next_phase(), ["r0", "r1"]);
        assert_eq!(
            (ok.phase.name(), ok.left, ok.phase.later()),
            ("reduce", 2, 0)
        );
        assert!(dir.exists(), "the reduces read the shuffle files");
        assert!(ok.next_phase().is_empty());
        assert!(!dir.exists(), "removed at the end");
        std::fs::create_dir_all(&dir).unwrap();
        let mut failed = map(vec![(1, "map task 1 failed: no".into())]);
        assert!(failed.next_phase().is_empty());
        assert!(!dir.exists());
    }
}
