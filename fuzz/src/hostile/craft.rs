//! Overlay messages built from the fuzz input's choices, every variant,
//! with fields drawn from what the ring really holds (tuple ids, tuples,
//! operation ids, peers) as often as from made-up values: a random 128-bit
//! tuple id never names a tuple that exists. The result is still only a
//! message a member could send; the caller encodes it and hands the bytes
//! to the node's decoder and checks.

use halley_substrate::overlay::{Ask, Carried, Chain, Msg, OpId, Tagged, TupleId};
use halley_substrate::store::ReservationId;
use halley_substrate::{Field, Kind, Range, Template, Tuple, Value};

use super::choices::Choices;

/// What crafted messages draw from.
pub(super) struct Pool<'a> {
    /// The members, then ids no member has.
    pub peers: &'a [u64],
    /// Ids of tuples held, taken or written in this run.
    pub ids: &'a [TupleId],
    /// Tuples held or seen in this run, with their ids.
    pub tagged: &'a [Tagged],
    /// The operations clients started in this run.
    pub ops: u64,
}

/// Elements a crafted list holds at most.
const MAX_LIST: usize = 8;

pub(super) fn message(c: &mut Choices, pool: &Pool) -> Msg {
    match c.below(28) {
        0 => Msg::Route {
            index: index(c, pool),
            hops: hops(c),
            origin: peer(c, pool),
            op: op(c, pool),
            tuple: wire(c, pool),
        },
        1 => Msg::Stored {
            op: op(c, pool),
            id: id(c, pool),
            hops: hops(c),
            replicas: list(c, |c| peer(c, pool)),
        },
        2 => Msg::Replicate {
            tuples: list(c, |c| wire(c, pool)),
            ack: c.flag().then(|| (peer(c, pool), op(c, pool))),
        },
        3 => Msg::Copied {
            op: op(c, pool),
            id: id(c, pool),
        },
        4 => Msg::Handover {
            tuples: list(c, |c| wire(c, pool)),
            adopt: c.flag(),
        },
        // The take's answer and chain messages carry the most state:
        // drawn twice as often (5 and 25, 15 and 26).
        5 | 25 => Msg::Remove {
            tuples: list(c, |c| carried(c, pool)),
            chain: chain(c, pool),
        },
        6 => Msg::Answered { first: id(c, pool) },
        7 => Msg::Resend { first: id(c, pool) },
        8 => Msg::Ask {
            op: op(c, pool),
            round: round(c),
            ask: ask(c),
            template: template(c, pool),
            wait_ms: wait(c),
        },
        9 => Msg::Offer {
            op: op(c, pool),
            round: round(c),
            reservations: list(c, reservation),
        },
        10 => Msg::Waiting {
            op: op(c, pool),
            round: round(c),
        },
        11 => Msg::Copies {
            op: op(c, pool),
            round: round(c),
            tuples: list(c, |c| tagged(c, pool)),
            more: c.flag(),
        },
        12 => Msg::NoMatch {
            op: op(c, pool),
            round: round(c),
        },
        14 => Msg::Decline {
            reservations: list(c, reservation),
        },
        15 | 26 => Msg::Taken {
            op: op(c, pool),
            by: peer(c, pool),
            tuples: list(c, |c| wire(c, pool)),
            links: list(c, |c| peer(c, pool)),
        },
        16 => Msg::Cancel { op: op(c, pool) },
        17 => Msg::Notified {
            op: op(c, pool),
            tuple: tagged(c, pool),
        },
        18 => Msg::Full { op: op(c, pool) },
        19 => Msg::Check {
            chunk: round(c),
            ids: list(c, |c| id(c, pool)),
        },
        20 => Msg::Checked {
            chunk: round(c),
            removed: list(c, |c| id(c, pool)),
        },
        21 => Msg::RouteBatch {
            hops: hops(c),
            origin: peer(c, pool),
            op: op(c, pool),
            tuples: list(c, |c| (index(c, pool), wire(c, pool))),
        },
        22 => Msg::ReplicateBatch {
            tuples: list(c, |c| (index(c, pool), wire(c, pool))),
            origin: peer(c, pool),
            op: op(c, pool),
        },
        23 => Msg::StoredBatch {
            op: op(c, pool),
            ids: list(c, |c| id(c, pool)),
            replicas: list(c, |c| peer(c, pool)),
        },
        24 => Msg::CopiedBatch {
            op: op(c, pool),
            ids: list(c, |c| id(c, pool)),
        },
        // 13 and 27.
        _ => Msg::Accept {
            op: op(c, pool),
            reservations: list(c, reservation),
        },
    }
}

fn list<T>(c: &mut Choices, mut item: impl FnMut(&mut Choices) -> T) -> Vec<T> {
    let n = c.below(MAX_LIST + 1);
    (0..n).map(|_| item(c)).collect()
}

fn peer(c: &mut Choices, pool: &Pool) -> u64 {
    pool.peers[c.below(pool.peers.len())]
}

/// A client operation of this run, mostly; else any number.
fn op(c: &mut Choices, pool: &Pool) -> OpId {
    match c.below(8) {
        0 => OpId(c.u64()),
        _ => OpId(c.below(pool.ops as usize + 2) as u64),
    }
}

fn id(c: &mut Choices, pool: &Pool) -> TupleId {
    if !pool.ids.is_empty() && c.below(4) != 0 {
        return pool.ids[c.below(pool.ids.len())];
    }
    TupleId {
        origin: peer(c, pool),
        seq: c.below(16) as u64,
    }
}

fn tagged(c: &mut Choices, pool: &Pool) -> Tagged {
    match c.below(4) {
        0 | 1 if !pool.tagged.is_empty() => pool.tagged[c.below(pool.tagged.len())].clone(),
        // A tuple the ring holds, under another id, or another tuple under
        // an id it holds.
        2 if !pool.tagged.is_empty() => Tagged {
            id: id(c, pool),
            tuple: pool.tagged[c.below(pool.tagged.len())].tuple.clone(),
        },
        _ => Tagged {
            id: id(c, pool),
            tuple: tuple(c),
        },
    }
}

fn wire(c: &mut Choices, pool: &Pool) -> (Tagged, Option<u64>) {
    (tagged(c, pool), ttl(c))
}

fn carried(c: &mut Choices, pool: &Pool) -> Carried {
    match c.flag() {
        true => Carried::Known(id(c, pool)),
        false => Carried::Whole(wire(c, pool)),
    }
}

fn chain(c: &mut Choices, pool: &Pool) -> Chain {
    Chain {
        asker: peer(c, pool),
        op: op(c, pool),
        by: peer(c, pool),
        rest: list(c, |c| peer(c, pool)),
        done: list(c, |c| peer(c, pool)),
    }
}

/// A ring index: a held tuple's, or any.
fn index(c: &mut Choices, pool: &Pool) -> u64 {
    match c.below(4) {
        0 => c.u64(),
        1 => u64::MAX,
        _ if !pool.tagged.is_empty() => {
            let tuple = &pool.tagged[c.below(pool.tagged.len())].tuple;
            halley_substrate::keyspace::Keyspace::default().index_of(tuple)
        }
        _ => 0,
    }
}

fn hops(c: &mut Choices) -> u32 {
    match c.below(4) {
        0 => u32::MAX,
        1 => 63,
        _ => c.below(4) as u32,
    }
}

fn round(c: &mut Choices) -> u32 {
    match c.below(8) {
        0 => u32::MAX,
        n => n as u32 - 1,
    }
}

fn reservation(c: &mut Choices) -> ReservationId {
    ReservationId(match c.below(8) {
        0 => c.u64(),
        n => n as u64 - 1,
    })
}

fn ask(c: &mut Choices) -> Ask {
    let n = match c.below(4) {
        0 => 0,
        1 => usize::MAX,
        _ => c.below(4),
    };
    match c.below(5) {
        0 => Ask::Take(n),
        1 => Ask::Direct(n),
        2 => Ask::Read,
        3 => Ask::Scan(n),
        _ => Ask::Subscribe,
    }
}

/// A time: none, nothing, a little, or the end of time.
fn duration(c: &mut Choices) -> Option<u64> {
    match c.below(5) {
        0 => None,
        1 => Some(0),
        2 => Some(u64::MAX),
        _ => Some(c.below(4) as u64 * 1_000),
    }
}

fn ttl(c: &mut Choices) -> Option<u64> {
    duration(c)
}

fn wait(c: &mut Choices) -> Option<u64> {
    duration(c)
}

/// A tuple of up to four fields of any kinds: often one of the keyword
/// pairs the ring's tuples use.
pub(super) fn tuple(c: &mut Choices) -> Tuple {
    let n = c.below(5);
    Tuple::new((0..n).map(|_| value(c)).collect())
}

fn value(c: &mut Choices) -> Value {
    match c.below(8) {
        0 => Value::Int(c.u64() as i64),
        1 => Value::Float(f64::from_bits(c.u64())),
        2 => Value::Bool(c.flag()),
        3 => Value::Bytes(vec![7; c.below(4) * 40]),
        4 => Value::Str(String::new()),
        5 => Value::Int(c.below(8) as i64),
        _ => Value::Str(["a", "m", "z", "big"][c.below(4)].into()),
    }
}

/// A template of up to four fields of every kind.
pub(super) fn template(c: &mut Choices, pool: &Pool) -> Template {
    if !pool.tagged.is_empty() && c.below(4) == 0 {
        return Template::exact(&pool.tagged[c.below(pool.tagged.len())].tuple);
    }
    let n = c.below(5);
    Template::new((0..n).map(|_| field(c)).collect())
}

fn field(c: &mut Choices) -> Field {
    match c.below(6) {
        0 => Field::Any,
        1 => Field::Typed([Kind::Int, Kind::Float, Kind::Str, Kind::Bool, Kind::Bytes][c.below(5)]),
        2 => Field::Prefix(["", "a", "b"][c.below(3)].into()),
        3 => {
            let (lo, hi) = (value(c), value(c));
            Range::new(lo.clone(), hi, c.flag()).map_or(Field::Actual(lo), Field::Range)
        }
        _ => Field::Actual(value(c)),
    }
}
