//! Issue 9's bounds, on real `halley node` processes: a client holding its
//! whole share of blocked `in`s does not stop another client's `out`,
//! `rd` or `in`; `--max-tuples` refuses writes past it with exit 2 and a
//! message naming the limit (ring and `--solo`); subscribers that never
//! read, under a flood of writes, are cut off and leave the node's memory
//! under a bound while it keeps serving.

mod common;

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use halley_substrate::net::{self, Protocol};
use halley_substrate::wire::{self, Request};
use halley_substrate::{Field, Multiaddr, RemoteSpace, Space, SpaceError, Template};
use libp2p::identity::Keypair;

use common::{DEADLINE, Node, eventually, run};

/// Waiting requests one client may hold at a node (node::shares::SHARE).
const SHARE: usize = 1_024;

fn nothing() -> Template {
    Template::new(vec![Field::Actual("never-written".into()), Field::Any])
}

/// Blocked takes the greedy client sends past its share.
const EXTRA: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_its_share_of_blocked_ins_does_not_stop_another() {
    let node = Node::start();
    let greedy = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    let mut blocked = Vec::new();
    for _ in 0..SHARE + EXTRA {
        let space = greedy.clone();
        blocked.push(tokio::spawn(async move {
            space.take_up_to(nothing(), 1, None).await
        }));
    }
    // The takes past the share are refused, the others park.
    let end = tokio::time::Instant::now() + DEADLINE;
    while blocked.iter().filter(|b| b.is_finished()).count() < EXTRA {
        assert!(
            tokio::time::Instant::now() < end,
            "takes past the share not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (done, parked): (Vec<_>, Vec<_>) = blocked.into_iter().partition(|b| b.is_finished());
    assert_eq!(parked.len(), SHARE);
    for take in done {
        match take.await.unwrap() {
            Err(SpaceError::Refused(m)) => assert!(m.contains("share of 1024"), "{m}"),
            other => panic!("a take past the share answered {other:?}"),
        }
    }

    let out = run(&["out", "--peer", &node.addr, "(\"other\", 1)"], None);
    assert_eq!(out.code, Some(0), "another client's out: {out:?}");
    let rd = run(&["rd", "--peer", &node.addr, "(\"other\", ?int)"], None);
    assert_eq!(rd.stdout, "(\"other\", 1)\n", "another client's rd: {rd:?}");
    let take = run(&["in", "--peer", &node.addr, "(\"other\", ?int)"], None);
    assert_eq!(
        take.stdout, "(\"other\", 1)\n",
        "another client's in: {take:?}"
    );

    // The greedy client's takes are still parked, not failed.
    assert!(parked.iter().all(|b| !b.is_finished()));
    for b in parked {
        b.abort();
    }
}

#[test]
fn max_tuples_refuses_writes_past_it_with_exit_2() {
    for mode in [&[][..], &["--solo"][..]] {
        let mut args = vec!["--max-tuples", "50"];
        args.extend_from_slice(mode);
        let node = Node::start_with(&args);
        let bulk: String = (0..50).map(|i| format!("(\"cap\", {i})\n")).collect();
        let out = run(&["out", "--peer", &node.addr, "-"], Some(&bulk));
        assert_eq!(out.code, Some(0), "{mode:?}: {out:?}");
        let over = run(&["out", "--peer", &node.addr, "(\"cap\", 50)"], None);
        assert_eq!(over.code, Some(2), "{mode:?}: {over:?}");
        assert!(over.stderr.contains("full"), "{mode:?}: {}", over.stderr);
        // Room again once a tuple is taken.
        let take = run(&["in", "--peer", &node.addr, "(\"cap\", 0)"], None);
        assert_eq!(take.code, Some(0), "{mode:?}: {take:?}");
        let again = run(&["out", "--peer", &node.addr, "(\"cap\", 50)"], None);
        assert_eq!(again.code, Some(0), "{mode:?}: {again:?}");
    }
    let zero = run(
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--max-tuples",
            "0",
        ],
        None,
    );
    assert_eq!(zero.code, Some(2), "{zero:?}");
}

/// The node's resident memory in kB (Linux /proc).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Subscribers opened on raw streams that never read a byte (the issue's
/// 1,000), from [`DEAF_CLIENTS`] connections.
const DEAF: usize = 1_000;
const DEAF_CLIENTS: usize = 5;
/// Tuples of the flood, each carrying [`PAYLOAD`] bytes.
const FLOOD: usize = 20_000;
const PAYLOAD: usize = 1_000;
/// The documented bound (SECURITY.md) for this test's load, in MB.
const RSS_BOUND_MB: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_are_cut_off_and_memory_stays_bounded() {
    let node = Node::start();
    let addr: Multiaddr = node.addr.parse().unwrap();
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("no peer id in {addr}")
    };
    let template = Template::new(vec![Field::Actual("flood".into()), Field::Any, Field::Any]);
    // The subscribers come from several clients (connections), as many
    // streams on each as yamux allows one connection comfortably.
    let mut deaf = Vec::new();
    let mut drivers = Vec::new();
    for client in 0..DEAF_CLIENTS {
        let mut swarm = net::swarm(Keypair::generate_ed25519(), None).unwrap();
        let mut control = swarm.behaviour().stream.new_control();
        net::dial(&mut swarm, &addr, DEADLINE)
            .await
            .expect("connect");
        drivers.push(tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        }));
        for n in 0..DEAF / DEAF_CLIENTS {
            let open = control.open_stream(peer, wire::PROTOCOL);
            let mut stream = tokio::time::timeout(DEADLINE, open).await.unwrap().unwrap();
            let mut buf = Vec::new();
            let request = Request::Subscribe {
                template: template.clone(),
            };
            let id = (client * DEAF + n) as u64;
            wire::encode_request(&mut buf, id, &request).unwrap();
            stream.write_all(&buf).await.unwrap();
            stream.flush().await.unwrap();
            deaf.push(stream);
        }
    }
    let before = rss_kb(node.proc.id());

    let blob = "ab".repeat(PAYLOAD / 2);
    let bulk: String = (0..FLOOD)
        .map(|i| format!("(\"flood\", {i}, \"{blob}\")\n"))
        .collect();
    let out = run(&["out", "--peer", &node.addr, "-"], Some(&bulk));
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("the deaf subscribers to be cut off", || {
        node.stderr()
            .contains("ending a subscription whose reader does not keep up")
    });
    let after = rss_kb(node.proc.id());
    assert!(
        after < RSS_BOUND_MB * 1024,
        "RSS {before} kB before, {after} kB after the flood"
    );
    eprintln!("RSS {before} kB before, {after} kB after the flood (bound {RSS_BOUND_MB} MB)");
    // And it serves on.
    let rd = run(&["rd", "--peer", &node.addr, "(\"flood\", 7, ?str)"], None);
    assert_eq!(rd.code, Some(0), "{rd:?}");
    drop(deaf);
    for driver in drivers {
        driver.abort();
    }
}
