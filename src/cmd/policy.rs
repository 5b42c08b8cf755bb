//! `halley policy check <file>`: prints `ok` (with any warnings on stderr),
//! or exits 2 naming the file, line, field and what was expected. With
//! `--workload`, also what the policy will cost and when the job will
//! finish: the workload simulated with `--runs` seeds, as p10/p50/p90.

use std::path::PathBuf;

use halley_autonomic::clock::{Secs, human};
use halley_autonomic::policy::Policy;
use halley_autonomic::simulate::{self, Forecast, MOST_RUNS};
use halley_autonomic::workload::Workload;

use crate::exit::{Failure, Outcome, SUCCESS};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a policy file: prints `ok` or names the bad field and line.
    Check {
        file: PathBuf,
        /// Also forecast cost and finish on this workload file (tasks,
        /// duration distribution, per-class speed), by simulation.
        #[arg(long, value_name = "WORKLOAD.toml")]
        workload: Option<PathBuf>,
        /// With `--workload`: how many simulated runs (seeds `--seed` on).
        #[arg(long, default_value_t = 20, requires = "workload",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(MOST_RUNS)))]
        runs: u32,
        /// With `--workload`: the first run's seed.
        #[arg(long, default_value_t = 1, requires = "workload")]
        seed: u64,
    },
}

pub fn run(command: Command) -> Outcome {
    match command {
        Command::Check {
            file,
            workload,
            runs,
            seed,
        } => {
            let policy = Policy::load(&file).map_err(Failure::bad_input)?;
            for warning in policy.warnings() {
                eprintln!("warning: {}: {warning}", file.display());
            }
            println!("ok");
            if let Some(path) = workload {
                let workload = Workload::load_for(&path, &policy).map_err(Failure::bad_input)?;
                let forecast = simulate::forecast(&policy, &workload, seed, runs);
                print!("{}", table(&forecast));
            }
            Ok(SUCCESS)
        }
    }
}

/// The forecast for people.
fn table(f: &Forecast) -> String {
    let last = f.first_seed.wrapping_add(u64::from(f.runs) - 1);
    let finish = |s: Secs| {
        if s.is_finite() {
            human(s)
        } else {
            "never".to_string()
        }
    };
    let mut out = format!(
        "forecast over {} simulated runs (seeds {} to {last}):\n",
        f.runs, f.first_seed
    );
    out += &format!(
        "  cost      p10 ${:.2}  p50 ${:.2}  p90 ${:.2}\n",
        f.cost[0], f.cost[1], f.cost[2]
    );
    out += &format!(
        "  finish    p10 {}  p50 {}  p90 {}\n",
        finish(f.finish[0]),
        finish(f.finish[1]),
        finish(f.finish[2])
    );
    out += &format!("  finished  {}/{} runs\n", f.finished, f.runs);
    if let Some(met) = f.deadline_met {
        out += &format!("  deadline  met in {met}/{} runs\n", f.runs);
    }
    if let Some(kept) = f.budget_kept {
        out += &format!("  budget    kept in {kept}/{} runs\n", f.runs);
    }
    out
}
