//! Batch `out`s on a hand-driven ring, message by message (one message of
//! each kind per batch and primary, however many tuples), their retries
//! (nothing stored twice), their bounds (`max_pending`, a full primary),
//! the churn simulation with batches among the writes, and what a take of
//! several moves when three candidates hold plenty (the take side of W1).

use std::sync::Arc;

use super::sim::{Plan, Sim};
use super::tests::{Small, tuple};
use super::tests_direct::{client, name, nothing, trace};
use super::*;
use crate::keyspace::Keyspace;
use crate::ring::Ring;

/// Tuples `("u<k>", k)` for `k` in `0..n`.
fn tuples(n: i64) -> Vec<Tuple> {
    (0..n).map(|k| tuple(&format!("u{k}"), k)).collect()
}

/// Three peers placed at the thirds of `tuples`' indices (the keyspace
/// keeps the order of strings, so similar keys sit close together): each
/// is the primary of a third of them.
fn ring_over(tuples: &[Tuple]) -> (Small, [u64; 3]) {
    let keyspace = Keyspace::default();
    let mut indices: Vec<u64> = tuples.iter().map(|t| keyspace.index_of(t)).collect();
    indices.sort_unstable();
    let n = indices.len();
    let ids = [n / 3 - 1, 2 * n / 3 - 1, n - 1].map(|i| indices[i]);
    (Small::new(&ids), ids)
}

fn out_all(tuples: &[Tuple]) -> Op {
    Op::OutAll {
        tuples: tuples.to_vec(),
        ttl_ms: None,
    }
}

/// The tuples of `tuples` whose primary on `ring` is `primary`.
fn owned_by(ring: &Small, primary: u64, tuples: &[Tuple]) -> Vec<Tuple> {
    let keyspace = Keyspace::default();
    let owner = |t: &Tuple| ring.view.owner(keyspace.index_of(t));
    tuples
        .iter()
        .filter(|&t| owner(t) == Some(primary))
        .cloned()
        .collect()
}

/// The ids a batch's acknowledgement names, checked to be `n` distinct.
fn stored_all(replies: &[(OpId, Reply)], op: u64, n: usize) -> Vec<TupleId> {
    let [(got, Reply::StoredAll { ids })] = replies else {
        panic!("{replies:?}");
    };
    assert_eq!(*got, OpId(op));
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), n, "{ids:?}");
    ids.clone()
}

#[test]
fn a_batch_to_one_primary_takes_four_messages_whatever_its_size() {
    let all = tuples(600);
    let (mut ring, ids) = ring_over(&all);
    // Writer, primary and replica apart: every message crosses a link.
    let (writer, primary) = (ids[0], ids[1]);
    assert_eq!(ring.view.successors(primary, 1), [ids[2]]);
    let tuples = owned_by(&ring, primary, &all);
    assert_eq!(tuples.len(), 200);
    let written = trace(&mut ring, writer, client(1, out_all(&tuples)), 0, nothing);
    let ids = stored_all(&written.replies, 1, 200);
    // 200 single `out`s would take 800 messages (Route, Replicate, Stored,
    // Copied each).
    assert_eq!(
        written.sent,
        ["RouteBatch", "ReplicateBatch", "StoredBatch", "CopiedBatch"]
    );
    assert_eq!(ring.counts(), (200, 200));
    let primary = ring.peers.iter().find(|p| p.id() == primary).unwrap();
    let mut held = primary.primary_ids();
    let mut expected = ids;
    expected.sort_unstable();
    held.sort_unstable();
    assert_eq!(held, expected);
    // The tuples are the client's, in order, under consecutive ids.
    assert!(expected.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn a_batch_spread_over_the_ring_sends_each_primary_its_share_in_bounded_messages() {
    let tuples = tuples(1_200);
    let (mut ring, ids) = ring_over(&tuples);
    let writer = ids[0];
    let keyspace = Keyspace::default();
    let mut shares = std::collections::BTreeMap::<u64, usize>::new();
    for t in &tuples {
        *shares
            .entry(ring.view.owner(keyspace.index_of(t)).unwrap())
            .or_default() += 1;
    }
    assert!(shares.values().any(|&n| n > MAX_BATCH), "{shares:?}");
    // Each primary's share in messages of at most MAX_BATCH tuples: a
    // route to it (unless it is the writer), copies to its replica, its
    // word to the writer and the replica's (unless they are the writer).
    let mut expected = std::collections::BTreeMap::<&str, usize>::new();
    for (&primary, &n) in &shares {
        let messages = n.div_ceil(MAX_BATCH);
        let replica = ring.view.successors(primary, 1)[0];
        let remote = usize::from(primary != writer);
        *expected.entry("RouteBatch").or_default() += messages * remote;
        *expected.entry("StoredBatch").or_default() += messages * remote;
        *expected.entry("ReplicateBatch").or_default() += messages;
        *expected.entry("CopiedBatch").or_default() += messages * usize::from(replica != writer);
    }
    let written = trace(&mut ring, writer, client(1, out_all(&tuples)), 0, nothing);
    stored_all(&written.replies, 1, 1_200);
    let mut sent = std::collections::BTreeMap::<&str, usize>::new();
    for name in written.sent {
        *sent.entry(name).or_default() += 1;
    }
    assert_eq!(sent, expected);
    assert_eq!(ring.counts(), (1_200, 1_200));
}

#[test]
fn a_retried_batch_stores_nothing_twice_and_is_acknowledged_once() {
    let all = tuples(150);
    let (mut ring, ids) = ring_over(&all);
    // The replica (ids[2]) is not the writer: its confirmation crosses a
    // link, where it can be lost.
    let (writer, primary) = (ids[0], ids[1]);
    let tuples = owned_by(&ring, primary, &all);
    assert_eq!(tuples.len(), 50);
    // The replica's confirmation is lost: no acknowledgement yet.
    let lost = |msg: &Msg| matches!(msg, Msg::CopiedBatch { .. });
    let first = trace(&mut ring, writer, client(1, out_all(&tuples)), 0, lost);
    assert!(first.replies.is_empty(), "{:?}", first.replies);
    assert_eq!(first.held.len(), 1);
    assert_eq!(ring.counts(), (50, 50));
    // Before `retry_ms` nothing is sent again; at it, the same ids are.
    let early = trace(&mut ring, writer, Event::Timer, 999, nothing);
    assert!(early.sent.is_empty() && early.replies.is_empty());
    let retry_ms = Config::default().retry_ms;
    let again = trace(&mut ring, writer, Event::Timer, retry_ms, nothing);
    let ids = stored_all(&again.replies, 1, 50);
    assert_eq!(
        again.sent,
        ["RouteBatch", "ReplicateBatch", "StoredBatch", "CopiedBatch"]
    );
    assert_eq!(ring.counts(), (50, 50), "nothing stored or copied twice");
    // The lost confirmation, arriving late, acknowledges nothing again.
    let (from, late) = first.held.into_iter().next().unwrap();
    let Command::Send { to, msg, epoch } = late else {
        panic!("{late:?}")
    };
    assert_eq!(name(&msg), "CopiedBatch");
    let event = Event::Message { from, msg, epoch };
    let replies = trace(&mut ring, to, event, retry_ms + 1, nothing).replies;
    assert!(replies.is_empty(), "{replies:?}");
    let mut held = ring.peers[1].primary_ids();
    held.sort_unstable();
    let mut expected = ids;
    expected.sort_unstable();
    assert_eq!(held, expected);
}

#[test]
fn batch_tuples_count_against_max_pending_with_single_outs() {
    let view = Arc::new(Ring::from_iter([42, 1 << 63]));
    let config = Config {
        max_pending: 4,
        ..Config::default()
    };
    let mut peer = Peer::new(42, config, view).unwrap();
    let tuples: Vec<Tuple> = (0..5).map(|k| tuple("b", k)).collect();
    let busy = |op| Command::Reply {
        op: OpId(op),
        reply: Reply::Failed(OverlayError::Busy),
    };
    // Five tuples never fit a pool of four: refused whole.
    let refused = peer.handle(client(1, out_all(&tuples)), 0);
    assert_eq!(refused, vec![busy(1)]);
    // Three fit, and wait (no peer answers here); a fourth single `out`
    // fits, a fifth does not, nor does a batch of two.
    let started = peer.handle(client(2, out_all(&tuples[..3])), 0);
    assert!(!started.iter().any(|c| matches!(c, Command::Reply { .. })));
    let one = Op::Out {
        tuple: tuples[3].clone(),
        ttl_ms: None,
    };
    let started = peer.handle(client(3, one.clone()), 0);
    assert!(!started.iter().any(|c| matches!(c, Command::Reply { .. })));
    assert_eq!(peer.handle(client(4, one), 0), vec![busy(4)]);
    assert_eq!(
        peer.handle(client(5, out_all(&tuples[..2])), 0),
        vec![busy(5)]
    );
    assert_eq!(peer.pending(), 2);
}

#[test]
fn a_batch_past_a_full_primary_fails_full_and_stores_what_fits() {
    let view = Arc::new(Ring::from_iter([42]));
    let config = Config {
        max_tuples: 3,
        ..Config::default()
    };
    let mut peer = Peer::new(42, config, view).unwrap();
    let tuples: Vec<Tuple> = (0..5).map(|k| tuple("f", k)).collect();
    let replies = peer.handle(client(1, out_all(&tuples)), 0);
    let full = Command::Reply {
        op: OpId(1),
        reply: Reply::Failed(OverlayError::Full),
    };
    assert_eq!(
        replies
            .iter()
            .filter(|c| matches!(c, Command::Reply { .. }))
            .collect::<Vec<_>>(),
        [&full]
    );
    assert_eq!(peer.primary_count(), 3);
    assert_eq!(peer.pending(), 0);
    // An empty batch is stored at once.
    let empty = peer.handle(client(2, out_all(&[])), 0);
    let stored = Command::Reply {
        op: OpId(2),
        reply: Reply::StoredAll { ids: Vec::new() },
    };
    assert_eq!(empty, vec![stored]);
}

/// Churn (crashes, leaves, joins) and wrongly evicted peers with a third
/// of the writes in batches: nothing lost, nothing taken twice, every
/// batch tuple acknowledged once, copies restored.
#[test]
fn batch_outs_under_churn_keep_the_invariants() {
    let (mut batch_tuples, mut lost_peers) = (0, 0);
    for seed in 0..12 {
        let config = Config {
            replicas: 2 + seed as usize % 2,
            ..Config::default()
        };
        let plan = Plan {
            seed,
            peers: 50,
            ops: 800,
            churn: 12,
            evictions: 3,
            freezes: 2,
            span_ms: 12_000,
        };
        let outcome = Sim::run_with_batches(plan, config);
        assert_eq!(outcome.outs_failed, 0, "seed {seed}: {outcome:?}");
        batch_tuples += outcome.batch_tuples_acked;
        lost_peers += outcome.crashes + outcome.leaves;
    }
    println!("batch tuples acknowledged {batch_tuples}, peers crashed or left {lost_peers}");
    assert!(batch_tuples > 1_000 && lost_peers > 0);
}

#[test]
fn a_thousand_peers_with_batches_and_churn_lose_and_double_nothing() {
    let plan = Plan {
        seed: 2026,
        peers: 1_000,
        ops: 4_000,
        churn: 100,
        evictions: 0,
        freezes: 0,
        span_ms: 30_000,
    };
    let outcome = Sim::run_with_batches(plan, Config::default());
    println!("{outcome:?}");
    assert!(outcome.crashes > 0 && outcome.leaves > 0 && outcome.joins > 0);
    assert_eq!(outcome.outs_failed, 0, "retries get every batch through");
    assert!(outcome.batch_tuples_acked > 1_000, "{outcome:?}");
}

/// What a take of several costs when three candidates hold plenty (W1's
/// workers and master, with a backlog). Each candidate is asked directly
/// for its share of the `max` (`take_share`): 342, 341 and 341 of 1,024,
/// removed and sent at once. Before shares, each candidate reserved and
/// offered up to the whole `max`: 2,000 tuples offered across the links
/// and 1,976 declined, for 1,024 taken. Counted on the links only: the
/// asker, a candidate too, serves itself in-process.
#[test]
fn a_take_of_several_from_three_stocked_candidates_moves_each_tuple_once() {
    let all = tuples(3_000);
    let (mut ring, ids) = ring_over(&all);
    let written = trace(&mut ring, ids[0], client(1, out_all(&all)), 0, nothing);
    stored_all(&written.replies, 1, 3_000);
    let any = Template::new(vec![
        crate::template::Field::Typed(crate::tuple::Kind::Str),
        crate::template::Field::Typed(crate::tuple::Kind::Int),
    ]);
    assert_eq!(ring.peers[1].candidates(&any).len(), 3);
    let moved = std::cell::Cell::new([0usize; 4]);
    let count = |msg: &Msg| {
        let mut n = moved.get();
        match msg {
            Msg::Offer { reservations, .. } => n[0] += reservations.len(),
            Msg::Decline { reservations } => n[1] += reservations.len(),
            Msg::Taken { tuples, .. } => n[2] += tuples.len(),
            Msg::Remove { tuples, .. } => n[3] += tuples.len(),
            _ => {}
        }
        moved.set(n);
        false
    };
    let take = Op::In {
        template: any,
        wait_ms: Some(0),
        max: 1_024,
    };
    let taken = trace(&mut ring, ids[1], client(2, take), 1, count);
    let [(_, Reply::Taken(got))] = &taken.replies[..] else {
        panic!("{:?}", taken.replies);
    };
    assert_eq!(got.len(), 1_024);
    // Nothing offered or declined; each share goes once to its replica in
    // `Remove`, and the replica answers: the shares whose replica is not
    // the requester cross a link once more in `Taken` (682 tuples, where
    // 2,000 were offered before shares); the requester releases those
    // two chains.
    assert_eq!(moved.get(), [0, 0, 682, 1_024]);
    assert_eq!(
        taken.sent,
        [
            "Ask(direct)",
            "Ask(direct)",
            "Remove",
            "Remove",
            "Remove",
            "Taken",
            "Answered",
            "Taken",
            "Answered"
        ]
    );
    assert_eq!(ring.counts(), (3_000 - 1_024, 3_000 - 1_024));
}

/// Churn, evictions and freezes while many takes take several from
/// several candidates by shares (direct takes of a share each, then
/// top-ups): nothing lost, nothing taken twice, copies restored.
#[test]
fn takes_by_shares_under_churn_keep_the_invariants() {
    let (mut share_takes, mut taken, mut lost_peers) = (0, 0, 0);
    for seed in 0..6 {
        let config = Config {
            replicas: 2 + seed as usize % 2,
            ..Config::default()
        };
        let plan = Plan {
            seed: 100 + seed,
            peers: 30,
            ops: 600,
            churn: 6,
            evictions: 1,
            freezes: 1,
            span_ms: 12_000,
        };
        let outcome = Sim::run_with_shares(plan, config);
        assert_eq!(outcome.outs_failed, 0, "seed {seed}: {outcome:?}");
        share_takes += outcome.share_takes;
        taken += outcome.tuples_taken;
        lost_peers += outcome.crashes + outcome.leaves;
    }
    println!(
        "takes by shares {share_takes}, tuples taken {taken}, peers crashed or left {lost_peers}"
    );
    assert!(
        share_takes > 100 && lost_peers > 0,
        "{share_takes} {lost_peers}"
    );
}

/// 30 tuples `("u<k>", k, <300 kB>)` (9 MB in all) on a three-peer
/// ring, and the template that matches them.
fn large_tuples_on_a_ring() -> (Small, [u64; 3], Template) {
    let blob = vec![7u8; 300_000];
    let all: Vec<Tuple> = (0..30)
        .map(|k| {
            let mut fields = tuple(&format!("u{k}"), k).into_fields();
            fields.push(crate::tuple::Value::Bytes(blob.clone()));
            Tuple::new(fields)
        })
        .collect();
    let (mut ring, ids) = ring_over(&all);
    let written = trace(&mut ring, ids[0], client(1, out_all(&all)), 0, nothing);
    stored_all(&written.replies, 1, 30);
    let any = Template::new(
        [
            crate::tuple::Kind::Str,
            crate::tuple::Kind::Int,
            crate::tuple::Kind::Bytes,
        ]
        .map(crate::template::Field::Typed)
        .into(),
    );
    (ring, ids, any)
}

/// Bytes of tuples a message carries (whole: a tuple a `Remove` names by
/// id counts nothing).
pub(super) fn tuple_bytes(msg: &Msg) -> usize {
    let tagged = |tuples: &[Tagged]| tuples.iter().map(|t| t.tuple.encoded_len_hint()).sum();
    let wire =
        |tuples: &[super::msg::Wire]| tuples.iter().map(|(t, _)| t.tuple.encoded_len_hint()).sum();
    match msg {
        Msg::Taken { tuples, .. } => wire(tuples),
        Msg::Remove { tuples, .. } => tuples
            .iter()
            .map(|c| match c {
                super::msg::Carried::Whole((t, _)) => t.tuple.encoded_len_hint(),
                super::msg::Carried::Known(_) => 0,
            })
            .sum(),
        Msg::Copies { tuples, .. } => tagged(tuples),
        _ => 0,
    }
}

/// A scan of many large tuples: each candidate sends its copies in parts
/// a message carries (its 3 MB in one would be within the frame here, but
/// not a peer's 9 MB), and the scan lists them all.
#[test]
fn a_scan_of_large_tuples_comes_in_parts_the_wire_carries() {
    let (mut ring, ids, any) = large_tuples_on_a_ring();
    let largest = std::cell::Cell::new(0usize);
    let parts = std::cell::Cell::new(0usize);
    let probe = |msg: &Msg| {
        if matches!(msg, Msg::Copies { .. }) {
            parts.set(parts.get() + 1);
        }
        largest.set(largest.get().max(tuple_bytes(msg)));
        false
    };
    let scan = Op::Scan {
        template: any,
        limit: usize::MAX,
    };
    let listed = trace(&mut ring, ids[1], client(2, scan), 1, probe);
    let [(_, Reply::Listed(got))] = &listed.replies[..] else {
        panic!("{:?}", listed.replies);
    };
    assert_eq!(got.len(), 30, "every tuple listed");
    assert!(parts.get() > 3, "{} parts", parts.get());
    assert!(
        largest.get() <= MAX_BATCH_BYTES + 300_100,
        "a part of {} bytes",
        largest.get()
    );
    assert_eq!(ring.counts(), (30, 30), "a scan takes nothing");
}

/// A take of many large tuples: each candidate removes at most
/// [`MAX_BATCH_BYTES`] of them for one answer (a message the wire can
/// carry; 30 tuples of 300 kB in one would pass its 8 MiB frame), the
/// take returns fewer than its `max`, and takes again get the rest, each
/// tuple exactly once.
#[test]
fn a_take_of_large_tuples_is_answered_in_messages_the_wire_carries() {
    let (mut ring, ids, any) = large_tuples_on_a_ring();
    let largest = std::cell::Cell::new(0usize);
    let bytes = |msg: &Msg| {
        largest.set(largest.get().max(tuple_bytes(msg)));
        false
    };
    let mut seen = std::collections::BTreeSet::new();
    for op in 2.. {
        let take = Op::In {
            template: any.clone(),
            wait_ms: Some(0),
            max: 1_024,
        };
        let taken = trace(&mut ring, ids[1], client(op, take), 1, bytes);
        let [(_, Reply::Taken(got))] = &taken.replies[..] else {
            panic!("{:?}", taken.replies);
        };
        if got.is_empty() {
            break;
        }
        assert!(got.len() < 30, "one take cannot carry them all");
        for t in got {
            assert!(seen.insert(t.tuple.fields()[1].clone()), "taken twice");
        }
    }
    assert_eq!(seen.len(), 30, "every tuple taken once");
    assert!(
        largest.get() <= MAX_BATCH_BYTES + 300_100,
        "an answer of {} bytes",
        largest.get()
    );
    assert_eq!(ring.counts(), (0, 0));
}
