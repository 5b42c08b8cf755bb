//! Task control through the space: the master puts map and reduce task
//! tuples, workers take them, run them and signal completion with tuples.
//!
//! ```text
//! task:  ("mr-task", job, "map" | "reduce" | "stop", id)
//! done:  ("mr-done", job, "map" | "reduce", id, error)   error "" = success
//! ```
//! The master puts the M map tasks, waits for M map completions, puts the R
//! reduce tasks (a reduce task needs every map task's output for its
//! partition), waits for R reduce completions, then puts one stop tuple per
//! worker. What a task does, and where its bulk data lives, is the business
//! of the [`Tasks`] implementation; only the control goes through the space.
//! On the first failed task the master withdraws the tasks not yet taken,
//! stops the workers and reports the failure.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use halley_substrate::{Field, Kind, Space, SpaceError, Template, Tuple, Value};
use tokio::runtime::Handle;

/// What map and reduce tasks do: run by the workers, named by number.
pub trait Tasks: Sync {
    /// Runs map task `split`; an error is reported as the job's failure.
    fn map(&self, split: usize) -> Result<(), String>;
    /// Runs reduce task `partition`, once every map task has finished.
    fn reduce(&self, partition: usize) -> Result<(), String>;
}

/// The two kinds of task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Map,
    Reduce,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Map => "map",
            Phase::Reduce => "reduce",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a MapReduce job failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{phase} task {task} failed: {message}")]
    Task {
        phase: Phase,
        task: usize,
        message: String,
    },
    #[error(transparent)]
    Space(#[from] SpaceError),
    #[error("malformed control tuple {0:?}")]
    Malformed(Tuple),
}

/// The shape of one job: how many tasks of each kind and how many workers.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub splits: usize,
    pub partitions: usize,
    pub workers: usize,
}

const TASK: &str = "mr-task";
const DONE: &str = "mr-done";
const STOP: &str = "stop";

/// Runs a job: `plan.workers` worker threads take the tasks from `space`
/// while the calling thread acts as master. `rt` drives the space's futures;
/// call this from outside that runtime's worker threads.
pub fn execute<S: Space, T: Tasks>(
    space: &S,
    rt: &Handle,
    plan: Plan,
    tasks: &T,
) -> Result<(), Error> {
    let job = job_id();
    let workers = plan.workers.max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| work(space, rt, &job, tasks)))
            .collect();
        let result = rt.block_on(master(space, &job, plan));
        if result.is_err() {
            // Withdraw what no worker took yet; running tasks finish first.
            let _ = rt.block_on(space.take_up_to(
                task_template(&job),
                plan.splits + plan.partitions,
                Some(ZERO),
            ));
        }
        let stops = (0..workers).map(|_| task_tuple(&job, STOP, 0)).collect();
        let stopped = rt.block_on(space.out_all(stops, None));
        let mut worker_error = None;
        for handle in handles {
            if let Err(e) = handle.join().expect("a worker's panics are caught") {
                worker_error.get_or_insert(e);
            }
        }
        if result.is_err() {
            // Completions nobody will collect: leave the space clean.
            let _ = rt.block_on(space.take_up_to(
                any_done_template(&job),
                plan.splits + plan.partitions,
                Some(ZERO),
            ));
        }
        result?;
        stopped?;
        worker_error.map_or(Ok(()), Err)
    })
}

const ZERO: std::time::Duration = std::time::Duration::ZERO;

async fn master<S: Space>(space: &S, job: &str, plan: Plan) -> Result<(), Error> {
    for (phase, count) in [(Phase::Map, plan.splits), (Phase::Reduce, plan.partitions)] {
        let tasks = (0..count)
            .map(|i| task_tuple(job, phase.name(), i))
            .collect();
        space.out_all(tasks, None).await?;
        let mut left = count;
        while left > 0 {
            let done = space
                .take_up_to(done_template(job, phase), left, None)
                .await?;
            for tuple in done {
                let (task, message) = parse_done(&tuple)?;
                if !message.is_empty() {
                    return Err(Error::Task {
                        phase,
                        task,
                        message,
                    });
                }
                left -= 1;
            }
        }
    }
    Ok(())
}

/// A worker: takes tasks until it takes a stop tuple.
fn work<S: Space, T: Tasks>(space: &S, rt: &Handle, job: &str, tasks: &T) -> Result<(), Error> {
    loop {
        let Some(tuple) = rt.block_on(space.take(task_template(job), None))? else {
            continue;
        };
        let (kind, id) = parse_task(&tuple)?;
        let (phase, outcome) = match kind {
            "map" => (Phase::Map, guarded(|| tasks.map(id))),
            "reduce" => (Phase::Reduce, guarded(|| tasks.reduce(id))),
            _ => return Ok(()),
        };
        let error = outcome.err().unwrap_or_default();
        let done = Tuple::new(vec![
            DONE.into(),
            job.into(),
            phase.name().into(),
            Value::Int(id as i64),
            error.into(),
        ]);
        rt.block_on(space.out(done))?;
    }
}

/// Runs a task, turning a panic into an error message.
fn guarded(task: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(task)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        Err(format!("panicked: {what}"))
    })
}

/// A name no other job in this space uses: process id, time, counter.
fn job_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn task_tuple(job: &str, kind: &str, id: usize) -> Tuple {
    Tuple::new(vec![
        TASK.into(),
        job.into(),
        kind.into(),
        Value::Int(id as i64),
    ])
}

fn task_template(job: &str) -> Template {
    Template::new(vec![
        Field::Actual(TASK.into()),
        Field::Actual(job.into()),
        Field::Typed(Kind::Str),
        Field::Typed(Kind::Int),
    ])
}

fn done_template(job: &str, phase: Phase) -> Template {
    Template::new(vec![
        Field::Actual(DONE.into()),
        Field::Actual(job.into()),
        Field::Actual(phase.name().into()),
        Field::Typed(Kind::Int),
        Field::Typed(Kind::Str),
    ])
}

fn any_done_template(job: &str) -> Template {
    Template::new(vec![
        Field::Actual(DONE.into()),
        Field::Actual(job.into()),
        Field::Typed(Kind::Str),
        Field::Typed(Kind::Int),
        Field::Typed(Kind::Str),
    ])
}

fn parse_task(tuple: &Tuple) -> Result<(&str, usize), Error> {
    match tuple.fields() {
        [_, _, Value::Str(kind), Value::Int(id)] if *id >= 0 => Ok((kind, *id as usize)),
        _ => Err(Error::Malformed(tuple.clone())),
    }
}

fn parse_done(tuple: &Tuple) -> Result<(usize, String), Error> {
    match tuple.fields() {
        [_, _, _, Value::Int(id), Value::Str(error)] if *id >= 0 => {
            Ok((*id as usize, error.clone()))
        }
        _ => Err(Error::Malformed(tuple.clone())),
    }
}
