//! [`DirectSpace`] against a real 3-peer ring: each `out` reaches its
//! tuple's primary straight from the client (each node's
//! `halley_tuples_out_total` counts exactly the tuples it is primary of, by
//! the peers' own keyspace), everything comes back exactly once, and a
//! killed peer costs the client no tuple and no failed operation once its
//! connection is seen gone: its operations go to the peers left.

mod common;
mod run_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::identity::Keypair;

use halley_substrate::keyspace::Keyspace;
use halley_substrate::ring::Ring;
use halley_substrate::{DirectSpace, RemoteSpace, Space, Template, Tuple, tuple};

use common::{DEADLINE, Node, eventually, get, metrics_addr, ring_size, sample};
use run_util::Scratch;

const TUPLES: usize = 300;

/// Three peers that stay at the places their ids give, serving metrics,
/// their ids picked so that each is the primary of about a third of the
/// [`spread`] tuples (a ring of random ids puts them
/// all in one arc: tuples of one shape fill a narrow stretch of the
/// keyspace, which balancing would otherwise spread).
fn ring(dir: &Path) -> Vec<Node> {
    let flags = ["--no-balance", "--metrics", "127.0.0.1:0"];
    let key_files = places_over_the_tuples(dir);
    let with_key = |extra: &[&str], n: usize| {
        let mut args: Vec<&str> = [extra, &flags].concat();
        args.extend(["--key-file", &key_files[n]]);
        Node::start_with(&args)
    };
    let first = with_key(&["--ring"], 0);
    let join = first.addr.clone();
    let nodes = vec![
        first,
        with_key(&["--join", &join], 1),
        with_key(&["--join", &join], 2),
    ];
    for node in &nodes {
        eventually("every peer to see the ring of three", || {
            ring_size(&node.addr, &[]) == Some(3)
        });
    }
    nodes
}

/// Key files in `dir` for three peers at the places (the last 8 bytes of
/// a peer id) that cut the [`spread`] tuples' indexes in thirds.
fn places_over_the_tuples(dir: &Path) -> Vec<String> {
    let keyspace = Keyspace::default();
    let mut indexes: Vec<u64> = (0..3_000).map(|i| keyspace.index_of(&spread(i))).collect();
    indexes.sort_unstable();
    let at = |q: f64| indexes[((indexes.len() - 1) as f64 * q) as usize];
    let wanted = [
        (at(0.25), at(0.42)),
        (at(0.58), at(0.75)),
        (at(1.0), u64::MAX),
    ];
    // Keys from counted seeds: the same keys, found in the same time,
    // every run.
    let mut seeds = 0u64..;
    let mut files = Vec::new();
    for (n, (lo, hi)) in wanted.into_iter().enumerate() {
        let key = seeds
            .by_ref()
            .take(1_000_000)
            .map(|seed| {
                let mut bytes = [0u8; 32];
                bytes[..8].copy_from_slice(&seed.to_be_bytes());
                Keypair::ed25519_from_bytes(bytes).unwrap()
            })
            .find(|key| (lo..=hi).contains(&place(&key.public().to_peer_id())))
            .expect("a key at the wanted place");
        let file = dir.join(format!("peer{n}.key"));
        std::fs::write(&file, key.to_protobuf_encoding().unwrap()).unwrap();
        files.push(file.to_str().unwrap().to_owned());
    }
    files
}

/// A peer's place on the ring: the last 8 bytes of its id.
fn place(peer: &PeerId) -> u64 {
    let bytes = peer.to_bytes();
    u64::from_be_bytes(bytes[bytes.len() - 8..].try_into().unwrap())
}

/// Tuple `i`: a hashed keyword and number, spread over the keyspace.
fn spread(i: usize) -> Tuple {
    let hash = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    tuple!(format!("{hash:016x}"), hash.rotate_left(32) as i64)
}

async fn connect(node: &Node) -> DirectSpace {
    DirectSpace::connect(node.addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_out_goes_straight_to_its_primary() {
    let dir = Scratch::new("direct-primary");
    let nodes = ring(&dir.0);
    let space = connect(&nodes[0]).await;
    assert_eq!(space.direct_members(), 3, "the client reaches every peer");

    // Tuples chosen so that each peer is the primary of a third, by the
    // peers' own keyspace and view (the places stay put: no balancing).
    let status = space.status().await.expect("status");
    let place_of: BTreeMap<String, u64> = status
        .peers
        .iter()
        .map(|p| (p.id.clone(), p.place.expect("a ring member's place")))
        .collect();
    let view: Ring = place_of.values().copied().collect();
    let keyspace = Keyspace::default();
    let mut chosen: BTreeMap<u64, Vec<Tuple>> = view.iter().map(|p| (p, Vec::new())).collect();
    for i in 0..3_000 {
        let t = spread(i);
        let owner = view.owner(keyspace.index_of(&t)).unwrap();
        let share = chosen.get_mut(&owner).unwrap();
        if share.len() < TUPLES / 3 {
            share.push(t);
        }
        if chosen.values().all(|share| share.len() == TUPLES / 3) {
            break;
        }
    }
    let tuples: Vec<Tuple> = chosen.values().flatten().cloned().collect();
    assert_eq!(tuples.len(), TUPLES, "tuples found for every arc");

    // Half one at a time, half in one batch (split by primary).
    for t in &tuples[..TUPLES / 2] {
        space.out(t.clone()).await.expect("out");
    }
    let batch = tuples[TUPLES / 2..].to_vec();
    space.out_all(batch, None).await.expect("out_all");

    for node in &nodes {
        let remote = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
            .await
            .expect("connect");
        let id = remote.peer().to_string();
        let (_, body) = get(&metrics_addr(node), "/metrics");
        let written = sample(&body, "halley_tuples_out_total");
        assert_eq!(
            written,
            chosen[&place_of[&id]].len() as u64,
            "peer {id} was sent exactly the tuples it is primary of"
        );
    }

    // Every tuple comes back once, each take sent to its one candidate.
    for t in tuples {
        let got = space.take(Template::exact(&t), Some(DEADLINE)).await;
        assert_eq!(got.expect("take"), Some(t));
    }
    let any = Template::new(vec![halley_substrate::Field::Any; 2]);
    let left = space.scan(any, None).await.expect("scan");
    assert!(left.is_empty(), "nothing is left over: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_costs_a_direct_client_no_tuple() {
    let dir = Scratch::new("direct-killed");
    let mut nodes = ring(&dir.0);
    // No refresh during the test: the client learns of the loss from its
    // connection alone.
    let hour = Duration::from_secs(3_600);
    let space =
        DirectSpace::connect_refreshing(nodes[0].addr.parse().unwrap(), DEADLINE, None, hour)
            .await
            .expect("connect");
    assert_eq!(space.direct_members(), 3);
    let batch = (0..TUPLES).map(spread).collect();
    space.out_all(batch, None).await.expect("out_all");

    nodes[2].proc.kill();
    for node in &nodes[..2] {
        eventually("the two peers left to drop the killed one", || {
            ring_size(&node.addr, &[]) == Some(2)
        });
    }

    // The client sees the killed peer's connection gone and sends it
    // nothing more: new outs, those of its arc included, all go through.
    eventually(
        "the client to see the killed peer's connection gone",
        || space.direct_members() == 2,
    );
    let more = (TUPLES..2 * TUPLES).map(spread).collect();
    space
        .out_all(more, None)
        .await
        .expect("outs after the kill");

    // The copies on the peers left hold every tuple.
    for i in 0..2 * TUPLES {
        let t = spread(i);
        let got = space.take(Template::exact(&t), Some(DEADLINE)).await;
        assert_eq!(got.expect("take"), Some(t), "tuple {i} comes back once");
    }
    let any = Template::new(vec![halley_substrate::Field::Any; 2]);
    let left = space.scan(any, None).await.expect("scan");
    assert!(left.is_empty(), "nothing is left over: {left:?}");
}
