//! A take of several from several candidates through a 3-peer ring
//! (R = 2) while a peer is SIGKILLed: a client takes `(?str, ?int)` 1,024
//! at a time (every peer a candidate: each is asked directly for its
//! share, `overlay::take_share`), one of the candidates is killed in the
//! middle, and the takes go on until the survivors hold nothing. No tuple
//! is taken twice, and every tuple written is taken or still held (none
//! lost). Every process is killed on drop.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use halley_substrate::{RemoteSpace, Space, Tuple, parse_template};

use common::{DEADLINE, eventually, logs, ring, ring_size, status};

/// Tuples written before the takes start.
const TUPLES: usize = 20_000;
/// Tuples one take asks for.
const MAX: usize = 1_024;

/// The tuples, with keywords spread over the keyspace (every peer holds
/// some).
fn tuples() -> Vec<Tuple> {
    (0..TUPLES)
        .map(|i| {
            let key = format!("t{:08x}", (i as u64).wrapping_mul(2_654_435_761) as u32);
            Tuple::new(vec![key.into(), (i as i64).into()])
        })
        .collect()
}

/// Tuples held as primary across the ring, as `status` through `peer`
/// reports them.
fn held(peer: &str) -> Option<u64> {
    status(peer)?["tuples"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_of_several_lose_and_double_nothing_when_a_candidate_is_killed() {
    let mut nodes = ring(3, 2);
    let space = RemoteSpace::connect(nodes[0].addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    space
        .out_all(tuples(), None)
        .await
        .expect("the tuples written");
    let template = parse_template("(?str, ?int)").unwrap();

    let mut taken = Vec::new();
    for _ in 0..4 {
        let got = space
            .take_up_to(template.clone(), MAX, Some(Duration::ZERO))
            .await
            .expect("a take");
        taken.extend(got);
    }
    assert!(taken.len() < TUPLES, "all taken before the kill");
    // The killed peer is a candidate of every take, the client's peer not.
    nodes[2].proc.kill();
    let survivor = nodes[0].addr.clone();
    let mut empty_after_settling = false;
    while !empty_after_settling {
        let settled = {
            let survivor = survivor.clone();
            tokio::task::spawn_blocking(move || ring_size(&survivor, &[]) == Some(2))
                .await
                .unwrap()
        };
        let got = tokio::time::timeout(
            DEADLINE,
            space.take_up_to(template.clone(), MAX, Some(Duration::ZERO)),
        )
        .await;
        let Ok(Ok(got)) = got else {
            panic!("a take never ended or failed: {got:?};\n{}", logs(&nodes));
        };
        empty_after_settling = settled && got.is_empty();
        taken.extend(got);
    }

    let text = |t: &Tuple| t.to_string();
    let distinct: BTreeSet<String> = taken.iter().map(text).collect();
    assert_eq!(distinct.len(), taken.len(), "a tuple taken twice");
    // Whatever a take did not find (a probe answered empty) is still held:
    // taken and left together are every tuple, once.
    let left = space.scan(template, Some(TUPLES)).await.expect("a scan");
    let left: BTreeSet<String> = left.iter().map(text).collect();
    assert!(distinct.is_disjoint(&left), "a tuple taken and still held");
    assert_eq!(
        taken.len() + left.len(),
        TUPLES,
        "taken {}, left {};\n{}",
        taken.len(),
        left.len(),
        logs(&nodes)
    );
    let expected = left.len() as u64;
    tokio::task::spawn_blocking(move || {
        eventually("the survivors' count to agree", || {
            held(&survivor) == Some(expected)
        });
    })
    .await
    .unwrap();
    drop(nodes);
}
