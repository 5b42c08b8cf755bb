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
//! the budget were met, the manager's decisions and each output's
//! SHA-256), `_SUCCESS` when every task succeeded, `space` (the address
//! of the job's space) and `journal.jsonl` ([`journal`]: what `--resume`
//! continues from). SIGINT/SIGTERM stop the job: its tasks are withdrawn,
//! every machine released, a partial summary written, exit 130/143.
//! Exit 1 when the deadline was missed; 4 with `--strict` when a task failed.

mod inputs;
mod journal;
mod lock;
mod plan;
mod summary;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use halley_paradigms::bag::TaskSpec;
use halley_paradigms::master::Master;
use halley_substrate::Space;
use halley_substrate::node::Identity;
use tokio::time::Instant;

use super::workers::{self, ManagedPool, Reach, Results, SpaceArgs, SpaceJob, WorkerPool};
use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};
use halley_autonomic::policy::{Policy, ProviderKind};
use journal::{Entry, Journal};
use plan::{Job, plan};
use summary::{Outputs, Summary, TaskRecord};

/// Exit status of `--strict` when a task failed.
pub const TASK_FAILED: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks: one shell command a line (`-`: stdin); empty and `#`
    /// lines are skipped, a line ending in `\` goes on with the next.
    /// With --command: an arguments file, `-`, or `::: a b c` lists
    /// (give them last: what follows is all arguments).
    #[arg(required_unless_present = "resume", value_name = "TASKS")]
    pub tasks: Option<String>,
    /// With --command: the rest of the `:::` lists.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub inputs: Vec<String>,
    /// A command template, as GNU parallel's: `{}` is a task's arguments
    /// and `{1}`, `{2}`, … its columns, each quoted for sh; one task per
    /// line of the arguments file or per combination of the ::: lists.
    #[arg(long)]
    pub command: Option<String>,
    /// With --command and an arguments file: what separates its columns.
    #[arg(long, default_value = "\t", requires = "command")]
    pub colsep: String,
    /// The autonomic policy (TOML).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Where outputs and summary.json go; it must be empty or new (see
    /// --resume and --force).
    #[arg(long, default_value = "halley-out", conflicts_with = "resume")]
    pub out: PathBuf,
    /// Continue the job whose outputs are in this directory (interrupted,
    /// killed or with failed tasks): finished tasks are not run again.
    #[arg(long, value_name = "OUT")]
    pub resume: Option<PathBuf>,
    /// With --resume: run the tasks that failed again too.
    #[arg(long, requires = "resume")]
    pub retry_failed: bool,
    /// Clear a non-empty --out first.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Print summary.json on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Workers of the policy's first `static` class to start with the job
    /// (default: its `count` without `--peer`; none with it, the static
    /// workers existing already).
    #[arg(long, value_parser = super::counts::workers)]
    pub workers: Option<u32>,
    /// Kill a task that runs longer than this (reported as timed out,
    /// exit code 124), e.g. 30s, 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Run a failing task (non-zero exit or timed out) again, up to this
    /// many more times; `attempts` counts every run.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// The directory the tasks run in (default: the worker's).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Bytes of each task's stdout and stderr kept (the workers this job
    /// starts keep this much; a task that wrote more is marked truncated).
    #[arg(long)]
    pub max_output: Option<usize>,
    /// Exit 4 when any task failed (non-zero exit or timed out).
    #[arg(long)]
    pub strict: bool,
    /// Sign the outputs' manifest in summary.json with this key file (an
    /// ed25519 key as `node --key-file` keeps it; created if missing):
    /// `halley verify --signer <peer-id>` checks it.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
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
    let mut job = plan(&args, policy.objective.clone())?;
    job.sign = args
        .sign_key
        .as_deref()
        .map(Identity::load_or_create)
        .transpose()
        .map_err(|e| Failure::bad_input(anyhow!("--sign-key {e}")))?;
    if let Some(budget) = policy.objective.budget.as_mut() {
        // What earlier runs of the job spent is spent: the manager plans
        // with what is left.
        *budget = (*budget - job.earlier_cost).max(0.0);
    }
    job.spec = TaskSpec {
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
        retries: args.retries,
        workdir: args
            .workdir
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| Failure::bad_input(anyhow!("--workdir: {e}")))?,
        ..TaskSpec::default()
    };
    let start_static = args.space.peer.is_none() || args.workers.is_some();
    let needs = workers::Needs::of(&policy);
    let mut flags: Vec<OsString> = Vec::new();
    if let Some(cap) = args.max_output {
        flags.extend(["--max-output".into(), cap.to_string().into()]);
    }
    let pool = ManagedPool::new(policy, start_static).worker_flags(flags);
    workers::with_space("run", &args.space, needs, Run { job, pool })
}

/// A run waiting for its space.
struct Run {
    job: Job,
    pool: ManagedPool,
}

impl SpaceJob for Run {
    async fn with<S: Space>(self, space: S, reach: Reach) -> Outcome {
        drive(space, &reach.peer, self.pool.reaching(&reach), self.job).await
    }
}

/// Submits the tasks left to do, starts the workers, collects one result
/// per task; on a signal, stops.
async fn drive<S: Space>(space: S, peer: &str, mut pool: impl WorkerPool, job: Job) -> Outcome {
    let out = job.out.as_path();
    let bad = Failure::bad_input;
    let outputs = Outputs::create(out).map_err(bad)?;
    let _lock = lock::Lock::take(out).map_err(bad)?;
    let id = workers::job_id("run");
    let mut journal = Journal::open(out).map_err(bad)?;
    journal
        .append(&Entry::Start {
            job: id.clone(),
            commands: job.commands.clone(),
        })
        .map_err(bad)?;
    let _ = std::fs::remove_file(out.join("_SUCCESS"));
    let space_file = out.join("space");
    std::fs::write(&space_file, format!("{peer}\n"))
        .with_context(|| format!("cannot write {}", space_file.display()))
        .map_err(bad)?;
    say!(
        "halley: job {id}: space {peer} (also in {})",
        space_file.display()
    );
    for earlier in &job.earlier_jobs {
        // A killed run's tuples may still be in a shared space.
        let mut old = Master::new(space.clone(), earlier.clone());
        old.withdraw(Duration::ZERO).await.map_err(workers::lost)?;
    }
    let began = Instant::now();
    let mut master = Master::new(space, id.clone());
    let total = job.commands.len();
    let payloads = job.todo.iter().enumerate().map(|(i, &task)| {
        let mut spec = job.spec.clone();
        spec.command = job.commands[task as usize].clone();
        if task != i as u64 {
            spec.task_id = Some(task);
        }
        spec.encode()
    });
    master
        .submit(payloads.collect::<Vec<_>>())
        .await
        .map_err(|e| Failure::unreachable(anyhow!(e).context("cannot submit the tasks")))?;
    let mut results = Results::start(&mut pool, peer, &id, total, &master.progress())?;
    let mut records = job.done;
    let mut failed = records.iter().filter(|r| r.failed()).count();
    let mut spent = 0.0;
    let lost = workers::lost;
    let take = |done: &halley_paradigms::master::Finished,
                journal: &mut Journal,
                records: &mut Vec<TaskRecord>,
                failed: &mut usize|
     -> Result<(), Failure> {
        let task = job.todo[done.result.id as usize];
        let record = outputs
            .record(task, done, &job.commands[task as usize])
            .map_err(bad)?;
        journal.append(&Entry::Task(record.clone())).map_err(bad)?;
        *failed += usize::from(record.failed());
        records.push(record);
        Ok(())
    };
    while let Some(done) = results
        .next(&mut master, &mut pool, 0)
        .await
        .map_err(lost)?
    {
        take(&done, &mut journal, &mut records, &mut failed)?;
        results.show(&master.progress(), records.len(), failed);
        if results.spent() > spent {
            spent = results.spent();
            let entry = Entry::Spent {
                job: id.clone(),
                cost: spent,
            };
            journal.append(&entry).map_err(bad)?;
        }
    }
    let interrupted = results.interrupted();
    if interrupted.is_some() {
        if let Err(e) = master.abort(Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "could not tell the workers to abort");
        }
    } else if let Err(e) = master.stop_workers().await {
        tracing::warn!(error = %e, "could not tell the workers to stop");
    }
    let makespan_s = began.elapsed().as_secs_f64();
    // The pool waits synchronously; the node keeps serving on the other thread.
    let account = tokio::task::block_in_place(|| pool.finish(Duration::from_secs(10)));
    if interrupted.is_some() {
        // What finished meanwhile is kept; the rest leaves the space.
        let claims_for = if workers::interrupt::hurried() {
            Duration::ZERO
        } else {
            Duration::from_secs(6)
        };
        for done in master.withdraw(claims_for).await.map_err(lost)? {
            take(&done, &mut journal, &mut records, &mut failed)?;
        }
    }
    journal
        .append(&Entry::Spent {
            job: id.clone(),
            cost: account.cost,
        })
        .map_err(bad)?;
    results.finish(&account.ending);
    records.sort_by_key(|r| r.id);
    let objective = &job.objective;
    let cost = job.earlier_cost + account.cost;
    let deadline_met = objective.deadline.map(|d| makespan_s <= d);
    let files = summary::manifest(&records);
    let signature = job
        .sign
        .as_ref()
        .map(|key| super::verify::sign(key, &files))
        .transpose()
        .map_err(bad)?;
    let summary = Summary {
        files,
        signature,
        tasks: records,
        makespan_s,
        cost,
        deadline_met,
        budget_met: objective.budget.map(|b| cost <= b),
        decisions: account.decisions,
        machines: account.machines,
        job: id,
        interrupted: interrupted.is_some(),
        signal: interrupted.map(|s| s.name().to_owned()),
        failed,
    };
    summary
        .write(out)
        .context("writing the summary")
        .map_err(bad)?;
    let finished = summary.tasks.len();
    if job.json {
        tell!("{}", summary.to_json());
    } else {
        let what = match interrupted {
            Some(signal) => format!("interrupted ({}): {finished} of {total}", signal.name()),
            None => format!("{total}"),
        };
        tell!(
            "{what} tasks, {failed} failed, in {makespan_s:.2} s, cost ${cost:.4}; outputs in {}",
            out.display()
        );
    }
    if let Some(signal) = interrupted {
        say!("halley: resume with: halley run --resume {}", out.display());
        return Ok(signal.exit_code());
    }
    if failed == 0 {
        std::fs::write(out.join("_SUCCESS"), "")
            .with_context(|| format!("cannot write {}", out.join("_SUCCESS").display()))
            .map_err(bad)?;
    }
    Ok(if deadline_met == Some(false) {
        NOT_FOUND
    } else if failed > 0 && job.strict {
        TASK_FAILED
    } else {
        SUCCESS
    })
}
