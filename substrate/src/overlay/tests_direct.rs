//! The hops of an `out` and an `in` on a hand-driven ring, message by
//! message: a take whose template has one candidate is served at once
//! (`Ask`, `Taken`), one with several goes through offers and accepts,
//! and a direct take still travelling when its client cancels is put back
//! once.

use std::collections::VecDeque;

use super::tests::{Small, exact, tuple};
use super::*;
use crate::keyspace::Keyspace;
use crate::template::Field;
use crate::tuple::Value;

const IDS: [u64; 3] = [1 << 62, 2 << 62, 3 << 62];

/// A message's name, for the logs the tests compare.
pub(super) fn name(msg: &Msg) -> &'static str {
    match msg {
        Msg::Route { .. } => "Route",
        Msg::Stored { .. } => "Stored",
        Msg::Replicate { .. } => "Replicate",
        Msg::Copied { .. } => "Copied",
        Msg::Handover { .. } => "Handover",
        Msg::Remove { .. } => "Remove",
        Msg::Answered { .. } => "Answered",
        Msg::Resend { .. } => "Resend",
        Msg::Ask {
            ask: msg::Ask::Direct(_),
            ..
        } => "Ask(direct)",
        Msg::Ask { .. } => "Ask",
        Msg::Offer { .. } => "Offer",
        Msg::Waiting { .. } => "Waiting",
        Msg::Copies { .. } => "Copies",
        Msg::NoMatch { .. } => "NoMatch",
        Msg::Accept { .. } => "Accept",
        Msg::Decline { .. } => "Decline",
        Msg::Taken { .. } => "Taken",
        Msg::Cancel { .. } => "Cancel",
        Msg::Notified { .. } => "Notified",
        Msg::Full { .. } => "Full",
        Msg::Check { .. } => "Check",
        Msg::Checked { .. } => "Checked",
        Msg::RouteBatch { .. } => "RouteBatch",
        Msg::ReplicateBatch { .. } => "ReplicateBatch",
        Msg::StoredBatch { .. } => "StoredBatch",
        Msg::CopiedBatch { .. } => "CopiedBatch",
    }
}

/// What one event led to: the replies, the messages between different
/// peers in the order they were sent (a peer's messages to itself are not
/// on any link), and those `hold` kept back undelivered.
pub(super) struct Trace {
    pub(super) replies: Vec<(OpId, Reply)>,
    pub(super) sent: Vec<&'static str>,
    pub(super) held: Vec<(u64, Command)>,
}

/// Runs `event` at `at`, delivering in order (as links do) every message
/// but those `hold` picks.
pub(super) fn trace(
    ring: &mut Small,
    at: u64,
    event: Event,
    now: u64,
    hold: impl Fn(&Msg) -> bool,
) -> Trace {
    let peer = ring.peers.iter_mut().find(|p| p.id() == at).unwrap();
    let mut pending: VecDeque<(u64, Command)> = peer
        .handle(event, now)
        .into_iter()
        .map(|c| (at, c))
        .collect();
    let mut trace = Trace {
        replies: Vec::new(),
        sent: Vec::new(),
        held: Vec::new(),
    };
    while let Some((from, command)) = pending.pop_front() {
        match command {
            Command::Send { ref msg, .. } if hold(msg) => trace.held.push((from, command)),
            Command::Send { to, msg, epoch } => {
                if to != from {
                    trace.sent.push(name(&msg));
                }
                let peer = ring.peers.iter_mut().find(|p| p.id() == to).unwrap();
                let out = peer.handle(Event::Message { from, msg, epoch }, now);
                pending.extend(out.into_iter().map(|c| (to, c)));
            }
            Command::Reply { op, reply } => trace.replies.push((op, reply)),
            Command::ArmTimer { .. } => {}
        }
    }
    trace
}

pub(super) fn nothing(_: &Msg) -> bool {
    false
}

pub(super) fn client(op: u64, request: Op) -> Event {
    Event::Client {
        op: OpId(op),
        request,
    }
}

fn out(t: &Tuple) -> Op {
    Op::Out {
        tuple: t.clone(),
        ttl_ms: None,
    }
}

fn take(template: Template, wait_ms: Option<u64>) -> Op {
    Op::In {
        template,
        wait_ms,
        max: 1,
    }
}

/// An empty ring, the replica `t` would get, and the peer that is
/// neither its primary nor its replica.
fn empty_ring_for(t: &Tuple) -> (Small, u64, u64) {
    let ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(t)).unwrap();
    let replica = ring.view.successors(primary, 1)[0];
    let writer = IDS
        .into_iter()
        .find(|&p| p != primary && p != replica)
        .unwrap();
    (ring, replica, writer)
}

/// A ring holding `t`, its primary, the peer that holds no copy of it
/// (a requester), and its replica (the writer).
fn ring_with(t: &Tuple) -> (Small, u64, u64, u64) {
    let mut ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(t)).unwrap();
    let writer = ring.view.successors(primary, 1)[0];
    let requester = IDS
        .into_iter()
        .find(|&p| p != primary && p != writer)
        .unwrap();
    let written = trace(&mut ring, writer, client(1, out(t)), 0, nothing);
    assert!(matches!(
        written.replies[..],
        [(OpId(1), Reply::Stored { .. })]
    ));
    (ring, primary, requester, writer)
}

#[test]
fn a_take_with_one_candidate_is_served_at_once_without_offer_or_accept() {
    let t = tuple("job", 1);
    let (mut ring, _, requester, _) = ring_with(&t);
    let taken = trace(
        &mut ring,
        requester,
        client(2, take(exact(&t), Some(0))),
        1,
        nothing,
    );
    assert!(
        matches!(&taken.replies[..], [(OpId(2), Reply::Taken(f))] if f.len() == 1 && f[0].tuple == t),
        "{:?}",
        taken.replies
    );
    // Ask, then the removal at the replica, which answers: the client's
    // answer is three hops away instead of four (an offer and accept),
    // and no crash can both answer it and leave a copy. The requester
    // then releases the chain.
    assert_eq!(taken.sent, ["Ask(direct)", "Remove", "Taken", "Answered"]);
    assert_eq!(ring.counts(), (0, 0));
}

/// A large tuple: [`Config::name_from`] bytes or more.
fn large(n: i64) -> Tuple {
    Tuple::new(vec![
        Value::Str("job".into()),
        Value::Int(n),
        Value::Bytes(vec![7; Config::default().name_from]),
    ])
}

/// The bytes of tuples a `Remove` carries whole.
fn carried_whole(msg: &Msg) -> Option<usize> {
    matches!(msg, Msg::Remove { .. }).then(|| super::tests_bulk::tuple_bytes(msg))
}

/// `requester` takes `t` exactly, which must come back whole; what went
/// between peers, and the bytes each `Remove` carried whole.
fn take_large(ring: &mut Small, requester: u64, t: &Tuple) -> (Vec<&'static str>, Vec<usize>) {
    let whole = std::cell::RefCell::new(Vec::new());
    let watch = |msg: &Msg| {
        whole.borrow_mut().extend(carried_whole(msg));
        false
    };
    let taken = trace(
        ring,
        requester,
        client(2, take(exact(t), Some(0))),
        1,
        watch,
    );
    assert!(
        matches!(&taken.replies[..], [(OpId(2), Reply::Taken(f))] if f.len() == 1 && f[0].tuple == *t),
        "{:?}",
        taken.replies
    );
    assert_eq!(ring.counts(), (0, 0), "no copy left");
    (taken.sent, whole.into_inner())
}

#[test]
fn a_large_tuple_goes_down_its_chain_by_id_and_its_replica_answers_with_its_copy() {
    let t = large(1);
    let (mut ring, _, requester, _) = ring_with(&t);
    let (sent, whole) = take_large(&mut ring, requester, &t);
    assert_eq!(sent, ["Ask(direct)", "Remove", "Taken", "Answered"]);
    assert_eq!(whole, [0], "the Remove names the tuple, carries none of it");
}

#[test]
fn a_link_without_the_copy_a_chain_names_has_it_sent_again_whole() {
    let t = large(1);
    let (mut ring, _, requester, replica) = ring_with(&t);
    // The replica lost its copy (as a peer that took its place in a view
    // change may not have it yet).
    let at = ring.peers.iter().position(|p| p.id() == replica).unwrap();
    ring.peers[at].copies.clear();
    let (sent, whole) = take_large(&mut ring, requester, &t);
    assert_eq!(
        sent,
        [
            "Ask(direct)",
            "Remove",
            "Resend",
            "Remove",
            "Taken",
            "Answered"
        ]
    );
    assert!(
        whole[0] == 0 && whole[1] >= Config::default().name_from,
        "{whole:?}"
    );
}

/// A chain that names one tuple twice (no peer sends one; a faulty or
/// hostile member might) takes it once, and the replica does not panic.
#[test]
fn a_chain_naming_one_tuple_twice_takes_it_once() {
    let t = large(1);
    let (mut ring, _, requester, replica) = ring_with(&t);
    let is_remove = |msg: &Msg| matches!(msg, Msg::Remove { .. });
    let mut held = trace(
        &mut ring,
        requester,
        client(2, take(exact(&t), Some(0))),
        1,
        is_remove,
    )
    .held;
    let Some((
        from,
        Command::Send {
            to,
            msg: Msg::Remove { mut tuples, chain },
            epoch,
        },
    )) = held.pop()
    else {
        panic!("the primary's Remove is held");
    };
    assert_eq!(to, replica);
    tuples.push(tuples[0].clone());
    let msg = Msg::Remove { tuples, chain };
    let at = ring.peers.iter().position(|p| p.id() == replica).unwrap();
    let out = ring.peers[at].handle(Event::Message { from, msg, epoch }, 2);
    let answered: Vec<usize> = out
        .iter()
        .filter_map(|c| match c {
            Command::Send {
                msg: Msg::Taken { tuples, .. },
                ..
            } => Some(tuples.len()),
            _ => None,
        })
        .collect();
    assert_eq!(answered, [1], "one answer, holding the tuple once");
}

/// Even at its own primary a take is answered through the replica: the
/// tuple crosses a link there and back.
#[test]
fn a_take_at_its_only_candidate_is_answered_through_its_replica() {
    let t = tuple("job", 1);
    let (mut ring, primary, _, _) = ring_with(&t);
    let taken = trace(
        &mut ring,
        primary,
        client(2, take(exact(&t), None)),
        1,
        nothing,
    );
    assert!(matches!(&taken.replies[..], [(OpId(2), Reply::Taken(f))] if f.len() == 1));
    assert_eq!(taken.sent, ["Remove", "Taken"]);
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_take_with_several_candidates_still_reserves_offers_and_accepts() {
    // Peers placed where keys `job0`, `job5` and `job11` go: `(*, 7)`
    // has several candidates.
    let keyspace = Keyspace::default();
    let ids = [0, 5, 11].map(|k| keyspace.index_of(&tuple(&format!("job{k}"), 7)));
    let t = tuple("job5", 7);
    let mut ring = Small::new(&ids);
    trace(&mut ring, ids[0], client(1, out(&t)), 0, nothing);
    let any = Template::new(vec![Field::Any, Field::Actual(Value::Int(7))]);
    let candidates = ring.peers[0].candidates(&any);
    assert!(candidates.len() > 1, "{candidates:?}");
    let primary = ring.view.owner(keyspace.index_of(&t)).unwrap();
    let requester = ids.into_iter().find(|&p| p != primary).unwrap();
    let taken = trace(
        &mut ring,
        requester,
        client(2, take(any, Some(0))),
        1,
        nothing,
    );
    assert!(matches!(&taken.replies[..], [(OpId(2), Reply::Taken(f))] if f.len() == 1));
    for step in ["Ask", "Offer", "Accept", "Remove", "Answered"] {
        assert!(taken.sent.contains(&step), "{step} in {:?}", taken.sent);
    }
    assert!(!taken.sent.contains(&"Ask(direct)"));
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_blocking_direct_take_hears_that_it_waits_and_is_offered_a_later_write() {
    let t = tuple("late", 1);
    let mut ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(&t)).unwrap();
    let requester = IDS.into_iter().find(|&p| p != primary).unwrap();
    let parked = trace(
        &mut ring,
        requester,
        client(1, take(exact(&t), None)),
        0,
        nothing,
    );
    assert_eq!(parked.replies, vec![]);
    assert_eq!(parked.sent, ["Ask(direct)", "Waiting"]);
    // A parked waiter is offered under a lease, as before: a requester
    // that crashed meanwhile loses nothing.
    let written = trace(&mut ring, primary, client(2, out(&t)), 1, nothing);
    assert!(
        written
            .replies
            .iter()
            .any(|r| matches!(r, (OpId(1), Reply::Taken(f)) if f.len() == 1))
    );
    for step in ["Offer", "Accept", "Remove", "Answered"] {
        assert!(written.sent.contains(&step), "{step} in {:?}", written.sent);
    }
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_cancel_while_a_direct_take_travels_waits_for_it_and_puts_it_back_once() {
    let t = tuple("job", 1);
    let (mut ring, primary, requester, _) = ring_with(&t);
    let old = ring
        .peers
        .iter()
        .find(|p| p.id() == primary)
        .unwrap()
        .primary_ids()[0];
    let is_taken = |m: &Msg| matches!(m, Msg::Taken { .. });
    let asked = trace(
        &mut ring,
        requester,
        client(2, take(exact(&t), None)),
        1,
        is_taken,
    );
    assert_eq!(asked.replies, vec![]);
    assert_eq!(asked.held.len(), 1, "the tuple is on its way");
    let requester_peer = || ring.peers.iter().find(|p| p.id() == requester).unwrap();
    assert_eq!(requester_peer().accepting(), 1);
    // The cancel does not end the query while the tuple travels.
    let cancelled = trace(
        &mut ring,
        requester,
        Event::Cancel { op: OpId(2) },
        2,
        nothing,
    );
    assert_eq!(cancelled.replies, vec![]);
    let mut arrived = Vec::new();
    for (from, command) in asked.held {
        let Command::Send { to, msg, epoch } = command else {
            unreachable!("held messages")
        };
        let event = Event::Message { from, msg, epoch };
        arrived.extend(trace(&mut ring, to, event, 3, nothing).replies);
    }
    let new = match &arrived[..] {
        [(OpId(2), Reply::Cancelled { returned })] if returned.len() == 1 => {
            assert_eq!(returned[0].0, old);
            returned[0].1
        }
        other => panic!("{other:?}"),
    };
    assert_ne!(new, old);
    let held = ring.peers.iter().find(|p| p.id() == primary).unwrap();
    assert_eq!(held.primary_ids(), vec![new]);
    assert_eq!(ring.counts(), (1, 1));
}

#[test]
fn an_out_from_a_non_primary_is_acknowledged_when_the_replica_confirms_to_its_origin() {
    let t = tuple("job", 1);
    let (mut ring, _, writer) = empty_ring_for(&t);
    let is_copied = |m: &Msg| matches!(m, Msg::Copied { .. });
    let written = trace(&mut ring, writer, client(1, out(&t)), 0, is_copied);
    // Stored at the primary, but no acknowledgement before the replica's.
    assert_eq!(written.replies, vec![]);
    assert_eq!(written.sent, ["Route", "Replicate", "Stored"]);
    assert_eq!(written.held.len(), 1);
    assert_eq!(ring.counts(), (1, 1));
    let (from, command) = written.held.into_iter().next().unwrap();
    let Command::Send { to, msg, epoch } = command else {
        unreachable!("held messages")
    };
    assert_eq!(to, writer, "the replica confirms to the origin");
    let confirmed = trace(
        &mut ring,
        to,
        Event::Message { from, msg, epoch },
        1,
        nothing,
    );
    assert!(matches!(
        confirmed.replies[..],
        [(OpId(1), Reply::Stored { hops: 1, .. })]
    ));
    assert_eq!(confirmed.sent, Vec::<&str>::new());
}

#[test]
fn an_out_at_its_primary_waits_for_the_replica_only() {
    let t = tuple("job", 1);
    let mut ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(&t)).unwrap();
    let written = trace(&mut ring, primary, client(1, out(&t)), 0, nothing);
    assert!(matches!(
        written.replies[..],
        [(OpId(1), Reply::Stored { hops: 0, .. })]
    ));
    assert_eq!(written.sent, ["Replicate", "Copied"]);
    assert_eq!(ring.counts(), (1, 1));
}

#[test]
fn a_replica_gone_before_it_confirms_is_not_waited_for() {
    let t = tuple("job", 1);
    let (mut ring, replica, writer) = empty_ring_for(&t);
    let to_replica = |m: &Msg| matches!(m, Msg::Replicate { .. });
    let written = trace(&mut ring, writer, client(1, out(&t)), 0, to_replica);
    assert_eq!(written.replies, vec![]);
    // The replica crashes with the copy on its way; the view drops it.
    ring.peers.retain(|p| p.id() != replica);
    ring.view.remove(replica);
    let replies = ring.change(replica, 1);
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, (OpId(1), Reply::Stored { .. }))),
        "{replies:?}"
    );
}

/// An empty ring, `t`'s primary, and a peer whose take of `t` (op 1,
/// waiting for ever) is parked there.
fn parked_take(t: &Tuple) -> (Small, u64, u64) {
    let mut ring = Small::new(&IDS);
    let primary = ring.view.owner(Keyspace::default().index_of(t)).unwrap();
    let requester = IDS.into_iter().find(|&p| p != primary).unwrap();
    let parked = trace(
        &mut ring,
        requester,
        client(1, take(exact(t), None)),
        0,
        nothing,
    );
    assert_eq!(parked.sent, ["Ask(direct)", "Waiting"]);
    (ring, primary, requester)
}

/// A requester that crashed while its take waited: its waiter at the
/// candidate ends with the view that drops it, and a later write is not
/// offered to it (held under a lease for nobody).
#[test]
fn a_departed_requesters_waiter_and_subscription_end_with_the_view() {
    let t = tuple("late", 1);
    let (mut ring, primary, requester) = parked_take(&t);
    let subscribe = Op::Subscribe {
        template: exact(&t),
    };
    trace(&mut ring, requester, client(2, subscribe), 0, nothing);
    let at_primary = |ring: &Small| {
        let p = ring.peers.iter().find(|p| p.id() == primary).unwrap();
        (p.waiters.len(), p.subscribers.len())
    };
    assert_eq!(at_primary(&ring), (1, 1));
    ring.peers.retain(|p| p.id() != requester);
    ring.view.remove(requester);
    ring.change(requester, 1);
    assert_eq!(at_primary(&ring), (0, 0));
    let written = trace(&mut ring, primary, client(3, out(&t)), 2, nothing);
    assert!(!written.sent.contains(&"Offer"), "{:?}", written.sent);
    assert!(!written.sent.contains(&"Notified"), "{:?}", written.sent);
    assert_eq!(ring.counts(), (1, 1));
}

/// A requester the others dropped while it was alive (frozen past their
/// patience) lost its waiter there; once back in the ring it asks again,
/// and a later write reaches its take.
#[test]
fn a_requester_dropped_while_alive_asks_again_once_back() {
    let t = tuple("late", 1);
    let (mut ring, primary, requester) = parked_take(&t);
    let others: Vec<u64> = IDS.into_iter().filter(|&p| p != requester).collect();
    ring.view.remove(requester);
    ring.change_lagging(requester, &others, 1);
    ring.run(requester, Event::Doubted, 2);
    ring.view.insert(requester);
    ring.change(requester, 3);
    let primary_peer = ring.peers.iter().find(|p| p.id() == primary).unwrap();
    assert_eq!(primary_peer.waiters.len(), 1, "asked again");
    let written = trace(&mut ring, primary, client(2, out(&t)), 4, nothing);
    assert!(
        written
            .replies
            .iter()
            .any(|r| matches!(r, (OpId(1), Reply::Taken(f)) if f.len() == 1 && f[0].tuple == t)),
        "{:?}",
        written.replies
    );
    assert_eq!(ring.counts(), (0, 0));
}
