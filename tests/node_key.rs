//! `halley node --key-file`: the node's peer id survives a restart, and a
//! file that is not a key is refused (exit 2, naming it).

mod common;
mod run_util;

use run_util::Scratch;

fn peer_id(addr: &str) -> &str {
    addr.rsplit("/p2p/").next().unwrap()
}

#[test]
fn a_key_file_keeps_the_peer_id_across_restarts() {
    let dir = Scratch::new("node-key");
    let key = dir.path("node.key");
    let key_arg = key.to_str().unwrap();
    let first = common::Node::start_with(&["--key-file", key_arg]);
    let id = peer_id(&first.addr).to_owned();
    drop(first);
    assert!(key.exists(), "the key file was created");
    let again = common::Node::start_with(&["--key-file", key_arg]);
    assert_eq!(peer_id(&again.addr), id);
    let other = common::Node::start();
    assert_ne!(peer_id(&other.addr), id, "without it, a fresh id");
    // A ring peer joins it by that id.
    let joined = common::Node::start_with(&["--join", &again.addr]);
    common::eventually("the ring has two peers", || {
        common::ring_size(&joined.addr, &[]) == Some(2)
    });

    let bad = dir.write("bad.key", "not a key");
    let out = common::run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--key-file",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("bad.key: not a node key file"),
        "{}",
        out.stderr
    );
}
