//! Batch `out` ([`Op::OutAll`](super::Op::OutAll)): many tuples in one
//! client operation, written as many single `out`s would be (each under
//! its own [`TupleId`], stored once by its primary, R copies before the
//! acknowledgement) with a message per batch instead of per tuple:
//!
//! - the origin numbers the tuples and routes them grouped by next hop
//!   (`RouteBatch`); each peer on the way stores those it owns and sends
//!   the rest on, grouped again;
//! - a primary stores its share and sends each replica one
//!   `ReplicateBatch`, and the origin one `StoredBatch` naming the ids and
//!   the replicas;
//! - each replica confirms the whole batch to the origin in one
//!   `CopiedBatch`;
//! - the origin acknowledges the operation once every tuple is stored and
//!   confirmed by every named replica still in its view (the rule of a
//!   single `out`), and re-routes the tuples not yet confirmed, under the
//!   same ids, every `retry_ms` until its deadline: a primary that already
//!   holds one (or removed it) stores nothing again, so a retry doubles
//!   nothing.
//!
//! Bounds: an operation's tuples count one each against
//! [`super::Config::max_pending`] (with single `out`s); a message carries
//! at most [`MAX_BATCH`] tuples and, past one tuple, [`MAX_BATCH_BYTES`].
//! A primary holding its `max_tuples` refuses the tuples it cannot store
//! with one `Full` a message, and the operation fails (the rest of its
//! tuples may be stored, as with a bulk of single `out`s).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::msg::Wire;
use super::{Msg, OpId, OverlayError, Peer, Reply, Tagged, TupleId};
use crate::ring::Hop;
use crate::tuple::Tuple;

/// Tuples one batch message carries at most: enough that the per-message
/// costs (a frame, a wake-up, a lookup of the operation) are spread thin,
/// small enough that a batch of tuples of a few hundred bytes stays far
/// below the wire's 8 MiB frame and that one message's work does not hold
/// the peer up for long. The ring checks peers' messages against it.
pub const MAX_BATCH: usize = 256;
/// Bytes of tuples (as [`Tuple::encoded_len_hint`] counts them) one batch
/// message carries at most, unless one tuple alone is larger: an eighth of
/// the wire's frame limit.
pub const MAX_BATCH_BYTES: usize = crate::wire::MAX_FRAME / 8;

/// The batch `out`s in flight at their origin.
#[derive(Debug, Default)]
pub(super) struct Batches {
    ops: BTreeMap<OpId, Batch>,
    /// Tuples of all of them: what they count against `max_pending`.
    tuples: usize,
}

/// One batch `out`: its tuples are numbered `first..first + len`.
#[derive(Debug)]
struct Batch {
    deadline: u64,
    retry_at: u64,
    first: u64,
    tuples: Vec<Entry>,
    /// Tuples not yet held by their primary and live replicas.
    unconfirmed: usize,
}

/// One tuple of a batch and what its origin has heard of it.
#[derive(Debug)]
struct Entry {
    index: u64,
    tuple: Tagged,
    expires_at: Option<u64>,
    /// Whether its primary said it stored it.
    stored: bool,
    /// The replicas the primary named that have not confirmed yet.
    awaiting: Vec<u64>,
    /// Replicas that confirmed before the primary's word (or while a
    /// retry's new primary may name them again).
    copied: Vec<u64>,
    done: bool,
}

impl Entry {
    fn wire(&self, now: u64) -> (u64, Wire) {
        let ttl = self.expires_at.map(|e| e.saturating_sub(now));
        (self.index, (self.tuple.clone(), ttl))
    }
}

impl Batches {
    /// Tuples of the batch `out`s in flight.
    pub(super) fn tuples(&self) -> usize {
        self.tuples
    }

    pub(super) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(super) fn ops(&self) -> impl Iterator<Item = &OpId> {
        self.ops.keys()
    }

    pub(super) fn clear(&mut self) {
        self.ops.clear();
        self.tuples = 0;
    }

    /// When the earliest retry or deadline is due.
    pub(super) fn due(&self) -> Option<u64> {
        self.ops.values().map(|b| b.retry_at.min(b.deadline)).min()
    }

    fn remove(&mut self, op: OpId) -> Option<Batch> {
        let batch = self.ops.remove(&op)?;
        self.tuples -= batch.tuples.len();
        Some(batch)
    }

    /// The entry of tuple `id` of batch `op`, if still waited for.
    fn entry(&mut self, op: OpId, id: TupleId, me: u64) -> Option<&mut Entry> {
        let batch = self.ops.get_mut(&op)?;
        let at = id.seq.checked_sub(batch.first)?;
        let entry = batch.tuples.get_mut(usize::try_from(at).ok()?)?;
        (id.origin == me && !entry.done).then_some(entry)
    }

    /// Marks `id` of `op` confirmed; true if that was its batch's last.
    fn confirm(&mut self, op: OpId, id: TupleId, me: u64) -> bool {
        if let Some(entry) = self.entry(op, id, me) {
            entry.done = true;
            entry.copied = Vec::new();
            let batch = self.ops.get_mut(&op).expect("its entry was found");
            batch.unconfirmed -= 1;
            return batch.unconfirmed == 0;
        }
        false
    }
}

/// Splits `tuples` into batches of at most [`MAX_BATCH`] tuples and
/// [`MAX_BATCH_BYTES`] (a tuple larger than that alone): what a driver
/// makes each [`Op::OutAll`](super::Op::OutAll) of, so that its batches
/// travel whole.
pub fn batches(tuples: Vec<Tuple>) -> Vec<Vec<Tuple>> {
    bounded(tuples, |t| t)
}

/// Splits tuples on their way between peers (copies, handovers) the same
/// way: no message passes the wire's limit, however large the tuples.
pub(super) fn wire_batches(tuples: Vec<Wire>) -> Vec<Vec<Wire>> {
    bounded(tuples, |(w, _)| &w.tuple)
}

/// Splits `items` into messages of at most [`MAX_BATCH`] tuples and
/// [`MAX_BATCH_BYTES`] (a tuple larger than that alone).
pub(super) fn bounded<T>(items: Vec<T>, tuple: impl Fn(&T) -> &Tuple) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = tuple(&item).encoded_len_hint();
        if !chunk.is_empty() && (chunk.len() == MAX_BATCH || bytes + size > MAX_BATCH_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

impl Peer {
    /// Whether a batch of `n` tuples would take the writes in flight here
    /// past `max_pending`.
    pub(super) fn batch_busy(&self, n: usize) -> bool {
        self.outs.len() + self.batches.tuples() + n > self.config.max_pending
    }

    /// Starts a batch `out`: numbers its tuples and routes them.
    pub(super) fn start_batch(
        &mut self,
        op: OpId,
        tuples: Vec<Tuple>,
        ttl_ms: Option<u64>,
        now: u64,
    ) {
        if tuples.is_empty() {
            self.reply(op, Reply::StoredAll { ids: Vec::new() });
            return;
        }
        let first = self.next_seq;
        self.next_seq += tuples.len() as u64;
        let expires_at = ttl_ms.map(|t| now.saturating_add(t));
        let mut entries: Vec<Entry> = Vec::with_capacity(tuples.len());
        for (tuple, seq) in tuples.into_iter().zip(first..) {
            let before = entries.last().map(|e| (e.tuple.tuple.fields(), e.index));
            let index = self.keyspace.index_next_to(tuple.fields(), before);
            entries.push(Entry {
                index,
                tuple: Tagged {
                    id: TupleId {
                        origin: self.id,
                        seq,
                    },
                    tuple,
                },
                expires_at,
                stored: false,
                awaiting: Vec::new(),
                copied: Vec::new(),
                done: false,
            });
        }
        let items = entries.iter().map(|e| e.wire(now)).collect();
        let batch = Batch {
            deadline: now + self.config.out_timeout_ms,
            retry_at: now + self.config.retry_ms,
            first,
            unconfirmed: entries.len(),
            tuples: entries,
        };
        let due = batch.retry_at.min(batch.deadline);
        self.writes_due = Some(self.writes_due.map_or(due, |d| d.min(due)));
        self.batches.tuples += batch.tuples.len();
        self.batches.ops.insert(op, batch);
        self.route_batch(0, self.id, op, items, now);
    }

    /// Stores the tuples this peer owns, and sends the others one hop on,
    /// grouped by next hop.
    pub(super) fn route_batch(
        &mut self,
        hops: u32,
        origin: u64,
        op: OpId,
        items: Vec<(u64, Wire)>,
        now: u64,
    ) {
        let member = self.member();
        let mut here = Vec::new();
        let mut onward: BTreeMap<u64, Vec<(u64, Wire)>> = BTreeMap::new();
        for (index, wire) in items {
            let next = match member {
                // Evicted: the owner the view shows, in one hop.
                false => self.view.owner(index),
                true => match self.router().next_hop(index) {
                    Hop::Here => None,
                    Hop::Owner(p) | Hop::Forward(p) => Some(p),
                },
            };
            match next {
                // Evicted with no one to send it to: the origin retries.
                None if !member => {}
                None => here.extend(self.set_aside(wire, true, now).map(|w| (index, w))),
                Some(p) => onward.entry(p).or_default().push((index, wire)),
            }
        }
        for chunk in bounded(here, |(_, w)| &w.0.tuple) {
            self.adopt_batch(chunk, origin, op, now);
        }
        // Past the hop limit they are dropped: the origin's timeout
        // answers the client.
        if hops >= self.config.max_hops {
            return;
        }
        for (to, items) in onward {
            for tuples in bounded(items, |(_, w)| &w.0.tuple) {
                let hops = hops.saturating_add(1);
                self.send(
                    to,
                    Msg::RouteBatch {
                        hops,
                        origin,
                        op,
                        tuples,
                    },
                );
            }
        }
    }

    /// Stores tuples of a batch (with their indexes) as their primary,
    /// replicates them in one message a replica, and tells the origin
    /// which are stored.
    fn adopt_batch(&mut self, items: Vec<(u64, Wire)>, origin: u64, op: OpId, now: u64) {
        let count = items.len();
        let held: Vec<(u64, Wire)> = items
            .into_iter()
            .filter(|(_, (tagged, ttl))| self.hold(tagged, *ttl, true, now))
            .collect();
        if held.len() < count {
            self.send(origin, Msg::Full { op });
        }
        if held.is_empty() {
            return;
        }
        let ids = held.iter().map(|(_, (t, _))| t.id).collect();
        let replicas = self.successors.clone();
        if let Some((&last, rest)) = replicas.split_last() {
            for &to in rest {
                let tuples = held.clone();
                self.send(to, Msg::ReplicateBatch { tuples, origin, op });
            }
            let tuples = held;
            self.send(last, Msg::ReplicateBatch { tuples, origin, op });
        }
        self.send(origin, Msg::StoredBatch { op, ids, replicas });
    }

    /// A replica keeps copies of a batch and confirms them to its origin
    /// (evicted, it keeps nothing and confirms nothing; those it sets
    /// aside, it does not confirm).
    pub(super) fn on_replicate_batch(
        &mut self,
        tuples: Vec<(u64, Wire)>,
        origin: u64,
        op: OpId,
        now: u64,
    ) {
        let mut ids = Vec::with_capacity(tuples.len());
        for (index, wire) in tuples {
            // Set aside by a peer just told it was gone: not confirmed
            // (see `reconcile`); the origin sends it again.
            if let Some(wire) = self.set_aside(wire, false, now) {
                ids.push(wire.0.id);
                self.place_at(index, wire, false, now);
            }
        }
        if self.member() && !ids.is_empty() {
            self.send(origin, Msg::CopiedBatch { op, ids });
        }
    }

    /// The primary stored tuples `ids` of batch `op` and sent copies to
    /// `replicas`.
    pub(super) fn on_stored_batch(&mut self, op: OpId, ids: Vec<TupleId>, replicas: Vec<u64>) {
        let view = Arc::clone(&self.view);
        let live: Vec<u64> = replicas.into_iter().filter(|&p| view.contains(p)).collect();
        let me = self.id;
        for id in ids {
            let Some(entry) = self.batches.entry(op, id, me) else {
                continue;
            };
            entry.stored = true;
            entry.awaiting = live
                .iter()
                .copied()
                .filter(|p| !entry.copied.contains(p))
                .collect();
            if entry.awaiting.is_empty() {
                self.confirmed(op, id);
            }
        }
    }

    /// Replica `from` holds copies of tuples `ids` of batch `op`.
    pub(super) fn on_copied_batch(&mut self, from: u64, op: OpId, ids: Vec<TupleId>) {
        let me = self.id;
        for id in ids {
            let Some(entry) = self.batches.entry(op, id, me) else {
                continue;
            };
            entry.awaiting.retain(|&p| p != from);
            if entry.stored && entry.awaiting.is_empty() {
                self.confirmed(op, id);
            } else if !entry.copied.contains(&from) {
                entry.copied.push(from);
            }
        }
    }

    /// Tuple `id` of batch `op` is held as an `out` must be; the batch is
    /// acknowledged with its last.
    fn confirmed(&mut self, op: OpId, id: TupleId) {
        if self.batches.confirm(op, id, self.id)
            && let Some(batch) = self.batches.remove(op)
        {
            let ids = batch.tuples.into_iter().map(|e| e.tuple.id).collect();
            self.reply(op, Reply::StoredAll { ids });
        }
    }

    /// A primary refused tuples of `op` (full): the batch fails; false if
    /// `op` is no batch here.
    pub(super) fn batch_full(&mut self, op: OpId) -> bool {
        let failed = self.batches.remove(op).is_some();
        if failed {
            self.reply(op, Reply::Failed(OverlayError::Full));
        }
        failed
    }

    /// Fails the batches past their deadline and re-routes the unconfirmed
    /// tuples of those due for a retry, under the same ids.
    pub(super) fn retry_batches(&mut self, now: u64) {
        let late: Vec<OpId> = self
            .batches
            .ops
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(&op, _)| op)
            .collect();
        for op in late {
            self.batches.remove(op);
            self.reply(op, Reply::Failed(OverlayError::Timeout));
        }
        let retry_ms = self.config.retry_ms;
        let mut due = Vec::new();
        for (&op, batch) in &mut self.batches.ops {
            if batch.retry_at > now {
                continue;
            }
            batch.retry_at = now + retry_ms;
            let items: Vec<(u64, Wire)> = batch
                .tuples
                .iter()
                .filter(|e| !e.done)
                .map(|e| e.wire(now))
                .collect();
            due.push((op, items));
        }
        for (op, items) in due {
            self.route_batch(0, self.id, op, items, now);
        }
    }

    /// Stops waiting for confirmations from replicas no longer in the
    /// view; false if no batch tuple was waiting for any.
    pub(super) fn drop_dead_batch_replicas(&mut self) -> bool {
        let view = Arc::clone(&self.view);
        let (mut waiting, mut settled) = (false, Vec::new());
        for (&op, batch) in &mut self.batches.ops {
            for entry in batch.tuples.iter_mut().filter(|e| e.stored && !e.done) {
                waiting = true;
                entry.awaiting.retain(|&p| view.contains(p));
                if entry.awaiting.is_empty() {
                    settled.push((op, entry.tuple.id));
                }
            }
        }
        for (op, id) in settled {
            self.confirmed(op, id);
        }
        waiting
    }
}
