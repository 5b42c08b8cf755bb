//! `halley run` under the autonomic manager, with real worker processes: the
//! acceptance scenario of the autonomic issue (60 tasks of `sleep 2`, one
//! private slot, a 40 s deadline, up to 6 paid local machines), the same
//! with a budget too small for the deadline, machines a pessimistic prior
//! bought drained once tasks finish, and the `command` provider with
//! scripts that start and stop real local workers.
//!
//! Every process of a test carries a marker in its environment (inherited
//! from `halley run`), so the test can check that none is left.

mod common;
mod run_util;

use std::process::Stdio;
use std::time::Duration;

use run_util::{
    Guard, Scratch, assert_billed, assert_none_left, command_policy, halley, run_marked, summary,
};
use serde_json::Value;

/// $3.60 an hour: $0.001 a second.
const PRICE_PER_SECOND: f64 = 0.001;

/// The acceptance policy; `extra` goes into `[objective]`.
fn policy(extra: &str) -> String {
    format!(
        "[objective]\ndeadline = \"40s\"\n{extra}\n\
         [scaling]\ninterval = \"1s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
         boot_time = \"1s\"\nmax = 6\n"
    )
}

/// Runs `halley run` on `tasks` lines under `policy` in `dir`, with
/// `marker` and `env` in its environment and `args` after the tasks file;
/// returns its exit code and summary.
fn run(
    dir: &Scratch,
    marker: &str,
    tasks: &str,
    policy: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, Value) {
    let tasks = dir.write("tasks.txt", tasks);
    let policy = dir.write("policy.toml", policy);
    let out = dir.path("out");
    let mut command = halley();
    command
        .arg("run")
        .arg(&tasks)
        .args(args)
        .arg("--policy")
        .arg(&policy)
        .arg("--out")
        .arg(&out)
        .envs(env.iter().copied());
    let code = run_marked(&mut command, dir, marker, Duration::from_secs(180));
    (code, summary(&out))
}

/// Every task once, in order; returns the tasks that ran on `class`.
fn ran_on(summary: &Value, count: usize, class: &str) -> usize {
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), count);
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task["id"], i as u64);
        assert_eq!(task["exit_code"], 0);
    }
    tasks.iter().filter(|t| t["resource"] == class).count()
}

fn sleeps(count: usize, secs: u32) -> String {
    format!("sleep {secs}\n").repeat(count)
}

#[test]
fn paid_machines_meet_the_deadline_and_are_released() {
    let dir = Scratch::new("auto-deadline");
    let marker = format!("deadline-{}", std::process::id());
    let (code, summary) = run(&dir, &marker, &sleeps(60, 2), &policy(""), &[], &[]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true);
    assert!(summary["budget_met"].is_null());
    assert!(summary["makespan_s"].as_f64().unwrap() <= 40.0);
    let paid = ran_on(&summary, 60, "paid");
    assert!(paid > 0, "no task ran on the paid class");
    assert_eq!(paid + ran_on(&summary, 60, "private"), 60);
    assert!(summary["cost"].as_f64().unwrap() > 0.0);
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    assert_none_left(&marker);
}

#[test]
fn a_budget_too_small_is_honoured_and_the_missed_deadline_exits_1() {
    let dir = Scratch::new("auto-budget");
    let marker = format!("budget-{}", std::process::id());
    let (code, summary) = run(
        &dir,
        &marker,
        &sleeps(60, 2),
        &policy("budget = 0.06"),
        &[],
        &[],
    );
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["deadline_met"], false);
    assert_eq!(summary["budget_met"], true);
    assert!(summary["cost"].as_f64().unwrap() <= 0.06, "{summary}");
    assert!(summary["makespan_s"].as_f64().unwrap() > 40.0);
    ran_on(&summary, 60, "paid");
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    let reasons: Vec<&str> = summary["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("the budget is $0.06")),
        "the infeasible objective is reported: {reasons:?}"
    );
    // The budget ran out mid-job: the paid machine was released while busy
    // and drained, finishing its task (no task ran twice).
    let makespan = summary["makespan_s"].as_f64().unwrap();
    assert!(
        summary["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["action"] == "release" && d["at"].as_f64().unwrap() < makespan),
        "{reasons:?}"
    );
    for task in summary["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 1, "{task}");
    }
    assert_none_left(&marker);
}

#[test]
fn command_scripts_start_and_stop_real_workers() {
    let dir = Scratch::new("auto-command");
    let marker = format!("command-{}", std::process::id());
    let log = dir.path("scripts.log");
    let policy = command_policy("20s", 3, "start-worker.sh");
    let (code, summary) = run(
        &dir,
        &marker,
        &sleeps(30, 1),
        &policy,
        &[
            ("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley")),
            ("HALLEY_TEST_LOG", log.to_str().unwrap()),
        ],
        &[],
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true);
    let lab = ran_on(&summary, 30, "lab");
    assert!(lab > 0, "no task ran on the command class");
    assert_billed(&summary, "lab", 0.01);
    // Every worker a start script started was stopped by the stop script,
    // with the id the start script printed.
    let lines = std::fs::read_to_string(&log).unwrap();
    let started: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let mut stopped: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.strip_prefix("stop "))
        .collect();
    let mut expected = started.clone();
    expected.sort();
    stopped.sort();
    assert!(!started.is_empty());
    assert_eq!(stopped, expected, "{lines}");
    // Their workers reported the machine ids the manager gave them.
    let machines: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    for task in summary["tasks"].as_array().unwrap() {
        if task["resource"] == "lab" {
            assert!(
                machines.contains(&task["worker"].as_str().unwrap()),
                "{task}"
            );
        }
    }
    assert_none_left(&marker);
}

#[test]
fn an_invalid_policy_exits_2_naming_the_file_and_field() {
    let dir = Scratch::new("auto-bad-policy");
    let tasks = dir.write("tasks.txt", "true\n");
    let policy = dir.write("bad.toml", "[scaling]\nintervall = \"1s\"\n");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--policy")
            .arg(&policy)
            .arg("--out")
            .arg(dir.path("out")),
    )
    .wait(Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("intervall"),
        "{stderr}"
    );
    assert!(!dir.path("out").exists(), "nothing ran");
}

/// With `--peer`, the static workers exist already: a worker that reports a
/// static class stands for one of its machines, heard from all along, never
/// dropped after the heartbeat timeout.
#[test]
fn existing_workers_stand_for_the_static_machines() {
    let dir = Scratch::new("auto-peer");
    let node = common::Node::start();
    let _worker = common::Proc::spawn(
        common::halley()
            .args(["worker", "--peer", &node.addr, "--resource", "campus"])
            .args(["--id", "lab-pc"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let policy = "[scaling]\ninterval = \"1s\"\nheartbeat_timeout = \"2s\"\n\
                  [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\n";
    let marker = format!("peer-{}", std::process::id());
    let (code, summary) = run(
        &dir,
        &marker,
        &sleeps(4, 1),
        policy,
        &[],
        &["--peer", &node.addr],
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(ran_on(&summary, 4, "campus"), 4);
    for task in summary["tasks"].as_array().unwrap() {
        assert_eq!(task["worker"], "lab-pc");
    }
    // Longer than the heartbeat timeout, yet no "not heard from" release.
    assert!(summary["makespan_s"].as_f64().unwrap() > 2.0);
    assert_eq!(summary["decisions"], serde_json::json!([]));
    assert_eq!(summary["cost"], 0.0);
}

/// A pessimistic prior (10 s a task for `sleep 1`) buys every paid machine
/// at once; once tasks finish, the planner drains those the deadline does
/// not need, each release a decision with its reason, and still meets it.
#[test]
fn machines_a_pessimistic_prior_bought_are_drained_when_not_needed() {
    let dir = Scratch::new("auto-surplus");
    let marker = format!("surplus-{}", std::process::id());
    let policy = "[objective]\ndeadline = \"40s\"\n\
         [scaling]\ninterval = \"1s\"\ncooldown = \"2s\"\ntask_estimate = \"10s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
         boot_time = \"1s\"\nmax = 6\n";
    let (code, summary) = run(&dir, &marker, &sleeps(40, 1), policy, &[], &[]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true);
    ran_on(&summary, 40, "paid");
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    let decisions = summary["decisions"].as_array().unwrap();
    let first = decisions.iter().find(|d| d["action"] == "start").unwrap();
    assert_eq!(
        first["count"], 6,
        "the prior asks for them all: {decisions:?}"
    );
    let drained = decisions
        .iter()
        .filter(|d| {
            d["action"] == "release"
                && d["reason"]
                    .as_str()
                    .unwrap()
                    .contains("not needed for the deadline 40s")
        })
        .count();
    assert!(drained > 0, "{decisions:?}");
    for task in summary["tasks"].as_array().unwrap() {
        assert_eq!(
            task["attempts"], 1,
            "a drained machine finished its task: {task}"
        );
    }
    assert_none_left(&marker);
}
