//! Issue 10's promise in real runs: `halley run` with `local` paid
//! classes meets a deadline when task times vary widely (`sleep` lines
//! drawn from a lognormal, cv 1.2), and never spends past its budget,
//! shown from `summary.json` (Σ billed time × price ≤ budget).

mod common;
mod run_util;

use std::time::Duration;

use run_util::{Scratch, assert_billed, assert_none_left, job, run_marked, summary};
use serde_json::Value;

/// $3.60 an hour: $0.001 a second.
const PRICE_PER_SECOND: f64 = 0.001;

fn policy(objective: &str) -> String {
    format!(
        "[objective]\n{objective}\n\
         [scaling]\ninterval = \"1s\"\ntask_estimate = \"1s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
         boot_time = \"1s\"\nmax = 8\n"
    )
}

/// `sleep` lines of lognormal durations with mean `mean` seconds and
/// coefficient of variation `cv`, from a fixed seed (xorshift, Box–Muller).
fn lognormal_sleeps(count: usize, mean: f64, cv: f64) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let sigma2 = (1.0 + cv * cv).ln();
    let mu = mean.ln() - sigma2 / 2.0;
    (0..count)
        .map(|_| {
            let (u1, u2) = (1.0 - uniform(), uniform());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            format!("sleep {:.2}\n", (mu + sigma2.sqrt() * z).exp())
        })
        .collect()
}

fn run(name: &str, tasks: &str, policy: &str) -> (i32, Value, String) {
    let dir = Scratch::new(name);
    let marker = format!("{name}-{}", std::process::id());
    let tasks = dir.write("tasks.txt", tasks);
    let policy = dir.write("policy.toml", policy);
    let out = dir.path("out");
    let mut command = job("run", &tasks, &policy, &out);
    let code = run_marked(&mut command, &dir, &marker, Duration::from_secs(180));
    (code, summary(&out), marker)
}

/// Every task appears once, and ran to exit 0.
fn every_task_once(summary: &Value, count: usize) {
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), count, "{summary}");
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task["id"], i as u64);
        assert_eq!(task["exit_code"], 0, "{task}");
    }
}

#[test]
fn a_deadline_is_met_when_task_times_vary_widely() {
    let tasks = lognormal_sleeps(40, 1.0, 1.2);
    let (code, summary, marker) = run("promise-cv", &tasks, &policy("deadline = \"30s\""));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true, "{summary}");
    every_task_once(&summary, 40);
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    assert_none_left(&marker);
}

#[test]
fn a_budget_is_never_spent_past() {
    let budget = 0.02;
    let (code, summary, marker) = run(
        "promise-budget",
        &"sleep 2\n".repeat(24),
        &policy(&format!("budget = {budget}")),
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["budget_met"], true, "{summary}");
    every_task_once(&summary, 24);
    // Σ billed time × price from the machines' own intervals.
    let billed: f64 = summary["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["class"] == "paid")
        .map(|m| {
            (m["released_at"].as_f64().unwrap() - m["requested_at"].as_f64().unwrap())
                * PRICE_PER_SECOND
        })
        .sum();
    assert!(billed > 0.0, "the budget bought machines: {summary}");
    assert!(
        billed <= budget + 1e-9,
        "billed ${billed} > ${budget}: {summary}"
    );
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    assert_none_left(&marker);
}
