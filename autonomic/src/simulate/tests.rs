//! Whole simulated runs: objectives met, determinism, speed, the oracle.

use super::*;
use crate::planner::Action;
use crate::simulate::oracle;

fn policy(head: &str) -> Policy {
    let classes = r#"
[[resources]]
name = "campus"
provider = "static"
count = 4

[[resources]]
name = "cloud.small"
provider = "local"
price_per_hour = 0.10
boot_time = "30s"
max = 40

[[resources]]
name = "cloud.large"
provider = "local"
price_per_hour = 0.40
boot_time = "45s"
slots = 4
max = 10
"#;
    Policy::parse("p.toml", &format!("{head}\n{classes}")).unwrap()
}

fn workload(tasks: u64) -> Workload {
    Workload::parse(
        "w.toml",
        &format!(
            "tasks = {tasks}\nduration = {{ dist = \"lognormal\", mean = \"30s\", cv = 0.5 }}\n[speed]\n\"cloud.large\" = 1.5\n"
        ),
    )
    .unwrap()
}

#[test]
fn a_deadline_is_met_by_scaling_out_and_everything_is_released() {
    let p = policy("[objective]\ndeadline = \"30m\"\n[scaling]\ntask_estimate = \"30s\"");
    let r = run(&p, &workload(2000), 1);
    assert!(r.finished);
    assert_eq!(r.deadline_met, Some(true), "makespan {}", r.makespan_s);
    assert_eq!(r.budget_met, None);
    assert!(r.peak_workers > 4, "{}", r.peak_workers);
    assert!(
        r.cost > 0.0 && r.cost >= r.oracle_cost,
        "{} vs {}",
        r.cost,
        r.oracle_cost
    );
    assert!(r.makespan_s >= r.oracle_makespan_s);
    assert!(
        r.decisions
            .iter()
            .any(|d| matches!(d.action, Action::Start { .. }))
    );
    let last = r.timeline.last().unwrap();
    assert_eq!(
        last.workers,
        vec![4, 0, 0],
        "paid machines released at the end"
    );
}

#[test]
fn a_budget_alone_is_honoured() {
    let p = policy("[objective]\nbudget = 0.5\n[scaling]\ntask_estimate = \"30s\"");
    let r = run(&p, &workload(2000), 2);
    assert!(r.finished);
    assert_eq!(r.budget_met, Some(true), "cost {}", r.cost);
    assert!(r.cost > 0.25, "the budget buys speed: {}", r.cost);
    assert_eq!(r.deadline_met, None);
}

#[test]
fn an_infeasible_pair_is_reported_and_the_budget_kept() {
    let p =
        policy("[objective]\ndeadline = \"20m\"\nbudget = 0.2\n[scaling]\ntask_estimate = \"30s\"");
    let r = run(&p, &workload(2000), 3);
    assert_eq!(r.deadline_met, Some(false));
    assert_eq!(r.budget_met, Some(true), "cost {}", r.cost);
    let first = &r.decisions[0];
    assert!(
        first
            .reason
            .starts_with("meeting the deadline 20m00s needs about $"),
        "{}",
        first.reason
    );
    assert_eq!(first.at, 0.0, "detected at the first step");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let p = policy("[objective]\ndeadline = \"30m\"");
    assert_eq!(run(&p, &workload(1000), 9), run(&p, &workload(1000), 9));
    assert_ne!(
        run(&p, &workload(1000), 9).makespan_s,
        run(&p, &workload(1000), 10).makespan_s
    );
}

/// Ten thousand tasks under a deadline (many machines, 1 h) and under a
/// small budget (few machines, 30 h of ticks) run to the end. How fast the
/// simulator is goes in a benchmark, not here: `simulate --sweep` prints
/// its wall time (about 10 s for 60 scenarios, BENCHMARKS.md).
#[test]
fn ten_thousand_tasks_simulate_to_the_end() {
    for head in [
        "[objective]\ndeadline = \"1h\"",
        "[objective]\nbudget = 2.0",
    ] {
        let p = policy(&format!("{head}\n[scaling]\ntask_estimate = \"30s\""));
        let r = run(&p, &workload(10_000), 4);
        assert!(r.finished, "{head}");
        assert_ne!(r.budget_met, Some(false), "{head}");
    }
}

#[test]
fn paid_classes_alone_without_an_estimate_learn_from_one_machine() {
    let p = Policy::parse(
        "p.toml",
        "[objective]\ndeadline = \"10m\"\n[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 1.0\nmax = 2\n\
         [[resources]]\nname = \"cloud.cheap\"\nprovider = \"local\"\nprice_per_hour = 0.5\nmax = 4\n",
    )
    .unwrap();
    let r = run(&p, &workload(40), 1);
    assert!(r.finished, "no hang");
    assert_eq!(r.deadline_met, Some(true), "makespan {}", r.makespan_s);
    assert_eq!(
        r.decisions[0].reason,
        "+1 cloud.cheap: no task duration known yet (no private machine, no scaling.task_estimate): \
         one machine of the cheapest class to learn it, then the plan"
    );
    assert_eq!(r.decisions[0].at, 0.0);
}

#[test]
fn a_budget_is_never_exceeded_with_long_variable_tasks() {
    // Tasks of 20 minutes on average, cv 1.5: a task started late would
    // carry the spend past the budget; it is stopped and run again instead.
    for billing in ["per-second", "per-hour"] {
        let p = Policy::parse(
            "p.toml",
            &format!(
                "[objective]\nbudget = 3.0\n[scaling]\ntask_estimate = \"20m\"\n\
                 [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
                 [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 0.5\n\
                 billing = \"{billing}\"\nboot_time = \"90s\"\nmax = 20\n"
            ),
        )
        .unwrap();
        let w = Workload::parse(
            "w.toml",
            "tasks = 300\nduration = { dist = \"lognormal\", mean = \"20m\", cv = 1.5 }\n",
        )
        .unwrap();
        let mut stopped = 0;
        for seed in 1..=5 {
            let r = run(&p, &w, seed);
            stopped += r.stopped_tasks;
            assert!(r.finished, "{billing} seed {seed}");
            assert!(
                r.cost <= 3.0 + 1e-9,
                "{billing} seed {seed}: spent {}",
                r.cost
            );
            assert!(
                r.cost > 2.0,
                "{billing} seed {seed}: the budget buys speed: {}",
                r.cost
            );
        }
        assert!(
            stopped > 0,
            "{billing}: some task was stopped rather than overspend"
        );
    }
}

#[test]
fn the_plot_draws_a_line_per_class() {
    let p = policy("[objective]\ndeadline = \"30m\"\n[scaling]\ntask_estimate = \"30s\"");
    let doc = svg(&run(&p, &workload(500), 1));
    assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
    assert_eq!(doc.matches("stroke-width=\"2\"").count(), 3);
    assert!(doc.contains(">cloud.small</text>"));
}

#[test]
fn per_hour_machines_are_billed_whole_hours_and_released_before_the_next() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/hybrid-hourly.toml");
    let p = Policy::load(&path).unwrap();
    let w = Workload::parse(
        "w",
        "tasks = 10000\nduration = { dist = \"lognormal\", mean = \"30s\", cv = 0.5 }\n",
    )
    .unwrap();
    let r = run(&p, &w, 5);
    assert_eq!(r.deadline_met, Some(true), "{}", r.makespan_s);
    let hours = r.cost / 0.5;
    assert!(
        hours >= 1.0 && (hours - hours.round()).abs() < 1e-9,
        "whole hours: {}",
        r.cost
    );
    let releases: Vec<&str> = r
        .decisions
        .iter()
        .filter(|d| matches!(&d.action, Action::Release { class, .. } if class == "cloud.hourly"))
        .map(|d| d.reason.as_str())
        .collect();
    assert!(!releases.is_empty());
    for reason in releases {
        // Before the next hour, or kept for one of the last tasks to the end.
        assert!(
            reason.contains("its paid hour ends in 1m00s") || reason.ends_with("the job is over"),
            "{reason}"
        );
    }
}

/// A small seeded grid: fast in a debug build.
const SMALL_GRID: &str = r#"
scenarios = 20
seed = 7
tasks = [100, 300]
dist = ["lognormal", "uniform", "fixed"]
mean = ["30s", "2m"]
max_work = "10h"
cv = [0.5, 1.0, 1.5]
private_slots = [0, 2, 4]
paid_classes = [1, 2]
price_per_hour = [0.10, 0.40]
slots = [1, 2]
max = [10, 20]
speed = [1.0, 2.0]
boot_time = ["0s", "90s", "180s"]
billing = ["per-second", "per-hour"]
objective = ["deadline", "deadline", "budget", "both"]
deadline_factor = [1.3, 2.0, 3.0]
budget_factor = [0.7, 1.5, 3.0]
task_estimate_factor = [0.0, 0.5, 1.0, 2.0]
"#;

/// Runs every scenario with the planner, the queue baseline and three
/// fixed fleets (every paid class at its max, at half of it, one machine
/// each), and checks the oracle is never above what a finished run paid.
fn the_oracle_is_below_every_run_of(grid: &sweep::Grid) {
    for s in grid.scenarios() {
        let paid: Vec<u32> = s
            .policy
            .resources
            .iter()
            .map(|r| if r.is_private() { 0 } else { r.limit() })
            .collect();
        let fleet = |f: fn(u32) -> u32| paid.iter().map(|&n| f(n)).collect::<Vec<u32>>();
        for control in [
            Control::Planner,
            Control::Queue,
            Control::Fixed(fleet(|n| n)),
            Control::Fixed(fleet(|n| n.div_ceil(2))),
            Control::Fixed(fleet(|n| n.min(1))),
        ] {
            let r = run_with(&s.policy, &s.workload, s.seed, &control);
            if r.finished {
                assert!(
                    r.oracle_cost <= r.cost + 1e-9,
                    "{} {control:?}: oracle ${} above ${}",
                    s.name,
                    r.oracle_cost,
                    r.cost
                );
                if r.budget_met != Some(false) {
                    assert!(r.oracle_makespan_s <= r.makespan_s + 1e-9, "{}", s.name);
                }
            }
        }
    }
}

#[test]
fn the_oracle_is_never_above_a_schedule_the_simulator_produces() {
    the_oracle_is_below_every_run_of(&sweep::Grid::parse("grid.toml", SMALL_GRID).unwrap());
    // Equal and near-equal tasks long against tight deadlines, where
    // whole tasks bound the packing (`oracle::Tasks::most_in`).
    the_oracle_is_below_every_run_of(
        &sweep::Grid::parse(
            "grid.toml",
            &SMALL_GRID
                .replace("seed = 7", "seed = 8")
                .replace(
                    "dist = [\"lognormal\", \"uniform\", \"fixed\"]",
                    "dist = [\"fixed\", \"uniform\"]",
                )
                .replace("mean = [\"30s\", \"2m\"]", "mean = [\"2m\", \"5m\"]")
                .replace(
                    "deadline_factor = [1.3, 2.0, 3.0]",
                    "deadline_factor = [0.9, 1.1, 1.3]",
                ),
        )
        .unwrap(),
    );
}

/// The repo's grids, every scenario: slow in a debug build, so run with
/// `cargo nextest run -p halley-autonomic --release --run-ignored all`.
#[test]
#[ignore]
fn the_oracle_is_never_above_a_schedule_on_the_repo_s_grids() {
    for file in ["../sweeps/grid.toml", "../sweeps/spot.toml"] {
        the_oracle_is_below_every_run_of(&sweep::Grid::load(std::path::Path::new(file)).unwrap());
    }
}

#[test]
fn the_spending_adds_up_to_the_cost() {
    let grid = sweep::Grid::parse("grid.toml", SMALL_GRID).unwrap();
    for s in grid.scenarios() {
        for control in [Control::Planner, Control::Queue] {
            let r = run_with(&s.policy, &s.workload, s.seed, &control);
            let spent = r.spending;
            assert!(
                (spent.total() - r.cost).abs() < 1e-6,
                "{} {control:?}: {spent:?} adds up to ${}, not ${}",
                s.name,
                spent.total(),
                r.cost
            );
            for part in [
                spent.work,
                spent.lost,
                spent.boot,
                spent.idle,
                spent.unused_hour,
            ] {
                assert!(part >= -1e-9, "{} {control:?}: {spent:?}", s.name);
            }
            assert!(
                spent.idle_tail <= spent.idle + 1e-9 && spent.unused_machines <= r.cost + 1e-9,
                "{} {control:?}: {spent:?}",
                s.name
            );
        }
    }
}

#[test]
fn the_oracle_bills_boots_and_whole_hours() {
    let p = Policy::parse(
        "p.toml",
        "[[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 3.6\nboot_time = \"100s\"\nmax = 10\n",
    )
    .unwrap();
    let w = workload(1);
    // 900 s of work by 1000 s: at least one machine, billed its boot too.
    assert!((oracle::least_cost(&p, &w, &seconds(900), 1000.0) - 1.0).abs() < 1e-9);
    let hourly = Policy::parse(
        "p.toml",
        "[[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 1.0\nbilling = \"per-hour\"\nmax = 10\n",
    )
    .unwrap();
    // 1800 s of work by 1800 s: one machine, a whole hour.
    assert!((oracle::least_cost(&hourly, &w, &seconds(1800), 1800.0) - 1.0).abs() < 1e-9);
    // 7200 s of work by 1800 s: four machines, four hours.
    assert!((oracle::least_cost(&hourly, &w, &seconds(7200), 1800.0) - 4.0).abs() < 1e-9);
}

#[test]
fn the_oracle_buys_per_hour_machines_whole() {
    let hourly = Policy::parse(
        "p.toml",
        "[[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 1.0\nbilling = \"per-hour\"\nmax = 10\n\
         [[resources]]\nname = \"b\"\nprovider = \"local\"\nprice_per_hour = 3.6\nmax = 10\n",
    )
    .unwrap();
    let w = workload(1);
    // 600 s of work by 1800 s: the fluid bound pays a third of an hour of
    // `a`; a whole machine of `a` ($1) costs more than 600 s of `b` ($0.60).
    assert!((oracle::fluid_cost(&hourly, &w, 600.0, 1800.0) - 1.0 / 3.0).abs() < 1e-9);
    assert!((oracle::least_cost(&hourly, &w, &seconds(600), 1800.0) - 0.6).abs() < 1e-9);
    // 2000 s by 1800 s: one machine of `a` and 200 s of `b`.
    assert!((oracle::least_cost(&hourly, &w, &seconds(2000), 1800.0) - 1.2).abs() < 1e-9);
    // 5400 s by 2 h: 1.5 machine-hours of `a` cannot be bought, 2 can; or
    // one hour and 1800 s of `b` at $1.80: two hours.
    assert!((oracle::least_cost(&hourly, &w, &seconds(5400), 7200.0) - 2.0).abs() < 1e-9);
}

/// `n` tasks of one second: work that divides (almost) freely.
fn seconds(n: usize) -> oracle::Tasks {
    oracle::Tasks::new(&vec![1.0; n])
}

#[test]
fn a_slot_ends_whole_tasks() {
    let t = oracle::Tasks::new(&[30.0, 10.0, 40.0, 20.0]);
    assert_eq!(t.work(), 100.0);
    assert_eq!(t.most_in(5.0), 0.0);
    // One task fits at a time below 30: the longest that fits.
    assert_eq!(t.most_in(25.0), 20.0);
    // Two fit (10 + 20), at most the two longest that fit (20 + 30), at
    // most the capacity.
    assert_eq!(t.most_in(35.0), 35.0);
    assert_eq!(t.most_in(55.0), 55.0);
    assert_eq!(t.most_in(100.0), 100.0);
    assert_eq!(t.most_in(1000.0), 100.0);
    // Equal tasks: exact.
    let equal = oracle::Tasks::new(&[300.0; 10]);
    assert_eq!(equal.most_in(577.0), 300.0);
    assert_eq!(equal.most_in(600.0), 600.0);
}

#[test]
fn the_oracle_packs_whole_tasks() {
    let w = workload(1);
    let tasks = oracle::Tasks::new(&[300.0; 10]);
    // 10 tasks of 300 s by 650 s on a per-second class at $0.001/s with a
    // 100 s boot: a machine works 550 s, which fits one task, not 1.83 —
    // 10 machines of 400 s billed, $4.00 (the fluid bound: $3.55).
    let per_second = Policy::parse(
        "p.toml",
        "[[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 3.6\nboot_time = \"100s\"\nmax = 10\n",
    )
    .unwrap();
    assert!(
        (oracle::fluid_cost(&per_second, &w, 3000.0, 650.0) - 3000.0 * 0.001 * 650.0 / 550.0).abs()
            < 1e-9
    );
    assert!((oracle::least_cost(&per_second, &w, &tasks, 650.0) - 4.0).abs() < 1e-9);
    // By 700 s a machine fits two: five machines of 700 s, $3.50.
    assert!((oracle::least_cost(&per_second, &w, &tasks, 700.0) - 3.5).abs() < 1e-9);
    // A per-hour class of 2 slots at $1 an hour: by 450 s each slot fits
    // one task, so five machines ($5), not the four that 900 s of work a
    // machine would need.
    let hourly = Policy::parse(
        "p.toml",
        "[[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 1.0\nslots = 2\nbilling = \"per-hour\"\nmax = 10\n",
    )
    .unwrap();
    assert!((oracle::least_cost(&hourly, &w, &seconds(3000), 450.0) - 4.0).abs() < 1e-9);
    assert!((oracle::least_cost(&hourly, &w, &tasks, 450.0) - 5.0).abs() < 1e-9);
}

#[test]
fn a_small_sweep_keeps_every_budget_and_meets_the_feasible_deadlines() {
    let grid = sweep::Grid::parse("grid.toml", SMALL_GRID).unwrap();
    let rows = sweep::sweep(&grid.scenarios());
    let summary = sweep::Summary::of(&rows);
    let (kept, budgeted) = summary.budgets;
    assert!(budgeted > 0);
    assert_eq!(kept, budgeted, "{}", summary.table());
    let (met, feasible) = summary.deadlines[0];
    assert!(
        feasible >= 4,
        "{}\n{}",
        sweep::rows_table(&rows),
        summary.table()
    );
    assert!(
        f64::from(met) >= 0.85 * f64::from(feasible),
        "{}\n{}",
        sweep::rows_table(&rows),
        summary.table()
    );
}

#[test]
fn preempted_machines_lose_their_tasks_to_a_new_attempt_and_are_replaced() {
    // Spot machines at a quarter of the price, taken back after 10 minutes
    // on average: the deadline is planned on them, each one taken back is
    // a decision, its tasks run again, and every task finishes.
    let p = Policy::parse(
        "p.toml",
        "[objective]\ndeadline = \"30m\"\n[scaling]\ntask_estimate = \"30s\"\n\
         [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 4\n\
         [[resources]]\nname = \"cloud.small\"\nprovider = \"local\"\nprice_per_hour = 0.10\nboot_time = \"30s\"\nmax = 40\n\
         [[resources]]\nname = \"spot\"\nprovider = \"local\"\nprice_per_hour = 0.025\nboot_time = \"30s\"\nmax = 40\n\
         preemptible = true\nmean_time_to_preemption = \"10m\"\n",
    )
    .unwrap();
    let w = workload(2000);
    let r = run(&p, &w, 1);
    assert!(r.finished);
    assert_eq!(r.deadline_met, Some(true), "makespan {}", r.makespan_s);
    let lost = r
        .decisions
        .iter()
        .filter(|d| d.reason.contains("lost: preempted by the provider"))
        .count() as u64;
    assert!(r.preemptions > 0);
    assert_eq!(lost, r.preemptions, "each machine taken back is a decision");
    assert!(
        r.stopped_tasks > 0,
        "tasks lost with their machine run again"
    );
    let spot_started: u32 = r
        .decisions
        .iter()
        .filter_map(|d| match &d.action {
            Action::Start { class, count } if class == "spot" => Some(*count),
            _ => None,
        })
        .sum();
    assert!(
        u64::from(spot_started) > r.preemptions,
        "spot machines are preferred and replaced: {spot_started} started"
    );
    assert_eq!(run(&p, &w, 1), r, "preemptions are seeded");
    assert!(r.cost >= r.oracle_cost);
}

#[test]
fn a_grid_may_draw_preemptible_classes_and_without_the_key_draws_as_before() {
    let plain = sweep::Grid::parse("grid.toml", SMALL_GRID).unwrap();
    let spot = format!("{SMALL_GRID}preemptible = [\"0s\", \"30m\"]\n");
    let spot = sweep::Grid::parse("grid.toml", &spot).unwrap();
    let names =
        |g: &sweep::Grid| -> Vec<String> { g.scenarios().into_iter().map(|s| s.name).collect() };
    assert_eq!(
        names(&plain)[0],
        "s00 100 lognormal 30s cv0.5 priv2 paid2 budget"
    );
    assert!(
        plain
            .scenarios()
            .iter()
            .all(|s| s.policy.resources.iter().all(|r| !r.preemptible))
    );
    let drawn: Vec<sweep::Scenario> = spot.scenarios();
    let preemptible = drawn
        .iter()
        .filter(|s| s.policy.resources.iter().any(|r| r.preemptible))
        .count();
    assert!(
        preemptible > 0 && preemptible < drawn.len(),
        "{preemptible}"
    );
    assert!(
        drawn
            .iter()
            .all(|s| s.name.contains(" spot") == s.policy.resources.iter().any(|r| r.preemptible))
    );
    let bad = format!("{SMALL_GRID}preemptible = [\"soon\"]\n");
    let message = sweep::Grid::parse("grid.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("preemptible: expected a duration like \"30m\" (\"0s\": not preemptible), found \"soon\""),
        "{message}"
    );
}

#[test]
fn a_forecast_gives_the_spread_of_seeded_runs() {
    let p = policy("[objective]\ndeadline = \"20m\"\n[scaling]\ntask_estimate = \"30s\"");
    let w = Workload::parse(
        "w.toml",
        "tasks = 300\nduration = { dist = \"lognormal\", mean = \"30s\", cv = 1.0 }\n",
    )
    .unwrap();
    let f = forecast(&p, &w, 7, 9);
    assert_eq!((f.runs, f.first_seed, f.finished), (9, 7, 9));
    // The 9 runs one by one: p10, p50 and p90 are the 1st, 5th and 9th.
    let mut costs: Vec<f64> = (7..16).map(|seed| run(&p, &w, seed).cost).collect();
    let mut finishes: Vec<Secs> = (7..16).map(|seed| run(&p, &w, seed).makespan_s).collect();
    costs.sort_by(f64::total_cmp);
    finishes.sort_by(f64::total_cmp);
    assert_eq!(f.cost, [costs[0], costs[4], costs[8]]);
    assert_eq!(f.finish, [finishes[0], finishes[4], finishes[8]]);
    assert!(
        costs[0] < costs[8],
        "the seeds draw different jobs: {costs:?}"
    );
    let met = (7..16)
        .filter(|&seed| run(&p, &w, seed).deadline_met == Some(true))
        .count() as u32;
    assert_eq!(f.deadline_met, Some(met));
    assert_eq!(f.budget_kept, None, "no budget");
    assert_eq!(
        forecast(&p, &w, 7, 9),
        f,
        "the same seeds, the same forecast"
    );
    assert_eq!(forecast(&p, &w, 7, 0).runs, 1, "at least one run");
}

#[test]
fn the_fixed_baseline_is_the_cheapest_fleet_not_the_fewest_machines() {
    // 100 tasks of 2 minutes by 1h34m on a $1/h class billed by the hour:
    // 3 machines (the fewest that meet it) run 34 tasks each, 1h08m, two
    // hours each: $6; 4 machines end in 50 minutes, one hour each: $4.
    let p = Policy::parse(
        "p.toml",
        "[objective]\ndeadline = \"94m\"\n[scaling]\ntask_estimate = \"2m\"\n\
         [[resources]]\nname = \"a\"\nprovider = \"local\"\nprice_per_hour = 1.0\nbilling = \"per-hour\"\nmax = 20\n",
    )
    .unwrap();
    let w = Workload::parse(
        "w.toml",
        "tasks = 100\nduration = { dist = \"fixed\", mean = \"2m\" }\n",
    )
    .unwrap();
    let three = run_with(&p, &w, 1, &Control::Fixed(vec![3]));
    assert_eq!(three.deadline_met, Some(true));
    assert!((three.cost - 6.0).abs() < 1e-9, "{}", three.cost);
    assert_eq!(
        run_with(&p, &w, 1, &Control::Fixed(vec![2])).deadline_met,
        Some(false)
    );
    let (counts, best) = fixed_search(&p, &w, 1).unwrap();
    assert_eq!(counts, vec![4]);
    assert!((best.cost - 4.0).abs() < 1e-9, "{}", best.cost);
}

#[test]
fn a_grid_of_too_many_scenarios_is_refused_with_its_range() {
    for n in ["0", "4000000000"] {
        let grid = SMALL_GRID.replacen("scenarios = ", &format!("scenarios = {n}\n# was "), 1);
        let message = sweep::Grid::parse("grid.toml", &grid)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("scenarios: expected 1 to 10000 scenarios"),
            "{n}: {message}"
        );
    }
}
