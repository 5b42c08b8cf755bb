//! `halley run <tasks-file>`: a bag of shell commands, one a line.
//!
//! Without `--peer` it starts an embedded space and serves it on `--listen`
//! (default: a free port of 127.0.0.1; private under a fresh key when the
//! policy has a `command` class; through a gateway that takes only the
//! job's capability when it has paid classes); with `--peer` it submits to
//! that space ([`SpaceArgs`]). The workers come
//! from the autonomic manager under `--policy` (default: the built-in
//! policy, this machine's cores) through a [`WorkerPool`]: the
//! `static` classes' workers start with the job (with `--peer` they exist
//! already, unless `--workers` says how many to start), paid classes scale
//! out and in as the policy says. Outputs go to `--out` (default
//! `halley-out/` in the current directory): `tasks/<id>.out`,
//! `tasks/<id>.err`, `summary.json` (with the cost, whether the deadline and
//! the budget were met, and the manager's decisions). Exit 1 when the
//! deadline was missed.

mod summary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use halley_paradigms::bag::parse_tasks;
use halley_paradigms::master::Master;
use halley_substrate::Space;
use tokio::time::Instant;

use super::workers::{self, ManagedPool, Reach, Results, SpaceArgs, SpaceJob, WorkerPool};
use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};
use halley_autonomic::policy::{Objective, Policy, ProviderKind};
use summary::{Outputs, Summary};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks: one shell command a line; empty and `#` lines are skipped.
    pub tasks: PathBuf,
    /// The autonomic policy (TOML).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Where outputs and summary.json go.
    #[arg(long, default_value = "halley-out")]
    pub out: PathBuf,
    /// Print summary.json on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Workers of the policy's first `static` class to start with the job
    /// (default: its `count` without `--peer`; none with it, the static
    /// workers existing already).
    #[arg(long)]
    pub workers: Option<u32>,
}

/// What one run needs besides its space.
struct Job<'a> {
    commands: Vec<String>,
    objective: Objective,
    out: &'a Path,
    json: bool,
}

pub fn run(args: Args) -> Outcome {
    let file = args.tasks.display();
    let text = std::fs::read_to_string(&args.tasks)
        .map_err(|e| Failure::bad_input(anyhow!("{file}: cannot read the tasks file: {e}")))?;
    let commands = parse_tasks(&text);
    if commands.is_empty() {
        return Err(Failure::bad_input(anyhow!(
            "{file}: no tasks (expected one shell command a line; empty and # lines are skipped)"
        )));
    }
    let mut policy = match &args.policy {
        Some(path) => Policy::load(path).map_err(Failure::bad_input)?,
        None => Policy::builtin(),
    };
    if let Some(n) = args.workers
        && let Some(class) = policy
            .resources
            .iter_mut()
            .find(|r| r.provider == ProviderKind::Static)
    {
        class.count = Some(n);
    }
    let start_static = args.space.peer.is_none() || args.workers.is_some();
    let needs = workers::Needs::of(&policy);
    let job = Job {
        commands,
        objective: policy.objective.clone(),
        out: &args.out,
        json: args.json,
    };
    let pool = ManagedPool::new(policy, start_static);
    workers::with_space("run", &args.space, needs, Run { job, pool })
}

/// A run waiting for its space.
struct Run<'a> {
    job: Job<'a>,
    pool: ManagedPool,
}

impl SpaceJob for Run<'_> {
    async fn with<S: Space>(self, space: S, reach: Reach) -> Outcome {
        drive(space, &reach.peer, self.pool.reaching(&reach), self.job).await
    }
}

/// Submits the bag, starts the workers, collects one result per task.
async fn drive<S: Space>(space: S, peer: &str, mut pool: impl WorkerPool, job: Job<'_>) -> Outcome {
    let outputs = Outputs::create(job.out).map_err(Failure::bad_input)?;
    let id = workers::job_id("run");
    let began = Instant::now();
    let mut master = Master::new(space, id.clone());
    let total = job.commands.len();
    master
        .submit(job.commands.iter().map(|c| c.as_bytes().to_vec()))
        .await
        .map_err(|e| Failure::unreachable(anyhow!(e).context("cannot submit the tasks")))?;
    let mut results = Results::start(&mut pool, peer, &id, total, &master.progress())?;
    let mut records = Vec::with_capacity(total);
    let mut failed = 0;
    let lost = workers::lost;
    while let Some(done) = results
        .next(&mut master, &mut pool, 0)
        .await
        .map_err(lost)?
    {
        let command = &job.commands[done.result.id as usize];
        let record = outputs.record(&done, command).map_err(Failure::bad_input)?;
        failed += usize::from(record.exit_code != 0);
        records.push(record);
        results.show(&master.progress(), records.len(), failed);
    }
    let makespan_s = began.elapsed().as_secs_f64();
    if let Err(e) = master.stop_workers().await {
        tracing::warn!(error = %e, "could not tell the workers to stop");
    }
    // The pool waits synchronously; the node keeps serving on the other thread.
    let account = tokio::task::block_in_place(|| pool.finish(Duration::from_secs(10)));
    results.finish(&account.ending);
    records.sort_by_key(|r| r.id);
    let objective = &job.objective;
    let deadline_met = objective.deadline.map(|d| makespan_s <= d);
    let summary = Summary {
        tasks: records,
        makespan_s,
        cost: account.cost,
        deadline_met,
        budget_met: objective.budget.map(|b| account.cost <= b),
        decisions: account.decisions,
        machines: account.machines,
    };
    summary
        .write(job.out)
        .context("writing the summary")
        .map_err(Failure::bad_input)?;
    if job.json {
        println!("{}", summary.to_json());
    } else {
        println!(
            "{total} tasks, {failed} failed, in {makespan_s:.2} s, cost ${:.4}; outputs in {}",
            summary.cost,
            job.out.display()
        );
    }
    Ok(if deadline_met == Some(false) {
        NOT_FOUND
    } else {
        SUCCESS
    })
}
