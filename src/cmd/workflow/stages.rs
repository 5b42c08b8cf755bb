//! The loop of `halley workflow`: walks the DAG ([`Walk`]), submits each
//! released bag stage's commands (as [`LocalRunner::bag_script`]s) to one
//! [`Master`] of the whole workflow, runs each released MapReduce stage on
//! a blocking thread, and ends a stage when its last result (or its
//! MapReduce job) is in.
//!
//! The [`WorkerPool`] sees the workflow as one job: its counters are the
//! master's plus, as queued, the commands of the stages still to be
//! released, so that a deadline is planned for the whole workflow. (The
//! planner does not know the stages' order: it plans as if every command
//! could run now, which is optimistic when a long chain of stages follows.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use halley_autonomic::planner::Decision;
use halley_autonomic::policy::Objective;
use halley_paradigms::bag::CommandOutput;
use halley_paradigms::master::{Finished, Master, MasterError, Next};
use halley_paradigms::workflow::{LocalRunner, Report, Walk, Work, Workflow};
use halley_substrate::Space;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cmd::workers::{self, Display, MachineRecord, WorkerPool, with_pending};
use crate::exit::Failure;

/// A checked workflow and where it runs.
#[derive(Debug)]
pub struct Job {
    pub wf: Workflow,
    pub objective: Objective,
    /// The output directory (absolute; it exists).
    pub out: PathBuf,
    /// The workflow file's directory (absolute).
    pub workflow_dir: PathBuf,
    /// Worker threads of a MapReduce stage.
    pub mapreduce_slots: usize,
}

/// `<out>/workflow.json`: the stages' report (`stages`, `makespan_s`), and
/// as `halley run`'s summary: `cost`, `deadline_met`, `budget_met` (null
/// without one), the manager's `decisions` and the `machines`; `tasks` has
/// one line per bag command.
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub report: Report,
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
    pub decisions: Vec<Decision>,
    pub machines: Vec<MachineRecord>,
    pub tasks: Vec<TaskRecord>,
}

/// One bag command's line of the summary.
#[derive(Debug, Serialize)]
pub struct TaskRecord {
    pub stage: String,
    /// Its index in the stage's `commands`.
    pub index: usize,
    pub command: String,
    pub exit_code: i32,
    pub attempts: u64,
    pub worker: String,
    pub resource: String,
}

/// A released bag stage whose results are coming in.
#[derive(Debug)]
struct Running {
    released: Duration,
    began: Instant,
    left: usize,
    /// `(index, message)` of the commands that failed.
    failures: Vec<(usize, String)>,
}

/// What a MapReduce stage's thread sends back: stage, released, elapsed,
/// outcome.
type Ended = (usize, Duration, Duration, Result<(), String>);

/// Runs every stage; the tasks' workers come from `pool`.
pub async fn drive<S: Space>(
    space: S,
    peer: &str,
    mut pool: impl WorkerPool,
    job: Job,
) -> Result<Summary, Failure> {
    let lost = |e: MasterError| Failure::unreachable(anyhow!(e).context("lost the space"));
    let began = Instant::now();
    let id = format!(
        "wf-{}-{}",
        std::process::id(),
        halley_paradigms::task::now_us()
    );
    let runner = Arc::new(LocalRunner {
        space: space.clone(),
        rt: tokio::runtime::Handle::current(),
        out: job.out.clone(),
        workflow_dir: job.workflow_dir.clone(),
        slots: job.mapreduce_slots,
    });
    let wf = &job.wf;
    let commands = |stage: usize| match &wf.stages[stage].work {
        Work::Bag(commands) => commands.len(),
        Work::MapReduce(_) => 0,
    };
    let total: usize = (0..wf.stages.len()).map(commands).sum();
    let mut master = Master::new(space, id.clone());
    let mut walk = Walk::new(wf);
    let mut display = Display::new(total);
    for decision in pool.start(peer, &id).map_err(Failure::unreachable)? {
        display.log(&decision.to_string());
    }
    // Task id → (stage, index in its commands).
    let mut owners: Vec<(usize, usize)> = Vec::with_capacity(total);
    let mut running: Vec<Option<Running>> = (0..wf.stages.len()).map(|_| None).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Ended>();
    let mut records = Vec::with_capacity(total);
    let mut failed = 0;
    let mut status = String::new();
    let mut next_tick = Instant::now();
    loop {
        loop {
            let released = walk.released();
            if released.is_empty() {
                break;
            }
            for stage in released {
                let at = began.elapsed();
                let spec = &wf.stages[stage];
                tracing::info!(stage = %spec.name, "released");
                match &spec.work {
                    Work::Bag(lines) if lines.is_empty() => {
                        walk.ended(stage, Ok(()), at, Duration::ZERO);
                    }
                    Work::Bag(lines) => {
                        if let Err(e) = runner.tasks_dir(&spec.name) {
                            walk.ended(stage, Err(e), at, Duration::ZERO);
                            continue;
                        }
                        let scripts = lines.iter().enumerate().map(|(i, line)| {
                            owners.push((stage, i));
                            runner.bag_script(&spec.name, i, line).into_bytes()
                        });
                        master
                            .submit(scripts.collect::<Vec<_>>())
                            .await
                            .map_err(lost)?;
                        running[stage] = Some(Running {
                            released: at,
                            began: Instant::now(),
                            left: lines.len(),
                            failures: Vec::new(),
                        });
                    }
                    Work::MapReduce(mr) => {
                        let (runner, mr, tx) = (runner.clone(), mr.clone(), tx.clone());
                        let name = spec.name.clone();
                        tokio::task::spawn_blocking(move || {
                            let start = std::time::Instant::now();
                            let result = runner.mapreduce(&name, &mr);
                            let _ = tx.send((stage, at, start.elapsed(), result));
                        });
                    }
                }
            }
        }
        if walk.is_over() {
            break;
        }
        let pending: usize = walk.pending().map(commands).sum();
        let progress = with_pending(master.progress(), pending);
        match master.next_before(next_tick).await.map_err(lost)? {
            Next::Finished(done) => {
                pool.task_finished(&done.result);
                let (stage, index) = owners[done.result.id as usize];
                let record = record(wf, stage, index, &done);
                let run = running[stage].as_mut().expect("a bag stage runs");
                if record.exit_code != 0 {
                    failed += 1;
                    let status = format!("exit status: {}", record.exit_code);
                    let line = &record.command;
                    let message = runner.bag_failure(&wf.stages[stage].name, index, line, &status);
                    run.failures.push((index, message));
                }
                records.push(record);
                run.left -= 1;
                if run.left == 0 {
                    let run = running[stage].take().expect("just seen");
                    walk.ended(
                        stage,
                        outcome(run.failures),
                        run.released,
                        run.began.elapsed(),
                    );
                }
            }
            Next::Idle | Next::Complete => {
                if master.progress().done == master.progress().submitted {
                    // Only MapReduce stages run: wait for one, or the tick.
                    if let Ok(Some(ended)) = tokio::time::timeout_at(next_tick, rx.recv()).await {
                        let (stage, released, elapsed, result) = ended;
                        walk.ended(stage, result, released, elapsed);
                    }
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + Duration::from_secs(1);
                    status = workers::tick(&master, &mut pool, &display, &progress)
                        .await
                        .map_err(lost)?;
                }
            }
        }
        while let Ok((stage, released, elapsed, result)) = rx.try_recv() {
            walk.ended(stage, result, released, elapsed);
        }
        display.update(&progress, records.len(), failed, &status);
    }
    let makespan = began.elapsed();
    if let Err(e) = master.stop_workers().await {
        tracing::warn!(error = %e, "could not tell the workers to stop");
    }
    // The pool waits synchronously; the space is served on the other thread.
    let account = tokio::task::block_in_place(|| pool.finish(Duration::from_secs(10)));
    for decision in &account.ending {
        display.log(&decision.to_string());
    }
    display.finish();
    let makespan_s = makespan.as_secs_f64();
    records.sort_by(|a, b| (&a.stage, a.index).cmp(&(&b.stage, b.index)));
    Ok(Summary {
        report: walk.report(makespan),
        cost: account.cost,
        deadline_met: job.objective.deadline.map(|d| makespan_s <= d),
        budget_met: job.objective.budget.map(|b| account.cost <= b),
        decisions: account.decisions,
        machines: account.machines,
        tasks: records,
    })
}

/// A bag stage's outcome from its commands' failures (in any order).
fn outcome(mut failures: Vec<(usize, String)>) -> Result<(), String> {
    failures.sort();
    match failures.as_slice() {
        [] => Ok(()),
        [(_, only)] => Err(only.clone()),
        [(_, first), rest @ ..] => Err(format!("{first} (and {} more)", rest.len())),
    }
}

fn record(wf: &Workflow, stage: usize, index: usize, done: &Finished) -> TaskRecord {
    let result = &done.result;
    let exit_code = CommandOutput::decode(&result.payload).map_or(-1, |o| o.exit_code);
    let command = match &wf.stages[stage].work {
        Work::Bag(lines) => lines[index].clone(),
        Work::MapReduce(_) => String::new(),
    };
    TaskRecord {
        stage: wf.stages[stage].name.clone(),
        index,
        command,
        exit_code,
        attempts: done.attempts,
        worker: result.worker.clone(),
        resource: result.resource.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_fails_with_its_first_command_and_a_count_of_the_rest() {
        assert_eq!(outcome(Vec::new()), Ok(()));
        assert_eq!(outcome(vec![(3, "c3".into())]), Err("c3".into()));
        assert_eq!(
            outcome(vec![(5, "c5".into()), (2, "c2".into()), (9, "c9".into())]),
            Err("c2 (and 2 more)".into())
        );
    }
}
