//! A peer the others dropped while it was alive comes back holding what
//! it held: the tuples taken meanwhile are not taken a second time, the
//! others are neither lost nor doubled, and a `Gone` nobody acted on
//! costs nothing but a round of checks.

use std::collections::BTreeSet;

use super::tests::{Small, exact, tuple, write_all};
use super::*;

const IDS: [u64; 4] = [1 << 60, 5 << 60, 9 << 60, 13 << 60];
const WRITTEN: i64 = 40;

/// Every primary id of the ring, each once (panics on a doubled one).
fn primaries(ring: &Small) -> BTreeSet<TupleId> {
    let mut all = BTreeSet::new();
    for peer in &ring.peers {
        for id in peer.primary_ids() {
            assert!(all.insert(id), "{id:?} held by two primaries");
        }
    }
    all
}

/// Takes `("t{k}", k)` through peer `at`; how many tuples came back.
fn take(ring: &mut Small, at: u64, k: i64, op: u64, now: u64) -> usize {
    let request = Op::In {
        template: exact(&tuple(&format!("t{k}"), k)),
        wait_ms: Some(0),
        max: 1,
    };
    let replies = ring.run(
        at,
        Event::Client {
            op: OpId(op),
            request,
        },
        now,
    );
    match &replies[..] {
        [(_, Reply::Taken(tuples))] => tuples.len(),
        other => panic!("take of t{k}: {other:?}"),
    }
}

/// Which `k` the tuple with id `id` was written for (`write_all` writes
/// `("t{k}", k)` in order through one peer).
fn k_of(ring: &Small, id: TupleId) -> i64 {
    ring.peers
        .iter()
        .flat_map(|p| p.store.stored())
        .filter_map(|(t, _)| Tagged::from_stored(t))
        .find(|t| t.id == id)
        .and_then(|t| t.tuple.fields()[1].as_int())
        .expect("a stored tuple")
}

#[test]
fn a_peer_dropped_while_alive_brings_back_no_tuple_taken_meanwhile() {
    let mut ring = Small::new(&IDS);
    write_all(&mut ring, WRITTEN);
    let busiest = ring
        .peers
        .iter()
        .max_by_key(|p| p.primary_ids().len())
        .unwrap()
        .id();
    let held: Vec<i64> = ring
        .peers
        .iter()
        .find(|p| p.id() == busiest)
        .unwrap()
        .primary_ids()
        .into_iter()
        .map(|id| k_of(&ring, id))
        .collect();
    assert!(held.len() >= 4, "the busiest peer holds {held:?}");

    // Frozen: the others drop it and serve its arc from their copies.
    let at = ring.peers.iter().position(|p| p.id() == busiest).unwrap();
    let mut frozen = ring.peers.remove(at);
    ring.view.remove(busiest);
    ring.change(busiest, 1);
    assert_eq!(primaries(&ring).len(), WRITTEN as usize);
    let taker = ring.peers[0].id();
    let taken: Vec<i64> = held.iter().copied().step_by(2).collect();
    for (op, &k) in taken.iter().enumerate() {
        assert_eq!(take(&mut ring, taker, k, 100 + op as u64, 2), 1);
    }

    // Back, and told it was gone: it sets everything aside and asks the
    // peers around it, which do not hear it until they let it in again.
    let unheard = frozen.handle(Event::Doubted, 3);
    let checks = unheard
        .iter()
        .filter(|c| {
            matches!(
                c,
                Command::Send {
                    msg: Msg::Check { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(checks, 3, "each other peer is asked: {unheard:?}");
    assert!(frozen.primary_ids().is_empty() && frozen.copy_ids().is_empty());
    ring.peers.push(frozen);
    ring.view.insert(busiest);
    ring.change(busiest, 4);
    // Its timer sends the checks again; now they are answered.
    let retry = 3 + Config::default().retry_ms;
    ring.run(busiest, Event::Timer, retry);

    let left = WRITTEN as usize - taken.len();
    assert_eq!(primaries(&ring).len(), left, "a taken tuple came back");
    assert_eq!(ring.counts(), (left, left), "one copy of each");
    // Each tuple still there is taken once, through any peer; the taken
    // ones never again.
    for k in 0..WRITTEN {
        let got = take(&mut ring, taker, k, 1_000 + k as u64, retry + 1);
        assert_eq!(got, usize::from(!taken.contains(&k)), "t{k}");
        assert_eq!(take(&mut ring, busiest, k, 2_000 + k as u64, retry + 1), 0);
    }
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_gone_nobody_acted_on_loses_and_doubles_nothing() {
    let mut ring = Small::new(&IDS);
    write_all(&mut ring, WRITTEN);
    let doubted = ring.peers[1].id();
    let before = primaries(&ring);
    assert!(!ring.peers[1].primary_ids().is_empty());
    ring.run(doubted, Event::Doubted, 1);
    assert_eq!(primaries(&ring), before);
    assert_eq!(ring.counts(), (WRITTEN as usize, WRITTEN as usize));
    for k in 0..WRITTEN {
        assert_eq!(take(&mut ring, doubted, k, 100 + k as u64, 2), 1, "t{k}");
    }
    assert_eq!(ring.counts(), (0, 0));
}

/// The `Check` chunks of one round, as (to, chunk) pairs.
fn checks(commands: &[Command]) -> Vec<(u64, u32)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Send {
                to,
                msg: Msg::Check { chunk, .. },
                ..
            } => Some((*to, *chunk)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_late_answer_to_an_earlier_round_settles_nothing() {
    let mut ring = Small::new(&IDS[..2]);
    write_all(&mut ring, WRITTEN);
    let at = ring
        .peers
        .iter()
        .position(|p| !p.primary_ids().is_empty())
        .unwrap();
    let held = ring.peers[at].primary_ids();
    let peer = &mut ring.peers[at];
    let first = checks(&peer.handle(Event::Doubted, 1));
    // Unanswered, the first round gives up at half the tombstone lifetime.
    let give_up = 1 + Config::default().tombstone_ms / 2;
    peer.handle(Event::Timer, give_up);
    assert_eq!(peer.primary_ids(), held, "put back when the time was up");
    let second = checks(&peer.handle(Event::Doubted, give_up + 1));
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(
        first[0].1, second[0].1,
        "each round numbers its chunks anew"
    );
    let answer = |(from, chunk): (u64, u32)| Event::Message {
        from,
        msg: Msg::Checked {
            chunk,
            removed: Vec::new(),
        },
        epoch: 0,
    };
    peer.handle(answer(first[0]), give_up + 2);
    assert!(peer.primary_ids().is_empty(), "still set aside");
    peer.handle(answer(second[0]), give_up + 3);
    assert_eq!(peer.primary_ids(), held);
}
