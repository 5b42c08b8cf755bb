//! A direct client refreshes its routes with `Members`, answered from its
//! entry peer's own view: the other members are never asked to count
//! (their `halley_count_asks_total` stays put however often it refreshes),
//! where a `status` through the entry asks each of them once. Reading a
//! node's metrics asks no one either (its peer count is its own view).

mod common;

use std::time::Duration;

use halley_substrate::{DirectSpace, RemoteSpace, Space, tuple};

use common::{DEADLINE, Node, eventually, get, metrics_addr, ring_size, sample};

fn metric(addr: &str, name: &str) -> u64 {
    sample(&get(addr, "/metrics").1, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_clients_refreshes_ask_no_member_to_count() {
    // No balancing: an idle ring then counts only when asked for status.
    let flags = ["--no-balance", "--metrics", "127.0.0.1:0"];
    let first = Node::start_with(&flags);
    let join = first.addr.clone();
    let joined = || Node::start_with(&[&flags[..], &["--join", join.as_str()]].concat());
    let nodes = [first, joined(), joined()];
    for node in &nodes {
        eventually("every peer to see the ring of three", || {
            ring_size(&node.addr, &[]) == Some(3)
        });
    }
    let metrics: Vec<String> = nodes.iter().map(metrics_addr).collect();
    let entry = RemoteSpace::connect(nodes[0].addr.parse().unwrap(), DEADLINE)
        .await
        .unwrap();
    let members = entry.members().await.unwrap();
    let mut listed: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
    listed.sort();
    let mut expected: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    expected.sort();
    assert_eq!(listed, expected, "the entry lists every member");

    let asked = |at: &str| metric(at, "halley_count_asks_total");
    // Connecting costs one count per connection (each connection's first
    // request is a `Status` probe); the refreshes after it none.
    let direct = DirectSpace::connect_refreshing(
        nodes[0].addr.parse().unwrap(),
        DEADLINE,
        None,
        Duration::from_millis(20),
    )
    .await
    .unwrap();
    let before: Vec<u64> = metrics[1..].iter().map(|m| asked(m)).collect();
    let members_asked = || metric(&metrics[0], "halley_requests_total{op=\"members\"}");
    eventually("twenty refreshes", || members_asked() >= 20);
    direct.out(tuple!("routed", 1_i64)).await.unwrap();
    let back = direct
        .take(
            halley_substrate::Template::exact(&tuple!("routed", 1_i64)),
            Some(DEADLINE),
        )
        .await
        .unwrap();
    assert_eq!(back, Some(tuple!("routed", 1_i64)));
    let after: Vec<u64> = metrics[1..].iter().map(|m| asked(m)).collect();
    assert_eq!(before, after, "a refresh asked the other members to count");

    // The counter does see counts: one status through the entry asks each
    // other member once.
    entry.status().await.unwrap();
    let counted: Vec<u64> = metrics[1..].iter().map(|m| asked(m)).collect();
    let more: Vec<u64> = counted.iter().zip(&after).map(|(c, a)| c - a).collect();
    assert_eq!(more, vec![1, 1], "a status asks each other member once");
}
