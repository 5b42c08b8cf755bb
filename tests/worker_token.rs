//! Keys through `--peer`, with real processes on 127.0.0.1: `halley worker`
//! takes a private overlay's key as a token (`--token`, `HALLEY_TOKEN`,
//! `--token-file`: 64 hex digits) as it takes `--secret-file`, refuses two
//! sources naming both and a malformed token naming its flag or variable
//! (exit 2); `mapreduce` and `workflow` reach a private peer with
//! `--secret-file`, as `run` does, and their workers hold the key. A
//! worker holding a job's capability refuses `--direct` (exit 2).

mod common;
mod run_util;

use std::process::Stdio;

use common::{DEADLINE, Node, Proc, halley, run};
use run_util::Scratch;

/// The key's hex, and a key file and a token file holding it.
fn key(dir: &Scratch) -> (String, String, String) {
    let hex = "5a".repeat(32);
    let file = dir.write(
        "cluster.key",
        &format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n"),
    );
    let token = dir.write("token", &format!("  {hex}\n"));
    let text = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    (hex, text(file), text(token))
}

#[test]
fn a_token_file_is_the_key_and_bad_or_double_tokens_exit_2() {
    let dir = Scratch::new("token-worker");
    let (hex, key_file, token_file) = key(&dir);
    let node = Node::start_with(&["--secret-file", &key_file]);

    // A worker of every job, as a lab machine's would be: killed at the end.
    let mut worker = Proc::spawn(
        halley()
            .args(["worker", "--peer", &node.addr, "--token-file", &token_file])
            .args(["--resource", "campus", "--id", "tok"])
            .env_remove("HALLEY_TOKEN")
            .env_remove("HALLEY_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let tasks = dir.write("tasks.txt", "echo one\necho two\n");
    let policy = dir.write(
        "policy.toml",
        "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 1\n",
    );
    let out = dir.path("out");
    let job = run(
        &[
            "run",
            tasks.to_str().unwrap(),
            "--peer",
            &node.addr,
            "--secret-file",
            &key_file,
            "--policy",
            policy.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(job.code, Some(0), "{job:?}");
    let summary = run_util::summary(&out);
    let done = summary["tasks"].as_array().unwrap();
    assert_eq!(done.len(), 2, "{summary}");
    assert!(done.iter().all(|t| t["worker"] == "tok"), "{summary}");
    worker.kill();

    let worker = |args: &[&str], env: Option<&str>| {
        let mut all = vec!["worker", "--peer", node.addr.as_str()];
        all.extend_from_slice(args);
        let mut command = halley();
        command
            .args(&all)
            .env_remove("HALLEY_TOKEN")
            .env_remove("HALLEY_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = env {
            command.env("HALLEY_TOKEN", token);
        }
        let output = run_util::Guard::spawn(&mut command).wait(DEADLINE);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = worker(&["--token", "0123abc"], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--token: expected 64 hex digits"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("0123abc"),
        "the token is not repeated: {stderr}"
    );
    let (code, stderr) = worker(&[], Some("not-hex"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("HALLEY_TOKEN: expected 64 hex digits"),
        "{stderr}"
    );
    let (code, stderr) = worker(
        &["--token-file", &token_file, "--secret-file", &key_file],
        None,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--token-file and --secret-file"),
        "{stderr}"
    );
    let (code, stderr) = worker(&["--token-file", &token_file], Some(&hex));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("HALLEY_TOKEN and --token-file"), "{stderr}");
}

#[test]
fn mapreduce_and_workflow_reach_a_private_peer_with_secret_file() {
    let dir = Scratch::new("token-paradigms");
    let (_, key_file, _) = key(&dir);
    let node = Node::start_with(&["--secret-file", &key_file]);
    let input = dir.write("in.txt", "a\nb\na\n");
    let out = dir.path("mr");
    let mr = run(
        &[
            "mapreduce",
            "--input",
            input.to_str().unwrap(),
            "--map",
            r#"awk '{ print $1 "\t1" }'"#,
            "--reduce",
            r#"awk -F '\t' '{ c[$1] += $2 } END { for (k in c) print k "\t" c[k] }'"#,
            "--reducers",
            "1",
            "--workers",
            "1",
            "--peer",
            &node.addr,
            "--secret-file",
            &key_file,
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(mr.code, Some(0), "{mr:?}");
    let mut counts: Vec<String> = std::fs::read_to_string(out.join("part-0"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    counts.sort();
    assert_eq!(counts, ["a\t2", "b\t1"]);

    let wf = dir.write(
        "wf.toml",
        "[stages.one]\ncommands = [\"echo one > one.txt\"]\n\
         [stages.two]\nafter = [\"one\"]\ncommands = [\"cat one.txt > two.txt\"]\n",
    );
    let wf_out = dir.path("wf");
    let flow = run(
        &[
            "workflow",
            wf.to_str().unwrap(),
            "--slots",
            "1",
            "--peer",
            &node.addr,
            "--secret-file",
            &key_file,
            "--out",
            wf_out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(flow.code, Some(0), "{flow:?}");
    assert_eq!(
        std::fs::read_to_string(wf_out.join("two.txt")).unwrap(),
        "one\n"
    );
}

/// `--direct` would have a worker reach every ring peer; one holding a
/// job's capability has its gateway as its only door: exit 2, before any
/// connection.
#[test]
fn a_worker_with_a_capability_cannot_go_direct() {
    let capability = format!("hcap1-{}-job-1", "ab".repeat(32));
    let peer = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWHQLcftEmLFWqQB3yv3iUQ6eHnKcHqRevkfKo6FzKtNE7";
    let out = run(
        &["worker", "--peer", peer, "--token", &capability, "--direct"],
        None,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--direct") && out.stderr.contains("gateway"),
        "{}",
        out.stderr
    );
}
