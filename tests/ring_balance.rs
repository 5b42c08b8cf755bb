//! Placement spreads the load: on a ring of five real `halley node`
//! processes, 10,000 `("t", i)` tuples and 10,000 tuples with a random
//! 8-hex-digit first field (keys an order-preserving keyspace crowds on
//! one peer) end spread by the peers' moves until the busiest peer holds
//! at most 1.5 times the mean, every tuple still there exactly once.
//! Every wait is bounded and polls `status --json`; every process is
//! killed on drop.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Node, eventually, ring_size, run, status};

/// Tuples of each kind of key.
const EACH: usize = 10_000;
/// How long the ring may take to spread them (it moves one peer at a
/// time, a few seconds apart).
const SPREAD_WITHIN: Duration = Duration::from_secs(240);

/// Each peer's count of primaries, as `status` through `peer` reports.
fn counts(peer: &str) -> Option<Vec<u64>> {
    let status = status(peer)?;
    let peers = status["peers"].as_array()?;
    peers.iter().map(|p| p["tuples"].as_u64()).collect()
}

/// The busiest peer's count over the mean.
fn spread(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let max = counts.iter().copied().max().unwrap_or(0);
    max as f64 * counts.len() as f64 / total.max(1) as f64
}

fn load(peer: &str, lines: String) {
    let out = run(&["out", "--peer", peer, "-"], Some(&lines));
    assert_eq!(out.code, Some(0), "bulk out: {}", out.stderr);
}

/// Every line a scan for `template` through `peer` prints.
fn scan(peer: &str, template: &str) -> Vec<String> {
    let out = run(&["scan", "--peer", peer, template], None);
    assert_eq!(out.code, Some(0), "scan: {}", out.stderr);
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn skewed_keys_spread_over_five_peers_and_stay_exactly_once() {
    let first = Node::start();
    let mut nodes = vec![first];
    for _ in 1..5 {
        let join = nodes[0].addr.clone();
        nodes.push(Node::start_with(&["--join", &join]));
    }
    for node in &nodes {
        eventually("every peer to see the ring of five", || {
            ring_size(&node.addr, &[]) == Some(5)
        });
    }
    let counted: String = (0..EACH).map(|i| format!("(\"t\", {i})\n")).collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let random: String = (0..EACH)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("(\"{:08x}\", {i})\n", x as u32)
        })
        .collect();
    load(&nodes[0].addr, counted);
    load(&nodes[1].addr, random);
    let total = 2 * EACH as u64;
    let before = counts(&nodes[2].addr).expect("status");
    let started = Instant::now();
    let mut now = before.clone();
    while now.len() != 5 || now.iter().sum::<u64>() != total || spread(&now) > 1.5 {
        assert!(
            started.elapsed() < SPREAD_WITHIN,
            "not spread after {SPREAD_WITHIN:?}: {now:?} (at first {before:?})\n{}",
            nodes
                .iter()
                .map(Node::stderr)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(500));
        if let Some(c) = counts(&nodes[2].addr) {
            now = c;
        }
    }
    println!(
        "5 peers, {total} tuples: per-peer primaries {before:?} (busiest/mean {:.2}) at first, \
         {now:?} ({:.2}) after {:.1} s",
        spread(&before),
        spread(&now),
        started.elapsed().as_secs_f64()
    );
    // Each tuple exactly once, through any peer.
    let counted = scan(&nodes[3].addr, "(\"t\", ?int)");
    let distinct: BTreeSet<&String> = counted.iter().collect();
    assert_eq!((counted.len(), distinct.len()), (EACH, EACH));
    let all = scan(&nodes[4].addr, "(?str, ?int)");
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (2 * EACH, 2 * EACH));
    // And taken once: an exact take finds it, a second finds nothing.
    for i in [0, 4_999, 9_999] {
        let template = format!("(\"t\", {i})");
        let taken = run(&["in", "--peer", &nodes[i % 5].addr, &template], None);
        assert_eq!(taken.code, Some(0), "in {template}: {}", taken.stderr);
        let again = run(
            &["in", "--peer", &nodes[0].addr, "--timeout", "0", &template],
            None,
        );
        assert_eq!(
            again.code,
            Some(1),
            "{template} taken twice: {}",
            again.stdout
        );
    }
}
