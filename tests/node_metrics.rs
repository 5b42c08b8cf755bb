//! `halley node --metrics`: a real node serves Prometheus text over HTTP,
//! and the counters follow what clients did.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{DEADLINE, Node, run};

/// The `host:port` the node said it serves metrics on.
fn metrics_addr(node: &Node) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let stderr = node.stderr();
        if let Some(rest) = stderr.split("metrics at http://").nth(1) {
            return rest.split('/').next().expect("host:port").to_owned();
        }
        assert!(Instant::now() < end, "no metrics line; stderr: {stderr}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `GET <path>` on `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut socket = TcpStream::connect(addr).expect("connect to the metrics port");
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
}

#[test]
fn metrics_count_what_clients_did() {
    let node = Node::start_with(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&node);
    let (status, body) = get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&body, "halley_tuples"), 0);

    let loaded = run(
        &["out", "--peer", &node.addr, "-"],
        Some("(\"a\", 1)\n(\"a\", 2)\n(\"a\", 3)\n"),
    );
    assert_eq!(loaded.code, Some(0), "{}", loaded.stderr);
    let taken = run(&["in", "--peer", &node.addr, "(\"a\", ?int)"], None);
    assert_eq!(taken.code, Some(0), "{}", taken.stderr);

    let (_, body) = get(&addr, "/metrics");
    assert_eq!(sample(&body, "halley_tuples"), 2);
    assert_eq!(sample(&body, "halley_tuples_out_total"), 3);
    assert_eq!(sample(&body, "halley_tuples_taken_total"), 1);
    assert_eq!(sample(&body, "halley_ring_peers"), 1);
    assert!(sample(&body, "halley_requests_total{op=\"take\"}") >= 1);
    assert_eq!(sample(&body, "halley_bad_frames_total"), 0);

    let (status, _) = get(&addr, "/nothing");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn a_metrics_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics",
            &port,
        ],
        None,
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("--metrics {port}")),
        "{}",
        out.stderr
    );
}
