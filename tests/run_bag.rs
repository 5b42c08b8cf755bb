//! `halley run` on small bags: every task exactly once in summary.json, with
//! its exit code and outputs; failures reported, not retried; bad files
//! refused with exit 2.

mod run_util;

use std::time::Duration;

use run_util::{Guard, Scratch, halley, run_tasks, summary};

#[test]
fn a_small_bag_runs_each_task_once() {
    let dir = Scratch::new("bag");
    let tasks = dir.write(
        "tasks.txt",
        "# three tasks\necho hello\n\n  printf 'to stderr' >&2; exit 3\necho $((6 * 7))\n",
    );
    let out = dir.path("out");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .arg("--json"),
    )
    .wait(Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let summary = summary(&out);
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(printed, summary);
    let tasks = summary["tasks"].as_array().expect("tasks");
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2]);
    let codes: Vec<i64> = tasks
        .iter()
        .map(|t| t["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [0, 3, 0]);
    assert_eq!(tasks[1]["command"], "printf 'to stderr' >&2; exit 3");
    for task in tasks {
        assert_eq!(task["attempts"], 1);
        // The built-in policy: one static worker per core, class
        // "this-machine", machines m0, m1, ...
        assert_eq!(task["resource"], "this-machine");
        assert!(task["worker"].as_str().unwrap().starts_with('m'));
        assert!(task["finished"].as_f64().unwrap() >= task["started"].as_f64().unwrap());
    }
    let read = |name: &str| std::fs::read_to_string(out.join("tasks").join(name)).unwrap();
    assert_eq!(read("0.out"), "hello\n");
    assert_eq!(read("0.err"), "");
    assert_eq!(read("1.err"), "to stderr");
    assert_eq!(read("2.out"), "42\n");
    assert!(summary["makespan_s"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["cost"], 0.0);
    assert!(summary["deadline_met"].is_null() && summary["budget_met"].is_null());
    assert_eq!(summary["decisions"], serde_json::json!([]));
}

#[test]
fn a_failing_command_is_reported_not_retried() {
    let dir = Scratch::new("fail");
    let counter = dir.path("ran");
    let tasks = dir.write(
        "tasks.txt",
        &format!("echo x >> {}; exit 7\n", counter.display()),
    );
    let out = dir.path("out");
    let output = run_tasks(&tasks, &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary(&out);
    assert_eq!(summary["tasks"][0]["exit_code"], 7);
    assert_eq!(summary["tasks"][0]["attempts"], 1);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "x\n",
        "ran exactly once"
    );
}

#[test]
fn bad_tasks_files_exit_2_naming_the_file() {
    let dir = Scratch::new("bad");
    let missing = dir.path("missing.txt");
    let empty = dir.write("empty.txt", "# nothing\n\n");
    for file in [missing, empty] {
        let output = Guard::spawn(
            halley()
                .arg("run")
                .arg(&file)
                .arg("--out")
                .arg(dir.path("out")),
        )
        .wait(Duration::from_secs(30));
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
}

#[test]
fn the_policys_static_classes_are_the_workers() {
    let dir = Scratch::new("policy");
    let policy = dir.write(
        "policy.toml",
        "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\nslots = 2\n",
    );
    let tasks = dir.write("tasks.txt", "echo a\necho b\necho c\n");
    let out = dir.path("out");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--policy")
            .arg(&policy)
            .arg("--out")
            .arg(&out),
    )
    .wait(Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for task in summary(&out)["tasks"].as_array().unwrap() {
        assert_eq!(task["resource"], "campus");
        assert_eq!(task["worker"], "m0");
    }

    let bad = dir.write(
        "bad.toml",
        "[[resources]]\nname = \"x\"\nprovider = \"static\"\ncolour = 1\n",
    );
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--policy")
            .arg(&bad)
            .arg("--out")
            .arg(&out),
    )
    .wait(Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.toml"));
}

/// The workers `halley run` starts on this machine reach its embedded space
/// through the local door (a Unix socket: no noise or yamux to pay), and
/// the socket is gone once the job is.
#[test]
fn its_workers_reach_the_space_through_the_local_door() {
    let dir = Scratch::new("door");
    // A task's parent is its worker: its command line names the address.
    let tasks = dir.write("tasks.txt", "tr '\\0' ' ' < /proc/$PPID/cmdline\n");
    let out = dir.path("out");
    let output = run_tasks(&tasks, &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let worker = std::fs::read_to_string(out.join("tasks/0.out")).unwrap();
    let door = worker
        .split_whitespace()
        .skip_while(|&arg| arg != "--peer")
        .nth(1)
        .and_then(|addr| addr.strip_prefix("/unix"))
        .unwrap_or_else(|| panic!("the worker dials a local door: {worker}"));
    assert!(
        !std::path::Path::new(door).exists(),
        "{door} is removed with the job"
    );
}
