//! `halley simulate --sweep <grid.toml>`: a seeded grid of scenarios, each
//! run with the planner and the two baselines, and the table that says how
//! often the promise was kept.
//!
//! A grid file lists the choices each scenario is drawn from (with a
//! seeded RNG, so the same file gives the same scenarios):
//!
//! ```toml
//! scenarios = 60
//! seed = 2026
//! tasks = [100, 1000, 5000]
//! dist = ["lognormal", "uniform", "fixed"]
//! mean = ["30s", "2m"]
//! max_work = "100h"               # tasks × mean at most this: a longer mean is cut to fit
//! cv = [0.3, 1.0, 1.5]            # a uniform's is capped at 0.5, a fixed one's is 0
//! private_slots = [0, 4]          # a free static class with these many slots
//! paid_classes = [1, 3]
//! price_per_hour = [0.1, 0.4]
//! slots = [1, 4]
//! max = [10, 40]
//! speed = [1.0, 2.0]
//! boot_time = ["0s", "180s"]
//! billing = ["per-second", "per-hour"]
//! objective = ["deadline", "budget", "both"]
//! deadline_factor = [0.8, 1.5, 3.0]  # × the soonest finish, every class at its max from t=0
//! budget_factor = [0.7, 1.5, 3.0]    # × the fluid oracle bound (at the deadline, or twice the soonest finish)
//! task_estimate_factor = [0.0, 0.5, 2.0]  # scaling.task_estimate = this × the mean (0: none)
//! preemptible = ["0s", "30m", "2h"]   # optional: each paid class's mean time to
//!                                     # preemption ("0s": not preemptible)
//! ```
//!
//! `preemptible` is drawn only when given, so a grid without it draws the
//! same scenarios as before it existed.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::clock::Secs;
use crate::policy::{Policy, ProviderKind};
use crate::simulate::{Control, Oracle, Report, Spending, fixed_search, oracle, run_with};
use crate::source::{self, SourceError};
use crate::workload::Workload;

/// The most scenarios a grid may draw: each runs Halley, the best fixed
/// fleet's search and the queue baseline (the repo's 60 take ~30 s).
pub const MAX_SCENARIOS: u32 = 10_000;

/// A grid file: the choices scenarios are drawn from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub scenarios: u32,
    pub seed: u64,
    pub tasks: Vec<u64>,
    pub dist: Vec<String>,
    pub mean: Vec<String>,
    /// Tasks × mean duration at most this (the mean is cut to fit), so a
    /// sweep stays fast.
    #[serde(deserialize_with = "crate::source::secs")]
    pub max_work: Secs,
    pub cv: Vec<f64>,
    pub private_slots: Vec<u32>,
    pub paid_classes: Vec<u32>,
    pub price_per_hour: Vec<f64>,
    pub slots: Vec<u32>,
    pub max: Vec<u32>,
    pub speed: Vec<f64>,
    pub boot_time: Vec<String>,
    pub billing: Vec<String>,
    pub objective: Vec<String>,
    pub deadline_factor: Vec<f64>,
    pub budget_factor: Vec<f64>,
    /// The policy's `scaling.task_estimate` as a multiple of the true mean
    /// (0: none, the manager learns it).
    pub task_estimate_factor: Vec<f64>,
    /// Each paid class's mean time to preemption ("0s": not preemptible);
    /// empty: no class is.
    #[serde(default)]
    pub preemptible: Vec<String>,
}

/// One scenario: a policy, a workload and a seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub policy: Policy,
    pub workload: Workload,
    pub seed: u64,
    /// The policy file this scenario's policy was parsed from.
    pub policy_text: String,
    /// The workload file this scenario's workload was parsed from.
    pub workload_text: String,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub cv: f64,
    pub deadline: Option<Secs>,
    pub budget: Option<f64>,
    /// The deadline (within the budget, if any) is met by some fixed fleet
    /// started at t=0.
    pub feasible: Option<bool>,
    pub halley: Outcome,
    /// Where Halley's money went.
    pub spending: Spending,
    pub oracle_cost: f64,
    /// The cheapest fixed fleet that meets the deadline (or the fastest
    /// within the budget), if any.
    pub fixed: Option<Outcome>,
    pub queue: Outcome,
}

/// What one run finished, cost and met.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Outcome {
    pub finished: bool,
    pub makespan_s: Secs,
    pub cost: f64,
    pub deadline_met: Option<bool>,
    pub budget_met: Option<bool>,
}

impl From<&Report> for Outcome {
    fn from(r: &Report) -> Self {
        Outcome {
            finished: r.finished,
            makespan_s: r.makespan_s,
            cost: r.cost,
            deadline_met: r.deadline_met,
            budget_met: r.budget_met,
        }
    }
}

impl Grid {
    /// Reads and parses a grid file.
    pub fn load(path: &Path) -> Result<Grid, SourceError> {
        let text = source::read(path)?;
        Grid::parse(&path.display().to_string(), &text)
    }

    /// Parses grid text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Grid, SourceError> {
        let grid: Grid = source::parse(file, text)?;
        grid.scenarios_checked()
            .map_err(|(field, message)| source::invalid(file, text, field, message))?;
        Ok(grid)
    }

    /// Draws the scenarios; an error names the bad field.
    fn scenarios_checked(&self) -> Result<Vec<Scenario>, (&'static str, String)> {
        let empty = [
            ("tasks", self.tasks.is_empty()),
            ("dist", self.dist.is_empty()),
            ("mean", self.mean.is_empty()),
            ("cv", self.cv.is_empty()),
            ("private_slots", self.private_slots.is_empty()),
            ("paid_classes", self.paid_classes.is_empty()),
            ("price_per_hour", self.price_per_hour.is_empty()),
            ("slots", self.slots.is_empty()),
            ("max", self.max.is_empty()),
            ("speed", self.speed.is_empty()),
            ("boot_time", self.boot_time.is_empty()),
            ("billing", self.billing.is_empty()),
            ("objective", self.objective.is_empty()),
            ("deadline_factor", self.deadline_factor.is_empty()),
            ("budget_factor", self.budget_factor.is_empty()),
            ("task_estimate_factor", self.task_estimate_factor.is_empty()),
        ];
        if let Some((field, _)) = empty.iter().find(|(_, e)| *e) {
            return Err((field, "expected at least one choice".into()));
        }
        if !(1..=MAX_SCENARIOS).contains(&self.scenarios) {
            return Err((
                "scenarios",
                format!(
                    "expected 1 to {MAX_SCENARIOS} scenarios (each runs Halley and two baselines)"
                ),
            ));
        }
        if let Some(o) = self
            .objective
            .iter()
            .find(|o| !["deadline", "budget", "both"].contains(&o.as_str()))
        {
            return Err((
                "objective",
                format!("expected \"deadline\", \"budget\" or \"both\", found \"{o}\""),
            ));
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        (0..self.scenarios)
            .map(|i| self.draw(i, &mut rng))
            .collect()
    }

    /// The scenarios of this grid, in order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        self.scenarios_checked()
            .expect("a parsed grid draws its scenarios (checked by parse)")
    }

    fn draw(&self, i: u32, rng: &mut StdRng) -> Result<Scenario, (&'static str, String)> {
        fn pick<'a, T>(rng: &mut StdRng, from: &'a [T]) -> &'a T {
            &from[rng.random_range(0..from.len())]
        }
        let seed = rng.random::<u64>() % 1_000_000;
        let tasks = *pick(rng, &self.tasks);
        let dist = pick(rng, &self.dist).clone();
        let mean = pick(rng, &self.mean).clone();
        let mean = match humantime::parse_duration(mean.trim()) {
            Ok(d) => d.as_secs_f64().min(self.max_work / tasks as f64).max(1.0),
            Err(_) => {
                return Err((
                    "mean",
                    format!("expected a duration like \"30s\", found \"{mean}\""),
                ));
            }
        };
        let cv = match dist.as_str() {
            "fixed" => 0.0,
            "uniform" => pick(rng, &self.cv).min(0.5),
            _ => *pick(rng, &self.cv),
        };
        let private = *pick(rng, &self.private_slots);
        let paid = *pick(rng, &self.paid_classes);
        let mut classes = String::new();
        let mut spot = 0;
        if private > 0 {
            classes += &format!(
                "[[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = {private}\n"
            );
        }
        for c in 0..paid {
            classes += &format!(
                "[[resources]]\nname = \"paid{c}\"\nprovider = \"local\"\nprice_per_hour = {}\n\
                 slots = {}\nmax = {}\nspeed = {}\nboot_time = \"{}\"\nbilling = \"{}\"\n",
                pick(rng, &self.price_per_hour),
                pick(rng, &self.slots),
                pick(rng, &self.max),
                pick(rng, &self.speed),
                pick(rng, &self.boot_time),
                pick(rng, &self.billing),
            );
            if !self.preemptible.is_empty() {
                let life = pick(rng, &self.preemptible);
                match humantime::parse_duration(life.trim()) {
                    Ok(d) if d.is_zero() => {}
                    Ok(_) => {
                        spot += 1;
                        classes +=
                            &format!("preemptible = true\nmean_time_to_preemption = \"{life}\"\n");
                    }
                    Err(_) => {
                        return Err((
                            "preemptible",
                            format!(
                                "expected a duration like \"30m\" (\"0s\": not preemptible), found \"{life}\""
                            ),
                        ));
                    }
                }
            }
        }
        let objective = pick(rng, &self.objective).clone();
        let deadline_factor = *pick(rng, &self.deadline_factor);
        let budget_factor = *pick(rng, &self.budget_factor);
        let prior = *pick(rng, &self.task_estimate_factor) * mean;
        let bad = |field: &'static str| move |e: SourceError| (field, e.to_string());
        let open = Policy::parse("scenario", &classes).map_err(bad("scenario"))?;
        let mut speeds = String::new();
        for r in open
            .resources
            .iter()
            .filter(|r| r.provider != ProviderKind::Static)
        {
            speeds += &format!("\"{}\" = {}\n", r.name, r.speed);
        }
        let workload_text = format!(
            "tasks = {tasks}\nduration = {{ dist = \"{dist}\", mean = {mean:.0}, cv = {cv} }}\n[speed]\n{speeds}"
        );
        let workload = Workload::parse("scenario", &workload_text).map_err(bad("dist"))?;
        let durations = super::engine::durations(&workload, seed);
        let soonest = Oracle::new(&open, &workload, &durations, 0.0).makespan;
        let work: f64 = durations.iter().sum();
        let (deadline, budget) = match objective.as_str() {
            "deadline" => (Some(deadline_factor * soonest), None),
            "budget" => {
                let least = oracle::fluid_cost(&open, &workload, work, 2.0 * soonest);
                (None, Some(budget_factor * least))
            }
            _ => {
                let deadline = deadline_factor * soonest;
                let least = oracle::fluid_cost(&open, &workload, work, deadline);
                (Some(deadline), Some(budget_factor * least))
            }
        };
        let mut head = String::new();
        if prior > 0.0 {
            head += &format!("[scaling]\ntask_estimate = {:.0}\n", prior.max(1.0));
        }
        head += "[objective]\n";
        if let Some(d) = deadline {
            head += &format!("deadline = {:.0}\n", d.ceil());
        }
        if let Some(b) = budget {
            head += &format!("budget = {:.4}\n", (b * 1e4).ceil() / 1e4 + 0.0001);
        }
        let policy_text = format!("{head}{classes}");
        let policy = Policy::parse("scenario", &policy_text).map_err(bad("objective"))?;
        let spot = if spot > 0 {
            format!(" spot{spot}")
        } else {
            String::new()
        };
        let name = format!(
            "s{i:02} {tasks} {dist} {} cv{cv} priv{private} paid{paid}{spot} {objective}",
            crate::clock::human(mean.round())
        );
        Ok(Scenario {
            name,
            policy,
            workload,
            seed,
            policy_text,
            workload_text,
        })
    }
}

impl Scenario {
    /// Runs the planner and the baselines on this scenario.
    pub fn run(&self) -> Row {
        let (p, w, seed) = (&self.policy, &self.workload, self.seed);
        let halley = run_with(p, w, seed, &Control::Planner);
        let queue = run_with(p, w, seed, &Control::Queue);
        let fixed = fixed_search(p, w, seed);
        let objective = &p.objective;
        let feasible = objective.deadline.map(|_| {
            fixed
                .as_ref()
                .is_some_and(|(_, f)| objective.budget.is_none_or(|b| f.cost <= b + 1e-9))
        });
        Row {
            name: self.name.clone(),
            cv: self.workload.duration.cv,
            deadline: objective.deadline,
            budget: objective.budget,
            feasible,
            oracle_cost: halley.oracle_cost,
            spending: halley.spending,
            halley: Outcome::from(&halley),
            fixed: fixed.as_ref().map(|(_, f)| Outcome::from(f)),
            queue: Outcome::from(&queue),
        }
    }
}

/// Runs every scenario, spread over this machine's cores; rows in order.
pub fn sweep(scenarios: &[Scenario]) -> Vec<Row> {
    let threads = crate::policy::cores().max(1) as usize;
    let chunk = scenarios.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(Scenario::run).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a scenario run does not panic"))
            .collect()
    })
}

/// The figures of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// (met, feasible) deadlines: all, cv < 0.5, 0.5 ≤ cv < 1, cv ≥ 1.
    pub deadlines: [(u32, u32); 4],
    /// Budgeted runs that kept the budget, and all budgeted runs.
    pub budgets: (u32, u32),
    /// Cost ÷ oracle over the runs that met their objectives: median, p90, max.
    pub cost_ratio: (f64, f64, f64),
    /// Scenarios where both met the deadline: cheaper than the queue
    /// baseline (ties count), and how many.
    pub beats_queue: (u32, u32),
    /// Median of cost ÷ the best fixed fleet's, where both met the deadline; how many.
    pub versus_fixed: (f64, u32),
}

impl Summary {
    pub fn of(rows: &[Row]) -> Summary {
        let mut deadlines = [(0, 0); 4];
        let mut budgets = (0, 0);
        let mut ratios = Vec::new();
        let mut beats_queue = (0, 0);
        let mut versus_fixed = Vec::new();
        for row in rows {
            let h = &row.halley;
            if row.feasible == Some(true) {
                let met = u32::from(h.deadline_met == Some(true));
                let band = match row.cv {
                    cv if cv < 0.5 => 1,
                    cv if cv < 1.0 => 2,
                    _ => 3,
                };
                for i in [0, band] {
                    deadlines[i].0 += met;
                    deadlines[i].1 += 1;
                }
            }
            if let Some(kept) = h.budget_met {
                budgets.0 += u32::from(kept);
                budgets.1 += 1;
            }
            let met = h.finished && h.deadline_met != Some(false) && h.budget_met != Some(false);
            if met {
                ratios.push(if row.oracle_cost > 1e-9 {
                    h.cost / row.oracle_cost
                } else if h.cost > 1e-9 {
                    f64::INFINITY
                } else {
                    1.0
                });
            }
            if h.deadline_met == Some(true) {
                if row.queue.deadline_met == Some(true) {
                    beats_queue.1 += 1;
                    beats_queue.0 += u32::from(h.cost <= row.queue.cost + 1e-9);
                }
                if let Some(f) = row.fixed.filter(|f| f.deadline_met == Some(true)) {
                    versus_fixed.push(if f.cost > 1e-9 {
                        h.cost / f.cost
                    } else if h.cost > 1e-9 {
                        f64::INFINITY
                    } else {
                        1.0
                    });
                }
            }
        }
        Summary {
            deadlines,
            budgets,
            cost_ratio: (
                quantile(&mut ratios, 0.5),
                quantile(&mut ratios, 0.9),
                quantile(&mut ratios, 1.0),
            ),
            beats_queue,
            versus_fixed: (quantile(&mut versus_fixed, 0.5), versus_fixed.len() as u32),
        }
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let pct = |(a, b): (u32, u32)| {
            if b == 0 {
                format!("{a}/{b}")
            } else {
                format!("{a}/{b} ({:.0}%)", 100.0 * f64::from(a) / f64::from(b))
            }
        };
        let d = &self.deadlines;
        let (median, p90, max) = self.cost_ratio;
        let mut out = String::new();
        out += &format!("feasible deadlines met   {}\n", pct(d[0]));
        out += &format!("  cv < 0.5               {}\n", pct(d[1]));
        out += &format!("  0.5 <= cv < 1          {}\n", pct(d[2]));
        out += &format!("  cv >= 1                {}\n", pct(d[3]));
        out += &format!("budgets kept             {}\n", pct(self.budgets));
        out +=
            &format!("cost / oracle            median {median:.2}  p90 {p90:.2}  max {max:.2}\n");
        out += &format!(
            "cheaper than queue       {} (where both met the deadline)\n",
            pct(self.beats_queue)
        );
        out += &format!(
            "cost / best fixed fleet  median {:.2} over {} (where both met the deadline)\n",
            self.versus_fixed.0, self.versus_fixed.1
        );
        out
    }
}

/// The `q` quantile (nearest rank) of `xs`; NaN when empty.
pub(crate) fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// One line per scenario, for people: the outcomes, and of Halley's cost
/// what paid for boots, idle slots, per-hour time after a release and
/// work lost, and of those: idle slots with no task queued, machines that
/// ended no task, machines bought back ([`Spending`]).
pub fn rows_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let money = |o: Option<&Outcome>| o.map_or("-".to_string(), |o| format!("{:.2}", o.cost));
    let met = |o: &Outcome| match (o.deadline_met, o.budget_met) {
        (Some(false), _) | (_, Some(false)) => "MISS",
        _ if !o.finished => "STUCK",
        _ => "ok",
    };
    out += &format!(
        "{:<52} {:>5} {:>9} {:>9} {:>5} {:>9} {:>9} {:>9}  {:>6} {:>6} {:>6} {:>6}  {:>6} {:>7} {:>5}\n",
        "scenario",
        "feas",
        "halley$",
        "oracle$",
        "met",
        "fixed$",
        "queue$",
        "queue",
        "boot$",
        "idle$",
        "hour$",
        "lost$",
        "tail$",
        "unused$",
        "rebuy"
    );
    for r in rows {
        let feasible = match r.feasible {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let spent = &r.spending;
        out += &format!(
            "{:<52} {:>5} {:>9.2} {:>9.2} {:>5} {:>9} {:>9} {:>9}  {:>6.2} {:>6.2} {:>6.2} {:>6.2}  {:>6.2} {:>7.2} {:>5}\n",
            r.name,
            feasible,
            r.halley.cost,
            r.oracle_cost,
            met(&r.halley),
            money(r.fixed.as_ref()),
            money(Some(&r.queue)),
            met(&r.queue),
            spent.boot,
            spent.idle,
            spent.unused_hour,
            spent.lost,
            spent.idle_tail,
            spent.unused_machines,
            spent.rebought,
        );
    }
    out
}
