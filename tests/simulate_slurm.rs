//! `halley policy check` and `halley simulate` with `slurm` classes: the
//! worked example checks; a queue wait drawn from the workload's
//! `[queue_wait]` decides whether the cluster alone meets the deadline or
//! paid machines must, and a decision says so; a queue wait for a class
//! that is not `slurm` is refused with its line.

mod run_util;

use std::process::{Command, Output};

use run_util::Scratch;
use serde_json::Value;

fn halley(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_halley"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("halley runs")
}

/// 100 one-minute tasks, a 30 m deadline: four free cluster jobs make it
/// in 27 m if they start within a minute.
const POLICY: &str = "[objective]\ndeadline = \"30m\"\n[scaling]\ntask_estimate = \"1m\"\n\
    [[resources]]\nname = \"cluster\"\nprovider = \"slurm\"\nmax = 4\nboot_time = \"1m\"\n\
    [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 3.6\nboot_time = \"1m\"\nmax = 10\n";

fn simulate(dir: &Scratch, wait: &str) -> Value {
    let policy = dir.write("policy.toml", POLICY);
    let workload = dir.write(
        &format!("{wait}.toml"),
        &format!(
            "tasks = 100\nduration = {{ dist = \"fixed\", mean = \"1m\" }}\n\
             [queue_wait]\n\"cluster\" = {{ dist = \"fixed\", mean = \"{wait}\" }}\n"
        ),
    );
    let out = halley(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--workload",
        workload.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_worked_example_checks_and_simulates() {
    let out = halley(&["policy", "check", "examples/slurm/hybrid.toml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = halley(&[
        "simulate",
        "--policy",
        "examples/slurm/hybrid.toml",
        "--workload",
        "examples/slurm/queue.toml",
        "--json",
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["finished"], true, "{report}");
}

#[test]
fn a_short_queue_is_free_and_a_long_one_buys_paid_machines_saying_why() {
    let dir = Scratch::new("simulate-slurm");
    let fast = simulate(&dir, "1m");
    assert_eq!(
        (fast["deadline_met"].clone(), fast["cost"].as_f64()),
        (Value::Bool(true), Some(0.0))
    );
    let slow = simulate(&dir, "20m");
    assert_eq!(slow["deadline_met"], true, "{slow}");
    assert!(slow["cost"].as_f64().unwrap() > 0.0, "{slow}");
    let reasons: Vec<&str> = slow["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    // The free cluster first, the paid class only once its queue is seen
    // to be too slow.
    assert!(reasons[0].contains(" cluster: "), "{reasons:?}");
    let first_cloud = reasons.iter().position(|r| r.contains(" cloud: "));
    let why = reasons
        .iter()
        .position(|r| r.starts_with("cluster: 4 machine(s) still queued after "))
        .unwrap_or_else(|| panic!("{reasons:?}"));
    assert!(reasons[why + 1].contains(" cloud: "), "{reasons:?}");
    assert_eq!(first_cloud, Some(why + 1), "{reasons:?}");
}

#[test]
fn a_queue_wait_for_a_class_that_is_not_slurm_is_refused() {
    let dir = Scratch::new("simulate-slurm-bad");
    let policy = dir.write("policy.toml", POLICY);
    let workload = dir.write(
        "w.toml",
        "tasks = 1\nduration = { dist = \"fixed\", mean = \"1m\" }\n[queue_wait]\n\
         \"cloud\" = { dist = \"fixed\", mean = \"1m\" }\n",
    );
    let out = halley(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--workload",
        workload.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("w.toml:4:1: queue_wait.\"cloud\": no slurm class \"cloud\" in the policy; expected one of [\"cluster\"]"),
        "{stderr}"
    );
}
