//! `halley run --peer` against a `halley node`, with two `halley worker`
//! processes started here: SIGKILL the one running a task → the task runs
//! again on the other and appears exactly once in summary.json. And
//! `halley worker --direct` on a 3-peer ring: every task once.

mod common;
mod run_util;

use std::process::Stdio;
use std::time::Duration;

use common::{Node, Proc};
use run_util::{Guard, Scratch, summary, wait_for};

fn worker(node: &Node, id: &str) -> Proc {
    worker_with(node, id, &[])
}

fn worker_with(node: &Node, id: &str, extra: &[&str]) -> Proc {
    Proc::spawn(
        common::halley()
            .args([
                "worker",
                "--peer",
                &node.addr,
                "--id",
                id,
                "--lease",
                "1s",
                "--resource",
                "campus",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

#[test]
fn a_killed_worker_on_a_peer_has_its_task_rerun_once() {
    let dir = Scratch::new("peer-kill");
    let node = Node::start();
    let mut workers = [worker(&node, "wa"), worker(&node, "wb")];
    let marks = dir.path("marks");
    let tasks = dir.write(
        "tasks.txt",
        &format!(
            "echo $PPID >> {m}; sleep 2; echo slow\necho $PPID >> {m}.fast; echo fast\n",
            m = marks.display()
        ),
    );
    let out = dir.path("out");
    let run = Guard::spawn(
        run_util::halley()
            .args(["run", "--peer", &node.addr, "--out"])
            .arg(&out)
            .arg(&tasks),
    );

    let victim_pid: u32 = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&marks)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    });
    let victim = workers
        .iter_mut()
        .find(|w| w.id() == victim_pid)
        .expect("a worker of ours runs the slow task");
    victim.kill();
    let victim_id = if victim_pid == workers[0].id() {
        "wa"
    } else {
        "wb"
    };

    let output = run.wait(Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary(&out);
    let tasks = summary["tasks"].as_array().unwrap();
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1], "each task exactly once");
    assert_eq!(tasks[0]["attempts"], 2);
    assert_eq!(tasks[0]["exit_code"], 0);
    assert_ne!(tasks[0]["worker"], victim_id);
    assert_eq!(tasks[0]["resource"], "campus");
    assert_eq!(tasks[1]["attempts"], 1);
    assert_eq!(
        std::fs::read_to_string(out.join("tasks/0.out")).unwrap(),
        "slow\n"
    );
    assert_eq!(std::fs::read_to_string(&marks).unwrap().lines().count(), 2);
}

/// Two `--direct` workers entering a 3-peer ring at the peers the job does
/// not use: each sends its takes and results straight to the peers
/// holding them, and every task runs once.
#[test]
fn direct_workers_on_a_ring_run_every_task_once() {
    const TASKS: usize = 40;
    let dir = Scratch::new("peer-direct");
    let nodes = common::ring(3, 2);
    let _workers = [
        worker_with(&nodes[1], "da", &["--direct"]),
        worker_with(&nodes[2], "db", &["--direct"]),
    ];
    let lines: String = (0..TASKS).map(|i| format!("echo task-{i}\n")).collect();
    let tasks = dir.write("tasks.txt", &lines);
    let out = dir.path("out");
    let run = Guard::spawn(
        run_util::halley()
            .args(["run", "--peer", &nodes[0].addr, "--out"])
            .arg(&out)
            .arg(&tasks),
    );
    let output = run.wait(Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary(&out);
    let tasks = summary["tasks"].as_array().unwrap();
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (0..TASKS as u64).collect::<Vec<_>>(),
        "each task exactly once"
    );
    assert!(
        tasks
            .iter()
            .all(|t| t["exit_code"] == 0 && t["attempts"] == 1)
    );
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(out.join(format!("tasks/{i}.out"))).unwrap(),
            format!("task-{i}\n")
        );
        assert!(task["worker"] == "da" || task["worker"] == "db", "{task}");
    }
}
