//! `halley node` and the client commands, as real processes on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Node, run, spawn};

fn ok(args: &[&str]) -> String {
    let out = run(args, None);
    assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    out.stdout
}

#[test]
fn out_rd_in_scan_and_status_round_trip() {
    let node = Node::start();
    let peer = node.addr.as_str();
    ok(&[
        "out",
        "--peer",
        peer,
        r#"("task", 1, 2.5, true, b"00ff", "a \"q\"")"#,
    ]);
    ok(&[
        "out",
        "--peer",
        peer,
        r#"("task", 2, 0.5, false, b"", "b")"#,
    ]);
    ok(&["out", "--peer", peer, r#"("other", 3)"#]);

    let read = ok(&["rd", "--peer", peer, r#"("task", ?int, *, *, *, *)"#]);
    assert_eq!(
        read,
        "(\"task\", 1, 2.5, true, b\"00ff\", \"a \\\"q\\\"\")\n"
    );

    let scanned = ok(&["scan", "--peer", peer, r#"("task", *, *, *, *, *)"#]);
    assert_eq!(scanned.lines().count(), 2, "{scanned}");
    let limited = ok(&["scan", "--peer", peer, "(*, *, *, *, *, *)", "--limit", "1"]);
    assert_eq!(limited.lines().count(), 1);

    let json = ok(&["status", "--peer", peer, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["tuples"], 3);
    assert_eq!(status["peers"][0]["tuples"], 3);
    assert_eq!(status["peers"][0]["addr"], peer);
    assert!(peer.ends_with(status["peers"][0]["id"].as_str().unwrap()));

    let taken = ok(&["in", "--peer", peer, r#"("task", 2..10, *, *, *, *)"#]);
    assert!(taken.starts_with("(\"task\", 2, 0.5"), "{taken}");
    let gone = run(
        &[
            "in",
            "--peer",
            peer,
            r#"("task", 2, *, *, *, *)"#,
            "--timeout",
            "0",
        ],
        None,
    );
    assert_eq!(gone.code, Some(1), "{gone:?}");

    let table = ok(&["status", "--peer", peer]);
    assert!(table.contains(&node.addr), "{table}");
    assert!(
        table.trim_end().ends_with("1 peer(s), 2 tuple(s)"),
        "{table}"
    );
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let node = Node::start();
    let peer = node.addr.as_str();

    let nothing = run(
        &["rd", "--peer", peer, "(\"none\")", "--timeout", "0"],
        None,
    );
    assert_eq!(nothing.code, Some(1), "{nothing:?}");
    let late = run(
        &["in", "--peer", peer, "(\"none\")", "--timeout", "200ms"],
        None,
    );
    assert_eq!(late.code, Some(1), "{late:?}");
    let empty = run(&["scan", "--peer", peer, "(\"none\")"], None);
    assert_eq!((empty.code, empty.stdout.as_str()), (Some(1), ""));

    let bad = run(&["out", "--peer", peer, r#"("task", @)"#], None);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(
        bad.stderr.contains("out: tuple: column 10: expected"),
        "{}",
        bad.stderr
    );
    let bad = run(&["in", "--peer", peer, "(1..)"], None);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(
        bad.stderr.contains("in: template: column 5"),
        "{}",
        bad.stderr
    );
    let no_id = run(&["rd", "--peer", "/ip4/127.0.0.1/tcp/1", "(1)"], None);
    assert_eq!(no_id.code, Some(2), "{no_id:?}");
    let bad_ttl = run(&["out", "--peer", peer, "(1)", "--ttl", "soon"], None);
    assert_eq!(bad_ttl.code, Some(2), "{bad_ttl:?}");

    // A node that is gone: its port refuses the dial.
    let mut dead = Node::start();
    let dead_addr = dead.addr.clone();
    dead.proc.kill();
    let unreachable = run(&["out", "--peer", &dead_addr, "(1)"], None);
    assert_eq!(unreachable.code, Some(3), "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot reach"),
        "{}",
        unreachable.stderr
    );
}

#[test]
fn a_solo_node_serves_alone_and_cannot_also_join() {
    let node = Node::start_with(&["--solo"]);
    assert_eq!(ok(&["out", "--peer", &node.addr, "(\"solo\", 1)"]), "");
    assert_eq!(
        ok(&["in", "--peer", &node.addr, "(\"solo\", ?int)"]).trim(),
        "(\"solo\", 1)"
    );
    let both = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--solo",
            "--join",
            &node.addr,
        ],
        None,
    );
    assert_eq!(both.code, Some(2), "{both:?}");
    assert!(both.stderr.contains("--solo"), "{}", both.stderr);
}

#[test]
fn node_flags_are_checked() {
    let bad_join = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--join",
            "/ip4/127.0.0.1/tcp/1",
        ],
        None,
    );
    assert_eq!(bad_join.code, Some(2), "{bad_join:?}");
    assert!(
        bad_join.stderr.contains("/p2p/<peer-id>"),
        "{}",
        bad_join.stderr
    );

    let dir = std::env::temp_dir().join(format!("halley-node-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("bad.key");
    std::fs::write(&secret, "not a key\n").unwrap();
    let secret = secret.to_str().unwrap();
    let bad_secret = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--secret-file",
            secret,
        ],
        None,
    );
    assert_eq!(bad_secret.code, Some(2), "{bad_secret:?}");
    assert!(
        bad_secret.stderr.contains("bad.key"),
        "{}",
        bad_secret.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let zero = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--replicas",
            "0",
        ],
        None,
    );
    assert_eq!(zero.code, Some(2), "{zero:?}");
    // An address of no interface here (TEST-NET-3): the node cannot listen.
    let elsewhere = run(&["node", "--listen", "/ip4/203.0.113.1/tcp/0"], None);
    assert_eq!(elsewhere.code, Some(3), "{elsewhere:?}");
    assert!(
        elsewhere.stderr.contains("cannot listen"),
        "{}",
        elsewhere.stderr
    );
}

#[test]
fn bulk_out_from_stdin() {
    let node = Node::start();
    let peer = node.addr.as_str();
    let lines: String = (0..3000)
        .map(|i| format!("(\"item\", {i}, \"payload {i}\")\n"))
        .collect();
    let out = run(&["out", "--peer", peer, "-"], Some(&lines));
    assert_eq!(out.code, Some(0), "{out:?}");

    let json = ok(&["status", "--peer", peer, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["tuples"], 3000);
    let all = ok(&["scan", "--peer", peer, "(\"item\", ?int, ?str)"]);
    assert_eq!(all.lines().count(), 3000);
    assert_eq!(all.lines().next(), Some("(\"item\", 0, \"payload 0\")"));

    let broken = "(\"x\", 1)\n(\"x\", 2)\n(\"x\" 3)\n";
    let out = run(&["out", "--peer", peer, "-"], Some(broken));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("stdin line 3: tuple: column 6"),
        "{}",
        out.stderr
    );
    let json = ok(&["status", "--peer", peer, "--json"]);
    assert!(
        json.contains("\"tuples\":3000"),
        "nothing stored from a bad bulk: {json}"
    );
}

#[test]
fn a_blocked_in_is_woken_by_a_later_out() {
    let node = Node::start();
    let peer = node.addr.as_str();
    let mut waiting = spawn(&["in", "--peer", peer, "(\"job\", ?int)"], None);
    assert!(
        waiting.proc.try_wait(Duration::from_millis(500)).is_none(),
        "`in` returned before any tuple was written"
    );
    ok(&["out", "--peer", peer, "(\"job\", 42)"]);
    let status = waiting.proc.wait(common::DEADLINE);
    let out = waiting.finish(status);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "(\"job\", 42)\n")
    );
}

#[test]
fn a_killed_in_does_not_swallow_a_tuple() {
    let node = Node::start();
    let peer = node.addr.as_str();
    let mut waiting = spawn(&["in", "--peer", peer, "(\"job\", ?int)"], None);
    assert!(waiting.proc.try_wait(Duration::from_millis(500)).is_none());
    waiting.proc.kill();
    // Give the node a moment to see the connection go.
    std::thread::sleep(Duration::from_millis(300));
    ok(&["out", "--peer", peer, "(\"job\", 7)"]);
    let found = ok(&["rd", "--peer", peer, "(\"job\", ?int)", "--timeout", "5s"]);
    assert_eq!(found, "(\"job\", 7)\n");
}

#[test]
fn a_ttl_expires_the_tuple_on_the_node() {
    let node = Node::start();
    let peer = node.addr.as_str();
    ok(&["out", "--peer", peer, "(\"brief\", 1)", "--ttl", "200ms"]);
    ok(&["out", "--peer", peer, "(\"brief\", 2)", "--ttl", "1h"]);
    std::thread::sleep(Duration::from_millis(600));
    let left = ok(&["scan", "--peer", peer, "(\"brief\", ?int)"]);
    assert_eq!(left, "(\"brief\", 2)\n");
}

#[test]
fn a_node_stops_cleanly_on_sigterm() {
    let mut node = Node::start();
    let pid = node.proc.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = node.proc.wait(common::DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
}
