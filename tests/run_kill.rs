//! Guarantee 5: a worker SIGKILLed mid-task → the task runs again on another
//! worker and appears exactly once in summary.json.

mod run_util;

use std::time::Duration;

use run_util::{Guard, Scratch, halley, summary, wait_for};

#[test]
fn a_killed_workers_task_runs_again_and_appears_once() {
    let dir = Scratch::new("kill");
    let pids = dir.path("pids");
    // The task records the pid of the worker running it ($PPID of `sh -c`).
    let tasks = dir.write(
        "tasks.txt",
        &format!(
            "echo $PPID >> {}; sleep 2; echo done\necho other\n",
            pids.display()
        ),
    );
    let out = dir.path("out");
    let run = Guard::spawn(
        halley()
            .arg("run")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .args(["--workers", "2"]),
    );

    let victim: u32 = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&pids)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    });
    let cmdline = std::fs::read(format!("/proc/{victim}/cmdline")).expect("the worker runs");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.iter().any(|a| a == "worker"), "{args:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let output = run.wait(Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary(&out);
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["id"], 0);
    assert_eq!(tasks[1]["id"], 1);
    assert_eq!(tasks[0]["exit_code"], 0);
    assert_eq!(tasks[0]["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(out.join("tasks/0.out")).unwrap(),
        "done\n"
    );
    let runs = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(
        runs.lines().count(),
        2,
        "ran once on the victim, once elsewhere: {runs}"
    );
    // Not by the victim (its machine id may be the replacement's: a lost
    // static worker is started again under the same id).
    assert_ne!(
        runs.lines().nth(1).unwrap().trim(),
        victim.to_string(),
        "{runs}"
    );
}
