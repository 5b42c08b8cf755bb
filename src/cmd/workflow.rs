//! `halley workflow`: runs the DAG of stages of a TOML workflow file.
//!
//! The whole file (and the policy) is checked first (exit 2 naming the
//! file, stage and field). A bag stage's commands are tasks of one
//! master-worker job of the whole workflow, run by `halley worker`
//! processes that the autonomic manager starts and stops under `--policy`
//! (default: the built-in policy, this machine's cores), as `halley run`'s
//! are ([`super::workers`]): private workers first, paid machines when the
//! objective needs them. A MapReduce stage's map and reduce tasks run on
//! the same workers, as `halley mapreduce`'s do. Commands run in the output
//! directory. Prints one line per stage and writes
//! `<out>/workflow.json` (see [`stages::Summary`]). Exit 0 when every stage
//! succeeded within its deadline and the policy's deadline, if any, was
//! met; 1 otherwise.

mod stage;
mod stages;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use halley_autonomic::policy::{Policy, ProviderKind};
use halley_paradigms::workflow::{Status, Workflow};
use halley_substrate::Space;

use super::workers::{self, ManagedPool, Reach, SpaceArgs, SpaceJob};
use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};
use stages::Job;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file (TOML): `[stages.<name>]` tables.
    workflow: PathBuf,
    /// Output directory: the stages' commands run here.
    #[arg(long, default_value = "halley-out")]
    out: PathBuf,
    /// Private workers (one task each at once) in place of the policy's
    /// first `static` class; also a MapReduce stage's default reducers.
    #[arg(long, value_parser = super::counts::workers)]
    slots: Option<u32>,
    #[command(flatten)]
    space: SpaceArgs,
    /// The autonomic policy (TOML): objective, scaling, resource classes.
    #[arg(long)]
    policy: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let wf = Workflow::load(&args.workflow).map_err(Failure::bad_input)?;
    let mut policy = match &args.policy {
        Some(path) => Policy::load(path).map_err(Failure::bad_input)?,
        None => Policy::builtin(),
    };
    if let Some(n) = args.slots
        && let Some(class) = policy
            .resources
            .iter_mut()
            .find(|r| r.provider == ProviderKind::Static)
    {
        class.count = Some(n);
        class.slots = 1;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))
        .map_err(Failure::bad_input)?;
    let out = absolute(&args.out)?;
    let parent = args.workflow.parent().filter(|p| !p.as_os_str().is_empty());
    let workflow_dir = absolute(parent.unwrap_or(Path::new(".")))?;
    let job = Job {
        wf,
        objective: policy.objective.clone(),
        out,
        workflow_dir,
        reducers: super::mapreduce::private_slots(&policy),
        split_hint: super::mapreduce::split_hint(&policy),
        exe: std::env::current_exe()
            .context("cannot find the halley executable")
            .map_err(Failure::unreachable)?,
    };
    let needs = workers::Needs::of(&policy);
    let pool = ManagedPool::new(policy, true);
    workers::with_space("workflow", &args.space, needs, Stages { job, pool })
}

/// A workflow waiting for its space.
struct Stages {
    job: Job,
    pool: ManagedPool,
}

impl SpaceJob for Stages {
    async fn with<S: Space>(self, space: S, reach: Reach) -> Outcome {
        say!("halley: workflow: space {}", reach.peer);
        let out = self.job.out.clone();
        let summary =
            stages::drive(space, &reach.peer, self.pool.reaching(&reach), self.job).await?;
        for stage in &summary.report.stages {
            let took = stage
                .elapsed_s
                .map_or(String::new(), |s| format!(" in {s:.2}s"));
            let deadline = match stage.deadline_met {
                Some(false) => " (deadline missed)",
                _ => "",
            };
            match &stage.status {
                Status::Succeeded => tell!("stage {}: succeeded{took}{deadline}", stage.name),
                Status::Failed(e) => tell!("stage {}: failed{took}: {e}", stage.name),
                Status::Skipped => tell!("stage {}: skipped (a parent failed)", stage.name),
            }
        }
        tell!(
            "workflow: {:.2} s, cost ${:.4}{}",
            summary.report.makespan_s,
            summary.cost,
            match summary.deadline_met {
                Some(true) => " (deadline met)",
                Some(false) => " (deadline missed)",
                None => "",
            }
        );
        let json = out.join("workflow.json");
        let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        std::fs::write(&json, text + "\n")
            .with_context(|| format!("cannot write {}", json.display()))
            .map_err(Failure::bad_input)?;
        if let Some(signal) = summary.signal {
            say!("halley: workflow interrupted ({})", signal.name());
            return Ok(signal.exit_code());
        }
        Ok(
            if summary.report.succeeded() && summary.deadline_met != Some(false) {
                SUCCESS
            } else {
                NOT_FOUND
            },
        )
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .with_context(|| format!("cannot resolve {}", path.display()))
        .map_err(Failure::bad_input)
}
