//! A batch `out` through a 3-peer ring (R = 2) while a peer is SIGKILLed:
//! the writer's `out_all` (one overlay batch `out` per 256 tuples) still
//! completes, and every tuple is then held exactly once, as `status` and
//! a scan through a survivor show. Every process is killed on drop.

mod common;

use std::collections::BTreeSet;

use halley_substrate::{RemoteSpace, Space, Tuple};

use common::{DEADLINE, eventually, logs, ring, ring_size, run, status};

/// Tuples written: enough that the load is still under way when the
/// first of them show in `status`.
const TUPLES: usize = 30_000;

/// The tuples, with keywords spread over the keyspace.
fn tuples() -> Vec<Tuple> {
    (0..TUPLES)
        .map(|i| {
            let key = format!("b{:08x}", (i as u64).wrapping_mul(2_654_435_761) as u32);
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
async fn a_batch_out_survives_a_killed_peer_without_loss_or_duplicate() {
    let mut nodes = ring(3, 2);
    let space = RemoteSpace::connect(nodes[0].addr.parse().unwrap(), DEADLINE)
        .await
        .expect("connect");
    let writer = tokio::spawn(async move { space.out_all(tuples(), None).await });

    // Kill a peer the writer does not talk to once the load is under way.
    let peer = nodes[0].addr.clone();
    tokio::task::spawn_blocking(move || {
        eventually("the load to start", || held(&peer).is_some_and(|n| n > 0));
    })
    .await
    .unwrap();
    nodes[2].proc.kill();
    assert!(!writer.is_finished(), "the load was over before the kill");

    let written = tokio::time::timeout(4 * DEADLINE, writer).await;
    let Ok(Ok(written)) = written else {
        panic!("the batch out never ended;\n{}", logs(&nodes));
    };
    if let Err(e) = written {
        panic!("the batch out failed: {e};\n{}", logs(&nodes));
    }
    let survivor = nodes[0].addr.clone();
    tokio::task::spawn_blocking(move || {
        eventually("the survivors to see a ring of two", || {
            ring_size(&survivor, &[]) == Some(2)
        });
        let mut last = 0;
        eventually("every tuple to be held once, replicas restored", || {
            let scan = run(&["scan", "--peer", &survivor, "(?str, ?int)"], None);
            let lines: Vec<&str> = scan.stdout.lines().collect();
            let distinct: BTreeSet<&&str> = lines.iter().collect();
            last = lines.len();
            scan.code == Some(0) && lines.len() == TUPLES && distinct.len() == TUPLES
        });
        assert_eq!(held(&survivor), Some(TUPLES as u64), "last scan: {last}");
    })
    .await
    .unwrap();
    drop(nodes);
}
