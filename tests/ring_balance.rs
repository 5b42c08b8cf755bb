//! Placement spreads the load: on a ring of five real `halley node`
//! processes, 10,000 `("t", i)` tuples and 10,000 tuples with a random
//! 8-hex-digit first field (keys an order-preserving keyspace crowds on
//! one peer) end spread by the peers' moves until the busiest peer holds
//! at most 1.5 times the mean, every tuple still there exactly once
//! (taken through four peers at once while the peers may still move).
//! Every wait is bounded and polls `status --json`; every process is
//! killed on drop.

mod common;
mod run_util;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halley_substrate::{Field, Kind, RemoteSpace, Space, Template};

use common::{DEADLINE, Node, eventually, logs, ring_size, run, status};
use run_util::Scratch;

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

/// Writes `lines` through the first of `nodes`.
fn load(nodes: &[Node], lines: String) {
    let out = run(&["out", "--peer", &nodes[0].addr, "-"], Some(&lines));
    assert_eq!(
        out.code,
        Some(0),
        "bulk out: {}\n{}",
        out.stderr,
        logs(nodes)
    );
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
    load(&nodes, counted);
    load(&nodes[1..], random);
    let total = 2 * EACH as u64;
    let before = counts(&nodes[2].addr).expect("status");
    let started = Instant::now();
    let mut now = before.clone();
    while now.len() != 5 || now.iter().sum::<u64>() != total || spread(&now) > 1.5 {
        assert!(
            started.elapsed() < SPREAD_WITHIN,
            "not spread after {SPREAD_WITHIN:?}: {now:?} (at first {before:?})\n{}",
            logs(&nodes)
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
    // Each tuple there exactly once: a scan (a snapshot, which misses
    // tuples in flight while a peer still moves) sees them all, and takes
    // through four peers at once, moves or not, get each exactly once.
    eventually("a scan to see every tuple", || {
        let all = scan(&nodes[4].addr, "(?str, ?int)");
        let distinct: BTreeSet<&String> = all.iter().collect();
        all.len() == 2 * EACH && distinct.len() == 2 * EACH
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let taken = runtime.block_on(take_all(&nodes[..4], 2 * EACH));
    let distinct: BTreeSet<&String> = taken.iter().collect();
    assert_eq!(distinct.len(), taken.len(), "a tuple was taken twice");
    assert_eq!(taken.len(), 2 * EACH, "tuples lost");
    let left = run(
        &[
            "in",
            "--peer",
            &nodes[0].addr,
            "--timeout",
            "0",
            "(?str, ?int)",
        ],
        None,
    );
    assert_eq!(left.code, Some(1), "a tuple left over: {}", left.stdout);
}

/// Takes tuples in batches through each of `nodes` at once until `n` are
/// taken (or the deadline passes); every tuple taken, as text.
async fn take_all(nodes: &[Node], n: usize) -> Vec<String> {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + 4 * DEADLINE;
    let mut clients = Vec::new();
    for node in nodes {
        let space = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
            .await
            .expect("connect");
        let taken = taken.clone();
        clients.push(tokio::spawn(async move {
            let any = Template::new(vec![Field::Typed(Kind::Str), Field::Typed(Kind::Int)]);
            while taken.lock().unwrap().len() < n && Instant::now() < end {
                let wait = Some(Duration::from_secs(1));
                let got = space.take_up_to(any.clone(), 256, wait).await;
                let got = got.expect("take");
                taken
                    .lock()
                    .unwrap()
                    .extend(got.iter().map(|t| t.to_string()));
            }
        }));
    }
    for client in clients {
        client.await.expect("a client failed");
    }
    let taken = Arc::try_unwrap(taken).expect("the clients are done");
    taken.into_inner().unwrap()
}

/// Key seeds for which 2,000 `("t", i)` stay with the balancing peer.
const HEAVY_SEED: u8 = 2;
const STILL_SEED: u8 = 1;

/// Writes a node key file for the fixed `seed` (its peer id, and so its
/// place on the ring, is the same on every run).
fn key_file(dir: &Scratch, seed: u8) -> String {
    let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let path = dir.write(&format!("{seed}.key"), "");
    std::fs::write(&path, key.to_protobuf_encoding().unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A peer started with `--no-balance` stays at the place its id gives:
/// a heavy peer asks it to move into its arc, and it says no. (The keys
/// are fixed so that the skewed tuples stay with the balancing peer.)
#[test]
fn a_peer_without_balancing_stays_at_its_place_when_asked_to_move() {
    let dir = Scratch::new("no-balance");
    let heavy = Node::start_with(&["--key-file", &key_file(&dir, HEAVY_SEED)]);
    let counted: String = (0..2_000).map(|i| format!("(\"t\", {i})\n")).collect();
    load(std::slice::from_ref(&heavy), counted);
    let still = Node::start_with(&[
        "--join",
        &heavy.addr,
        "--no-balance",
        "--key-file",
        &key_file(&dir, STILL_SEED),
    ]);
    let nodes = [heavy, still];
    for node in &nodes {
        eventually("both peers to see the ring of two", || {
            ring_size(&node.addr, &[]) == Some(2)
        });
    }
    let sorted = |counts: Vec<u64>| {
        let mut counts = counts;
        counts.sort_unstable();
        counts
    };
    let held = counts(&nodes[0].addr).map(sorted);
    assert_eq!(held, Some(vec![0, 2_000]), "{}", logs(&nodes));
    let status = status(&nodes[0].addr).expect("status");
    let light = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["addr"] == nodes[1].addr.as_str())
        .map(|p| p["tuples"].clone());
    assert_eq!(
        light,
        Some(0.into()),
        "the seeds keep the load away: {status}"
    );
    let before = places(&nodes[0].addr);
    eventually("the heavy peer to ask the still one to move", || {
        nodes[1]
            .stderr()
            .contains("asked to move, but balancing is off here")
    });
    assert_eq!(places(&nodes[0].addr), before, "{}", logs(&nodes));
    assert_eq!(counts(&nodes[0].addr).map(sorted), held);
}

/// Each member's place on the ring, as `status` through `peer` reports.
fn places(peer: &str) -> Vec<serde_json::Value> {
    let status = status(peer).expect("status");
    let mut places: Vec<serde_json::Value> = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["place"].clone())
        .collect();
    places.sort_by_key(|p| p.to_string());
    places
}
