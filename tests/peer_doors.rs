//! Issue 9's doors on `/halley/peer/6`, tried as an adversary would: a
//! small libp2p client built on the project's own wire types opens the
//! peer protocol on one peer of a real three-node ring and sends malformed
//! member addresses (a short peer id, no peer id, no TCP port, junk, a
//! very long address, someone else's id, its own id at a place a member
//! holds), then `Gone` naming the receiver
//! and `Gone` naming another member. Nobody is evicted, no tuple is lost,
//! and the attacked peer keeps routing writes. A client's waits and
//! lifetimes of `u64::MAX` ms do not overflow the ring's clock.

mod common;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use halley_substrate::net::{self, Protocol};
use halley_substrate::wire::{self, LinkFrame, Member, Message, PEER_PROTOCOL, PeerMessage};
use halley_substrate::{Field, Multiaddr, PeerId, RemoteSpace, Space, Template, Tuple, Value};
use libp2p::identity::Keypair;

use common::{DEADLINE, Node, eventually, open_peer_stream, ring_size, run, status};

const TUPLES: usize = 300;

/// A ring of three peers, each seeing all three.
fn ring() -> Vec<Node> {
    let first = Node::start();
    let second = Node::start_with(&["--join", &first.addr]);
    let third = Node::start_with(&["--join", &first.addr]);
    let nodes = vec![first, second, third];
    for node in &nodes {
        eventually("every peer to see a ring of 3", || {
            ring_size(&node.addr, &[]) == Some(3)
        });
    }
    nodes
}

fn peer_id(addr: &str) -> PeerId {
    let addr: Multiaddr = addr.parse().unwrap();
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => panic!("no peer id in {addr}"),
    }
}

/// An attacker: a fresh identity connected to the node at `addr`.
struct Attacker {
    control: libp2p_stream::Control,
    me: PeerId,
    target: PeerId,
    driver: tokio::task::JoinHandle<()>,
}

impl Attacker {
    async fn connect(addr: &str) -> Attacker {
        let key = Keypair::generate_ed25519();
        let me = key.public().to_peer_id();
        let mut swarm = net::swarm(key, None).unwrap();
        let control = swarm.behaviour().stream.new_control();
        net::dial(&mut swarm, &addr.parse().unwrap(), DEADLINE)
            .await
            .expect("the attacker connects");
        let driver = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        Attacker {
            control,
            me,
            target: peer_id(addr),
            driver,
        }
    }

    /// Opens a peer stream and sends `messages` on it.
    async fn send(&mut self, messages: Vec<PeerMessage>) -> libp2p::Stream {
        open_peer_stream(&mut self.control, self.target, messages).await
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn member(addr: &str) -> Member {
    Member {
        addr: addr.into(),
        at: None,
    }
}

/// Waits until `node` has logged `line` at least `count` times.
fn logged(node: &Node, line: &str, count: usize) {
    eventually(&format!("{count}× {line:?} in the log"), || {
        node.stderr().matches(line).count() >= count
    });
}

/// Every peer still sees all three and holds `total` tuples between them
/// (waiting, bounded, for a balancing move in flight to land: a peer that
/// moves hands its tuples over, and a status taken meanwhile counts them
/// nowhere; a lost tuple never comes back, and the wait gives up).
fn intact(nodes: &[Node], total: usize) {
    for node in nodes {
        eventually(
            &format!("{} to see 3 peers holding {total} tuples", node.addr),
            || {
                status(&node.addr).is_some_and(|status| {
                    status["peers"].as_array().map(Vec::len) == Some(3) && status["tuples"] == total
                })
            },
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_membership_messages_evict_no_one_and_lose_nothing() {
    let nodes = ring();
    let target = &nodes[1];
    let other = &nodes[2];
    let bulk: String = (0..TUPLES).map(|i| format!("(\"door\", {i})\n")).collect();
    let out = run(&["out", "--peer", &nodes[0].addr, "-"], Some(&bulk));
    assert_eq!(out.code, Some(0), "{out:?}");
    intact(&nodes, TUPLES);

    let mut attacker = Attacker::connect(&target.addr).await;
    // Malformed members in Joins: refused one by one, the driver lives on.
    let port_only = "/ip4/127.0.0.1/tcp/1".to_owned();
    let bad = [
        "/ip4/127.0.0.1/tcp/1/p2p/11".to_owned(),
        port_only.clone(),
        "/ip4/127.0.0.1/udp/1/p2p/11".to_owned(),
        "junk".to_owned(),
        String::new(),
        format!(
            "{port_only}/p2p/{}{}",
            peer_id(&other.addr),
            "x".repeat(600)
        ),
        other.addr.clone(),
    ];
    let joins = bad
        .iter()
        .map(|a| PeerMessage::Join { member: member(a) })
        .collect();
    let _joins = attacker.send(joins).await;
    logged(target, "refusing a Join", bad.len());

    // A well-formed Join of its own at a place a member holds: refused.
    let held = status(&target.addr).expect("status")["peers"][0]["place"]
        .as_u64()
        .expect("a ring peer's place");
    let squatter = PeerMessage::Join {
        member: Member {
            addr: format!("/ip4/127.0.0.1/tcp/1/p2p/{}", attacker.me),
            at: Some(held),
        },
    };
    let _squat = attacker.send(vec![squatter]).await;
    logged(target, "refusing a Join at a place another member holds", 1);

    // A stranger's Gone, about the receiver, about another member, and
    // with a short id: each stream is closed unheard.
    let gones = [&target.addr, &other.addr, "/ip4/127.0.0.1/tcp/1/p2p/11"];
    let mut streams = Vec::new();
    for addr in gones {
        let gone = PeerMessage::Gone {
            member: member(addr),
            epoch: u64::MAX,
        };
        let members = PeerMessage::Members {
            members: vec![member("/ip4/127.0.0.1/tcp/1/p2p/11")],
            epoch: 1,
        };
        streams.push(attacker.send(vec![gone, members]).await);
    }
    logged(target, "from a peer that is not a member", gones.len());

    // Nobody left, nothing lost, and the ring still routes writes
    // through the attacked peer.
    intact(&nodes, TUPLES);
    for node in &nodes {
        assert!(!node.stderr().contains("panicked"), "{}", node.stderr());
    }
    let more = run(&["out", "--peer", &target.addr, "(\"after\", 1)"], None);
    assert_eq!(more.code, Some(0), "{more:?}");
    let read = run(&["rd", "--peer", &other.addr, "(\"after\", ?int)"], None);
    assert_eq!(read.stdout, "(\"after\", 1)\n", "{read:?}");
    for (n, node) in nodes.iter().enumerate() {
        let take = run(
            &["in", "--peer", &node.addr, &format!("(\"door\", {n})")],
            None,
        );
        assert_eq!(take.code, Some(0), "{take:?}");
        assert_eq!(take.stdout, format!("(\"door\", {n})\n"));
    }
    intact(&nodes, TUPLES + 1 - nodes.len());
    drop(streams);
}

/// Waits and lifetimes at the edge of what the wire carries (`u64::MAX`
/// ms) are taken as "for ever", not added up into an overflow that stops
/// the ring's driver (or the `--solo` space).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_waits_and_lifetimes_from_a_client_do_not_stop_the_ring() {
    for mode in [&[][..], &["--solo"][..]] {
        let node = Node::start_with(mode);
        extremes(&node).await;
    }
}

async fn extremes(node: &Node) {
    let space = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    let template = |key: &str| Template::new(vec![Field::Actual(key.into()), Field::Any]);
    space
        .out_all(vec![tuple("kept", 1)], Some(Duration::MAX))
        .await
        .expect("an out living for ever");
    let read = space.read(template("kept"), Some(Duration::MAX)).await;
    assert_eq!(read.expect("rd"), Some(tuple("kept", 1)));
    let waiting = space.clone();
    let take = tokio::spawn(async move {
        waiting
            .take_up_to(template("later"), 1, Some(Duration::MAX))
            .await
    });
    let out = run(&["out", "--peer", &node.addr, "(\"later\", 2)"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let taken = tokio::time::timeout(DEADLINE, take)
        .await
        .expect("the take ends");
    assert_eq!(taken.unwrap().expect("in"), vec![tuple("later", 2)]);
    let status = status(&node.addr).expect("status");
    assert_eq!(status["tuples"], 1, "{status}");
}

/// Reads a peer stream to its end, acknowledging every message as a
/// member's link does.
async fn acknowledge_all(stream: libp2p::Stream) {
    let (source, mut sink) = stream.split();
    let mut frames = wire::frames(source);
    let mut next = 0;
    while let Some(Ok(message)) = frames.next().await {
        match message {
            Message::Link(LinkFrame::Hello { first, .. }) => next = first,
            Message::Peer(_) => {
                let mut ack = Vec::new();
                let frame = Message::Link(LinkFrame::Ack { through: next });
                wire::encode(&mut ack, &frame).unwrap();
                next += 1;
                if sink.write_all(&ack).await.is_err() || sink.flush().await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

fn tuple(key: &str, n: i64) -> Tuple {
    Tuple::new(vec![Value::from(key), Value::from(n)])
}

/// A member's word is not enough either: an attacker that joins the ring
/// properly (it listens, and its `Join` names itself) then says another
/// member is gone, and that the receiver itself is gone. The receiver
/// probes the other member, which answers, and refutes the word about
/// itself: every real peer stays in every real peer's view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_saying_others_are_gone_evicts_no_one() {
    let nodes = ring();
    let target = &nodes[0];
    let other = &nodes[1];
    let mut swarm = net::swarm(Keypair::generate_ed25519(), None).unwrap();
    let me = *swarm.local_peer_id();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let listening = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            swarm.select_next_some().await
        {
            break address;
        }
    };
    let mut control = swarm.behaviour().stream.new_control();
    // Streams the ring opens to its new member are read, acknowledged (a
    // member that acknowledges nothing is dropped) and otherwise ignored.
    let mut incoming = control.accept(PEER_PROTOCOL).unwrap();
    let sink = tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(acknowledge_all(stream));
        }
    });
    net::dial(&mut swarm, &target.addr.parse().unwrap(), DEADLINE)
        .await
        .expect("the attacker connects");
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let mut attacker = Attacker {
        control,
        me,
        target: peer_id(&target.addr),
        driver,
    };
    let mine = format!("{listening}/p2p/{me}");
    let join = PeerMessage::Join {
        member: member(&mine),
    };
    let _joined = attacker.send(vec![join]).await;
    for node in &nodes {
        eventually("the attacker to be a member", || {
            ring_size(&node.addr, &[]) == Some(4)
        });
    }
    let gones = vec![
        PeerMessage::Gone {
            member: member(&other.addr),
            epoch: 1,
        },
        PeerMessage::Gone {
            member: member(&target.addr),
            epoch: 1,
        },
    ];
    let _said = attacker.send(gones).await;
    logged(target, "probing a member said to be gone", 1);
    logged(
        target,
        "a member said to be gone answered its probe: it stays",
        1,
    );
    logged(
        target,
        "a member found this peer gone: joining again through it",
        1,
    );
    assert!(
        !target.stderr().contains("did not answer"),
        "{}",
        target.stderr()
    );
    for node in &nodes {
        let status = status(&node.addr).expect("status");
        let peers: Vec<&str> = status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["addr"].as_str())
            .collect();
        for real in &nodes {
            assert!(peers.contains(&real.addr.as_str()), "{status}");
        }
    }
    assert!(
        !target.stderr().contains("declared gone"),
        "{}",
        target.stderr()
    );
    sink.abort();
}
