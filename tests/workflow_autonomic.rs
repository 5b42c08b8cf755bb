//! `halley workflow` under the autonomic manager, with real worker
//! processes: two stages of 20 × `sleep 1` (the second after the first),
//! one private slot and a 20 s deadline that needs paid local machines;
//! and a job deadline the private slot meets alone, with a stage deadline
//! that needs paid machines for that stage.
//! Every process of the test carries a marker in its environment, so the
//! test can check that none is left.

mod run_util;

use std::time::Duration;

use run_util::{Scratch, assert_billed, assert_none_left, job, run_marked};
use serde_json::Value;

/// $3.60 an hour: $0.001 a second.
const PRICE_PER_SECOND: f64 = 0.001;

/// Stage `a`: 20 × `sleep 1`; stage `b`, after `a`: 20 × `sleep 1`, each
/// command also writing a file, so `b`'s commands ran after `a`'s.
const WORKFLOW: &str = r#"
[stages.a]
commands = [
  "sleep 1; touch a-0", "sleep 1; touch a-1", "sleep 1; touch a-2", "sleep 1; touch a-3",
  "sleep 1; touch a-4", "sleep 1; touch a-5", "sleep 1; touch a-6", "sleep 1; touch a-7",
  "sleep 1; touch a-8", "sleep 1; touch a-9", "sleep 1; touch a-10", "sleep 1; touch a-11",
  "sleep 1; touch a-12", "sleep 1; touch a-13", "sleep 1; touch a-14", "sleep 1; touch a-15",
  "sleep 1; touch a-16", "sleep 1; touch a-17", "sleep 1; touch a-18", "sleep 1; touch a-19",
]
[stages.b]
after = ["a"]
commands = [
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
  "sleep 1; ls a-* | wc -l", "sleep 1; ls a-* | wc -l",
]
"#;

const POLICY: &str = "[objective]\ndeadline = \"20s\"\n\
    [scaling]\ninterval = \"1s\"\n\
    [[resources]]\nname = \"private\"\nprovider = \"static\"\ncount = 1\n\
    [[resources]]\nname = \"paid\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
    boot_time = \"1s\"\nmax = 6\n";

fn workflow_json(out: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(out.join("workflow.json")).expect("workflow.json");
    serde_json::from_str(&text).expect("workflow.json is JSON")
}

#[test]
fn paid_machines_meet_a_two_stage_deadline_and_are_released() {
    let dir = Scratch::new("wf-auto-deadline");
    let marker = format!("wf-deadline-{}", std::process::id());
    let file = dir.write("wf.toml", WORKFLOW);
    let policy = dir.write("policy.toml", POLICY);
    let out = dir.path("out");
    let mut command = job("workflow", &file, &policy, &out);
    let code = run_marked(&mut command, &dir, &marker, Duration::from_secs(180));
    let summary = workflow_json(&out);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["deadline_met"], true);
    assert!(summary["budget_met"].is_null());
    assert!(summary["makespan_s"].as_f64().unwrap() <= 20.0);
    let stages = summary["stages"].as_array().unwrap();
    assert!(
        stages.iter().all(|s| s["status"] == "succeeded"),
        "{summary}"
    );
    // Every command once, each of b's after all of a's.
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 40);
    for (i, task) in tasks.iter().enumerate() {
        let stage = if i < 20 { "a" } else { "b" };
        assert_eq!(
            (task["stage"].as_str(), task["index"].as_u64()),
            (Some(stage), Some(i as u64 % 20))
        );
        assert_eq!(task["exit_code"], 0, "{task}");
    }
    for i in 0..20 {
        let counted = std::fs::read_to_string(out.join(format!("b/tasks/{i}.out"))).unwrap();
        assert_eq!(counted.trim(), "20");
    }
    let paid = tasks.iter().filter(|t| t["resource"] == "paid").count();
    assert!(paid > 0, "no command ran on the paid class");
    assert!(summary["cost"].as_f64().unwrap() > 0.0);
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    assert_none_left(&marker);
}

#[test]
fn a_stage_deadline_gets_paid_machines_the_job_deadline_does_not_need() {
    // 40 × 1 s on the private slot: well inside the job's 10 minutes;
    // stage `a`'s 20 are due 8 s after its release, which needs paid ones.
    let dir = Scratch::new("wf-auto-stage-deadline");
    let marker = format!("wf-stage-deadline-{}", std::process::id());
    let file = dir.write(
        "wf.toml",
        &WORKFLOW.replacen("[stages.a]\n", "[stages.a]\ndeadline = \"8s\"\n", 1),
    );
    let policy = dir.write("policy.toml", &POLICY.replacen("\"20s\"", "\"10m\"", 1));
    let out = dir.path("out");
    let mut command = job("workflow", &file, &policy, &out);
    let code = run_marked(&mut command, &dir, &marker, Duration::from_secs(180));
    let summary = workflow_json(&out);
    assert_eq!(code, 0, "{summary}");
    let decisions = summary["decisions"].as_array().unwrap();
    let for_stage = decisions
        .iter()
        .filter(|d| {
            d["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("+") && r.contains("the running stage's tasks"))
        })
        .count();
    assert!(for_stage > 0, "no machine bought for the stage: {summary}");
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 40);
    assert!(tasks.iter().any(|t| t["resource"] == "paid"), "{summary}");
    assert_billed(&summary, "paid", PRICE_PER_SECOND);
    assert_none_left(&marker);
}
