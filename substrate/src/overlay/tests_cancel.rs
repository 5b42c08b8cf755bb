//! Cancel's races and multi-tuple takes on a hand-driven ring: messages
//! held back at chosen points so that the cancel lands before a match,
//! while an offer is on its way, and after the accept.

use super::tests::{Small, exact, settle, tuple};
use super::*;
use crate::keyspace::Keyspace;

const IDS: [u64; 3] = [1 << 62, 2 << 62, 3 << 62];

/// Commands not carried out yet, each with the peer that gave it.
type Held = Vec<(u64, Command)>;

/// Runs `event` at `at` and delivers every message but those `hold`
/// picks, which come back undelivered with their senders.
fn run_holding(
    ring: &mut Small,
    at: u64,
    event: Event,
    now: u64,
    hold: impl Fn(&Msg) -> bool,
) -> (Vec<(OpId, Reply)>, Held) {
    let peer = ring.peers.iter_mut().find(|p| p.id() == at).unwrap();
    let mut pending: Held = peer
        .handle(event, now)
        .into_iter()
        .map(|c| (at, c))
        .collect();
    let (mut replies, mut held) = (Vec::new(), Vec::new());
    while let Some((from, command)) = pending.pop() {
        match command {
            Command::Send { ref msg, .. } if hold(msg) => held.push((from, command)),
            Command::Send { to, msg, epoch } => {
                let peer = ring.peers.iter_mut().find(|p| p.id() == to).unwrap();
                let out = peer.handle(Event::Message { from, msg, epoch }, now);
                pending.extend(out.into_iter().map(|c| (to, c)));
            }
            Command::Reply { op, reply } => replies.push((op, reply)),
            Command::ArmTimer { .. } => {}
        }
    }
    (replies, held)
}

fn client(op: u64, request: Op) -> Event {
    Event::Client {
        op: OpId(op),
        request,
    }
}

fn take(t: &Tuple, wait_ms: Option<u64>, max: usize) -> Op {
    Op::In {
        template: exact(t),
        wait_ms,
        max,
    }
}

fn out(t: &Tuple) -> Op {
    Op::Out {
        tuple: t.clone(),
        ttl_ms: None,
    }
}

/// A ring, a tuple, its primary and a requester that is neither the
/// primary nor the writer; the requester's blocking take is parked at the
/// primary.
fn parked_take(t: &Tuple) -> (Small, u64, u64, u64) {
    let mut ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(t)).unwrap();
    let mut others = IDS.iter().copied().filter(|&p| p != primary);
    let (requester, writer) = (others.next().unwrap(), others.next().unwrap());
    let replies = ring.run(requester, client(1, take(t, Some(60_000), 1)), 0);
    assert_eq!(replies, vec![]);
    assert_eq!(waiters(&ring, primary), 1);
    (ring, primary, requester, writer)
}

fn waiters(ring: &Small, at: u64) -> usize {
    let peer = ring.peers.iter().find(|p| p.id() == at).unwrap();
    peer.store.waiting()
}

fn primary_ids(ring: &Small, at: u64) -> Vec<TupleId> {
    ring.peers
        .iter()
        .find(|p| p.id() == at)
        .unwrap()
        .primary_ids()
}

/// Takes whatever matches `t` now from `at`: the ids taken.
fn probe(ring: &mut Small, at: u64, op: u64, t: &Tuple, now: u64) -> Vec<TupleId> {
    match &ring.run(at, client(op, take(t, Some(0), 10)), now)[..] {
        [(_, Reply::Taken(found))] => found.iter().map(|f| f.id).collect(),
        other => panic!("a probe answered {other:?}"),
    }
}

#[test]
fn a_cancel_before_any_match_unparks_the_waiter_and_takes_nothing() {
    let t = tuple("late", 1);
    let (mut ring, primary, requester, writer) = parked_take(&t);
    let replies = ring.run(requester, Event::Cancel { op: OpId(1) }, 1);
    let cancelled = Reply::Cancelled { returned: vec![] };
    assert_eq!(replies, vec![(OpId(1), cancelled)]);
    assert_eq!(waiters(&ring, primary), 0);
    // The tuple written afterwards stays, and a second cancel is a no-op.
    let replies = ring.run(writer, client(2, out(&t)), 2);
    assert!(matches!(replies[..], [(OpId(2), Reply::Stored { .. })]));
    assert_eq!(ring.counts(), (1, 1));
    assert_eq!(
        ring.run(requester, Event::Cancel { op: OpId(1) }, 3),
        vec![]
    );
}

#[test]
fn a_cancel_while_an_offer_travels_declines_it_and_the_tuple_stays() {
    let t = tuple("late", 1);
    let (mut ring, primary, requester, writer) = parked_take(&t);
    let offer = |m: &Msg| matches!(m, Msg::Offer { .. });
    let (replies, held) = run_holding(&mut ring, writer, client(2, out(&t)), 1, offer);
    let id = match &replies[..] {
        [(OpId(2), Reply::Stored { id, .. })] => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(held.len(), 1, "the primary offered the tuple");
    let replies = ring.run(requester, Event::Cancel { op: OpId(1) }, 2);
    assert_eq!(
        replies,
        vec![(OpId(1), Reply::Cancelled { returned: vec![] })]
    );
    // The offer arrives after the cancel: declined, back in the store.
    assert_eq!(settle(&mut ring.peers, held, 3), vec![]);
    assert_eq!(primary_ids(&ring, primary), vec![id]);
    assert_eq!(ring.counts(), (1, 1));
    assert_eq!(probe(&mut ring, requester, 3, &t, 4), vec![id]);
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_cancel_after_the_accept_puts_the_taken_tuple_back_once() {
    let t = tuple("late", 1);
    let (mut ring, primary, requester, writer) = parked_take(&t);
    let accept = |m: &Msg| matches!(m, Msg::Accept { .. });
    let (replies, held) = run_holding(&mut ring, writer, client(2, out(&t)), 1, accept);
    let old = match &replies[..] {
        [(OpId(2), Reply::Stored { id, .. })] => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(held.len(), 1, "the requester accepted the offer");
    // The accept is on its way: the query ends when the tuple is back.
    assert_eq!(
        ring.run(requester, Event::Cancel { op: OpId(1) }, 2),
        vec![]
    );
    let replies = settle(&mut ring.peers, held, 3);
    let new = match &replies[..] {
        [(OpId(1), Reply::Cancelled { returned })] if returned.len() == 1 => {
            assert_eq!(returned[0].0, old);
            returned[0].1
        }
        other => panic!("{other:?}"),
    };
    assert_ne!(new, old);
    assert_eq!(primary_ids(&ring, primary), vec![new]);
    assert_eq!(ring.counts(), (1, 1));
    assert_eq!(probe(&mut ring, writer, 3, &t, 4), vec![new]);
    assert_eq!(probe(&mut ring, requester, 4, &t, 5), vec![]);
    assert_eq!(ring.counts(), (0, 0));
}

/// Tuples whose first keyword differs land on different peers; a template
/// with a wildcard there asks them all.
#[test]
fn a_take_of_several_gathers_from_every_candidate_up_to_its_max() {
    let tuples: Vec<Tuple> = (0..12).map(|k| tuple(&format!("job{k}"), 7)).collect();
    // Each peer the primary of at least one of them.
    let keyspace = Keyspace::default();
    let ids = [0, 5, 11].map(|k| keyspace.index_of(&tuples[k]));
    let mut ring = Small::new(&ids);
    for (n, t) in tuples.iter().enumerate() {
        ring.run(ids[n % 3], client(100 + n as u64, out(t)), 0);
    }
    let holders = ids
        .iter()
        .filter(|&&p| !primary_ids(&ring, p).is_empty())
        .count();
    assert!(holders > 1, "the tuples should spread");
    let any = Template::new(vec![Field::Any, Field::Actual(Value::Int(7))]);
    let mut seen = std::collections::BTreeSet::new();
    for (op, max, expect) in [(1, 5, 5), (2, 100, 7), (3, 3, 0)] {
        let request = Op::In {
            template: any.clone(),
            wait_ms: Some(0),
            max,
        };
        match &ring.run(ids[0], client(op, request), 1)[..] {
            [(_, Reply::Taken(found))] => {
                assert_eq!(found.len(), expect, "max {max}");
                for f in found {
                    assert!(seen.insert(f.id), "{:?} taken twice", f.id);
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_blocking_take_of_several_returns_with_the_first_tuple() {
    let mut ring = Small::new(&IDS);
    let any = Template::new(vec![Field::Any, Field::Actual(Value::Int(7))]);
    let request = Op::In {
        template: any,
        wait_ms: Some(60_000),
        max: 5,
    };
    assert_eq!(ring.run(IDS[0], client(1, request), 0), vec![]);
    let t = tuple("job", 7);
    let replies = ring.run(IDS[1], client(2, out(&t)), 1);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, (OpId(1), Reply::Taken(f)) if f.len() == 1 && f[0].tuple == t))
    );
    let parked: usize = IDS.iter().map(|&p| waiters(&ring, p)).sum();
    assert_eq!(parked, 0, "the other candidates stopped waiting");
    assert_eq!(ring.counts(), (0, 0));
}

/// A take that is full cancels at the candidates whose offers are still
/// on their way, which put those tuples back at once: the requester's next
/// take, asking after the cancel, finds them although the declines of the
/// late offers have not arrived yet. (A take of one from two candidates:
/// a take of at least one per candidate asks for shares, no offers.)
#[test]
fn a_full_take_releases_the_offers_still_travelling() {
    let tuples: Vec<Tuple> = ["a", "h", "p", "w"]
        .map(|k| tuple(&format!("{k}-job"), 7))
        .to_vec();
    let keyspace = Keyspace::default();
    // Two peers, each the primary of two of the tuples.
    let mut indexes: Vec<u64> = tuples.iter().map(|t| keyspace.index_of(t)).collect();
    indexes.sort_unstable();
    let ids = [indexes[1], indexes[3]];
    let mut ring = Small::new(&ids);
    for (n, t) in tuples.iter().enumerate() {
        ring.run(ids[0], client(10 + n as u64, out(t)), 0);
    }
    assert_eq!(primary_ids(&ring, ids[0]).len(), 2);
    let any = Template::new(vec![Field::Any, Field::Actual(Value::Int(7))]);
    let take = |max| Op::In {
        template: any.clone(),
        wait_ms: Some(0),
        max,
    };
    // The remote candidate's offer is held back: the local one fills it.
    let (replies, held) = {
        let requester = ids[0];
        let peer = ring.peers.iter_mut().find(|p| p.id() == requester).unwrap();
        let first = peer.handle(client(1, take(1)), 1);
        // In order, as on a link.
        let mut pending: std::collections::VecDeque<(u64, Command)> =
            first.into_iter().map(|c| (requester, c)).collect();
        let (mut replies, mut held) = (Vec::new(), Vec::new());
        while let Some((from, command)) = pending.pop_front() {
            match command {
                Command::Send { ref msg, to, .. }
                    if from != requester && to == requester && matches!(msg, Msg::Offer { .. }) =>
                {
                    held.push((from, command))
                }
                Command::Send { to, msg, epoch } => {
                    let peer = ring.peers.iter_mut().find(|p| p.id() == to).unwrap();
                    let out = peer.handle(Event::Message { from, msg, epoch }, 1);
                    pending.extend(out.into_iter().map(|c| (to, c)));
                }
                Command::Reply { op, reply } => replies.push((op, reply)),
                Command::ArmTimer { .. } => {}
            }
        }
        (replies, held)
    };
    assert!(
        matches!(&replies[..], [(OpId(1), Reply::Taken(f))] if f.len() == 1),
        "{replies:?}"
    );
    assert_eq!(held.len(), 1, "the remote offer is on its way");
    match &ring.run(ids[0], client(2, take(10)), 2)[..] {
        // The local one left, and the remote two, one of them released.
        [(OpId(2), Reply::Taken(f))] => assert_eq!(f.len(), 3, "the released tuples"),
        other => panic!("{other:?}"),
    }
    // The late offer is declined; nothing is left or doubled.
    assert_eq!(settle(&mut ring.peers, held, 3), vec![]);
    assert_eq!(ring.counts(), (0, 0));
}
