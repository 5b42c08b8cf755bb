//! HALLEY_TOKEN, with real processes on 127.0.0.1: a `halley run` whose
//! policy has a paid `command` class serves its embedded space to paid
//! machines through a gateway, and hands them the job's capability
//! (`hcap1-…`), not the space's key; the class's start script starts a
//! real `halley worker` from HALLEY_JOIN and HALLEY_TOKEN alone, which
//! takes tasks and completes the job with only the capability. A worker
//! with no token, a forged capability or a key is refused (exit 3), one
//! with a malformed capability exits 2, and none takes a task; a client
//! holding the job's real capability may not take another job's tasks,
//! read, scan or write outside its job, nor ask the status. The token is in neither `summary.json` nor the job's output,
//! nor the tasks' environment. With `--trusted-workers` the machines get
//! the space's key (64 hex digits) as before.
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

/// What a client holding the job's capability `capability` (for `job`)
/// gets from the gateway at `join` for what lies outside its job: one
/// refusal message each, in order.
fn outside_the_job(join: &str, capability: &str, job: &str) -> Vec<String> {
    use halley_substrate::{RemoteSpace, Space, SpaceError, parse_template, parse_tuple};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let space = RemoteSpace::connect(join.parse().unwrap(), Duration::from_secs(10))
            .await
            .unwrap();
        space.present(capability).await.unwrap();
        let t = |text: &str| parse_template(text).unwrap();
        let zero = Some(Duration::ZERO);
        let results: Vec<Result<(), SpaceError>> = vec![
            space
                .take(t(r#"("task", "another-job", ?bytes)"#), zero)
                .await
                .map(drop),
            space.take(t(r#"("task", *, *)"#), zero).await.map(drop),
            space
                .read(t(&format!(r#"("task", "{job}", ?bytes)"#)), zero)
                .await
                .map(drop),
            space.scan(t("(*)"), None).await.map(drop),
            space.out(parse_tuple(r#"("anything", 1)"#).unwrap()).await,
            space
                .out(parse_tuple(&format!(r#"("task", "{job}", b"00")"#)).unwrap())
                .await,
            space.status().await.map(drop),
        ];
        results
            .into_iter()
            .map(|r| match r {
                Err(SpaceError::Refused(message)) => message,
                other => panic!("expected a refusal, got {other:?}"),
            })
            .collect()
    })
}

/// Starts `halley worker --peer <join>` with `token` (none: no key at all)
/// and returns its exit code and stderr, at most 30 s later.
/// Asserts the job's capability `token` opens nothing outside job
/// `job_id` at the gateway `join`.
fn assert_only_its_job(join: &str, token: &str, job_id: &str) {
    let refusals = outside_the_job(join, token, job_id);
    assert_eq!(refusals.len(), 7);
    for (message, says) in refusals.iter().zip([
        "taking (\"task\", \"another-job\"",
        "taking (\"task\", *",
        "reading",
        "scanning",
        "writing a tuple (\"anything\", 1, …)",
        "writing a tuple (\"task\"",
        "status",
    ]) {
        assert!(message.contains("does not allow"), "{message}");
        assert!(message.contains(says), "{message} (expected {says})");
    }
}

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

/// A `halley run` of a `command` class whose first task waits (at most
/// 60 s) for the test to open its gate, so the test never races the job's
/// end; its stdout and stderr go to files in `dir`.
struct GatedJob {
    job: Guard,
    gate: std::path::PathBuf,
    /// What the class's start script got: HALLEY_JOIN and HALLEY_TOKEN.
    join: String,
    token: String,
}

impl GatedJob {
    fn start(dir: &Scratch, marker: &str, tasks: &str, extra: &[&str]) -> GatedJob {
        let gate = dir.path("gate");
        let policy = dir.write(
            "policy.toml",
            &command_policy("30s", 2, "start-private-worker.sh"),
        );
        let wait_gate = format!(
            "i=0; while [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
            gate.display()
        );
        let tasks = dir.write("tasks.txt", &(wait_gate + tasks));
        let stdout = std::fs::File::create(dir.path("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
        let job = Guard::spawn(
            halley()
                .arg("run")
                .args(extra)
                .arg(&tasks)
                .arg("--policy")
                .arg(&policy)
                .arg("--out")
                .arg(dir.path("out"))
                .env("HALLEY_TEST_MARK", marker)
                .env("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley"))
                .env("HALLEY_TEST_LOG", dir.path("scripts.log"))
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
        GatedJob {
            job,
            gate,
            join,
            token,
        }
    }

    /// The job id the capability names.
    fn job_id(&self) -> String {
        self.token.splitn(3, '-').nth(2).unwrap().to_owned()
    }

    /// Opens the gate and waits for the job's end: it exits 0.
    fn finish(mut self, dir: &Scratch) {
        std::fs::write(&self.gate, "").unwrap();
        let job = &mut self.job;
        let status = wait_for(Duration::from_secs(120), || job.child().try_wait().unwrap());
        let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn command_machines_join_with_the_token_and_nobody_else_can() {
    let dir = Scratch::new("token-run");
    let marker = format!("token-{}", std::process::id());
    // Tasks do not see the token: `env` prints what they do see.
    let job = GatedJob::start(&dir, &marker, &"sleep 1; env\n".repeat(16), &[]);
    let (join, token) = (job.join.clone(), job.token.clone());
    assert!(join.contains("/p2p/"), "{join}");
    assert!(token.starts_with("hcap1-"), "a capability, not the key");
    let job_id = job.job_id();
    let (code, stderr) = intruder(&join, None);
    assert_eq!(code, Some(3), "a worker without the token: {stderr}");
    assert!(stderr.contains("present one first"), "{stderr}");
    let forged = format!("hcap1-{}-{job_id}", "ab".repeat(32));
    let (code, stderr) = intruder(&join, Some(&forged));
    assert_eq!(code, Some(3), "a worker with a forged capability: {stderr}");
    assert!(stderr.contains("unknown or revoked"), "{stderr}");
    let (code, stderr) = intruder(&join, Some("hcap1-00-run"));
    assert_eq!(code, Some(2), "a malformed capability: {stderr}");
    assert!(stderr.contains("HALLEY_TOKEN: expected hcap1-"), "{stderr}");
    let (code, stderr) = intruder(&join, Some(&"ab".repeat(32)));
    assert_eq!(code, Some(3), "a worker with a key: {stderr}");
    assert!(stderr.contains(REFUSED), "{stderr}");
    assert_only_its_job(&join, &token, &job_id);

    job.finish(&dir);

    let summary = summary(&dir.path("out"));
    let done = summary["tasks"].as_array().unwrap();
    assert_eq!(done.len(), 17, "{summary}");
    assert!(done.iter().all(|t| t["exit_code"] == 0), "{summary}");
    assert!(
        done.iter().any(|t| t["resource"] == "lab"),
        "a command machine took tasks: {summary}"
    );
    assert!(done.iter().all(|t| t["worker"] != "intruder"), "{summary}");
    let workers_log = std::fs::read_to_string(dir.path("scripts.log.workers")).unwrap_or_default();
    assert!(
        !workers_log.contains("refused"),
        "the capability's workers were never refused: {workers_log}"
    );
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

#[test]
fn trusted_workers_get_the_key_instead() {
    let dir = Scratch::new("token-trusted");
    let marker = format!("token-trusted-{}", std::process::id());
    let log = dir.path("scripts.log");
    let policy = dir.write(
        "policy.toml",
        &command_policy("10s", 1, "start-private-worker.sh"),
    );
    // One static worker alone would take 12 s: the deadline buys a machine.
    let tasks = dir.write("tasks.txt", &"sleep 1\n".repeat(12));
    let out = dir.path("out");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--trusted-workers")
            .arg("--policy")
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .env("HALLEY_TEST_MARK", &marker)
            .env("HALLEY_TEST_BIN", env!("CARGO_BIN_EXE_halley"))
            .env("HALLEY_TEST_LOG", &log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .wait(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 1: the deadline was missed, which a busy machine may do.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{stderr}");
    let reach = std::fs::read_to_string(dir.path("scripts.log.reach")).unwrap();
    let (_, token) = reach.trim().split_once(' ').unwrap();
    assert_eq!(token.len(), 64, "the key in hex");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert_eq!(summary(&out)["tasks"].as_array().unwrap().len(), 12);
    assert_none_left(&marker);
}

/// A job submitted to a private ring (`--peer` with `--secret-file`):
/// paid machines get a capability at a gateway the submitter serves, not
/// the overlay's key, and can do nothing outside their job; the ring's
/// tasks are still done by them.
#[test]
fn a_peer_job_gives_paid_machines_a_capability_not_the_overlay_key() {
    let dir = Scratch::new("token-peer");
    let marker = format!("token-peer-{}", std::process::id());
    let key_hex = "5a".repeat(32);
    let key = dir.write(
        "overlay.key",
        &format!("/key/swarm/psk/1.0.0/\n/base16/\n{key_hex}\n"),
    );
    let key = key.to_str().unwrap().to_owned();
    let node = common::Node::start_with(&["--ring", "--secret-file", &key]);
    let peer = ["--peer", &node.addr, "--secret-file", &key];
    let job = GatedJob::start(&dir, &marker, &"sleep 1\n".repeat(12), &peer);
    let (join, token) = (job.join.clone(), job.token.clone());
    assert!(token.starts_with("hcap1-"), "a capability, not the key");
    assert!(!token.contains(&key_hex), "{token}");
    assert_ne!(join, node.addr, "machines reach a gateway, not the ring");
    assert_only_its_job(&join, &token, &job.job_id());
    let (code, stderr) = intruder(&join, None);
    assert_eq!(code, Some(3), "a worker without the token: {stderr}");

    job.finish(&dir);
    let summary = summary(&dir.path("out"));
    let done = summary["tasks"].as_array().unwrap();
    assert_eq!(done.len(), 13, "{summary}");
    assert!(
        done.iter().any(|t| t["resource"] == "lab"),
        "a machine behind the gateway took tasks: {summary}"
    );
    assert!(
        !std::fs::read_to_string(dir.path("stderr"))
            .unwrap()
            .contains(&key_hex)
    );
    assert_none_left(&marker);
}
