//! Resuming a `halley run` (issue 11): a run SIGKILLed half way is
//! continued with `--resume <out>` from its journal: every task appears
//! once in summary.json, the tasks that had finished do not run again
//! (their output files are untouched), and the cost counts both runs;
//! `--retry-failed` reruns only the failed tasks; `--out` refuses a used
//! directory unless `--force`.

mod run_util;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use run_util::{Guard, Scratch, assert_none_left, halley, summary, wait_for};
use serde_json::Value;

/// The journal's lines, parsed (a torn last line skipped).
fn journal(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_killed_run_resumes_without_running_finished_tasks_again() {
    let dir = Scratch::new("resume-kill");
    let marker = format!("resume-kill-{}", std::process::id());
    let runs = dir.path("runs");
    let tasks = dir.write(
        "tasks.txt",
        &format!(
            "echo $HALLEY_TASK_ID >> {}; sleep 0.1; echo out-$HALLEY_TASK_ID\n",
            runs.display()
        )
        .repeat(200),
    );
    // One private slot and a paid class the deadline needs: money is spent.
    let policy = dir.write(
        "policy.toml",
        "[objective]\ndeadline = \"12s\"\n[scaling]\ninterval = \"1s\"\ntask_estimate = \"1s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 36.0\n\
         boot_time = \"0s\"\nmax = 2\n",
    );
    let out = dir.path("out");
    let mut first = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--policy")
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .env("HALLEY_TEST_MARK", &marker)
            .stderr(Stdio::null()),
    );
    wait_for(Duration::from_secs(120), || {
        let done = journal(&out)
            .iter()
            .filter(|e| e.get("task").is_some())
            .count();
        (done >= 100).then_some(())
    });
    first.child().kill().unwrap();
    let _ = first.child().wait();
    // Its workers lose the space and exit.
    assert_none_left(&marker);
    let before = journal(&out);
    let finished: BTreeMap<u64, SystemTime> = before
        .iter()
        .filter_map(|e| e.get("task"))
        .map(|t| {
            let id = t["id"].as_u64().unwrap();
            (id, mtime(&out.join(format!("tasks/{id}.out"))))
        })
        .collect();
    assert!(finished.len() >= 100 && finished.len() < 200, "half way");
    let first_spent = before
        .iter()
        .filter_map(|e| e.get("spent"))
        .map(|s| s["cost"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(first_spent > 0.0, "the first run paid: {before:?}");

    let second = Guard::spawn(
        halley()
            .arg("run")
            .arg("--resume")
            .arg(&out)
            .arg("--policy")
            .arg(&policy)
            .env("HALLEY_TEST_MARK", &marker),
    )
    .wait(Duration::from_secs(180));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        second.status.code() == Some(0) || second.status.code() == Some(1),
        "{stderr}"
    );
    let summary = summary(&out);
    let tasks = summary["tasks"].as_array().unwrap();
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..200).collect::<Vec<u64>>(), "every task once");
    for task in tasks {
        let id = task["id"].as_u64().unwrap();
        assert_eq!(task["exit_code"], 0, "{task}");
        let text = std::fs::read_to_string(out.join(format!("tasks/{id}.out"))).unwrap();
        assert_eq!(text, format!("out-{id}\n"));
    }
    let runs = std::fs::read_to_string(&runs).unwrap();
    for (id, when) in &finished {
        let times = runs.lines().filter(|l| *l == id.to_string()).count();
        assert_eq!(times, 1, "task {id} finished before the kill, ran again");
        assert_eq!(
            mtime(&out.join(format!("tasks/{id}.out"))),
            *when,
            "task {id}'s output"
        );
    }
    // The cost is both runs': the first's spend and this run's machines.
    let this_run: f64 = summary["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["cost"].as_f64().unwrap())
        .sum();
    let cost = summary["cost"].as_f64().unwrap();
    assert!(
        (cost - this_run - first_spent).abs() < 1e-9,
        "{cost} != {this_run} + {first_spent}"
    );
    assert!(out.join("_SUCCESS").exists());
    assert_none_left(&marker);
}

#[test]
fn retry_failed_reruns_only_the_failed_tasks_and_out_must_be_fresh() {
    let dir = Scratch::new("resume-failed");
    let flag = dir.path("flag");
    let runs = dir.path("runs");
    let tasks = dir.write(
        "tasks.txt",
        &format!(
            "echo ok >> {runs}\ntest -f {flag} || {{ touch {flag}; exit 5; }}\n",
            runs = runs.display(),
            flag = flag.display()
        ),
    );
    let out = dir.path("out");
    let run = |extra: &[&str]| {
        let mut command = halley();
        command.arg("run").args(extra);
        Guard::spawn(&mut command).wait(Duration::from_secs(60))
    };
    let tasks_arg = tasks.to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    let first = run(&[tasks_arg, "--out", out_arg, "--strict"]);
    assert_eq!(first.status.code(), Some(4), "--strict: a task failed");
    assert_eq!(summary(&out)["failed"], 1);
    assert!(!out.join("_SUCCESS").exists());

    let again = run(&[tasks_arg, "--out", out_arg]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains("--resume"),
        "{stderr}"
    );

    let resumed = run(&["--resume", out_arg]);
    assert_eq!(resumed.status.code(), Some(0));
    assert_eq!(
        summary(&out)["tasks"][1]["exit_code"],
        5,
        "not retried without --retry-failed"
    );

    let retried = run(&["--resume", out_arg, "--retry-failed", "--strict"]);
    assert_eq!(
        retried.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    let summary = summary(&out);
    assert_eq!(summary["tasks"][1]["exit_code"], 0, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert!(out.join("_SUCCESS").exists());
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "ok\n",
        "task 0 ran once"
    );

    let forced = run(&[tasks_arg, "--out", out_arg, "--force"]);
    assert_eq!(forced.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ok\nok\n");
    let entries = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert_eq!(
        entries.matches("\"start\"").count(),
        1,
        "--force cleared the old journal"
    );
}
