//! The loop of `halley workflow`: walks the DAG ([`Walk`]), submits each
//! released stage's tasks ([`Maker`]: a bag's commands, a MapReduce
//! stage's maps, then its reduces) to one [`Master`] of the whole workflow,
//! and ends a stage when its last result is in.
//!
//! The [`WorkerPool`] sees the workflow as one job: its counters are the
//! master's plus, as queued, the commands of the bag stages still to be
//! released and the reduces still to come, so that a deadline is planned
//! for the whole workflow, with the stages ahead on its longest chain
//! ([`Walk::stages_ahead`]: each adds a task's wait to the projected
//! finish). (A MapReduce stage not yet released counts no tasks, its splits
//! unknown until its input exists.) A running stage with a deadline of its
//! own is planned for too ([`WorkerPool::stage_due`], the one due soonest):
//! its tasks get the machines that meet it, if the job's plan has fewer.

use std::path::PathBuf;
use std::time::Duration;

use halley_autonomic::planner::Decision;
use halley_autonomic::policy::Objective;
use halley_paradigms::master::{Master, MasterError, Progress};
use halley_paradigms::workflow::{LocalRunner, Report, Walk, Work, Workflow};
use halley_substrate::Space;
use serde::Serialize;
use tokio::time::Instant;

use super::stage::{Maker, Running, TaskRecord};
use crate::cmd::workers::interrupt::Signal;
use crate::cmd::workers::{self, MachineRecord, Results, StageDue, WorkerPool, with_pending};
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
    /// A MapReduce stage's reducers unless it says.
    pub reducers: usize,
    /// Splits a MapReduce stage asks for, at least.
    pub split_hint: usize,
    /// This program, for `halley mr-task` lines.
    pub exe: PathBuf,
}

/// `<out>/workflow.json`: the stages' report (`stages`, `makespan_s`), and
/// as `halley run`'s summary: `cost`, `deadline_met`, `budget_met` (null
/// without one), the manager's `decisions` and the `machines`; `tasks` has
/// one line per task (a bag's command, a map or a reduce).
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
    /// A signal stopped the workflow: `tasks` holds those that finished.
    pub interrupted: bool,
    #[serde(skip)]
    pub signal: Option<Signal>,
}

/// Runs every stage; the tasks' workers come from `pool`.
pub async fn drive<S: Space>(
    space: S,
    peer: &str,
    mut pool: impl WorkerPool,
    job: Job,
) -> Result<Summary, Failure> {
    let lost = workers::lost;
    let began = Instant::now();
    let id = workers::job_id("wf");
    let runner = LocalRunner {
        space: space.clone(),
        rt: tokio::runtime::Handle::current(),
        out: job.out.clone(),
        workflow_dir: job.workflow_dir.clone(),
        slots: job.reducers,
    };
    let maker = Maker {
        runner: &runner,
        exe: &job.exe,
        split_hint: job.split_hint,
    };
    let wf = &job.wf;
    let commands = |stage: usize| match &wf.stages[stage].work {
        Work::Bag(commands) => commands.len(),
        Work::MapReduce(_) => 0,
    };
    let mut master = Master::new(space, id.clone());
    let mut walk = Walk::new(wf);
    let total = (0..wf.stages.len()).map(commands).sum();
    let queued = with_pending(Progress::default(), total);
    let mut results = Results::start(&mut pool, peer, &id, total, &queued)?;
    // Task id → (stage, index in its phase).
    let mut owners: Vec<(usize, usize)> = Vec::new();
    let mut running: Vec<Option<Running>> = (0..wf.stages.len()).map(|_| None).collect();
    let mut records = Vec::new();
    let mut failed = 0;
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
                match maker.first(spec) {
                    Ok((tasks, _)) if tasks.is_empty() => {
                        walk.ended(stage, Ok(()), at, Duration::ZERO);
                    }
                    Ok((tasks, phase)) => {
                        let left = tasks.len();
                        submit(&mut master, &mut owners, stage, tasks)
                            .await
                            .map_err(lost)?;
                        running[stage] = Some(Running {
                            released: at,
                            began: Instant::now(),
                            phase,
                            left,
                            failures: Vec::new(),
                        });
                    }
                    Err(e) => walk.ended(stage, Err(e), at, Duration::ZERO),
                }
            }
        }
        if walk.is_over() {
            break;
        }
        let later: usize = running.iter().flatten().map(|r| r.phase.later()).sum();
        let pending = walk.pending().map(commands).sum::<usize>() + later;
        // A MapReduce stage's reduces wait for its maps as a stage would.
        pool.stages_ahead(walk.stages_ahead() + u32::from(later > 0));
        pool.stage_due(soonest_due(wf, &running, began.elapsed()));
        let Some(done) = results
            .next(&mut master, &mut pool, pending)
            .await
            .map_err(lost)?
        else {
            if results.interrupted().is_none() {
                // Every task has its result, yet a stage runs: cannot happen.
                tracing::error!("the workflow's tasks are done but its stages are not");
            }
            break;
        };
        let (stage, index) = owners[done.result.id as usize];
        let spec = &wf.stages[stage];
        let run = running[stage].as_mut().expect("a stage with tasks runs");
        let record = TaskRecord::new(spec, &run.phase, index, &done);
        failed += usize::from(record.exit_code != 0);
        records.push(record);
        run.done(&runner, spec, index, &done);
        if run.left == 0 {
            let next = run.next_phase();
            if next.is_empty() {
                let mut run = running[stage].take().expect("just seen");
                walk.ended(stage, run.outcome(), run.released, run.began.elapsed());
            } else {
                run.left = next.len();
                submit(&mut master, &mut owners, stage, next)
                    .await
                    .map_err(lost)?;
            }
        }
        results.show(&master.progress(), records.len(), failed);
    }
    let makespan = began.elapsed();
    let signal = workers::interrupt::signal();
    if signal.is_some() {
        if let Err(e) = master.abort(Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "could not tell the workers to abort");
        }
    } else if let Err(e) = master.stop_workers().await {
        tracing::warn!(error = %e, "could not tell the workers to stop");
    }
    // The pool waits synchronously; the space is served on the other thread.
    let account = tokio::task::block_in_place(|| pool.finish(Duration::from_secs(10)));
    if signal.is_some() {
        let claims_for = if workers::interrupt::hurried() {
            Duration::ZERO
        } else {
            Duration::from_secs(6)
        };
        master.withdraw(claims_for).await.map_err(lost)?;
    }
    results.finish(&account.ending);
    let makespan_s = makespan.as_secs_f64();
    records.sort_by(|a, b| (&a.stage, a.phase, a.index).cmp(&(&b.stage, b.phase, b.index)));
    Ok(Summary {
        report: walk.report(makespan),
        cost: account.cost,
        deadline_met: job.objective.deadline.map(|d| makespan_s <= d),
        budget_met: job.objective.budget.map(|b| account.cost <= b),
        decisions: account.decisions,
        machines: account.machines,
        tasks: records,
        interrupted: signal.is_some(),
        signal,
    })
}

/// Submits `tasks` of stage `stage`, numbered from 0 in the stage's phase.
async fn submit<S: Space>(
    master: &mut Master<S>,
    owners: &mut Vec<(usize, usize)>,
    stage: usize,
    tasks: Vec<String>,
) -> Result<(), MasterError> {
    owners.extend((0..tasks.len()).map(|i| (stage, i)));
    master
        .submit(tasks.into_iter().map(String::into_bytes))
        .await?;
    Ok(())
}

/// The running stage with a deadline due soonest (its deadline counts from
/// its release): the time left and its tasks still to end, a MapReduce
/// stage's reduces to come included.
fn soonest_due(wf: &Workflow, running: &[Option<Running>], elapsed: Duration) -> Option<StageDue> {
    running
        .iter()
        .zip(&wf.stages)
        .filter_map(|(run, stage)| {
            let run = run.as_ref()?;
            Some(StageDue {
                left: (run.released + stage.deadline?).saturating_sub(elapsed),
                tasks: run.left + run.phase.later(),
            })
        })
        .min_by_key(|due| due.left)
}
