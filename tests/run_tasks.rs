//! Per-task control and outputs you can trust (issue 11, item 5 of issue
//! 9): `--timeout`, `--retries` (attempts counted), HALLEY_TASK_ID and
//! HALLEY_JOB_ID, `--workdir`, output over `--max-output` marked truncated
//! with its size, and `halley verify` naming a changed, missing or added
//! output file; lost static workers are started again.

mod run_util;

use std::process::Stdio;
use std::time::Duration;

use run_util::{Guard, Scratch, assert_none_left, halley, marked, run_tasks, summary, wait_for};

#[test]
fn tasks_time_out_retry_see_their_ids_and_report_truncation() {
    let dir = Scratch::new("tasks-control");
    let work = dir.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let tasks = dir.write(
        "tasks.txt",
        "sleep 10\nexit 7\necho $HALLEY_TASK_ID $HALLEY_JOB_ID; pwd\nhead -c 1000002 /dev/zero\n",
    );
    let out = dir.path("out");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .arg("--workdir")
            .arg(&work)
            .args(["--timeout", "1s", "--retries", "2", "--max-output", "1000"]),
    )
    .wait(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary = summary(&out);
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["timed_out"], true, "{summary}");
    assert_eq!(tasks[0]["exit_code"], 124);
    assert_eq!(tasks[0]["attempts"], 3, "timed out, retried twice");
    let err0 = std::fs::read_to_string(out.join("tasks/0.err")).unwrap();
    assert!(err0.contains("time limit of 1s"), "{err0}");
    assert_eq!(tasks[1]["exit_code"], 7);
    assert_eq!(tasks[1]["attempts"], 3);
    assert_eq!(tasks[1]["timed_out"], false);
    let job = summary["job"].as_str().unwrap();
    let out2 = std::fs::read_to_string(out.join("tasks/2.out")).unwrap();
    assert_eq!(out2, format!("2 {job}\n{}\n", work.display()));
    assert_eq!(tasks[3]["truncated"], true);
    assert_eq!(tasks[3]["stdout_bytes"], 1_000_002);
    assert_eq!(
        std::fs::metadata(out.join("tasks/3.out")).unwrap().len(),
        1000
    );
    assert!(
        stderr.contains("task 3: output truncated: stdout 1000 of 1000002 bytes kept"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr}");
    assert_eq!(summary["failed"], 2);
    assert!(!out.join("_SUCCESS").exists());
}

#[test]
fn verify_names_a_changed_missing_or_added_output() {
    let dir = Scratch::new("tasks-verify");
    let tasks = dir.write("tasks.txt", "echo a\necho b\necho c\n");
    let out = dir.path("out");
    let output = run_tasks(&tasks, &out);
    assert_eq!(output.status.code(), Some(0));
    assert!(out.join("_SUCCESS").exists());
    let verify = || Guard::spawn(halley().arg("verify").arg(&out)).wait(Duration::from_secs(30));
    let ok = verify();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: 6 files"));
    std::fs::write(out.join("tasks/0.out"), "tampered\n").unwrap();
    std::fs::remove_file(out.join("tasks/1.err")).unwrap();
    std::fs::write(out.join("tasks/7.out"), "stray\n").unwrap();
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(
        stdout,
        "changed tasks/0.out\nmissing tasks/1.err\nadded tasks/7.out\n"
    );
    let none =
        Guard::spawn(halley().arg("verify").arg(dir.path("nowhere"))).wait(Duration::from_secs(30));
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn killed_workers_are_replaced_and_every_task_runs_once() {
    let dir = Scratch::new("tasks-replace");
    let marker = format!("replace-{}", std::process::id());
    let tasks = dir.write("tasks.txt", &"sleep 0.3\n".repeat(40));
    let out = dir.path("out");
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let job = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .args(["--workers", "2"])
            .env("HALLEY_TEST_MARK", &marker)
            .stderr(Stdio::from(stderr)),
    );
    // The job's two workers, once a few tasks are done.
    let workers = wait_for(Duration::from_secs(60), || {
        let done = std::fs::read_dir(out.join("tasks")).map_or(0, |d| d.count());
        let workers: Vec<u32> = marked(&marker)
            .into_iter()
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                cmdline.split(|b| *b == 0).any(|a| a == b"worker")
            })
            .collect();
        (done >= 6 && workers.len() == 2).then_some(workers)
    });
    for pid in &workers {
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    let output = job.wait(Duration::from_secs(120));
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("started again"), "{stderr}");
    let summary = summary(&out);
    let ids: Vec<u64> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..40).collect::<Vec<u64>>(), "every task once");
    assert_none_left(&marker);
}

#[test]
fn gnu_parallel_style_inputs_make_the_tasks() {
    let dir = Scratch::new("tasks-parallel");
    let out = dir.path("out");
    let output = Guard::spawn(halley().arg("run").arg("--out").arg(&out).args([
        "--command",
        "echo {2}-{1}",
        ":::",
        "a",
        "b c",
        ":::",
        "x",
        "y",
    ]))
    .wait(Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let outs: Vec<String> = (0..4)
        .map(|i| std::fs::read_to_string(out.join(format!("tasks/{i}.out"))).unwrap())
        .collect();
    assert_eq!(outs, ["x-a\n", "y-a\n", "x-b c\n", "y-b c\n"]);
    assert_eq!(summary(&out)["tasks"][2]["command"], "echo 'x'-'b c'");

    // Tasks on stdin, one continued over two lines.
    let stdin_out = dir.path("stdin-out");
    let mut job = halley();
    job.arg("run")
        .arg("-")
        .arg("--out")
        .arg(&stdin_out)
        .stdin(Stdio::piped());
    let mut child = job.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"echo one\necho two \\\n  three\n")
            .unwrap();
    }
    let output = Guard(Some(child)).wait(Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let summary = summary(&stdin_out);
    assert_eq!(summary["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read_to_string(stdin_out.join("tasks/1.out")).unwrap(),
        "two three\n"
    );
    let bad = Guard::spawn(halley().arg("run").arg("--out").arg(dir.path("bad")).args([
        "--command",
        "echo {3}",
        ":::",
        "a",
    ]))
    .wait(Duration::from_secs(30));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("{3}: this task has 1 argument"));
}

#[test]
fn a_signed_manifest_is_checked_against_its_signer() {
    let dir = Scratch::new("tasks-sign");
    let tasks = dir.write("tasks.txt", "echo a\necho b\n");
    let out = dir.path("out");
    let key = dir.path("job.key");
    let output = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .arg("--sign-key")
            .arg(&key),
    )
    .wait(Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let signed = summary(&out);
    let signer = signed["signature"]["signer"].as_str().unwrap().to_owned();
    let verify = |extra: &[&str]| {
        Guard::spawn(halley().arg("verify").arg(&out).args(extra)).wait(Duration::from_secs(30))
    };
    let ok = verify(&["--signer", &signer]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("signed by {signer}")));
    let other = verify(&[
        "--signer",
        "12D3KooWGc54TNMxEwrvDtws1sy8mrPZSLe3AHQRSgvrAAbsbJCi",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stdout).starts_with("wrong signer"));
    // Someone changes an output and its digest in the summary to match:
    // the signature no longer does.
    std::fs::write(out.join("tasks/0.out"), "forged\n").unwrap();
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let old = signed["files"]["tasks/0.out"].as_str().unwrap();
    let forged = "b0a5b6da0be1ac5a5e1b8ee4e04b9ae4c52bcaf0b0ef5d7ba4a1f3e40e58df1c";
    std::fs::write(out.join("summary.json"), text.replace(old, forged)).unwrap();
    let bad = verify(&[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).starts_with("bad signature"),
        "{bad:?}"
    );
}
