//! HALLEY_TOKEN, with real processes on 127.0.0.1: a `halley run` whose
//! policy has a `command` class serves its embedded space privately under
//! a fresh key; the class's start script starts a real `halley worker`
//! from HALLEY_JOIN and HALLEY_TOKEN alone, which takes tasks; a worker
//! with no token or another one is refused (exit 3, the handshake
//! message) and takes none; the token is in neither `summary.json` nor the
//! job's output, nor the tasks' environment.
//!
//! A gate task keeps the job running until the intruders have been tried,
//! so the test never races the job's end. Every process carries a marker
//! in its environment, so the test can check that none is left.

mod common;
mod run_util;

use std::process::Stdio;
use std::time::Duration;

use run_util::{Guard, Scratch, assert_none_left, command_policy, halley, summary, wait_for};

/// The message of a refused handshake.
const REFUSED: &str = "the handshake failed";

/// Starts `halley worker --peer <join>` with `token` (none: no key at all)
/// and returns its exit code and stderr, at most 30 s later.
fn intruder(join: &str, token: Option<&str>) -> (Option<i32>, String) {
    let mut command = halley();
    command
        .args(["worker", "--peer", join, "--id", "intruder"])
        .env_remove("HALLEY_TOKEN")
        .env_remove("HALLEY_SECRET_FILE")
        .stdout(Stdio::null());
    if let Some(token) = token {
        command.env("HALLEY_TOKEN", token);
    }
    let output = Guard::spawn(&mut command).wait(Duration::from_secs(30));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn command_machines_join_with_the_token_and_nobody_else_can() {
    let dir = Scratch::new("token-run");
    let marker = format!("token-{}", std::process::id());
    let log = dir.path("scripts.log");
    let gate = dir.path("gate");
    let policy = dir.write(
        "policy.toml",
        &command_policy("30s", 2, "start-private-worker.sh"),
    );
    // The gate task waits (at most 60 s) for the test to open the gate.
    let wait_gate = format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
        gate.display()
    );
    // Tasks do not see the token: `env` prints what they do see.
    let tasks = dir.write("tasks.txt", &(wait_gate + &"sleep 1; env\n".repeat(16)));
    let out = dir.path("out");
    let stdout = std::fs::File::create(dir.path("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let mut job = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--policy")
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .env("HALLEY_TEST_MARK", &marker)
            .env("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley"))
            .env("HALLEY_TEST_LOG", &log)
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr)),
    );

    // A start script ran: what it got is what a cloud machine would.
    let reach = dir.path("scripts.log.reach");
    let (join, token) = wait_for(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&reach).ok()?;
        let (join, token) = text.trim().split_once(' ')?;
        Some((join.to_owned(), token.to_owned()))
    });
    assert!(join.contains("/p2p/"), "{join}");
    assert_eq!(token.len(), 64, "the key in hex");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");

    let (code, stderr) = intruder(&join, None);
    assert_eq!(code, Some(3), "a worker without the token: {stderr}");
    assert!(stderr.contains(REFUSED), "{stderr}");
    let wrong: String = token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let (code, stderr) = intruder(&join, Some(&wrong));
    assert_eq!(code, Some(3), "a worker with another token: {stderr}");
    assert!(stderr.contains(REFUSED), "{stderr}");

    std::fs::write(&gate, "").unwrap();
    let status = wait_for(Duration::from_secs(120), || job.child().try_wait().unwrap());
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let summary = summary(&out);
    let done = summary["tasks"].as_array().unwrap();
    assert_eq!(done.len(), 17, "{summary}");
    assert!(done.iter().all(|t| t["exit_code"] == 0), "{summary}");
    assert!(
        done.iter().any(|t| t["resource"] == "lab"),
        "a command machine took tasks: {summary}"
    );
    assert!(done.iter().all(|t| t["worker"] != "intruder"), "{summary}");
    for file in [
        "out/summary.json",
        "stdout",
        "stderr",
        "scripts.log.workers",
    ] {
        let text = std::fs::read_to_string(dir.path(file)).unwrap_or_default();
        assert!(!text.contains(&token), "the token is in {file}");
    }
    assert_none_left(&marker);
}
