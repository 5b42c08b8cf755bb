//! Writing: an `out` routed hop by hop to its primary (and re-routed by
//! its origin under the same id until acknowledged), the primary storing it
//! and replicating it to its next R−1 peers, copies kept by replicas, and
//! tombstones for removed ids. The origin acknowledges an `out` once the
//! primary has said it stored it and to which replicas it sent copies
//! (`Stored`), and each of those still live has confirmed its copy to the
//! origin (`Copied`): the replicas' confirmations do not pass through the
//! primary, which saves a hop. Put-backs (tuples taken for a client that
//! went away) are `out`s with no client and no deadline: retried until
//! stored, re-sent once more on a graceful leave.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::msg::Wire;
use super::{Msg, OpId, Peer, Reply, Tagged, TupleId};
use crate::ring::Hop;
use crate::store::Effect;
use crate::tuple::Tuple;

/// The operation id a put-back is routed under (its acknowledgement is
/// matched by tuple id).
const RETURN_OP: OpId = OpId(u64::MAX);

/// A client's `out` waiting for its acknowledgement; re-sent (same id, so
/// the primary stores it once) every `retry_ms` until the deadline.
#[derive(Debug)]
pub(super) struct Writing {
    pub(super) deadline: u64,
    pub(super) retry_at: u64,
    index: u64,
    tuple: Tagged,
    expires_at: Option<u64>,
    /// Once the primary has stored it: the replicas it copied it to, and
    /// the routing hops it took.
    stored: Option<(BTreeSet<u64>, u32)>,
    /// The replicas that confirmed their copy.
    copied: BTreeSet<u64>,
}

impl Writing {
    /// Whether the primary and every replica it named hold the tuple.
    fn done(&self) -> Option<u32> {
        let (replicas, hops) = self.stored.as_ref()?;
        replicas.is_subset(&self.copied).then_some(*hops)
    }
}

impl Peer {
    pub(super) fn start_out(&mut self, op: OpId, tuple: Tuple, ttl_ms: Option<u64>, now: u64) {
        let deadline = now + self.config.out_timeout_ms;
        let mut writing = self.writing(tuple, ttl_ms, deadline, now);
        let (index, wire) = self.first_attempt(&mut writing, now);
        self.outs.insert(op, writing);
        self.route(index, 0, self.id, op, wire, now);
    }

    /// Writes back a tuple taken for a client that went away; its new id.
    pub(super) fn start_return(&mut self, tuple: Tuple, ttl_ms: Option<u64>, now: u64) -> TupleId {
        let mut writing = self.writing(tuple, ttl_ms, u64::MAX, now);
        let id = writing.tuple.id;
        let (index, wire) = self.first_attempt(&mut writing, now);
        self.returns.insert(id, writing);
        self.route(index, 0, self.id, RETURN_OP, wire, now);
        id
    }

    /// Schedules a new write's retry (no walk over the others: a bulk
    /// `out` has hundreds in flight); what its first attempt routes.
    fn first_attempt(&mut self, w: &mut Writing, now: u64) -> (u64, Wire) {
        w.retry_at = now + self.config.retry_ms;
        let due = w.retry_at.min(w.deadline);
        self.writes_due = Some(self.writes_due.map_or(due, |d| d.min(due)));
        let ttl = w.expires_at.map(|e| e.saturating_sub(now));
        (w.index, (w.tuple.clone(), ttl))
    }

    fn writing(&mut self, tuple: Tuple, ttl_ms: Option<u64>, deadline: u64, now: u64) -> Writing {
        let id = TupleId {
            origin: self.id,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        Writing {
            deadline,
            retry_at: now,
            index: self.keyspace.index_of(&tuple),
            tuple: Tagged { id, tuple },
            expires_at: ttl_ms.map(|t| now.saturating_add(t)),
            stored: None,
            copied: BTreeSet::new(),
        }
    }

    /// A graceful leave: each put-back still unacknowledged is routed once
    /// more (its primary stores it once, whoever acknowledges it).
    pub(super) fn last_returns(&mut self, now: u64) {
        for (_, w) in std::mem::take(&mut self.returns) {
            let ttl = w.expires_at.map(|e| e.saturating_sub(now));
            self.route(w.index, 0, self.id, RETURN_OP, (w.tuple, ttl), now);
        }
    }

    /// Forwards an `out` one hop, or stores it here if this peer owns it.
    pub(super) fn route(
        &mut self,
        index: u64,
        hops: u32,
        origin: u64,
        op: OpId,
        wire: Wire,
        now: u64,
    ) {
        let next = match self.member() {
            // Evicted: the owner the view shows, in one hop.
            false => self.view.owner(index),
            true => match self.router().next_hop(index) {
                Hop::Here => None,
                Hop::Owner(p) | Hop::Forward(p) => Some(p),
            },
        };
        match next {
            // Evicted with no one to send it to: the origin retries.
            None if !self.member() => {}
            None => {
                if let Some(wire) = self.set_aside(wire, true, now) {
                    self.adopt(wire, Some((origin, op, hops)), now);
                }
            }
            Some(p) if hops < self.config.max_hops => {
                let msg = Msg::Route {
                    index,
                    hops: hops.saturating_add(1),
                    origin,
                    op,
                    tuple: wire,
                };
                self.send(p, msg);
            }
            // Dropped: the origin's timeout answers the client.
            Some(_) => {}
        }
    }

    /// Whether this peer holds `id` in any form.
    pub(super) fn has(&self, tagged: &Tagged, now: u64) -> bool {
        self.copies.contains_key(&tagged.id)
            || self.held.values().any(|h| h.tuple.id == tagged.id)
            || tagged.is_in(&self.store, now)
    }

    pub(super) fn index_of(&self, tagged: &Tagged) -> u64 {
        self.keyspace.index_of(&tagged.tuple)
    }

    /// Stores a tuple as its primary and replicates it; `ack` is the `out`
    /// (origin, op, hops) to tell that it is stored and where the copies
    /// go, whose replicas confirm to its origin.
    pub(super) fn adopt(&mut self, wire: Wire, ack: Option<(u64, OpId, u32)>, now: u64) {
        let (tagged, ttl) = wire;
        if !self.hold(&tagged, ttl, ack.is_some(), now) {
            // Full: not stored; the origin of a client's write is told.
            if let Some((origin, op, _)) = ack {
                self.send(origin, Msg::Full { op });
            }
            return;
        }
        let targets = self.successors.clone();
        let confirm = ack.map(|(origin, op, _)| (origin, op));
        for &to in &targets {
            let tuples = vec![(tagged.clone(), ttl)];
            self.send(
                to,
                Msg::Replicate {
                    tuples,
                    ack: confirm,
                },
            );
        }
        if let Some((origin, op, hops)) = ack {
            let (id, replicas) = (tagged.id, targets);
            self.send(
                origin,
                Msg::Stored {
                    op,
                    id,
                    hops,
                    replicas,
                },
            );
        }
    }

    /// Stores `tagged` (with `ttl_ms` left) as its primary, unless it is
    /// here already or was removed (a late or repeated attempt); `client`:
    /// a client's write, which notifies subscribers (a tuple moving between
    /// peers was written before). False if the store is full.
    pub(super) fn hold(
        &mut self,
        tagged: &Tagged,
        ttl: Option<u64>,
        client: bool,
        now: u64,
    ) -> bool {
        let here =
            self.held.values().any(|h| h.tuple.id == tagged.id) || tagged.is_in(&self.store, now);
        if self.tombstones.contains(&tagged.id) || here {
            return true;
        }
        self.drop_copy(tagged.id);
        let expires_at = ttl.map(|t| now.saturating_add(t));
        match self.store.out(tagged.stored(), expires_at, now) {
            Ok(mut effects) => {
                if !client {
                    effects.retain(|e| !matches!(e, Effect::Notify { .. }));
                }
                self.on_effects(effects, now);
                true
            }
            Err(_) => false,
        }
    }

    /// Routes the `out`s due for a (first or further) attempt.
    pub(super) fn retry_outs(&mut self, now: u64) {
        let retry_ms = self.config.retry_ms;
        let outs = self.outs.iter_mut().map(|(&op, w)| (op, w));
        let returns = self.returns.values_mut().map(|w| (RETURN_OP, w));
        let due: Vec<(OpId, u64, super::msg::Wire)> = outs
            .chain(returns)
            .filter(|(_, w)| w.retry_at <= now)
            .map(|(op, w)| {
                w.retry_at = now + retry_ms;
                let ttl = w.expires_at.map(|e| e.saturating_sub(now));
                (op, w.index, (w.tuple.clone(), ttl))
            })
            .collect();
        for (op, index, wire) in due {
            self.route(index, 0, self.id, op, wire, now);
        }
        self.retry_batches(now);
        let outs = self.outs.values().chain(self.returns.values());
        let single = outs.map(|w| w.retry_at.min(w.deadline)).min();
        self.writes_due = single.into_iter().chain(self.batches.due()).min();
    }

    /// The client writes in flight: single and batch `out`s.
    pub(super) fn outs_pending(&self) -> impl Iterator<Item = &OpId> {
        self.outs.keys().chain(self.batches.ops())
    }

    pub(super) fn clear_outs(&mut self) {
        self.outs.clear();
        self.batches.clear();
    }

    /// The primary of the `out` (or of tuples of the batch `out`) `op`
    /// holds its `max_tuples`: the write fails.
    pub(super) fn on_full(&mut self, op: OpId) {
        if self.outs.remove(&op).is_some() {
            self.reply(op, Reply::Failed(super::OverlayError::Full));
        } else {
            self.batch_full(op);
        }
    }

    /// The write of tuple `id` by operation `op`, a client's or a put-back.
    fn written(&mut self, op: OpId, id: TupleId) -> Option<&mut Writing> {
        match self.returns.contains_key(&id) {
            true => self.returns.get_mut(&id),
            false => self.outs.get_mut(&op).filter(|w| w.tuple.id == id),
        }
    }

    /// The primary stored tuple `id` and sent copies to `replicas`.
    pub(super) fn on_stored(&mut self, op: OpId, id: TupleId, hops: u32, replicas: Vec<u64>) {
        let view = Arc::clone(&self.view);
        if let Some(w) = self.written(op, id) {
            let live = replicas.into_iter().filter(|&p| view.contains(p));
            w.stored = Some((live.collect(), hops));
            self.check_written(op, id);
        }
    }

    /// Replica `from` holds a copy of tuple `id`.
    pub(super) fn on_copied(&mut self, from: u64, op: OpId, id: TupleId) {
        if let Some(w) = self.written(op, id) {
            w.copied.insert(from);
            self.check_written(op, id);
        }
    }

    /// Acknowledges a write held by its primary and all its live replicas.
    fn check_written(&mut self, op: OpId, id: TupleId) {
        let Some(hops) = self.written(op, id).and_then(|w| w.done()) else {
            return;
        };
        if self.returns.remove(&id).is_none() && self.outs.remove(&op).is_some() {
            self.reply(op, Reply::Stored { id, hops });
        }
    }

    /// Stops waiting for confirmations from peers no longer in the view;
    /// false if no write was waiting for any.
    pub(super) fn drop_dead_replicas(&mut self) -> bool {
        let view = Arc::clone(&self.view);
        let mut settled = Vec::new();
        let outs = self.outs.iter_mut().map(|(&op, w)| (op, w));
        let returns = self.returns.values_mut().map(|w| (RETURN_OP, w));
        for (op, w) in outs.chain(returns) {
            if let Some((replicas, _)) = &mut w.stored {
                replicas.retain(|&p| view.contains(p));
                settled.push((op, w.tuple.id));
            }
        }
        let waiting = !settled.is_empty();
        for (op, id) in settled {
            self.check_written(op, id);
        }
        let batches = self.drop_dead_batch_replicas();
        waiting || batches
    }

    /// Puts a tuple that arrived from another peer where it belongs: in the
    /// store if this peer is its primary, among the copies if a replica;
    /// otherwise a handover goes on to the owner and a replication is
    /// ignored.
    pub(super) fn place(&mut self, wire: Wire, forward: bool, now: u64) {
        let index = self.index_of(&wire.0);
        self.place_at(index, wire, forward, now);
    }

    /// [`Peer::place`] of a tuple whose index is known (carried with it
    /// from its origin), so it is not computed again.
    pub(super) fn place_at(&mut self, index: u64, wire: Wire, forward: bool, now: u64) {
        if self.tombstones.contains(&wire.0.id) {
            return;
        }
        let set = self.view.replicas(index, self.config.replicas);
        if set.first() == Some(&self.id) {
            self.adopt(wire, None, now);
        } else if set.contains(&self.id) {
            self.keep_copy(wire, now);
        } else if forward && let Some(&owner) = set.first() {
            let tuples = vec![wire];
            self.send(
                owner,
                Msg::Handover {
                    tuples,
                    adopt: false,
                },
            );
        }
    }

    pub(super) fn keep_copy(&mut self, (tagged, ttl): Wire, now: u64) {
        if self.has(&tagged, now) {
            return;
        }
        let expires_at = ttl.map(|t| now.saturating_add(t));
        if let Some(at) = expires_at {
            self.copy_expiries.insert((at, tagged.id));
        }
        self.copies.insert(tagged.id, (tagged, expires_at));
    }

    pub(super) fn drop_copy(&mut self, id: TupleId) -> Option<(Tagged, Option<u64>)> {
        let copy = self.copies.remove(&id)?;
        if let Some(at) = copy.1 {
            self.copy_expiries.remove(&(at, id));
        }
        Some(copy)
    }

    pub(super) fn tombstone(&mut self, id: TupleId, now: u64) {
        let end = now + self.config.tombstone_ms;
        self.tombstones.insert(id, end);
        self.drop_copy(id);
    }

    /// A tuple on the wire, with its time left at `now`.
    pub(super) fn wire(tuple: Tuple, expires_at: Option<u64>, now: u64) -> Option<Wire> {
        let tagged = Tagged::from_stored(tuple)?;
        Some((tagged, expires_at.map(|e| e.saturating_sub(now))))
    }
}
