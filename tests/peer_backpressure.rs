//! Issue 9's bound on what a peer may leave unread: a member that joins a
//! real node and then never reads the stream the node writes to it is
//! disconnected (logged) once the node's writes to it make no progress,
//! and the node goes on serving writes alone. The member is a small libp2p
//! peer built on the project's own wire types.

mod common;

use std::time::Duration;

use futures::StreamExt;
use halley_substrate::net;
use halley_substrate::wire::{Member, PEER_PROTOCOL, PeerMessage};
use halley_substrate::{Multiaddr, PeerId};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;

use common::{DEADLINE, Node, eventually, open_peer_stream, ring_size, run, spawn};

/// Tuples written while the member reads nothing, each with this many
/// bytes: far more than a stream's flow-control window.
const TUPLES: usize = 1_000;
const PAYLOAD: usize = 2_048;

/// A member that listens, joins `node`, accepts the streams opened to it
/// and never reads them.
async fn deaf_member(node: &str) -> tokio::task::JoinHandle<()> {
    let mut swarm = net::swarm(Keypair::generate_ed25519(), None).unwrap();
    let me = *swarm.local_peer_id();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let listening = tokio::time::timeout(DEADLINE, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    });
    let addr = listening.await.expect("the member listens in time");
    let target: Multiaddr = node.parse().unwrap();
    let target_peer = match target.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => peer,
        _ => panic!("no peer id in {node}"),
    };
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming = control.accept(PEER_PROTOCOL).unwrap();
    net::dial(&mut swarm, &target, DEADLINE)
        .await
        .expect("the member connects");
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    // Streams opened to it are kept, and never read.
    let deaf = tokio::spawn(async move {
        let mut held: Vec<(PeerId, libp2p::Stream)> = Vec::new();
        while let Some(stream) = incoming.next().await {
            held.push(stream);
        }
    });
    let member = Member {
        addr: format!("{addr}/p2p/{me}"),
        at: None,
    };
    let stream = open_peer_stream(
        &mut control,
        target_peer,
        vec![PeerMessage::Join { member }],
    )
    .await;
    tokio::spawn(async move {
        let _stream = stream;
        let _ = deaf.await;
        driver.abort();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_reads_nothing_is_disconnected_and_the_node_serves_on() {
    let node = Node::start();
    let member = deaf_member(&node.addr).await;
    eventually("the node to see a ring of 2", || {
        ring_size(&node.addr, &[]) == Some(2)
    });

    // Every write is replicated to the member, which reads none of it.
    let payload = "x".repeat(PAYLOAD);
    let bulk: String = (0..TUPLES)
        .map(|i| format!("(\"flood\", {i}, \"{payload}\")\n"))
        .collect();
    let mut writer = spawn(&["out", "--peer", &node.addr, "-"], Some(&bulk));
    eventually("the node to disconnect the member", || {
        node.stderr()
            .contains("disconnecting a peer that does not drain")
    });
    eventually("the node to see a ring of 1", || {
        ring_size(&node.addr, &[]) == Some(1)
    });
    // The writer ends, one way or the other (writes the member held
    // unacknowledged may time out); the node serves on alone.
    let ended = writer.proc.wait(DEADLINE + Duration::from_secs(30));
    assert!(ended.code().is_some(), "{ended:?}");
    let out = run(&["out", "--peer", &node.addr, "(\"after\", 1)"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let take = run(&["in", "--peer", &node.addr, "(\"after\", ?int)"], None);
    assert_eq!(take.stdout, "(\"after\", 1)\n", "{take:?}");
    assert!(!node.stderr().contains("panicked"), "{}", node.stderr());
    member.abort();
}
