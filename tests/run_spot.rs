//! A `local` preemptible class in a real run: the provider takes machines
//! back (killed with their tasks, as a cloud reclaims spot machines), each
//! is a decision, the manager replaces them, and the tasks they ran run
//! again — every task exactly once in `summary.json`, none lost.

mod common;
mod run_util;

use std::time::Duration;

use run_util::{Scratch, assert_billed, assert_none_left, job, run_marked, summary};

#[test]
fn preempted_machines_lose_no_task() {
    let dir = Scratch::new("spot");
    let marker = format!("spot-{}", std::process::id());
    // One private slot cannot run twelve 2 s tasks in 20 s; spot machines
    // are taken back after 4 s on average (m1 after 4.8 s, m3 after 2.6 s:
    // the draws are seeded by the machine id), while they run tasks.
    let policy = dir.write(
        "policy.toml",
        "[objective]\ndeadline = \"20s\"\n\
         [scaling]\ninterval = \"1s\"\ntask_estimate = \"2s\"\n\
         [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
         [[resources]]\nname = \"spot\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
         max = 3\npreemptible = true\nmean_time_to_preemption = \"4s\"\n",
    );
    let tasks = dir.write("tasks.txt", &"sleep 2\n".repeat(12));
    let out = dir.path("out");
    let mut command = job("run", &tasks, &policy, &out);
    run_marked(&mut command, &dir, &marker, Duration::from_secs(120));
    let summary = summary(&out);
    let preempted = summary["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("lost: preempted by the provider"))
        })
        .count();
    assert!(preempted >= 1, "a spot machine was taken back: {summary}");
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 12, "{summary}");
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task["id"], i as u64);
        assert_eq!(task["exit_code"], 0, "{task}");
    }
    assert!(
        tasks.iter().any(|t| t["attempts"].as_u64() > Some(1)),
        "a task lost with its machine ran again: {summary}"
    );
    // $3.60 an hour: each machine billed from its request to its loss or release.
    assert_billed(&summary, "spot", 0.001);
    assert_none_left(&marker);
}
