//! The overlay: many peers on a ring serving one replicated tuple space.
//! Sans-io, like the store: a [`Peer`] is one peer's protocol state, fed
//! [`Event`]s (a client operation, a message from another peer, a timer, a
//! membership change, a graceful leave) with the time `now`, and answering
//! with [`Command`]s (send a message, reply to an operation, arm a timer).
//! The libp2p node drives one `Peer`; the simulation drives thousands.
//!
//! Who talks to whom:
//! - `msg`: events, commands, operations, replies and the peer messages.
//! - `peer`: the state, the event dispatch, timers.
//! - `write`: `out`: a tuple is routed hop by hop to its primary, which
//!   stores it, replicates it to its next R−1 peers and acknowledges once
//!   they all hold it; the origin re-routes an unacknowledged `out` under
//!   the same id every `retry_ms`. Replicas' copies and tombstones.
//! - `bulk`: a batch `out`: many tuples routed, stored, replicated and
//!   confirmed with a message per batch and peer instead of per tuple.
//! - `query`: the asking side of `in`/`rd`/`scan`/`subscribe`: every
//!   candidate peer of the template's keyspace cover is asked; offers are
//!   accepted or declined; a take's only candidate takes at once.
//! - `take_share`: a take of several from several candidates asks each
//!   for its share of the `max` at once, and tops up from those that had
//!   more, instead of every candidate offering the whole `max`.
//! - `serve`: the candidate side: reservations under a lease, parked
//!   waiters, accept (remove here) and decline, subscriptions and their
//!   notifications.
//! - `answer`: a take is answered through the peers holding copies of
//!   its tuples, the last of them answering, so that no crash can both
//!   answer it and leave a copy, or neither.
//! - `membership`: a changed view hands tuples over to new primaries, takes
//!   over a failed predecessor's arc, re-replicates, re-asks candidates; a
//!   graceful leave hands everything to the successor.
//! - `reconcile`: a peer found gone while alive sets what it holds aside
//!   until the peers around it say which ids they removed meanwhile.
//! - `balance`: which peer moves where so that the load spreads (a leave
//!   and a join at a split point of the heaviest peer's arc).
//!
//! Tuple identity: every `out` gets a [`TupleId`] (origin peer, sequence).
//! Inside a peer's store the id travels as a hidden trailing bytes field, so
//! replicas remove exactly the copy the primary removed; templates get a
//! trailing `*`, and the field is stripped before a tuple leaves the overlay.
//! A removed id leaves a tombstone for a while, so a late copy of it (a
//! handover or replication still in flight) is not brought back.
//!
//! Views: each membership change reaches a peer as one event with the new
//! view and an epoch; messages carry the sender's epoch, and one sent under
//! a view the receiver has not seen yet waits until it has. Assumptions: a
//! crashed peer is reported only after the messages it did write have
//! arrived (failure detectors take longer than a message), though any it
//! had not yet written may be lost (a SIGKILL: the simulation's lossy
//! crashes); and fewer than R peers of one replica set fail before the
//! survivors have re-replicated.
//!
//! Cancel: a client that goes away cancels its query ([`Event::Cancel`]);
//! its candidates drop their waiters, offers still coming are declined,
//! and tuples whose accept was in flight are put back when they arrive
//! (under new ids: their old ones are tombstoned), before the query ends
//! with [`Reply::Cancelled`].
//!
//! `sim` (tests only) is the seeded simulation of thousands of peers;
//! `tests_cancel` drives the races of cancel and multi-tuple takes by
//! hand; `tests_direct` counts the messages of an `out` and an `in`,
//! `tests_bulk` those of a batch `out`.

mod answer;
mod balance;
mod bulk;
mod membership;
mod msg;
mod peer;
mod query;
mod reconcile;
mod serve;
mod take_share;
mod tombstones;
mod write;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bulk;
#[cfg(test)]
mod tests_cancel;
#[cfg(test)]
mod tests_direct;
#[cfg(test)]
mod tests_reconcile;

pub use balance::{Move, plan as plan_move, spread};
pub use bulk::{MAX_BATCH, MAX_BATCH_BYTES, batches};
pub use msg::{Ask, Carried, Chain, Command, Event, Msg, Op, OpId, OverlayError, Reply};
pub use peer::Peer;
pub use reconcile::CHECK_BATCH;

use crate::template::{Field, Template};
use crate::tuple::{Tuple, Value};

/// The identity of one written tuple: the peer its `out` entered at and
/// that peer's sequence number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TupleId {
    pub origin: u64,
    pub seq: u64,
}

impl TupleId {
    fn to_value(self) -> Value {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&self.origin.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        Value::Bytes(bytes)
    }

    fn from_value(value: &Value) -> Option<TupleId> {
        let bytes: &[u8; 16] = value.as_bytes()?.try_into().ok()?;
        let (origin, seq) = bytes.split_at(8);
        Some(TupleId {
            origin: u64::from_be_bytes(origin.try_into().ok()?),
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }
}

/// A tuple as peers hold it: the user's fields and the hidden id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tagged {
    pub id: TupleId,
    pub tuple: Tuple,
}

impl Tagged {
    /// The stored form: the fields with the id appended (one copy of the
    /// fields, allocated at its final length).
    fn stored(&self) -> Tuple {
        let mut fields = Vec::with_capacity(self.tuple.len() + 1);
        fields.extend_from_slice(self.tuple.fields());
        fields.push(self.id.to_value());
        Tuple::new(fields)
    }

    /// Whether `store` holds this tuple in stored form, visible (not under
    /// reservation): its exact lookup, without building the stored form.
    fn is_in(&self, store: &crate::store::Store, now: u64) -> bool {
        store.contains(self.tuple.fields(), &self.id.to_value(), now)
    }

    /// Takes this tuple's stored form out of `store` if it is there and
    /// visible: the exact lookup of [`Tagged::is_in`], then its removal.
    fn take_from(&self, store: &mut crate::store::Store, now: u64) -> bool {
        store
            .take_exact(self.tuple.fields(), &self.id.to_value(), now)
            .is_some()
    }

    /// Splits a stored tuple back; `None` if it carries no id.
    fn from_stored(stored: Tuple) -> Option<Tagged> {
        let mut fields = stored.into_fields();
        let id = TupleId::from_value(&fields.pop()?)?;
        Some(Tagged {
            id,
            tuple: Tuple::new(fields),
        })
    }
}

/// The stored-form template: `template` with a trailing `*` for the id.
fn with_id_field(template: &Template) -> Template {
    let mut fields = template.fields().to_vec();
    fields.push(Field::Any);
    Template::new(fields)
}

/// How a peer behaves; every peer of a space uses the same settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Copies of each tuple: the primary and the next `replicas - 1` peers.
    pub replicas: usize,
    /// Keyword fields placed by the keyspace.
    pub dims: usize,
    /// Index ranges a template's cover is cut into at most.
    pub max_ranges: usize,
    /// How long a candidate holds a tuple it offered.
    pub lease_ms: u64,
    /// How long an `out` may wait for its acknowledgement.
    pub out_timeout_ms: u64,
    /// How long before an unacknowledged `out` is sent again (same id).
    pub retry_ms: u64,
    /// How long a removed id is remembered.
    pub tombstone_ms: u64,
    /// Routing hops after which a message is dropped.
    pub max_hops: u32,
    /// Successors each peer's router keeps.
    pub successors: usize,
    /// Client writes, and apart client queries (waiting takes and reads,
    /// subscriptions included), pending at one peer at most; more fail with
    /// [`OverlayError::Busy`]. Per-client shares are the node's
    /// (`node::shares`).
    pub max_pending: usize,
    /// Tuples one peer holds as primary at most (stored plus reserved); a
    /// write past it fails with [`OverlayError::Full`].
    pub max_tuples: usize,
    /// Whether this peer takes part in spreading the load: asks a light
    /// peer to move into its arc, and moves when asked (the ring driver's;
    /// off, it stays at the place its peer id gives).
    pub balance: bool,
    /// Tuples of at least this many bytes go down a take's chain named by
    /// their id ([`msg::Carried::Known`]); smaller ones whole.
    pub name_from: usize,
}

impl Default for Config {
    /// Two replicas, two keyword fields, 16 ranges, 2 s leases, 10 s `out`
    /// timeout retried every second, 60 s tombstones, 64 hops, 8 successors,
    /// 4,096 pending operations per peer, tuples of 1 KiB or more named by
    /// id in a take's chain.
    fn default() -> Self {
        Config {
            replicas: 2,
            dims: crate::keyspace::DEFAULT_DIMS,
            max_ranges: 16,
            lease_ms: 2_000,
            out_timeout_ms: 10_000,
            retry_ms: 1_000,
            tombstone_ms: 60_000,
            max_hops: 64,
            successors: 8,
            max_pending: 4_096,
            max_tuples: crate::store::Limits::default().max_tuples,
            balance: true,
            name_from: 1024,
        }
    }
}
