//! Issue 9, item 7: errors that say what went wrong. A tuple just under the
//! frame limit, whose decoded form the node would refuse, is reported as
//! too large (exit 2) instead of "unreachable … connection closed"; a port
//! where something other than a Halley node listens is said to be one,
//! instead of blaming `--secret-file`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use common::{Node, run};

#[test]
fn a_tuple_that_decodes_past_the_frame_limit_is_too_large_exit_2() {
    let node = Node::start();
    let big = format!("(\"big\", \"{}\")\n", "a".repeat(8 * 1024 * 1024 - 40));
    let out = run(&["out", "--peer", &node.addr, "-"], Some(&big));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("too large"), "{}", out.stderr);
    // The node was never sent it, and serves on.
    let small = run(&["out", "--peer", &node.addr, "(\"small\", 1)"], None);
    assert_eq!(small.code, Some(0), "{small:?}");
}

#[test]
fn a_port_that_does_not_speak_halley_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A tiny HTTP server: reads what comes, answers 400, hangs up.
    thread::spawn(move || {
        for socket in listener.incoming().take(8) {
            let Ok(mut socket) = socket else { continue };
            let mut buf = [0u8; 256];
            let _ = socket.read(&mut buf);
            let _ = socket.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let peer = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{id}");
    let out = run(&["out", "--peer", &peer, "(\"a\", 1)"], None);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("does not speak Halley"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HTTP/1.0 400"), "{}", out.stderr);
    assert!(!out.stderr.contains("secret-file"), "{}", out.stderr);
}
