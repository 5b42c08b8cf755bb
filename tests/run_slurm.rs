//! `halley run` with a `slurm` class against a real Slurm cluster (one node,
//! started by `.ci/run` with `../shared/recipes/slurm-up.sh`): the manager
//! scales onto Slurm and back; a worker job cancelled by Slurm mid-task
//! loses no task (it runs again, once in `summary.json`); a partition that
//! holds its jobs sends the work to a paid class, and a decision says why;
//! a MapReduce on Slurm workers that run elsewhere (`--chdir`) gets its
//! data through S3 alone.
//! Without a cluster these tests say "skipped" loudly; under CI=true they
//! fail. They run one at a time (`.config/nextest.toml`): the node has
//! only this machine's cores.

mod common;
mod run_util;
mod s3_util;

use std::process::Command;
use std::time::Duration;

use run_util::{Guard, Scratch, assert_none_left, halley, summary, wait_for};
use serde_json::Value;

/// Whether a Slurm cluster answers here; without one, says so loudly, and
/// fails under CI (which starts one).
fn slurm_here() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%a"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up"));
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm cluster answers (sinfo): .ci/run starts one"
        );
        eprintln!("skipped: no Slurm cluster answers here (sinfo); see .ci/run");
    }
    up
}

/// Slurm's state of job `id` (`scontrol show job`).
fn job_state(id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", id])
        .output()
        .expect("scontrol");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .unwrap_or("GONE")
        .to_string()
}

/// Starts `halley run` on `tasks` under `policy` in `dir` (its working
/// directory: the job scripts go to `halley-slurm/`), with `marker` in its
/// environment.
fn start(dir: &Scratch, marker: &str, tasks: &str, policy: &str) -> Guard {
    let tasks = dir.write("tasks.txt", tasks);
    let policy = dir.write("policy.toml", policy);
    let stdout = std::fs::File::create(dir.path("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let mut command = halley();
    command
        .current_dir(&dir.0)
        .arg("run")
        .arg(&tasks)
        .arg("--policy")
        .arg(&policy)
        .arg("--out")
        .arg(dir.path("out"))
        .env("HALLEY_TEST_MARK", marker)
        .stdout(stdout)
        .stderr(stderr);
    Guard::spawn(&mut command)
}

/// Waits at most 3 minutes for the job; returns its exit code and summary.
fn finish(mut job: Guard, dir: &Scratch) -> (i32, Value) {
    let log = || std::fs::read_to_string(dir.path("stderr")).unwrap_or_default();
    let status = wait_for(Duration::from_secs(180), || job.child().try_wait().unwrap());
    let code = status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "exit {code}: {}", log());
    (code, summary(&dir.path("out")))
}

/// Every task once, with exit code 0.
fn assert_each_task_once(summary: &Value, n: u64) {
    let tasks = summary["tasks"].as_array().unwrap();
    let mut ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "{summary}");
    for t in tasks {
        assert_eq!(t["exit_code"], 0, "{t}");
    }
}

/// The `hpc` machines of the summary, with their Slurm job ids.
fn slurm_machines(summary: &Value) -> Vec<(String, String)> {
    summary["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["class"] == "hpc")
        .map(|m| {
            let job = m["provider_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no job id: {m}"));
            (m["id"].as_str().unwrap().to_string(), job.to_string())
        })
        .collect()
}

#[test]
fn a_job_scales_onto_slurm_and_back() {
    if !slurm_here() {
        return;
    }
    let dir = Scratch::new("slurm-scale");
    let marker = format!("slurm-scale-{}", std::process::id());
    let policy = "[scaling]\ninterval = \"1s\"\nqueue_per_slot = 1\n\
                  [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\n\
                  [[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 2\npartition = \"debug\"\n\
                  time_limit = \"10m\"\n";
    let tasks = "sleep 2\n".repeat(16);
    let (code, summary) = finish(start(&dir, &marker, &tasks, policy), &dir);
    assert_eq!(code, 0);
    assert_each_task_once(&summary, 16);
    let machines = slurm_machines(&summary);
    assert!(!machines.is_empty(), "scaled onto Slurm: {summary}");
    let on_hpc: Vec<&Value> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["resource"] == "hpc")
        .collect();
    assert!(!on_hpc.is_empty(), "Slurm's workers ran tasks: {summary}");
    for t in on_hpc {
        let worker = t["worker"].as_str().unwrap();
        assert!(machines.iter().any(|(id, _)| id == worker), "{t}");
    }
    // Back: every Slurm job of the job was released by a decision and is
    // over (cancelled by us, or done), and nothing of the job is left.
    let decisions = summary["decisions"].as_array().unwrap();
    for (id, job) in &machines {
        let released = decisions
            .iter()
            .any(|d| d["action"] == "release" && format!("m{}", d["machine"]) == *id);
        assert!(released, "{id} released by a decision: {decisions:?}");
        let state = wait_for(Duration::from_secs(20), || {
            let state = job_state(job);
            (!matches!(state.as_str(), "PENDING" | "RUNNING" | "COMPLETING")).then_some(state)
        });
        assert!(
            matches!(state.as_str(), "CANCELLED" | "COMPLETED" | "GONE"),
            "{job}: {state}"
        );
    }
    assert!(
        dir.path("halley-slurm").is_dir(),
        "the job scripts and logs"
    );
    assert_none_left(&marker);
}

#[test]
fn a_worker_job_slurm_cancels_mid_task_loses_no_task() {
    if !slurm_here() {
        return;
    }
    let dir = Scratch::new("slurm-cancel");
    let marker = format!("slurm-cancel-{}", std::process::id());
    let policy = "[scaling]\ninterval = \"1s\"\n\
                  [[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 1\n";
    // The task notes the Slurm job it runs in; its first run is cancelled.
    let ran = dir.path("ran");
    let tasks = format!("echo $SLURM_JOB_ID >> {}; sleep 8\n", ran.display());
    let job = start(&dir, &marker, &tasks, policy);
    let first = wait_for(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&ran).ok()?;
        text.lines().next().map(str::to_string)
    });
    let cancelled = Command::new("scancel").arg(&first).status().unwrap();
    assert!(cancelled.success());
    let (code, summary) = finish(job, &dir);
    assert_eq!(code, 0, "{summary}");
    assert_each_task_once(&summary, 1);
    let runs: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(runs.len(), 2, "ran again: {runs:?}");
    assert_ne!(runs[0], runs[1], "in another Slurm job");
    let task = &summary["tasks"][0];
    assert_eq!(task["attempts"], 2, "{task}");
    let machines = slurm_machines(&summary);
    let (lost, _) = machines
        .iter()
        .find(|(_, job)| *job == first)
        .unwrap_or_else(|| panic!("job {first} is a machine: {machines:?}"));
    let (second, _) = machines.iter().find(|(_, job)| *job == runs[1]).unwrap();
    assert_eq!(task["worker"], second.as_str(), "{task}");
    let said = summary["decisions"].as_array().unwrap().iter().any(|d| {
        let reason = d["reason"].as_str().unwrap();
        d["action"] == "release"
            && reason.starts_with(&format!(
                "-1 hpc ({lost}): lost: Slurm job {first} of hpc ended on its own: CANCELLED"
            ))
            && reason.ends_with("its tasks run again elsewhere")
    });
    assert!(said, "{}", summary["decisions"]);
    assert_none_left(&marker);
}

#[test]
fn a_queue_wait_past_the_deadline_sends_the_work_to_a_paid_class() {
    if !slurm_here() {
        return;
    }
    let dir = Scratch::new("slurm-held");
    let marker = format!("slurm-held-{}", std::process::id());
    // Slurm holds every job of `hpc` (as a drained partition or a
    // reservation would): they stay PENDING.
    let policy = "[objective]\ndeadline = \"60s\"\n\
                  [scaling]\ninterval = \"1s\"\ntask_estimate = \"2s\"\n\
                  [[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 2\nextra_args = [\"--hold\"]\n\
                  [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 3.6\n\
                  boot_time = \"1s\"\nmax = 4\n";
    let tasks = "sleep 2\n".repeat(30);
    let (code, summary) = finish(start(&dir, &marker, &tasks, policy), &dir);
    assert_eq!(code, 0, "{summary}");
    assert_each_task_once(&summary, 30);
    let tasks = summary["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["resource"] == "cloud"), "{summary}");
    let decisions = summary["decisions"].as_array().unwrap();
    let reasons: Vec<&str> = decisions
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].starts_with("+2 hpc: "),
        "private first: {reasons:?}"
    );
    let why = reasons
        .iter()
        .position(|r| {
            r.starts_with("hpc: 2 machine(s) still queued after ")
                && r.contains("PENDING: JobHeldUser)")
                && r.contains("planning with a queue wait of")
        })
        .unwrap_or_else(|| panic!("the decision says why: {reasons:?}"));
    assert!(
        reasons[why + 1].starts_with('+') && reasons[why + 1].contains(" cloud: "),
        "{reasons:?}"
    );
    // The held jobs were cancelled at the end.
    for (_, job) in slurm_machines(&summary) {
        assert_eq!(job_state(&job), "CANCELLED", "{job}");
    }
    assert_none_left(&marker);
}

#[test]
fn a_mapreduce_on_slurm_workers_elsewhere_goes_through_s3() {
    if !slurm_here() {
        return;
    }
    let Some(weed) = s3_util::weed() else {
        return;
    };
    let dir = Scratch::new("slurm-s3");
    let _server = s3_util::start_weed(&weed, &dir);
    let elsewhere = dir.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut text = String::new();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..3000 {
        let line = format!("a{} b{} a{}\n", i % 13, i % 7, i % 5);
        for w in line.split_whitespace() {
            *expected.entry(w.to_string()).or_insert(0u64) += 1;
        }
        text.push_str(&line);
    }
    dir.write("corpus.txt", &text);
    // The worker jobs run in a directory of their own: nothing of the
    // submitter's is where they are.
    let policy = dir.write(
        "policy.toml",
        &format!(
            "[scaling]\ninterval = \"1s\"\n\
             [[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 2\n\
             extra_args = [\"--chdir={}\"]\n",
            elsewhere.display()
        ),
    );
    let marker = format!("slurm-s3-{}", std::process::id());
    let mut command = halley();
    command
        .current_dir(&dir.0)
        .env("HALLEY_TEST_MARK", &marker)
        .args(["mapreduce", "--input", "corpus.txt", "--out", "out"])
        .args(["--reducers", "2"])
        .args(["--map", r#"tr -s ' ' '\n' | awk 'NF { print $0 "\t1" }'"#])
        .args([
            "--reduce",
            r#"awk -F '\t' '{ c[$1] += $2 } END { for (w in c) print w "\t" c[w] }'"#,
        ])
        .arg("--policy")
        .arg(&policy)
        .args(["--store", "s3://halley/slurm"])
        .args(["--store-endpoint", &format!("http://{}", s3_util::S3)]);
    let run = Guard::spawn(&mut command).wait(Duration::from_secs(180));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut got = std::collections::BTreeMap::new();
    for r in 0..2 {
        let part = std::fs::read_to_string(dir.path(&format!("out/part-{r}"))).unwrap();
        for line in part.lines() {
            let (word, count) = line.split_once('\t').unwrap();
            got.insert(word.to_string(), count.parse::<u64>().unwrap());
        }
    }
    assert_eq!(got, expected);
    let text = std::fs::read_to_string(dir.path("out/_summary.json")).unwrap();
    let summary: Value = serde_json::from_str(&text).unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["resource"] == "hpc"), "{summary}");
    assert!(!slurm_machines(&summary).is_empty(), "{summary}");
    let there = std::fs::read_dir(&elsewhere).unwrap().count();
    assert_eq!(there, 0, "nothing written where the workers run");
    assert_none_left(&marker);
}
