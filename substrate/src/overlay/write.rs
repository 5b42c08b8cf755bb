//! Writing: an `out` routed hop by hop to its primary (and re-routed by
//! its origin under the same id until acknowledged), the primary storing it
//! and replicating it to its next R−1 peers, copies kept by replicas, and
//! tombstones for removed ids. Put-backs (tuples taken for a client that
//! went away) are `out`s with no client and no deadline: retried until
//! stored, re-sent once more on a graceful leave.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::msg::Wire;
use super::{Msg, OpId, Peer, Tagged, TupleId};
use crate::ring::Hop;
use crate::store::Effect;
use crate::template::Template;
use crate::tuple::Tuple;

/// The operation id a put-back is routed under (its acknowledgement is
/// matched by tuple id).
const RETURN_OP: OpId = OpId(u64::MAX);

/// A primary's `out` waiting for its replicas' acknowledgements.
#[derive(Debug)]
pub(super) struct Replicating {
    origin: u64,
    op: OpId,
    id: TupleId,
    hops: u32,
    waiting: BTreeSet<u64>,
}

/// A client's `out` waiting for its acknowledgement; re-sent (same id, so
/// the primary stores it once) every `retry_ms` until the deadline.
#[derive(Debug)]
pub(super) struct Writing {
    pub(super) deadline: u64,
    pub(super) retry_at: u64,
    index: u64,
    tuple: Tagged,
    expires_at: Option<u64>,
}

impl Peer {
    pub(super) fn start_out(&mut self, op: OpId, tuple: Tuple, ttl_ms: Option<u64>, now: u64) {
        let writing = self.writing(tuple, ttl_ms, now + self.config.out_timeout_ms, now);
        self.outs.insert(op, writing);
        self.retry_outs(now);
    }

    /// Writes back a tuple taken for a client that went away; its new id.
    pub(super) fn start_return(&mut self, tuple: Tuple, ttl_ms: Option<u64>, now: u64) -> TupleId {
        let writing = self.writing(tuple, ttl_ms, u64::MAX, now);
        let id = writing.tuple.id;
        self.returns.insert(id, writing);
        self.retry_outs(now);
        id
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
            None => self.adopt(wire, Some((origin, op, hops)), now),
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
            || self
                .store
                .read(&Template::exact(&tagged.stored()), now)
                .is_some()
    }

    pub(super) fn index_of(&self, tagged: &Tagged) -> u64 {
        self.keyspace.index_of(&tagged.tuple)
    }

    /// Stores a tuple as its primary and replicates it; `ack` is the `out`
    /// to acknowledge once the replicas hold it.
    pub(super) fn adopt(&mut self, wire: Wire, ack: Option<(u64, OpId, u32)>, now: u64) {
        let (tagged, ttl) = wire;
        let expires_at = ttl.map(|t| now.saturating_add(t));
        let here = self.held.values().any(|h| h.tuple.id == tagged.id)
            || self
                .store
                .read(&Template::exact(&tagged.stored()), now)
                .is_some();
        if !self.tombstones.contains_key(&tagged.id) && !here {
            self.drop_copy(tagged.id);
            match self.store.out(tagged.stored(), expires_at, now) {
                Ok(mut effects) => {
                    // A tuple moving between peers was written before:
                    // only a client's write notifies subscribers.
                    if ack.is_none() {
                        effects.retain(|e| !matches!(e, Effect::Notify { .. }));
                    }
                    self.on_effects(effects, now)
                }
                // Full: not stored; the origin of a client's write is told.
                Err(_) => {
                    if let Some((origin, op, _)) = ack {
                        self.send(origin, Msg::Full { op });
                    }
                    return;
                }
            }
        }
        let targets = self.successors.clone();
        let token = ack.map(|(origin, op, hops)| {
            let token = self.next_token;
            self.next_token += 1;
            let waiting = targets.iter().copied().collect();
            let id = tagged.id;
            self.replicating.insert(
                token,
                Replicating {
                    origin,
                    op,
                    id,
                    hops,
                    waiting,
                },
            );
            token
        });
        for &to in &targets {
            let tuples = vec![(tagged.clone(), ttl)];
            self.send(to, Msg::Replicate { tuples, token });
        }
        if let Some(token) = token {
            self.check_replicated(token);
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
    }

    pub(super) fn outs_pending(&self) -> impl Iterator<Item = &OpId> {
        self.outs.keys()
    }

    pub(super) fn clear_outs(&mut self) {
        self.outs.clear();
    }

    pub(super) fn replica_acked(&mut self, token: u64, from: u64) {
        if let Some(r) = self.replicating.get_mut(&token) {
            r.waiting.remove(&from);
            self.check_replicated(token);
        }
    }

    /// Acknowledges an `out` whose live replicas all hold it.
    pub(super) fn check_replicated(&mut self, token: u64) {
        if let Some(r) = self.replicating.get(&token)
            && r.waiting.is_empty()
        {
            let r = self.replicating.remove(&token).expect("just seen");
            let msg = Msg::Stored {
                op: r.op,
                id: r.id,
                hops: r.hops,
            };
            self.send(r.origin, msg);
        }
    }

    /// Stops waiting for acknowledgements from peers no longer in the view;
    /// false if no `out` was waiting.
    pub(super) fn drop_dead_replicas(&mut self) -> bool {
        if self.replicating.is_empty() {
            return false;
        }
        let view = Arc::clone(&self.view);
        let tokens: Vec<u64> = self.replicating.keys().copied().collect();
        for token in tokens {
            if let Some(r) = self.replicating.get_mut(&token) {
                r.waiting.retain(|&p| view.contains(p));
            }
            self.check_replicated(token);
        }
        true
    }

    /// Puts a tuple that arrived from another peer where it belongs: in the
    /// store if this peer is its primary, among the copies if a replica;
    /// otherwise a handover goes on to the owner and a replication is
    /// ignored.
    pub(super) fn place(&mut self, wire: Wire, forward: bool, now: u64) {
        if self.tombstones.contains_key(&wire.0.id) {
            return;
        }
        let index = self.index_of(&wire.0);
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
        if let Some(old) = self.tombstones.insert(id, end) {
            self.tombstone_ends.remove(&(old, id));
        }
        self.tombstone_ends.insert((end, id));
        self.drop_copy(id);
    }

    /// A tuple on the wire, with its time left at `now`.
    pub(super) fn wire(tuple: Tuple, expires_at: Option<u64>, now: u64) -> Option<Wire> {
        let tagged = Tagged::from_stored(tuple)?;
        Some((tagged, expires_at.map(|e| e.saturating_sub(now))))
    }
}
