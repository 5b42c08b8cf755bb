//! `halley node --metrics`: a real node serves Prometheus text over HTTP,
//! and the counters follow what clients did.

mod common;

use common::{Node, get, metrics_addr, run, sample};

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
