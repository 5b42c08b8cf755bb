//! `halley simulate`: what a policy would do, cost and finish on a workload,
//! on a virtual clock, before anyone pays.

use std::path::PathBuf;

use anyhow::Context;
use halley_autonomic::clock::human;
use halley_autonomic::policy::Policy;
use halley_autonomic::simulate::sweep::{self, Grid, Summary};
use halley_autonomic::simulate::{self, Control, Report};
use halley_autonomic::workload::Workload;

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

/// Exits 1 when the simulated job misses its deadline or cannot finish.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file.
    #[arg(long, required_unless_present = "sweep")]
    policy: Option<PathBuf>,
    /// The workload file (tasks, duration distribution, per-class speed).
    #[arg(long, required_unless_present = "sweep")]
    workload: Option<PathBuf>,
    /// Simulate a baseline in place of the planner: `fixed` (the cheapest
    /// fleet started at t=0 that meets the deadline, found by search) or
    /// `queue` (a machine added while queued tasks per slot > 1, removed
    /// after 60 s idle, up to max: what Ray and Dask do).
    #[arg(long, value_enum)]
    baseline: Option<BaselineArg>,
    /// Run every scenario of a grid file with the planner and both
    /// baselines, and print how often deadlines and budgets were kept.
    #[arg(long, value_name = "GRID.toml", conflicts_with_all = ["policy", "workload", "baseline", "plot"])]
    sweep: Option<PathBuf>,
    /// With `--sweep`: run only scenario N of the grid (`s07` is 7) with
    /// the planner and print its report and decisions.
    #[arg(long, value_name = "N", requires = "sweep")]
    scenario: Option<usize>,
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

/// A baseline, as named on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BaselineArg {
    Fixed,
    Queue,
}

pub fn run(args: Args) -> Outcome {
    if let Some(grid) = &args.sweep {
        return run_sweep(grid, args.scenario, args.json);
    }
    let (Some(policy), Some(workload)) = (&args.policy, &args.workload) else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--policy and --workload are needed without --sweep"
        )));
    };
    let policy = Policy::load(policy).map_err(Failure::bad_input)?;
    let workload = Workload::load_for(workload, &policy).map_err(Failure::bad_input)?;
    let report = match args.baseline {
        None => simulate::run(&policy, &workload, args.seed),
        Some(BaselineArg::Queue) => {
            simulate::run_with(&policy, &workload, args.seed, &Control::Queue)
        }
        Some(BaselineArg::Fixed) => match simulate::fixed_search(&policy, &workload, args.seed) {
            Some((_, report)) => report,
            None => {
                eprintln!("no fixed fleet meets the objective; showing every class at its max");
                let max = policy
                    .resources
                    .iter()
                    .map(|r| if r.is_private() { 0 } else { r.limit() })
                    .collect();
                simulate::run_with(&policy, &workload, args.seed, &Control::Fixed(max))
            }
        },
    };
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

/// `--sweep`: every scenario of the grid, then the summary.
fn run_sweep(path: &std::path::Path, only: Option<usize>, json: bool) -> Outcome {
    let grid = Grid::load(path).map_err(Failure::bad_input)?;
    if let Some(n) = only {
        let scenarios = grid.scenarios();
        let Some(s) = scenarios.get(n) else {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{}: --scenario {n}: the grid has {} scenarios (0 to {})",
                path.display(),
                scenarios.len(),
                scenarios.len().saturating_sub(1)
            )));
        };
        let report = simulate::run(&s.policy, &s.workload, s.seed);
        if json {
            let json = serde_json::to_string_pretty(&report).map_err(Failure::bad_input)?;
            println!("{json}");
        } else {
            println!("{}", s.name);
            print!("{}", table(&s.policy, &report));
            println!(
                "\n# its policy file (--policy)\n{}\n# its workload file (--workload; --seed {})\n{}",
                s.policy_text.trim_end(),
                s.seed,
                s.workload_text.trim_end()
            );
        }
        return Ok(SUCCESS);
    }
    let rows = sweep::sweep(&grid.scenarios());
    let summary = Summary::of(&rows);
    if json {
        let doc = serde_json::json!({ "scenarios": rows, "summary": summary });
        let json = serde_json::to_string_pretty(&doc).map_err(Failure::bad_input)?;
        println!("{json}");
    } else {
        print!("{}", sweep::rows_table(&rows));
        println!();
        print!("{}", summary.table());
    }
    Ok(SUCCESS)
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
    let spent = &r.spending;
    out += &format!(
        "spent on       work ${:.2}, boots ${:.2}, idle slots ${:.2}, hours after release ${:.2}, work lost ${:.2}\n",
        spent.work, spent.boot, spent.idle, spent.unused_hour, spent.lost
    );
    out += &format!(
        "of which       idle slots with no task queued ${:.2}, machines that ended no task ${:.2}; {} machines bought back\n",
        spent.idle_tail, spent.unused_machines, spent.rebought
    );
    let deadline = objective.deadline.map_or("none".into(), human);
    out += &format!("deadline       {deadline:<10} {}\n", met(r.deadline_met));
    let budget = objective
        .budget
        .map_or("none".into(), |b| format!("${b:.2}"));
    out += &format!("budget         {budget:<10} {}\n", met(r.budget_met));
    out += &format!("peak workers   {}\n", r.peak_workers);
    if r.preemptions > 0 || r.stopped_tasks > 0 {
        out += &format!(
            "taken back     {} machines preempted; {} tasks stopped and run again\n",
            r.preemptions, r.stopped_tasks
        );
    }
    out += &format!("decisions      {}\n", r.decisions.len());
    for d in &r.decisions {
        out += &format!("  {d}\n");
    }
    out
}
