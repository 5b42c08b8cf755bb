//! `halley workflow`: runs the DAG of stages of a TOML workflow file.
//!
//! The whole file is checked first (exit 2 naming the file, stage and
//! field). Stages run on this machine, MapReduce tasks through the space;
//! commands run in the output directory. Prints one line per stage and
//! writes `<out>/workflow.json`. Exit 0 when every stage succeeded within its
//! deadline, 1 otherwise.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use halley_paradigms::workflow::{self, LocalRunner, Report, Status, Workflow};
use halley_substrate::Space;
use tokio::runtime::Runtime;

use super::mapreduce::{UseSpace, policy_slots, with_space};

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file (TOML): `[stages.<name>]` tables.
    workflow: PathBuf,
    /// Output directory: the stages' commands run here.
    #[arg(long, default_value = "halley-out")]
    out: PathBuf,
    /// Commands (or MapReduce workers) at once per stage (default: one per core).
    #[arg(long)]
    slots: Option<usize>,
    /// A peer of the space (its multiaddr); without it, an embedded space.
    #[arg(long)]
    peer: Option<String>,
    /// With `--peer`: the private overlay's pre-shared key, as the peer was
    /// given it (`halley node --secret-file`).
    #[arg(long, requires = "peer")]
    secret_file: Option<PathBuf>,
    /// Policy file: a stage's slots are its private `static` slots (without
    /// it: one per core, as the built-in policy).
    #[arg(long)]
    policy: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let wf = Workflow::load(&args.workflow).map_err(Failure::bad_input)?;
    let policy_slots = policy_slots(args.policy.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))
        .map_err(Failure::bad_input)?;
    let out = absolute(&args.out)?;
    let parent = args.workflow.parent().filter(|p| !p.as_os_str().is_empty());
    let workflow_dir = absolute(parent.unwrap_or(Path::new(".")))?;
    let slots = args
        .slots
        .or(policy_slots)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let job = Job {
        wf,
        out: out.clone(),
        workflow_dir,
        slots,
    };
    let secret = super::secret::load("workflow", args.secret_file.as_deref())?;
    let report = with_space(args.peer.as_deref(), secret, job)?;
    for stage in &report.stages {
        let took = stage
            .elapsed_s
            .map_or(String::new(), |s| format!(" in {s:.2}s"));
        let deadline = match stage.deadline_met {
            Some(false) => " (deadline missed)",
            _ => "",
        };
        match &stage.status {
            Status::Succeeded => println!("stage {}: succeeded{took}{deadline}", stage.name),
            Status::Failed(e) => println!("stage {}: failed{took}: {e}", stage.name),
            Status::Skipped => println!("stage {}: skipped (a parent failed)", stage.name),
        }
    }
    let json = out.join("workflow.json");
    let text = serde_json::to_string_pretty(&report).expect("a report serializes");
    std::fs::write(&json, text + "\n")
        .with_context(|| format!("cannot write {}", json.display()))
        .map_err(Failure::bad_input)?;
    Ok(if report.succeeded() {
        SUCCESS
    } else {
        NOT_FOUND
    })
}

/// A checked workflow waiting for its space.
struct Job {
    wf: Workflow,
    out: PathBuf,
    workflow_dir: PathBuf,
    slots: usize,
}

impl UseSpace for Job {
    type Output = Report;

    fn with<S: Space>(self, rt: &Runtime, space: S) -> Report {
        let runner = LocalRunner {
            space,
            rt: rt.handle().clone(),
            out: self.out,
            workflow_dir: self.workflow_dir,
            slots: self.slots,
        };
        workflow::run(&self.wf, &runner)
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path)
        .with_context(|| format!("cannot resolve {}", path.display()))
        .map_err(Failure::bad_input)
}
