//! A peer SIGKILLed while clients take from it: every tuple is taken once,
//! and none comes back afterwards (a tuple whose take was answered but
//! whose copies outlived the crash would be found by the final scan);
//! small tuples, which a take's chain carries whole, and large ones, which
//! it names by id (each replica answering with its own copy).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use halley_substrate::{Field, Kind, RemoteSpace, Space, Template, Tuple, tuple};

use tokio::sync::watch;

use common::{DEADLINE, Node, busiest, logs, ring};

const TUPLES: usize = 3_000;
const CLIENTS: usize = 2;

/// Tuple `i`, with `pad` bytes more as a third field when `pad` is not 0.
fn spread(i: usize, pad: usize) -> Tuple {
    let key = format!("w{:08x}", (i as u64).wrapping_mul(2_654_435_761) as u32);
    match pad {
        0 => tuple!(key, i as i64),
        _ => tuple!(key, i as i64, vec![i as u8; pad]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_while_clients_take_doubles_nothing() {
    killed_while_taking(0).await;
}

/// Tuples past the 1 KiB from which a take's chain names them by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_while_clients_take_large_tuples_doubles_nothing() {
    killed_while_taking(1_200).await;
}

async fn killed_while_taking(pad: usize) {
    let mut nodes = ring(3, 2);
    let loader = RemoteSpace::connect(nodes[0].addr.parse().unwrap(), DEADLINE)
        .await
        .unwrap();
    loader
        .out_all((0..TUPLES).map(|i| spread(i, pad)).collect(), None)
        .await
        .unwrap();
    let victim = busiest(&nodes, &nodes[0].addr);
    let others: Vec<usize> = (0..3).filter(|&n| n != victim).collect();

    let (taken, mut progress) = watch::channel(0usize);
    let taken = Arc::new(taken);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let addr = nodes[others[c % others.len()]].addr.parse().unwrap();
        let space = RemoteSpace::connect(addr, DEADLINE).await.unwrap();
        let taken = taken.clone();
        clients.push(tokio::spawn(async move {
            let mut missed = Vec::new();
            for i in (c..TUPLES).step_by(CLIENTS) {
                let t = spread(i, pad);
                let got = space.take(Template::exact(&t), Some(DEADLINE)).await;
                match got.expect("take") {
                    Some(got) => assert_eq!(got, t),
                    None => missed.push(i),
                }
                taken.send_modify(|n| *n += 1);
            }
            missed
        }));
    }
    progress
        .wait_for(|&n| n >= TUPLES / 3)
        .await
        .expect("the clients are taking");
    nodes[victim].proc.kill();
    let mut missed = Vec::new();
    for client in clients {
        missed.extend(client.await.expect("a client failed"));
    }
    let alive: Vec<&Node> = others.iter().map(|&n| &nodes[n]).collect();
    assert!(
        missed.is_empty(),
        "tuples lost: {missed:?}\n{}",
        logs(alive.clone())
    );
    let survivor = RemoteSpace::connect(alive[0].addr.parse().unwrap(), DEADLINE)
        .await
        .unwrap();
    let mut any = vec![Field::Typed(Kind::Str), Field::Typed(Kind::Int)];
    if pad > 0 {
        any.push(Field::Typed(Kind::Bytes));
    }
    let any = Template::new(any);
    let left = survivor.scan(any, None).await.unwrap();
    let left: BTreeSet<String> = left.iter().map(ToString::to_string).collect();
    assert!(
        left.is_empty(),
        "{} tuples taken once came back after the crash: {left:?}",
        left.len()
    );
}
