//! The private overlay (`--secret-file`, libp2p pnet): real `halley`
//! processes on 127.0.0.1. Peers and clients holding the same key work
//! together; a client or peer without it, or with another one, is refused
//! with a message pointing at the secret (exit 3); a malformed key file
//! exits 2 naming the file. Every process is killed on drop.

mod common;
mod run_util;

use std::path::Path;

use common::{Node, Output, eventually, ring_size, run};
use run_util::Scratch;

/// The message a refused handshake prints.
const HINT: &str = "does this node use a --secret-file, and is it the same one?";

/// Writes a key file whose 32 key bytes are all `byte`.
fn key_file(dir: &Scratch, name: &str, byte: u8) -> String {
    let hex = format!("{byte:02x}").repeat(32);
    let text = format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n");
    path_text(&dir.write(name, &text))
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Asserts `out` is a refused handshake: exit 3, the hint on stderr.
fn assert_refused(out: &Output, what: &str) {
    assert_eq!(out.code, Some(3), "{what}: {out:?}");
    assert!(
        out.stderr.contains("the handshake failed"),
        "{what}: {}",
        out.stderr
    );
    assert!(out.stderr.contains(HINT), "{what}: {}", out.stderr);
}

#[test]
fn peers_and_clients_with_the_same_secret_work_together() {
    let dir = Scratch::new("pnet-same");
    let key = key_file(&dir, "cluster.key", 0x5a);
    let secret = ["--secret-file", key.as_str()];
    let first = Node::start_with(&["--ring", "--secret-file", &key]);
    let second = Node::start_with(&["--join", &first.addr, "--secret-file", &key]);
    for node in [&first, &second] {
        eventually("both peers to see the ring of two", || {
            ring_size(&node.addr, &secret) == Some(2)
        });
    }

    let put = run(
        &[
            "out",
            "--peer",
            &first.addr,
            "(\"secret\", 1)",
            "--secret-file",
            &key,
        ],
        None,
    );
    assert_eq!(put.code, Some(0), "{put:?}");
    let take = |peer: &str| {
        run(
            &[
                "in",
                "--peer",
                peer,
                "(\"secret\", ?int)",
                "--timeout",
                "5s",
                "--secret-file",
                &key,
            ],
            None,
        )
    };
    let got = take(&second.addr);
    assert_eq!(got.code, Some(0), "{got:?}");
    assert_eq!(got.stdout.trim(), "(\"secret\", 1)");
    let again = run(
        &[
            "in",
            "--peer",
            &first.addr,
            "(\"secret\", ?int)",
            "--timeout",
            "0",
            "--secret-file",
            &key,
        ],
        None,
    );
    assert_eq!(again.code, Some(1), "taken twice: {again:?}");
}

#[test]
fn a_client_without_the_secret_or_with_another_is_refused() {
    let dir = Scratch::new("pnet-client");
    let key = key_file(&dir, "cluster.key", 0x5a);
    let other = key_file(&dir, "other.key", 0xa5);
    let node = Node::start_with(&["--ring", "--secret-file", &key]);

    let none = run(&["out", "--peer", &node.addr, "(1)"], None);
    assert_refused(&none, "no secret");
    let wrong = run(
        &["out", "--peer", &node.addr, "(1)", "--secret-file", &other],
        None,
    );
    assert_refused(&wrong, "another secret");
    let status = run(
        &["status", "--peer", &node.addr, "--secret-file", &other],
        None,
    );
    assert_refused(&status, "status with another secret");

    // And a node without a secret refuses a client holding one.
    let open = Node::start_with(&["--ring"]);
    let needless = run(
        &[
            "rd",
            "--peer",
            &open.addr,
            "(1)",
            "--timeout",
            "0",
            "--secret-file",
            &key,
        ],
        None,
    );
    assert_refused(&needless, "a secret the node does not use");

    // Nothing got in through the refused clients.
    let ours = run(
        &["scan", "--peer", &node.addr, "(*)", "--secret-file", &key],
        None,
    );
    assert_eq!(ours.code, Some(1), "{ours:?}");
}

#[test]
fn a_peer_joining_without_the_secret_or_with_another_fails() {
    let dir = Scratch::new("pnet-join");
    let key = key_file(&dir, "cluster.key", 0x5a);
    let other = key_file(&dir, "other.key", 0xa5);
    let first = Node::start_with(&["--ring", "--secret-file", &key]);
    let listen = "/ip4/127.0.0.1/tcp/0";

    let wrong = run(
        &[
            "node",
            "--listen",
            listen,
            "--join",
            &first.addr,
            "--secret-file",
            &other,
        ],
        None,
    );
    assert_refused(&wrong, "joining with another secret");
    assert!(
        wrong.stderr.contains("cannot join the ring"),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stdout.is_empty(),
        "announced before failing: {}",
        wrong.stdout
    );
    let none = run(&["node", "--listen", listen, "--join", &first.addr], None);
    assert_refused(&none, "joining without the secret");

    let alone = ring_size(&first.addr, &["--secret-file", &key]);
    assert_eq!(alone, Some(1), "a refused peer got in");
}

#[test]
fn a_malformed_secret_file_exits_2_naming_it() {
    let dir = Scratch::new("pnet-bad");
    let bad = path_text(&dir.write("bad.key", "/key/swarm/psk/1.0.0/\n/base16/\nnot hex\n"));
    let missing = path_text(&dir.path("missing.key"));
    // The node is never dialled: the key is read first.
    let peer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWHeSDpDxG5F8gW13hrNpgG478VaMzgxA7w4AzNGaY6M64";
    for (file, expected) in [(&bad, "64 hex digits"), (&missing, "cannot read it")] {
        let out = run(&["out", "--peer", peer, "(1)", "--secret-file", file], None);
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains(file.as_str()), "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        let node = run(
            &[
                "node",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--secret-file",
                file,
            ],
            None,
        );
        assert_eq!(node.code, Some(2), "{node:?}");
        assert!(node.stderr.contains(file.as_str()), "{}", node.stderr);
    }
}

#[test]
fn run_on_a_private_peer_hands_its_workers_the_secret() {
    let dir = Scratch::new("pnet-run");
    let key = key_file(&dir, "cluster.key", 0x5a);
    let node = Node::start_with(&["--ring", "--secret-file", &key]);
    let tasks = dir.write("tasks.txt", "echo one\necho two\necho three\n");
    let out = dir.path("out");
    let job = run_util::Guard::spawn(
        run_util::halley()
            .args(["run", "--peer", &node.addr, "--secret-file", &key])
            .args(["--workers", "2", "--out"])
            .arg(&out)
            .arg(&tasks),
    );
    let output = job.wait(common::DEADLINE);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = run_util::summary(&out);
    let done = summary["tasks"].as_array().expect("tasks");
    assert_eq!(done.len(), 3, "{summary}");
    assert!(done.iter().all(|t| t["exit_code"] == 0), "{summary}");
}

#[test]
fn a_workflow_on_a_private_peer_needs_the_secret() {
    let dir = Scratch::new("pnet-workflow");
    let key = key_file(&dir, "cluster.key", 0x5a);
    let node = Node::start_with(&["--ring", "--secret-file", &key]);
    let wf = dir.write(
        "wf.toml",
        "[stages.only]\ncommands = [\"echo done > done.txt\"]\n",
    );
    let wf = path_text(&wf);
    let out = path_text(&dir.path("out"));
    let args = ["workflow", &wf, "--out", &out, "--peer", &node.addr];

    let refused = run(&args, None);
    assert_refused(&refused, "a workflow without the secret");
    let with_key: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--secret-file", &key])
        .collect();
    let ran = run(&with_key, None);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let done = std::fs::read_to_string(dir.path("out").join("done.txt")).expect("done.txt");
    assert_eq!(done.trim(), "done");
}
