//! `halley simulate`: what a policy would do, cost and finish on a workload,
//! on a virtual clock, before anyone pays.

use std::path::PathBuf;

use anyhow::Context;
use halley_autonomic::clock::human;
use halley_autonomic::policy::Policy;
use halley_autonomic::simulate::{self, Report};
use halley_autonomic::workload::Workload;

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

/// Exits 1 when the simulated job misses its deadline or cannot finish.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The workload file (tasks, duration distribution, per-class speed).
    #[arg(long)]
    workload: PathBuf,
    /// Random seed: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also draw machines by class and the queue over time as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

pub fn run(args: Args) -> Outcome {
    let policy = Policy::load(&args.policy).map_err(Failure::bad_input)?;
    let workload = Workload::load_for(&args.workload, &policy).map_err(Failure::bad_input)?;
    let report = simulate::run(&policy, &workload, args.seed);
    if let Some(path) = &args.plot {
        std::fs::write(path, simulate::svg(&report))
            .with_context(|| format!("{}: could not write the plot", path.display()))
            .map_err(Failure::bad_input)?;
    }
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(Failure::bad_input)?;
        println!("{json}");
    } else {
        print!("{}", table(&policy, &report));
    }
    let missed = !report.finished || report.deadline_met == Some(false);
    Ok(if missed { NOT_FOUND } else { SUCCESS })
}

/// The report for people.
fn table(policy: &Policy, r: &Report) -> String {
    let objective = &policy.objective;
    let met = |m: Option<bool>| match m {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    let mut out = String::new();
    let ran = if r.finished { "all ran" } else { "NOT all ran" };
    out += &format!("tasks          {} ({ran})\n", r.tasks);
    out += &format!(
        "makespan       {:<10} oracle {}\n",
        human(r.makespan_s),
        human(r.oracle_makespan_s)
    );
    out += &format!(
        "cost           ${:<9.2} oracle ${:.2}\n",
        r.cost, r.oracle_cost
    );
    let deadline = objective.deadline.map_or("none".into(), human);
    out += &format!("deadline       {deadline:<10} {}\n", met(r.deadline_met));
    let budget = objective
        .budget
        .map_or("none".into(), |b| format!("${b:.2}"));
    out += &format!("budget         {budget:<10} {}\n", met(r.budget_met));
    out += &format!("peak workers   {}\n", r.peak_workers);
    out += &format!("decisions      {}\n", r.decisions.len());
    for d in &r.decisions {
        out += &format!("  {d}\n");
    }
    out
}
