//! Multi-process rings: real `halley node` processes on 127.0.0.1 joined
//! into one space (the first a plain node: every node can be joined), a
//! bulk load through one peer read back through another, a lone node's
//! tuples kept by a peer that joins it, a SIGKILLed peer losing nothing, a
//! SIGTERMed peer handing its tuples over, and a sixth peer joining a ring
//! of five while four clients take (every tuple taken exactly once). Every
//! process is killed on drop.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halley_substrate::{Field, RemoteSpace, Space, Template};

use common::{DEADLINE, Node, busiest, eventually, logs, ring, run, sees_ring_of, status};

/// Tuples bulk-loaded (the kill test loads [`MANY`]).
const TUPLES: usize = 3_000;
const MANY: usize = 10_000;

/// Bulk-loads `n` tuples ([`bulk`]) through `peer`.
fn load(peer: &str, n: usize) {
    let out = run(&["out", "--peer", peer, "-"], Some(&bulk(n)));
    assert_eq!(out.code, Some(0), "bulk out: {}", out.stderr);
}

/// The tuples of the bulk load, one a line, with keywords spread over the
/// keyspace.
fn bulk(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "(\"w{:08x}\", {i})\n",
                (i as u64).wrapping_mul(2_654_435_761) as u32
            )
        })
        .collect()
}

/// Every tuple a scan through `peer` finds, one line each.
fn scan(peer: &str) -> Option<Vec<String>> {
    let out = run(&["scan", "--peer", peer, "(?str, ?int)"], None);
    (out.code == Some(0)).then(|| out.stdout.lines().map(str::to_owned).collect())
}

/// True when `lines` holds each of a bulk load of `n` exactly once.
fn exactly_once(lines: &[String], n: usize) -> bool {
    let distinct: BTreeSet<&String> = lines.iter().collect();
    lines.len() == n && distinct.len() == n
}

/// A node started alone, holding tuples, is joined by another and then
/// leaves: the newcomer ends up serving every tuple, none lost or doubled.
/// (`--ring`, once needed for a ring's first peer, is accepted and changes
/// nothing.)
#[test]
fn a_lone_node_holding_tuples_is_joined() {
    let mut first = Node::start();
    let load = run(&["out", "--peer", &first.addr, "-"], Some(&bulk(TUPLES)));
    assert_eq!(load.code, Some(0), "bulk out: {}", load.stderr);
    let second = Node::start_with(&["--ring", "--join", &first.addr]);
    for node in [&first, &second] {
        eventually("both peers to see the ring of two", || {
            status(&node.addr).is_some_and(|s| s["peers"].as_array().map(Vec::len) == Some(2))
        });
    }
    let lines = scan(&second.addr).expect("scan through the newcomer");
    assert!(exactly_once(&lines, TUPLES), "{} lines", lines.len());

    let pid = first.proc.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(first.proc.wait(DEADLINE).success());
    eventually("the newcomer to be alone", || {
        status(&second.addr).is_some_and(|s| s["peers"].as_array().map(Vec::len) == Some(1))
    });
    let lines = scan(&second.addr).expect("scan after the leave");
    assert!(exactly_once(&lines, TUPLES), "{} lines", lines.len());
    let after = status(&second.addr).expect("status after the leave");
    assert_eq!(after["tuples"], TUPLES, "{after}");
}

/// Waits (bounded) until `peer`'s status counts `n` tuples on the ring.
fn holds(peer: &str, n: usize) {
    eventually(&format!("{peer} to count {n} tuples"), || {
        status(peer).is_some_and(|s| s["tuples"] == n)
    });
}

#[test]
fn a_killed_peer_loses_no_tuple() {
    let mut nodes = ring(5, 2);
    load(&nodes[0].addr, MANY);

    let read_back = scan(&nodes[1].addr).expect("scan through another peer");
    assert!(
        exactly_once(&read_back, MANY),
        "{} lines read back",
        read_back.len()
    );
    // A balancing move may be in flight: its tuples are counted once it
    // lands (a status taken meanwhile counts them nowhere).
    holds(&nodes[2].addr, MANY);

    let victim = busiest(&nodes, &nodes[2].addr);
    nodes[victim].proc.kill();
    let survivor = nodes[(victim + 1) % nodes.len()].addr.clone();

    sees_ring_of(&survivor, 4);
    let mut last = 0;
    eventually("every tuple to be found again, exactly once", || {
        let lines = scan(&survivor).unwrap_or_default();
        last = lines.len();
        exactly_once(&lines, MANY)
    });
    assert_eq!(last, MANY, "the last scan");
    holds(&survivor, MANY);

    // And they can be taken, each once.
    let take = |timeout: &str| {
        let args = [
            "in",
            "--peer",
            &survivor,
            "(\"w00000000\", 0)",
            "--timeout",
            timeout,
        ];
        run(&args, None)
    };
    let taken = take("5s");
    assert_eq!(taken.code, Some(0), "{}", taken.stderr);
    let again = take("0");
    assert_eq!(again.code, Some(1), "taken twice: {}", again.stdout);
}

/// The size: five peers, a sixth joins while four clients (one on
/// each of four peers) take the bulk load concurrently; every tuple must be
/// taken exactly once and the newcomer must end up in every view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_peer_joining_while_four_clients_take_loses_and_doubles_nothing() {
    const PEERS: usize = 5;
    const CLIENTS: usize = 4;
    let nodes = ring(PEERS, 2);
    load(&nodes[0].addr, TUPLES);

    let taken = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + 4 * DEADLINE;
    let mut clients = Vec::new();
    for node in nodes.iter().take(CLIENTS) {
        let space = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
            .await
            .expect("connect");
        let (taken, count) = (taken.clone(), count.clone());
        clients.push(tokio::spawn(async move {
            let any = Template::new(vec![Field::Any, Field::Any]);
            while count.load(Ordering::SeqCst) < TUPLES && Instant::now() < end {
                let got = space.take(any.clone(), Some(Duration::from_secs(1))).await;
                if let Some(tuple) = got.expect("take") {
                    count.fetch_add(1, Ordering::SeqCst);
                    taken.lock().unwrap().push(tuple.to_string());
                }
            }
        }));
    }
    // The sixth peer joins (through the last peer, which no client uses)
    // once the takes are under way.
    while count.load(Ordering::SeqCst) == 0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join = nodes[PEERS - 1].addr.clone();
    let newcomer = tokio::task::spawn_blocking(move || Node::start_with(&["--join", &join]))
        .await
        .unwrap();
    let when_joined = count.load(Ordering::SeqCst);
    assert!(when_joined < TUPLES, "the takes were over before the join");
    eprintln!("{when_joined} of {TUPLES} tuples taken when the sixth peer was up");
    let all: Vec<&Node> = nodes.iter().chain([&newcomer]).collect();
    clients_done(clients, end, &count, all).await;
    let taken = taken.lock().unwrap().clone();
    let distinct: BTreeSet<&String> = taken.iter().collect();
    assert_eq!(distinct.len(), taken.len(), "a tuple was taken twice");
    if taken.len() != TUPLES {
        panic!(
            "tuples lost: {} of {TUPLES} taken;\n{}",
            taken.len(),
            logs(nodes.iter().chain([&newcomer]))
        );
    }
    let nodes_then: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let seen = std::panic::catch_unwind(|| {
            for peer in nodes_then.iter().chain([&newcomer.addr]) {
                sees_ring_of(peer, PEERS + 1);
            }
        });
        if seen.is_err() {
            panic!("{}", logs(nodes.iter().chain([&newcomer])));
        }
        let left = status(&newcomer.addr).expect("status through the newcomer");
        assert_eq!(left["tuples"], 0, "{left}");
    })
    .await
    .unwrap();
}

#[test]
fn a_leaving_peer_hands_its_tuples_over() {
    // One copy each: only the handover keeps the leaver's tuples.
    let mut nodes = ring(3, 1);
    load(&nodes[0].addr, TUPLES);
    let leaver = busiest(&nodes, &nodes[0].addr);
    let pid = nodes[leaver].proc.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = nodes[leaver].proc.wait(DEADLINE);
    assert!(exit.success(), "the leaving node exited with {exit}");
    let survivor = nodes[(leaver + 1) % nodes.len()].addr.clone();
    sees_ring_of(&survivor, 2);
    let lines = scan(&survivor).expect("scan");
    assert!(
        exactly_once(&lines, TUPLES),
        "{} tuples after the leave",
        lines.len()
    );
    holds(&survivor, TUPLES);
}

/// A take of several through one peer gathers from the peers holding
/// matches, up to its `max`, each tuple once; a blocking one returns with
/// the first tuple written. (Keywords of every pair of kinds land all over
/// the curve: on more than one of the peers unless their random ids are
/// very close; the test prints how many.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_of_several_gathers_across_the_ring() {
    use halley_substrate::{Kind, Tuple, Value};
    const N: usize = 60;
    let nodes = tokio::task::spawn_blocking(|| ring(3, 2)).await.unwrap();
    let space = RemoteSpace::connect(nodes[0].addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    // Keywords of every pair of kinds: boxes all over the keyspace.
    let value = |kind: usize, i: usize| match kind {
        0 => Value::Str(format!("k{i}")),
        1 => Value::Int(i as i64),
        2 => Value::Float(i as f64),
        3 => Value::Bool(i.is_multiple_of(2)),
        _ => Value::Bytes(vec![i as u8]),
    };
    let tuples: Vec<Tuple> = (0..N)
        .map(|i| {
            Tuple::new(vec![
                value(i % 5, i),
                value(i / 5 % 5, i),
                Value::Int(i as i64),
            ])
        })
        .collect();
    space.out_all(tuples, None).await.expect("out");
    let addr = nodes[0].addr.clone();
    let before = tokio::task::spawn_blocking(move || status(&addr).expect("status"))
        .await
        .unwrap();
    let holders = before["peers"].as_array().unwrap();
    let holders = holders.iter().filter(|p| p["tuples"].as_u64() > Some(0));
    println!("peers holding tuples: {}", holders.count());
    let any = Template::new(vec![Field::Any, Field::Any, Field::Typed(Kind::Int)]);
    let now = Some(Duration::ZERO);
    let first = space
        .take_up_to(any.clone(), 25, now)
        .await
        .expect("take 25");
    let rest = space
        .take_up_to(any.clone(), 100, now)
        .await
        .expect("take rest");
    let none = space
        .take_up_to(any.clone(), 100, now)
        .await
        .expect("take none");
    assert_eq!((first.len(), rest.len(), none.len()), (25, N - 25, 0));
    let distinct: BTreeSet<String> = first.iter().chain(&rest).map(|t| t.to_string()).collect();
    assert_eq!(distinct.len(), N, "a tuple was taken twice");

    let waiting = space.take_up_to(any, 10, Some(DEADLINE));
    let writer = RemoteSpace::connect(nodes[2].addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    let (got, put) = tokio::join!(waiting, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer
            .out(Tuple::new(vec![
                "late".into(),
                Value::Int(1),
                Value::Int(1),
            ]))
            .await
    });
    put.expect("out");
    assert_eq!(got.expect("blocking take").len(), 1);
}

/// Waits for the taking clients, whose takes each wait 1 s at most: one
/// still busy well past `end` has a take the ring never answered.
async fn clients_done<'a>(
    clients: Vec<tokio::task::JoinHandle<()>>,
    end: Instant,
    count: &AtomicUsize,
    nodes: impl IntoIterator<Item = &'a Node>,
) {
    for client in clients {
        let bound = end.saturating_duration_since(Instant::now()) + DEADLINE;
        if tokio::time::timeout(bound, client).await.is_err() {
            let taken = count.load(Ordering::SeqCst);
            panic!(
                "a take was never answered ({taken} taken);\n{}",
                logs(nodes)
            );
        }
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to `node`'s process.
fn signal(node: &Node, signal: &str) {
    let pid = node.proc.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Runs a blocking wait (`sees_ring_of` and the like) off the runtime.
async fn blocking(wait: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(wait).await.unwrap();
}

/// The busiest of three peers is frozen (SIGSTOP) while two clients take:
/// the others drop it once it leaves what they sent it unacknowledged, and
/// serve its arc from their copies. Resumed, it is told it was gone, and
/// comes back holding what it held: the tuples taken meanwhile must not be
/// taken again, and none of the others may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_frozen_until_dropped_comes_back_without_doubling_a_tuple() {
    const HALF: usize = TUPLES / 2;
    let nodes = ring(3, 2);
    load(&nodes[0].addr, TUPLES);
    let frozen = busiest(&nodes, &nodes[0].addr);
    let others: Vec<String> = (0..nodes.len())
        .filter(|&i| i != frozen)
        .map(|i| nodes[i].addr.clone())
        .collect();
    signal(&nodes[frozen], "-STOP");

    // Two clients on the other peers take, one tuple at a time, until
    // `goal` tuples are taken; those asked of the frozen peer wait until it
    // is dropped. Each take says so on `progress`.
    let taken = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let (goal, goal_seen) = tokio::sync::watch::channel(HALF);
    let end = Instant::now() + 4 * DEADLINE;
    let end_at = tokio::time::Instant::from_std(end);
    let mut clients = Vec::new();
    for addr in &others {
        let space = RemoteSpace::connect(addr.parse().unwrap(), DEADLINE)
            .await
            .expect("connect");
        let (taken, count, progress) = (taken.clone(), count.clone(), progress.clone());
        let mut goal = goal_seen.clone();
        clients.push(tokio::spawn(async move {
            let any = Template::new(vec![Field::Any, Field::Any]);
            while Instant::now() < end {
                let target = *goal.borrow_and_update();
                if count.load(Ordering::SeqCst) >= target {
                    if target == TUPLES {
                        return;
                    }
                    // Wait for the goal to rise, at most until the end.
                    let raised = tokio::time::timeout_at(end_at, goal.changed()).await;
                    if !matches!(raised, Ok(Ok(()))) {
                        return;
                    }
                    continue;
                }
                let got = space.take(any.clone(), Some(Duration::from_secs(1))).await;
                if let Some(tuple) = got.expect("take") {
                    count.fetch_add(1, Ordering::SeqCst);
                    taken.lock().unwrap().push(tuple.to_string());
                    progress.notify_one();
                }
            }
        }));
    }
    let survivors = others.clone();
    blocking(move || survivors.iter().for_each(|p| sees_ring_of(p, 2))).await;
    let half_taken = async {
        while count.load(Ordering::SeqCst) < HALF {
            progress.notified().await;
        }
    };
    let _ = tokio::time::timeout_at(end_at, half_taken).await;
    let while_frozen = count.load(Ordering::SeqCst);
    assert!(
        while_frozen >= HALF,
        "{while_frozen} taken while frozen;\n{}",
        logs(&nodes)
    );

    // Thawed: it must rejoin, and every tuple left is taken exactly once.
    signal(&nodes[frozen], "-CONT");
    let all: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    blocking(move || all.iter().for_each(|p| sees_ring_of(p, 3))).await;
    goal.send_replace(TUPLES);
    clients_done(clients, end, &count, &nodes).await;
    let taken = taken.lock().unwrap().clone();
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = taken.iter().filter(|t| !seen.insert(*t)).collect();
    assert!(
        twice.is_empty(),
        "{} tuples taken twice (e.g. {:?}), {while_frozen} taken while frozen;\n{}",
        twice.len(),
        twice.first(),
        logs(&nodes)
    );
    assert_eq!(
        taken.len(),
        TUPLES,
        "tuples lost, {while_frozen} taken while frozen;\n{}",
        logs(&nodes)
    );
    for node in &nodes {
        let args = ["in", "--peer", &node.addr, "(?str, ?int)", "--timeout", "0"];
        let mut left = common::spawn(&args, None);
        let Some(status) = left.proc.try_wait(DEADLINE) else {
            panic!(
                "an in --timeout 0 through {} hangs;\n{}",
                node.addr,
                logs(&nodes)
            );
        };
        let left = left.finish(status);
        assert_eq!(left.code, Some(1), "left at {}: {}", node.addr, left.stdout);
    }
}
