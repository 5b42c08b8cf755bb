//! Stopping a `halley run` with a signal (issue 11): SIGTERM or SIGINT to
//! the job stops its tasks, releases every machine through its provider
//! (the `command` class's stop script runs for each machine started),
//! leaves no worker or task process, withdraws the job's tuples from a
//! shared space, writes a partial summary marked interrupted and exits
//! 128 + the signal.

mod common;
mod run_util;

use std::process::{Command, Stdio};
use std::time::Duration;

use run_util::{Guard, Scratch, assert_none_left, command_policy, halley, summary, wait_for};
use serde_json::Value;

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Starts `halley run` on `tasks` with `args`, `marker` in its environment;
/// stderr to `dir/stderr`.
fn start(dir: &Scratch, marker: &str, tasks: &str, args: &[&str], env: &[(&str, &str)]) -> Guard {
    let tasks = dir.write("tasks.txt", tasks);
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(dir.path("out"))
            .args(args)
            .envs(env.iter().copied())
            .env("HALLEY_TEST_MARK", marker)
            .stderr(Stdio::from(stderr)),
    )
}

/// Lines of the file `path` (empty while it does not exist).
fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The summary of an interrupted run: marked so, each task at most once.
fn interrupted(dir: &Scratch, name: &str, total: usize) -> Value {
    let summary = summary(&dir.path("out"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(summary["signal"], name, "{summary}");
    let tasks = summary["tasks"].as_array().unwrap();
    let mut ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), tasks.len(), "a task twice: {summary}");
    assert!(tasks.len() < total, "{summary}");
    assert!(!dir.path("out/_SUCCESS").exists());
    summary
}

#[test]
fn sigterm_stops_the_job_and_every_command_machine() {
    let dir = Scratch::new("int-term");
    let marker = format!("int-term-{}", std::process::id());
    let log = dir.path("scripts.log");
    let policy = dir.write("policy.toml", &command_policy("15s", 3, "start-worker.sh"));
    let tasks = "sleep 2\n".repeat(40);
    let mut job = start(
        &dir,
        &marker,
        &tasks,
        &["--policy", policy.to_str().unwrap()],
        &[
            ("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley")),
            ("HALLEY_TEST_LOG", log.to_str().unwrap()),
        ],
    );
    // Machines were started and tasks finished: mid-job.
    wait_for(Duration::from_secs(60), || {
        let started = lines(&log).iter().any(|l| l.starts_with("start "));
        let done = std::fs::read_dir(dir.path("out/tasks")).map_or(0, |d| d.count());
        (started && done >= 4).then_some(())
    });
    signal(job.child().id(), "TERM");
    let output = job.wait(Duration::from_secs(60));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopping the tasks"), "{stderr}");
    interrupted(&dir, "SIGTERM", 40);
    let log = lines(&log);
    let mut started: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let mut stopped: Vec<&str> = log.iter().filter_map(|l| l.strip_prefix("stop ")).collect();
    started.sort();
    stopped.sort();
    assert!(!started.is_empty());
    assert_eq!(stopped, started, "every machine's stop script ran: {log:?}");
    assert_none_left(&marker);
}

#[test]
fn sigint_kills_running_tasks_and_exits_130_with_a_summary() {
    let dir = Scratch::new("int-int");
    let marker = format!("int-int-{}", std::process::id());
    let started = dir.path("started");
    let tasks = format!(
        "echo quick\n{}",
        format!("echo $$ >> {}; sleep 60\n", started.display()).repeat(4)
    );
    let mut job = start(&dir, &marker, &tasks, &["--workers", "2"], &[]);
    wait_for(Duration::from_secs(30), || {
        (lines(&started).len() >= 2).then_some(())
    });
    signal(job.child().id(), "INT");
    let output = job.wait(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let summary = interrupted(&dir, "SIGINT", 5);
    // The sleeps were killed, not waited for: only the quick task finished.
    let ids: Vec<u64> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    // (The quick one may not have been taken before the sleeps were.)
    assert!(ids.iter().all(|id| *id == 0), "{summary}");
    assert!(stderr.contains("halley run --resume"), "{stderr}");
    assert_none_left(&marker);
}

#[test]
fn an_interrupted_job_on_a_shared_space_leaves_no_tuple_there() {
    let dir = Scratch::new("int-peer");
    let marker = format!("int-peer-{}", std::process::id());
    let node = common::Node::start();
    let tasks = "sleep 30\n".repeat(6);
    let mut job = start(
        &dir,
        &marker,
        &tasks,
        &["--peer", &node.addr, "--workers", "2"],
        &[],
    );
    let space = dir.path("out/space");
    let addr = wait_for(Duration::from_secs(30), || lines(&space).first().cloned());
    assert_eq!(addr, node.addr, "the job's space is written to <out>/space");
    // Two tasks taken (their claims are in the space), four queued.
    wait_for(Duration::from_secs(30), || {
        let claims = common::run(
            &["scan", "--peer", &node.addr, "(\"claim\", *, *, *, *)"],
            None,
        );
        (claims.stdout.lines().count() >= 2).then_some(())
    });
    signal(job.child().id(), "TERM");
    let output = job.wait(Duration::from_secs(60));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    let summary = interrupted(&dir, "SIGTERM", 6);
    let id = summary["job"].as_str().unwrap();
    for template in [
        format!("(\"task\", \"{id}\", *, *, *)"),
        format!("(\"claim\", \"{id}\", *, *, *)"),
        format!("(\"result\", \"{id}\", *, *, *, *, *, *, *)"),
        format!("(*, \"{id}\")"),
    ] {
        let left = common::run(&["scan", "--peer", &node.addr, &template], None);
        // `scan` exits 1 when nothing matches.
        assert_eq!(left.code, Some(1), "{template} left in the space: {left:?}");
        assert_eq!(left.stdout, "", "{template} left in the space");
    }
    assert_none_left(&marker);
}

#[test]
fn sigterm_stops_a_mapreduce_and_leaves_no_part() {
    let dir = Scratch::new("int-mr");
    let marker = format!("int-mr-{}", std::process::id());
    let input = dir.write("in.txt", &"a b c\n".repeat(100));
    let started = dir.path("started");
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let map = format!("echo x >> {}; sleep 60; cat", started.display());
    let mut job = Guard::spawn(
        halley()
            .args([
                "mapreduce",
                "--map",
                &map,
                "--reduce",
                "cat",
                "--workers",
                "2",
            ])
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(dir.path("out"))
            .env("HALLEY_TEST_MARK", &marker)
            .stderr(Stdio::from(stderr)),
    );
    wait_for(Duration::from_secs(30), || {
        (lines(&started).len() >= 2).then_some(())
    });
    signal(job.child().id(), "TERM");
    let output = job.wait(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    let text = std::fs::read_to_string(dir.path("out/_summary.json")).unwrap();
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    let parts = std::fs::read_dir(dir.path("out"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("part-") || name == "_SUCCESS"
        })
        .count();
    assert_eq!(parts, 0);
    assert_none_left(&marker);
}

#[test]
fn sigterm_stops_a_workflow_and_a_second_signal_hurries() {
    let dir = Scratch::new("int-wf");
    let marker = format!("int-wf-{}", std::process::id());
    let started = dir.path("started");
    let step = format!("echo x >> {}; sleep 60", started.display());
    let wf = dir.write(
        "wf.toml",
        &format!(
            "[stages.slow]\ncommands = [{0:?}, {0:?}, {0:?}]\n\
             [stages.after]\ncommands = [\"echo never\"]\nafter = [\"slow\"]\n",
            step
        ),
    );
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let mut job = Guard::spawn(
        halley()
            .arg("workflow")
            .arg(&wf)
            .arg("--out")
            .arg(dir.path("out"))
            .args(["--slots", "2"])
            .env("HALLEY_TEST_MARK", &marker)
            .stderr(Stdio::from(stderr)),
    );
    wait_for(Duration::from_secs(30), || {
        (lines(&started).len() >= 2).then_some(())
    });
    let pid = job.child().id();
    signal(pid, "TERM");
    signal(pid, "TERM");
    let output = job.wait(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    let text = std::fs::read_to_string(dir.path("out/workflow.json")).unwrap();
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(summary["tasks"], serde_json::json!([]), "{summary}");
    assert_none_left(&marker);
}

/// Whether process `pid` is gone (or a zombie).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_worker_of_every_job_drops_an_interrupted_jobs_task_and_serves_on() {
    let dir = Scratch::new("int-anyjob");
    let node = common::Node::start();
    let _worker = common::Proc::spawn(
        common::halley()
            .args(["worker", "--peer", &node.addr, "--resource", "campus"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let started = dir.path("started");
    let tasks = format!("sleep 60 & echo $! >> {}; wait\n", started.display());
    let mut job = start(&dir, "int-anyjob", &tasks, &["--peer", &node.addr], &[]);
    let sleep = wait_for(Duration::from_secs(30), || lines(&started).first().cloned());
    assert!(!gone(&sleep));
    signal(job.child().id(), "TERM");
    let output = job.wait(Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(143));
    wait_for(Duration::from_secs(10), || gone(&sleep).then_some(()));
    // The worker serves the next job.
    let next = dir.write("next.txt", "echo again\n");
    let out = dir.path("next-out");
    let done = Guard::spawn(
        halley()
            .arg("run")
            .arg(&next)
            .args(["--peer", &node.addr, "--out"])
            .arg(&out),
    )
    .wait(Duration::from_secs(60));
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("tasks/0.out")).unwrap(),
        "again\n"
    );
}

#[test]
fn sighup_from_a_closed_terminal_stops_the_job_too() {
    let dir = Scratch::new("int-hup");
    let marker = format!("int-hup-{}", std::process::id());
    let started = dir.path("started");
    let tasks = format!("echo $$ >> {}; sleep 60\n", started.display()).repeat(2);
    let mut job = start(&dir, &marker, &tasks, &["--workers", "2"], &[]);
    wait_for(Duration::from_secs(30), || {
        (lines(&started).len() >= 2).then_some(())
    });
    signal(job.child().id(), "HUP");
    let output = job.wait(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(129), "{stderr}");
    interrupted(&dir, "SIGHUP", 2);
    assert_none_left(&marker);
}

/// SIGKILL cannot be caught: the job's gateway dies with it, so the paid
/// machines (here `halley worker`s a `command` class started, holding
/// only the capability) and the static workers lose their space and
/// exit at once, and none of their tasks is left running: tasks of ten
/// minutes are gone well before they would end (a worker that finished
/// its task first kept paying for it).
#[test]
fn a_sigkilled_job_leaves_no_worker_behind() {
    let dir = Scratch::new("int-kill");
    let marker = format!("int-kill-{}", std::process::id());
    let _leftovers = run_util::KillMarked(marker.clone());
    let log = dir.path("scripts.log");
    let policy = dir.write(
        "policy.toml",
        &command_policy("10s", 2, "start-private-worker.sh"),
    );
    let mut job = start(
        &dir,
        &marker,
        &"sleep 600\n".repeat(40),
        &["--policy", policy.to_str().unwrap()],
        &[
            ("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley")),
            ("HALLEY_TEST_LOG", log.to_str().unwrap()),
        ],
    );
    // A machine was started, and two tasks run.
    let workers = dir.path("scripts.log.workers");
    wait_for(Duration::from_secs(60), || {
        let started = lines(&log).iter().any(|l| l.starts_with("start "));
        let running = run_util::marked(&marker)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c == b"sleep\x00600\x00")
            })
            .count();
        (started && running >= 2).then_some(())
    });
    job.child().kill().unwrap();
    job.child().wait().unwrap();
    // Every marked process (workers, their tasks) is gone within a bound
    // far below a task's ten minutes.
    wait_for(Duration::from_secs(60), || {
        run_util::marked(&marker).is_empty().then_some(())
    });
    let said = std::fs::read_to_string(&workers).unwrap_or_default();
    assert!(!said.contains("panicked"), "{said}");
}
