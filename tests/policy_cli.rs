//! `halley policy check` and `halley simulate` as users run them.

mod run_util;

use std::path::Path;
use std::process::{Command, Output};

use run_util::Scratch;

fn halley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("halley runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn policy_check_accepts_every_example() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = halley(&["policy", "check", path.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }
    }
}

#[test]
fn policy_check_names_line_and_field_and_exits_2() {
    let tmp = Scratch::new("policy-cli-policy_check_names_line_and_field_and_exits_2");
    let path = tmp.write(
        "weekly.toml",
        "[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nmax = 2\nbilling = \"weekly\"\n",
    );
    let out = halley(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("weekly.toml:5:11: resources[0].billing: expected \"per-second\" or \"per-hour\", found \"weekly\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn policy_check_warns_of_a_policy_with_no_way_to_learn_a_duration() {
    let tmp =
        Scratch::new("policy-cli-policy_check_warns_of_a_policy_with_no_way_to_learn_a_duration");
    let paid = "[objective]\ndeadline = \"1h\"\n[[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 1.0\nmax = 4\n";
    let path = tmp.write("paid-only.toml", paid);
    let out = halley(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "ok\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "warning: {}: no private class and no scaling.task_estimate",
            path.display()
        )),
        "{stderr}"
    );
    let path = tmp.write(
        "paid-with-prior.toml",
        &paid.replace(
            "[[resources]]",
            "[scaling]\ntask_estimate = \"30s\"\n[[resources]]",
        ),
    );
    let out = halley(&["policy", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "", "a prior: nothing to warn of");
}

#[test]
fn policy_check_of_a_missing_file_exits_2() {
    let out = halley(&["policy", "check", "no/such/policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/policy.toml"));
}

const WORKLOAD: &str =
    "tasks = 2000\nduration = { dist = \"lognormal\", mean = \"30s\", cv = 0.5 }\n";

#[test]
fn simulate_json_has_the_contract_fields_and_is_seeded() {
    let tmp = Scratch::new("policy-cli-simulate_json_has_the_contract_fields_and_is_seeded");
    let workload = tmp.write("w.toml", WORKLOAD);
    let args = [
        "simulate",
        "--policy",
        "policies/deadline.toml",
        "--workload",
        workload.to_str().unwrap(),
        "--seed",
        "7",
        "--json",
    ];
    let out = halley(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "makespan_s",
        "cost",
        "peak_workers",
        "oracle_cost",
        "oracle_makespan_s",
    ] {
        assert!(json[field].is_number(), "{field}: {json}");
    }
    assert_eq!(json["deadline_met"], true);
    assert!(json["budget_met"].is_null());
    assert!(
        json["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with('+')
    );
    assert_eq!(halley(&args).stdout, out.stdout, "same seed, same run");
}

#[test]
fn simulate_prints_a_table_and_draws_a_plot() {
    let tmp = Scratch::new("policy-cli-simulate_prints_a_table_and_draws_a_plot");
    let workload = tmp.write("w2.toml", WORKLOAD);
    let plot = workload.with_file_name("run.svg");
    let out = halley(&[
        "simulate",
        "--policy",
        "policies/deadline-budget.toml",
        "--workload",
        workload.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("makespan ") && stdout.contains("oracle"),
        "{stdout}"
    );
    assert!(stdout.contains("budget         $1.00"), "{stdout}");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}

#[test]
fn simulate_names_a_bad_workload_line_and_exits_2() {
    let tmp = Scratch::new("policy-cli-simulate_names_a_bad_workload_line_and_exits_2");
    let workload = tmp.write(
        "bad.toml",
        "tasks = 10\nduration = { dist = \"fixed\", mean = \"1s\" }\n[speed]\n\"cloud.huge\" = 2.0\n",
    );
    let out = halley(&[
        "simulate",
        "--policy",
        "policies/deadline.toml",
        "--workload",
        workload.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("bad.toml:4:1: speed.\"cloud.huge\": no class \"cloud.huge\" in the policy"),
        "{stderr}"
    );
}

/// The autonomic acceptance scenario, simulated: 60 tasks of 2 s on one
/// private slot, a 40 s deadline, up to 6 paid machines.
#[test]
fn simulate_exits_1_when_the_budget_forbids_meeting_the_deadline() {
    let tmp =
        Scratch::new("policy-cli-simulate_exits_1_when_the_budget_forbids_meeting_the_deadline");
    let policy = "[objective]\ndeadline = \"40s\"\n[scaling]\ninterval = \"1s\"\n\
                  [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
                  [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\nboot_time = \"2s\"\nmax = 6\n";
    let workload = tmp.write(
        "sleep2.toml",
        "tasks = 60\nduration = { dist = \"fixed\", mean = \"2s\" }\n",
    );
    let run = |name: &str, policy: &str| {
        let path = tmp.write(name, policy);
        let out = halley(&[
            "simulate",
            "--policy",
            path.to_str().unwrap(),
            "--workload",
            workload.to_str().unwrap(),
            "--json",
        ]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), json)
    };
    let (code, json) = run("met.toml", policy);
    assert_eq!(
        (code, &json["deadline_met"]),
        (Some(0), &serde_json::Value::Bool(true)),
        "{json}"
    );
    assert!(json["peak_workers"].as_u64().unwrap() > 1);
    let (code, json) = run(
        "broke.toml",
        &policy.replace("deadline = \"40s\"", "deadline = \"40s\"\nbudget = 0.05"),
    );
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["deadline_met"], false);
    assert_eq!(json["budget_met"], true);
    assert!(json["cost"].as_f64().unwrap() <= 0.05);
}

#[test]
fn simulate_baselines_run_the_same_world_without_the_planner() {
    let tmp = Scratch::new("policy-cli-simulate_baselines_run_the_same_world_without_the_planner");
    let workload = tmp.write(
        "wang-w.toml",
        "tasks = 200\nduration = { dist = \"lognormal\", mean = \"120s\", cv = 0.8 }\n",
    );
    let json = |baseline: &str| {
        let out = halley(&[
            "simulate",
            "--policy",
            "sweeps/wang2016.toml",
            "--workload",
            workload.to_str().unwrap(),
            "--baseline",
            baseline,
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_str::<serde_json::Value>(&text(&out.stdout)).unwrap()
    };
    let queue = json("queue");
    assert!(
        queue["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .ends_with(": queued tasks per slot > 1")
    );
    let fixed = json("fixed");
    assert_eq!(fixed["deadline_met"], true);
    assert!(fixed["oracle_cost"].as_f64().unwrap() <= fixed["cost"].as_f64().unwrap());
}

#[test]
fn simulate_sweep_prints_the_promise_table_and_names_a_bad_grid_field() {
    let tmp = Scratch::new(
        "policy-cli-simulate_sweep_prints_the_promise_table_and_names_a_bad_grid_field",
    );
    let grid =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/grid.toml"))
            .unwrap()
            .replace("scenarios = 60", "scenarios = 3")
            .replace("max_work = \"60h\"", "max_work = \"2h\"");
    let path = tmp.write("grid.toml", &grid);
    let out = halley(&["simulate", "--sweep", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "feasible deadlines met",
        "budgets kept",
        "cost / oracle",
        "cheaper than queue",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("s0")).count(),
        3,
        "{stdout}"
    );
    // One scenario alone: its name, then its report and decisions.
    let first = stdout.lines().find(|l| l.starts_with("s00")).unwrap();
    let out = halley(&[
        "simulate",
        "--sweep",
        path.to_str().unwrap(),
        "--scenario",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let alone = text(&out.stdout);
    let name = first.split("  ").next().unwrap().trim();
    assert!(alone.starts_with(name), "{name:?}\n{alone}");
    assert!(alone.contains("\ndecisions "), "{alone}");
    // It prints its policy and workload files: run from them, they give the
    // same report.
    let (report, files) = alone
        .split_once("\n# its policy file (--policy)\n")
        .unwrap();
    let (policy, workload) = files.split_once("\n# its workload file").unwrap();
    let (seed_line, workload) = workload.split_once('\n').unwrap();
    let seed = seed_line
        .split("--seed ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .unwrap();
    let policy = tmp.write("s00-policy.toml", policy);
    let workload = tmp.write("s00-workload.toml", workload);
    let out = halley(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--workload",
        workload.to_str().unwrap(),
        "--seed",
        seed,
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let again = text(&out.stdout);
    let cost = |r: &str| {
        r.lines()
            .find(|l| l.starts_with("cost "))
            .map(str::to_string)
    };
    assert!(cost(report).is_some(), "{report}");
    assert_eq!(cost(report), cost(&again), "{report}\n---\n{again}");
    assert_eq!(report.lines().count(), again.lines().count() + 1, "{again}");
    let out = halley(&[
        "simulate",
        "--sweep",
        path.to_str().unwrap(),
        "--scenario",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--scenario 3: the grid has 3 scenarios (0 to 2)"),
        "{}",
        text(&out.stderr)
    );
    let bad = tmp.write(
        "bad-grid.toml",
        &grid.replace("objective = [", "objective = [\"speed\", "),
    );
    let out = halley(&["simulate", "--sweep", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad-grid.toml:") && stderr.contains("objective: expected \"deadline\""),
        "{stderr}"
    );
}

#[test]
fn policy_check_with_a_workload_forecasts_cost_and_finish() {
    let (policy, workload) = ("policies/deadline.toml", "policies/workloads/2k-30s.toml");
    let out = halley(&[
        "policy",
        "check",
        policy,
        "--workload",
        workload,
        "--runs",
        "3",
        "--seed",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "ok");
    assert_eq!(lines[1], "forecast over 3 simulated runs (seeds 5 to 7):");
    // The same runs one by one: p10, p50, p90 of 3 are the least, the
    // middle and the most.
    let mut costs: Vec<f64> = (5..=7)
        .map(|seed| {
            let seed = seed.to_string();
            let run = halley(&[
                "simulate",
                "--policy",
                policy,
                "--workload",
                workload,
                "--seed",
                &seed,
                "--json",
            ]);
            let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
            report["cost"].as_f64().unwrap()
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    assert_eq!(
        lines[2],
        format!(
            "  cost      p10 ${:.2}  p50 ${:.2}  p90 ${:.2}",
            costs[0], costs[1], costs[2]
        )
    );
    assert!(lines[3].starts_with("  finish    p10 "), "{stdout}");
    assert_eq!(lines[4], "  finished  3/3 runs");
    assert!(lines[5].starts_with("  deadline  met in "), "{stdout}");

    let out = halley(&[
        "policy",
        "check",
        policy,
        "--workload",
        workload,
        "--runs",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "no run is no forecast");
    assert!(
        text(&out.stderr).contains("--runs"),
        "{}",
        text(&out.stderr)
    );
}
