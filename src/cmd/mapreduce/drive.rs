//! The loop of `halley mapreduce`: the map tasks, then the reduce tasks,
//! as tasks of one master-worker job run by the managed workers
//! ([`crate::cmd::workers`]). While the maps run, the reduce tasks to come
//! count as queued work for the manager. A failed task runs again up to
//! `--retries` times (the worker retries it: [`TaskSpec`]); on the first
//! task that still failed the tasks not yet taken are withdrawn, the job
//! stops and no `part-*` is kept. On SIGINT/SIGTERM the running tasks are
//! aborted and every tuple of the job withdrawn, as `halley run` does.
//! Success leaves `_SUCCESS` and the parts' SHA-256 in the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use halley_autonomic::planner::Decision;
use halley_autonomic::policy::Objective;
use halley_paradigms::bag::{CommandOutput, TaskSpec};
use halley_paradigms::chunks;
use halley_paradigms::master::{Finished, Master, Progress};
use halley_substrate::Space;
use serde::Serialize;
use tokio::time::Instant;

use crate::cmd::verify;
use crate::cmd::workers::interrupt::Signal;
use crate::cmd::workers::{self, MachineRecord, Results, WorkerPool, with_pending};
use crate::exit::Failure;

/// A job ready to run: its tasks' command lines.
#[derive(Debug)]
pub struct Job {
    pub maps: Vec<String>,
    pub reduces: Vec<String>,
    pub objective: Objective,
    /// The map tasks' output directory, removed at the end of the job
    /// (none when the data goes through an object store).
    pub shuffle: Option<PathBuf>,
    /// Where the `part-*` files go.
    pub out: PathBuf,
    /// Runs again of a failed task.
    pub retries: u32,
}

/// `<out>/_summary.json` (`_`: a later job reading `<out>` skips it).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub makespan_s: f64,
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
    pub decisions: Vec<Decision>,
    pub machines: Vec<MachineRecord>,
    pub tasks: Vec<TaskRecord>,
    /// The first failed task's error; null when every task succeeded.
    pub error: Option<String>,
    /// A signal stopped the job.
    pub interrupted: bool,
    /// Each `part-*`'s SHA-256 (`halley verify <out>`); empty unless the
    /// job succeeded.
    pub files: BTreeMap<String, String>,
    #[serde(skip)]
    pub signal: Option<Signal>,
}

/// One task's line of the summary.
#[derive(Debug, Serialize)]
pub struct TaskRecord {
    /// `map` or `reduce`.
    pub phase: &'static str,
    /// The split or the partition.
    pub index: usize,
    pub attempts: u64,
    pub worker: String,
    pub resource: String,
}

/// Runs the maps, then the reduces.
pub async fn drive<S: Space>(
    space: S,
    peer: &str,
    mut pool: impl WorkerPool,
    job: Job,
) -> Result<Summary, Failure> {
    let lost = workers::lost;
    let began = Instant::now();
    let id = workers::job_id("mr");
    let mut master = Master::new(space.clone(), id.clone());
    let (maps, reduces) = (job.maps.len(), job.reduces.len());
    let queued = with_pending(Progress::default(), maps + reduces);
    let mut results = Results::start(&mut pool, peer, &id, maps + reduces, &queued)?;
    let mut records = Vec::with_capacity(maps + reduces);
    let mut error = None;
    for (phase, lines, pending) in [("map", &job.maps, reduces), ("reduce", &job.reduces, 0)] {
        let first = master.progress().submitted;
        // The reduces wait for the last map.
        pool.stages_ahead(u32::from(pending > 0));
        let payloads = lines.iter().map(|l| {
            TaskSpec {
                retries: job.retries,
                ..TaskSpec::new(l.clone())
            }
            .encode()
        });
        master
            .submit(payloads.collect::<Vec<_>>())
            .await
            .map_err(lost)?;
        while let Some(done) = results
            .next(&mut master, &mut pool, pending)
            .await
            .map_err(lost)?
        {
            let index = done.result.id as usize - first;
            if let Some(why) = failure(&done) {
                error.get_or_insert(format!("{phase} task {index} failed: {why}"));
            }
            records.push(record(phase, index, &done));
            let failed = usize::from(error.is_some());
            results.show(&master.progress(), records.len(), failed);
            if error.is_some() {
                break;
            }
        }
        if results.interrupted().is_some() {
            break;
        }
        if error.is_some() {
            // Withdraw what no worker took yet; running tasks finish first.
            let template = chunks::template(Some(&id));
            let _ = space
                .take_up_to(template, maps + reduces, Some(Duration::ZERO))
                .await;
            break;
        }
    }
    let makespan_s = began.elapsed().as_secs_f64();
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
    let files = if job.shuffle.is_none() {
        // An object store's parts reach `out` after the job: the caller
        // fetches them, then checks them in ([`finish_parts`]).
        BTreeMap::new()
    } else {
        finish_parts(&job.out, error.is_none() && signal.is_none())?
    };
    if let Some(shuffle) = &job.shuffle
        && let Err(e) = std::fs::remove_dir_all(shuffle)
    {
        tracing::warn!(error = %e, dir = %shuffle.display(), "could not remove the shuffle files");
    }
    Ok(Summary {
        makespan_s,
        cost: account.cost,
        deadline_met: job.objective.deadline.map(|d| makespan_s <= d),
        budget_met: job.objective.budget.map(|b| account.cost <= b),
        decisions: account.decisions,
        machines: account.machines,
        tasks: records,
        error: error.or_else(|| signal.map(|s| format!("interrupted by {}", s.name()))),
        interrupted: signal.is_some(),
        files,
        signal,
    })
}

/// The end of a job's output in `out`: each `part-*`'s SHA-256 and
/// `_SUCCESS` when it `succeeded`; else no part at all (no partial output
/// beside good parts).
pub fn finish_parts(out: &Path, succeeded: bool) -> Result<BTreeMap<String, String>, Failure> {
    if succeeded {
        let files = parts(out).map_err(Failure::bad_input)?;
        std::fs::write(out.join("_SUCCESS"), "")
            .map_err(|e| Failure::bad_input(anyhow::anyhow!("cannot write _SUCCESS: {e}")))?;
        Ok(files)
    } else {
        clear_parts(out).map_err(Failure::bad_input)?;
        Ok(BTreeMap::new())
    }
}

/// Removes the `part-*` files and `_SUCCESS` of `out` (an earlier job's,
/// or this failed job's).
pub fn clear_parts(out: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("part-") || name == "_SUCCESS" {
            std::fs::remove_file(entry.path())
                .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The SHA-256 of each `part-*` of `out`.
fn parts(out: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let sum = verify::sha256_file(&entry.path())
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", entry.path().display()))?;
            files.insert(name, sum);
        }
    }
    Ok(files)
}

/// Why a task failed (its stderr, as `halley mr-task` printed it), if it did.
pub(crate) fn failure(done: &Finished) -> Option<String> {
    let Some(output) = CommandOutput::decode(&done.result.payload) else {
        return Some("the worker sent a malformed result".into());
    };
    if output.exit_code == 0 {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr.trim_end();
    let why = why.strip_prefix("halley: ").unwrap_or(why);
    Some(if why.is_empty() {
        format!("exit status {}", output.exit_code)
    } else {
        why.to_owned()
    })
}

fn record(phase: &'static str, index: usize, done: &Finished) -> TaskRecord {
    let retried = CommandOutput::decode(&done.result.payload).map_or(1, |o| o.attempts);
    TaskRecord {
        phase,
        index,
        attempts: done.attempts - 1 + u64::from(retried),
        worker: done.result.worker.clone(),
        resource: done.result.resource.clone(),
    }
}
