//! What goes into a [`super::Peer`] and what comes out: events, commands,
//! the messages peers exchange, client operations and their replies.
//! Times on the wire are relative (`ttl_ms`, `wait_ms`): peers' clocks differ.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Tagged, TupleId};
use crate::ring::Ring;
use crate::store::ReservationId;
use crate::template::Template;
use crate::tuple::Tuple;

/// A client operation's id, chosen by the driver, unique at its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// A client operation entering the overlay at this peer.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Writes a tuple, expiring after `ttl_ms` if set.
    Out { tuple: Tuple, ttl_ms: Option<u64> },
    /// Removes between 1 and `max` matching tuples, waiting up to `wait_ms`
    /// for the first (`None`: forever, `Some(0)`: only what is there now).
    /// What the candidates hold now is gathered from all of them; a wait
    /// ends as soon as one tuple is taken.
    In {
        template: Template,
        wait_ms: Option<u64>,
        max: usize,
    },
    /// Copies one matching tuple, waiting like `In`.
    Rd {
        template: Template,
        wait_ms: Option<u64>,
    },
    /// Copies up to `limit` matching tuples from every candidate peer.
    Scan { template: Template, limit: usize },
    /// Streams the matching tuples written from now on, one
    /// [`Reply::Notified`] each, until unsubscribed.
    Subscribe { template: Template },
    /// Ends the subscription made by operation `subscription`.
    Unsubscribe { subscription: OpId },
    /// Writes many tuples at once (the overlay's `bulk` module): each is an `out`
    /// under an id of its own, routed in batches, and the operation is
    /// acknowledged ([`Reply::StoredAll`]) once every one is held as a
    /// single `out` is. Its tuples count one each against
    /// [`super::Config::max_pending`].
    OutAll {
        tuples: Vec<Tuple>,
        ttl_ms: Option<u64>,
    },
}

/// The answer to a client operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The tuple is held by its primary and live replicas; `hops` is how
    /// many routing messages it took to reach the primary.
    Stored { id: TupleId, hops: u32 },
    /// The tuple an `rd` read; `None` when the wait ended.
    Found(Option<Tagged>),
    /// The tuples an `in` removed (at most its `max`); empty when the wait
    /// ended.
    Taken(Vec<Tagged>),
    /// The operation was cancelled ([`Event::Cancel`]): it is unregistered
    /// at every candidate, and the tuples taken for it meanwhile were put
    /// back, each under a new id: `returned` pairs (taken id, new id).
    Cancelled { returned: Vec<(TupleId, TupleId)> },
    /// The tuples a `scan` found, each once, ordered by id.
    Listed(Vec<Tagged>),
    /// A tuple written for a subscription (the reply's op is the
    /// subscription's). A write is notified once; a retried write whose
    /// first primary crashed may be notified twice.
    Notified(Tagged),
    /// The subscription ended (the reply's op is the `Unsubscribe`'s).
    Ended,
    /// The operation failed.
    Failed(OverlayError),
    /// Every tuple of an [`Op::OutAll`] is held by its primary and live
    /// replicas: their ids, in the order they were given.
    StoredAll { ids: Vec<TupleId> },
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    #[error("no acknowledgement within the timeout")]
    Timeout,
    #[error("this peer is leaving the space")]
    Leaving,
    #[error("too many operations pending at this peer")]
    Busy,
    #[error("the space is full: the peer this tuple belongs to holds its --max-tuples")]
    Full,
}

/// What a `Peer` is fed.
#[derive(Clone, Debug)]
pub enum Event {
    /// A client operation.
    Client { op: OpId, request: Op },
    /// A message from peer `from`, sent under the view of `epoch`.
    Message { from: u64, msg: Msg, epoch: u64 },
    /// A timer armed by [`Command::ArmTimer`] fired (spurious ones are fine).
    Timer,
    /// The membership view changed because of `changed` (joined, left or
    /// found dead); `epoch` numbers the views, growing with each change.
    /// A message sent under a newer view than the receiver's is held back
    /// until the receiver has it.
    View {
        view: Arc<Ring>,
        changed: u64,
        epoch: u64,
    },
    /// Leave gracefully: hand everything over; the driver then drops the
    /// peer and tells the others.
    Leave,
    /// The client of `in`/`rd`/`scan`/`subscribe` operation `op` went
    /// away: unregister it everywhere, decline what is offered to it, and
    /// put back what was taken for it; it ends with [`Reply::Cancelled`]
    /// (or [`Reply::Ended`], a subscription). Unknown or finished
    /// operations and `out`s are left alone.
    Cancel { op: OpId },
    /// Tuples taken for a client that could not deliver them: write them
    /// back (new ids, retried until stored, no reply).
    PutBack { tuples: Vec<(Tuple, Option<u64>)> },
    /// A member said this peer is gone while it is alive: what it holds is
    /// set aside until the peers around it say what they removed meanwhile
    /// (see `reconcile`).
    Doubted,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Send `msg`, with the sender's view `epoch` (given back in
    /// [`Event::Message`]).
    Send {
        to: u64,
        msg: Msg,
        epoch: u64,
    },
    Reply {
        op: OpId,
        reply: Reply,
    },
    /// Feed [`Event::Timer`] at time `at` (replaces any earlier arming).
    ArmTimer {
        at: u64,
    },
}

/// What a candidate is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ask {
    /// Reserve up to this many matches and offer them.
    Take(usize),
    /// A take asked of its only candidate: remove up to this many matches
    /// at once and send them (`Taken`, no offer); with none, park as
    /// `Take` does and say `Waiting` (a later match is offered), so that
    /// the asker always hears whether a take is on its way.
    Direct(usize),
    /// Send a copy of a match.
    Read,
    /// Send copies of up to this many matches now.
    Scan(usize),
    /// Notify the tuples written from now on.
    Subscribe,
}

/// A stored tuple on the wire: the tagged tuple and its time left.
pub type Wire = (Tagged, Option<u64>);

/// A tuple a take's chain removes ([`Msg::Remove`]): whole, or named by its
/// id when it is large ([`super::Config::name_from`]): each link is a
/// replica and holds a copy, and the last answers the asker with its own,
/// so the tuple's bytes do not also cross the link from the primary to its
/// replica. A link without the copy asks for the chain again, whole
/// ([`Msg::Resend`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Carried {
    Whole(Wire),
    Known(TupleId),
}

impl Carried {
    pub fn id(&self) -> TupleId {
        match self {
            Carried::Whole((tagged, _)) => tagged.id,
            Carried::Known(id) => *id,
        }
    }
}

/// Messages between peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// An `out` on its way to the primary of `index`.
    Route {
        index: u64,
        hops: u32,
        origin: u64,
        op: OpId,
        tuple: Wire,
    },
    /// Primary → origin: the `out` is stored at the primary, which sent
    /// copies to `replicas`; each confirms to the origin ([`Msg::Copied`]),
    /// and the origin acknowledges the `out` once all live ones have.
    Stored {
        op: OpId,
        id: TupleId,
        hops: u32,
        replicas: Vec<u64>,
    },
    /// Primary → replica: keep copies; with `ack`, the (origin, `out`) to
    /// confirm each to.
    Replicate {
        tuples: Vec<Wire>,
        ack: Option<(u64, OpId)>,
    },
    /// Replica → origin: it holds a copy of tuple `id` of the `out` `op`.
    Copied {
        op: OpId,
        id: TupleId,
    },
    /// Old primary → new primary: the tuples of an arc that moved. With
    /// `adopt` the receiver stores them as primary whatever its view says
    /// (a leaving peer's successor, before the view shows it gone).
    Handover {
        tuples: Vec<Wire>,
        adopt: bool,
    },
    /// Taken at their primary: drop your copies, then pass the chain on
    /// (its next link) or, last of it, answer the asker
    /// ([`Msg::Taken`]). A take is answered only once no copy is left to
    /// bring it back. A large tuple travels named by its id
    /// ([`Carried::Known`]): every link holds a copy of it.
    Remove {
        tuples: Vec<Carried>,
        chain: Chain,
    },
    /// A link of a [`Msg::Remove`] chain → the chain's taker: a tuple it
    /// names by id only is no copy here (this peer took its place in a
    /// view change, say); nothing was done: send the chain again, every
    /// tuple whole.
    Resend {
        first: TupleId,
    },
    /// Asker → the earlier links of a [`Msg::Remove`] chain: the answer
    /// of the take whose first tuple is `first` arrived.
    Answered {
        first: TupleId,
    },
    /// Requester → candidate.
    Ask {
        op: OpId,
        round: u32,
        ask: Ask,
        template: Template,
        wait_ms: Option<u64>,
    },
    /// Candidate → requester: matches reserved for it, by reservation
    /// only. The requester accepts a number of them, not their contents;
    /// the tuples travel once, with the answer ([`Msg::Taken`]).
    Offer {
        op: OpId,
        round: u32,
        reservations: Vec<ReservationId>,
    },
    /// Candidate → requester of a take of more than one: nothing matches
    /// now, a waiter is parked (an offer may follow).
    Waiting {
        op: OpId,
        round: u32,
    },
    /// Candidate → requester: copies of matches (`rd`, `scan`), in
    /// messages of at most [`super::MAX_BATCH`] tuples and
    /// [`super::MAX_BATCH_BYTES`] (one larger tuple alone); `more`: another
    /// part of this answer follows.
    Copies {
        op: OpId,
        round: u32,
        tuples: Vec<Tagged>,
        more: bool,
    },
    /// Candidate → requester: nothing matched before the wait ended.
    NoMatch {
        op: OpId,
        round: u32,
    },
    Accept {
        op: OpId,
        reservations: Vec<ReservationId>,
    },
    Decline {
        reservations: Vec<ReservationId>,
    },
    /// Candidate `by`, or the last link of its [`Msg::Remove`] chain
    /// → requester: the accepted tuples still reserved, now removed
    /// everywhere (fewer than accepted if reservations lapsed), with their
    /// time left; the chain's earlier `links` wait to hear that it came.
    Taken {
        op: OpId,
        by: u64,
        tuples: Vec<Wire>,
        links: Vec<u64>,
    },
    /// Requester → candidate: stop waiting for `op` (or end its
    /// subscription).
    Cancel {
        op: OpId,
    },
    /// Candidate → subscriber: a matching tuple was written.
    Notified {
        op: OpId,
        tuple: Tagged,
    },
    /// Primary → origin: the `out` `op` was refused, the primary holding
    /// its [`super::Config::max_tuples`].
    Full {
        op: OpId,
    },
    /// A peer found gone while alive → the peers around it: which of these
    /// ids (part `chunk` of what it holds) were removed here?
    Check {
        chunk: u32,
        ids: Vec<TupleId>,
    },
    /// The answer to a [`Msg::Check`]: the ids of `chunk` tombstoned here.
    Checked {
        chunk: u32,
        removed: Vec<TupleId>,
    },
    /// Tuples of the batch `out` `op` on their way to their primaries, each
    /// with its index; a peer owning some stores them, and sends the rest
    /// on grouped by next hop (at most [`super::MAX_BATCH`] a message).
    RouteBatch {
        hops: u32,
        origin: u64,
        op: OpId,
        tuples: Vec<(u64, Wire)>,
    },
    /// Primary → replica: keep copies of these tuples of the batch `out`
    /// `op`, and confirm them all to `origin` in one [`Msg::CopiedBatch`].
    /// Each goes with its index, computed once at the origin.
    ReplicateBatch {
        tuples: Vec<(u64, Wire)>,
        origin: u64,
        op: OpId,
    },
    /// Primary → origin: tuples `ids` of the batch `out` `op` are stored,
    /// with copies sent to `replicas` (as [`Msg::Stored`] for each).
    StoredBatch {
        op: OpId,
        ids: Vec<TupleId>,
        replicas: Vec<u64>,
    },
    /// Replica → origin: it holds copies of tuples `ids` of the batch
    /// `out` `op`.
    CopiedBatch {
        op: OpId,
        ids: Vec<TupleId>,
    },
}

/// Where a take's tuples go once their copies are gone: a
/// [`Msg::Remove`] passes from the primary through each replica, and the
/// last answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The peer whose query took the tuples, and its operation.
    pub asker: u64,
    pub op: OpId,
    /// The candidate that took them (the query counts answers by it).
    pub by: u64,
    /// The links still to drop their copies, in order.
    pub rest: Vec<u64>,
    /// The links that have, each keeping the chain until the asker says
    /// the answer came ([`Msg::Answered`]).
    pub done: Vec<u64>,
}

/// Shared with the routing code: a view the events carry.
pub(crate) type View = Arc<Ring>;
