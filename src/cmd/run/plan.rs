//! What a `halley run` is to do: its commands (a tasks file or a
//! `--command` template with its arguments: [`super::inputs`]), its output
//! directory (new, emptied with `--force`, or resumed), and what earlier
//! runs of the job did ([`super::journal`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use halley_autonomic::policy::Objective;
use halley_paradigms::bag::TaskSpec;
use halley_substrate::node::Identity;

use super::summary::TaskRecord;
use super::{Args, inputs, journal};
use crate::exit::Failure;

/// What one run needs besides its space.
pub(super) struct Job {
    pub(super) commands: Vec<String>,
    /// Task ids (lines) to run now; the others finished in earlier runs.
    pub(super) todo: Vec<u64>,
    /// Records of tasks that finished in earlier runs.
    pub(super) done: Vec<TaskRecord>,
    /// Jobs of earlier runs (their tuples are withdrawn) and their spend.
    pub(super) earlier_jobs: Vec<String>,
    pub(super) earlier_cost: f64,
    pub(super) spec: TaskSpec,
    pub(super) objective: Objective,
    pub(super) out: PathBuf,
    pub(super) json: bool,
    pub(super) strict: bool,
    pub(super) sign: Option<Identity>,
}

/// The commands, the output directory and what earlier runs did.
pub(super) fn plan(args: &Args, objective: Objective) -> Result<Job, Failure> {
    let fresh = |commands, out: &Path| Job {
        todo: (0..u64::try_from(Vec::len(&commands)).unwrap_or(0)).collect(),
        commands,
        done: Vec::new(),
        earlier_jobs: Vec::new(),
        earlier_cost: 0.0,
        spec: TaskSpec::default(),
        objective: objective.clone(),
        out: out.to_owned(),
        json: args.json,
        strict: args.strict,
        sign: None,
    };
    if let Some(out) = &args.resume {
        let past = journal::read(out).map_err(Failure::bad_input)?;
        if let Some(file) = &args.tasks {
            let commands = load_tasks(args)?;
            if commands != past.commands {
                return Err(Failure::bad_input(anyhow!(
                    "{file}: not the tasks of the job in {} (its commands differ); resume \
                     without a tasks file to run the job's own",
                    out.display()
                )));
            }
        }
        let keep = |r: &TaskRecord| !(args.retry_failed && r.failed());
        let done: Vec<TaskRecord> = past.tasks.into_values().filter(keep).collect();
        let mut job = fresh(past.commands, out);
        job.todo.retain(|id| !done.iter().any(|r| r.id == *id));
        job.done = done;
        job.earlier_jobs = past.jobs;
        job.earlier_cost = past.cost;
        return Ok(job);
    }
    let commands = load_tasks(args)?;
    prepare_out(&args.out, args.force)?;
    Ok(fresh(commands, &args.out))
}

/// The commands of the tasks file, or of `--command` and its arguments.
pub(super) fn load_tasks(args: &Args) -> Result<Vec<String>, Failure> {
    let words: Vec<String> = args.tasks.iter().chain(&args.inputs).cloned().collect();
    let colsep = match args.colsep.as_str() {
        "\\t" => "\t",
        other => other,
    };
    inputs::commands(args.command.as_deref(), &words, colsep).map_err(Failure::bad_input)
}

/// `--out` must be new or empty; `--force` clears it.
fn prepare_out(out: &Path, force: bool) -> Result<(), Failure> {
    let used = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if used && force {
        std::fs::remove_dir_all(out)
            .with_context(|| format!("--force: cannot clear {}", out.display()))
            .map_err(Failure::bad_input)?;
    } else if used {
        return Err(Failure::bad_input(anyhow!(
            "--out {}: the directory is not empty (a job's outputs?): give --resume {} to \
             continue that job, --force to clear it, or another --out",
            out.display(),
            out.display()
        )));
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create {}", out.display()))
        .map_err(Failure::bad_input)
}
