//! Membership changes: a new view moves tuples to their new primaries
//! (live migration on a join), promotes the copies of a failed or departed
//! predecessor's arc (takeover), sends copies to new replicas (restoring R
//! copies), drops copies no longer wanted, and re-asks the candidates of
//! pending queries. A graceful leave hands everything to the successor.
//! A view without this peer evicts it (it was declared gone while alive);
//! a later view with it re-admits it like a newcomer.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bulk::wire_batches;
use super::msg::{View, Wire};
use super::{Msg, OverlayError, Peer, Reply};
use crate::keyspace::Keyspace;
use crate::store::Store;
use crate::tuple::Tuple;

/// The ring index of a tuple in stored form (hidden id field last).
pub(super) fn stored_index(keyspace: &Keyspace, stored: &Tuple) -> u64 {
    let fields = stored.fields();
    keyspace.index_of_fields(&fields[..fields.len().saturating_sub(1)])
}

/// Whether `x` lies in the clockwise interval `[a, b]`: the ends count, a
/// departed R-th predecessor changes this peer's copies too.
fn within(a: u64, x: u64, b: u64) -> bool {
    x.wrapping_sub(a) <= b.wrapping_sub(a)
}

impl Peer {
    /// Takes a new view; false if nothing but the view and router changed.
    /// The queries are re-asked by the caller ([`Peer::reask`]), after the
    /// messages held back for this view: what a peer now gone sent before
    /// it went must count before its candidacy is dropped.
    pub(super) fn on_view(&mut self, view: View, changed: u64, now: u64) -> bool {
        let was_member = self.member();
        self.view = view;
        self.forget_router();
        if !self.member() {
            if was_member {
                self.evicted();
            }
            self.refresh_neighbourhood();
            return true;
        }
        let near = self.span.is_none_or(|(a, b)| within(a, changed, b));
        if near {
            self.rebalance(now);
            self.refresh_neighbourhood();
        }
        let waiting = self.drop_dead_replicas();
        let released = self.check_view(now);
        near || waiting || released
    }

    /// Whether this peer is in its view. A peer the others declared gone
    /// while it was alive is not: it serves its own clients through the
    /// others, and holds nothing of the ring's until a view has it again.
    pub(super) fn member(&self) -> bool {
        self.view.contains(self.id)
    }

    /// Declared gone while alive: the others took its arc over from their
    /// copies and may have taken some of those tuples since, so everything
    /// it held for the ring is dropped (kept, a tuple could be taken
    /// twice). Tombstones, sequence numbers and its clients' operations
    /// stay; those it took part in for other peers are re-asked by them.
    fn evicted(&mut self) {
        self.store = Store::with_exact_index();
        self.held.clear();
        self.waiters.clear();
        self.parked.clear();
        self.subscribers.clear();
        self.subscribed.clear();
        self.copies.clear();
        self.copy_expiries.clear();
        self.passing.clear();
        self.quarantine = None;
        self.dropped = true;
    }

    /// Caches the replica targets and the stretch of ring whose changes
    /// concern this peer.
    pub(super) fn refresh_neighbourhood(&mut self) {
        let r = self.config.replicas;
        self.successors = self.view.successors(self.id, r.saturating_sub(1));
        self.predecessor = self.view.predecessor(self.id);
        self.span = (self.view.len() > 2 * r + 1).then(|| {
            let mut before = self.id;
            for _ in 0..r {
                before = self.view.predecessor(before).unwrap_or(before);
            }
            let after = self.view.successors(self.id, r).last().copied();
            (before, after.unwrap_or(self.id))
        });
    }

    fn rebalance(&mut self, now: u64) {
        let arc = self.view.arc(self.id);
        let keyspace = self.keyspace;
        let lost = self
            .store
            .drain_matching(|t| !arc.contains(stored_index(&keyspace, t)));
        self.hand_over(lost, now);

        let r = self.config.replicas;
        let successors = self.view.successors(self.id, r.saturating_sub(1));
        // A grown arc (a departed predecessor's tuples adopted before this
        // view showed it gone) is re-replicated to every successor, which
        // ignored those copies under the old view; otherwise only new
        // successors need the arc.
        let grown = self.predecessor != self.view.predecessor(self.id);
        let fresh: Vec<u64> = successors
            .iter()
            .copied()
            .filter(|p| grown || !self.successors.contains(p))
            .collect();
        self.successors = successors;

        let ids: Vec<_> = self.copies.keys().copied().collect();
        for id in ids {
            let index = self.index_of(&self.copies[&id].0);
            if arc.contains(index) {
                let (tagged, expires_at) = self.drop_copy(id).expect("listed");
                let ttl = expires_at.map(|e| e.saturating_sub(now));
                self.adopt((tagged, ttl), None, now);
            } else if !self.view.replicas(index, r).contains(&self.id) {
                self.drop_copy(id);
            }
        }

        if !fresh.is_empty() {
            let mut tuples: Vec<Wire> = self
                .store
                .stored()
                .into_iter()
                .filter_map(|(t, e)| Peer::wire(t, e, now))
                .collect();
            // A reserved tuple keeps its time to live in its copies too.
            let held = self.held.iter().map(|(&r, h)| {
                let ttl = self.store.reserved_expiry(r).map(|e| e.saturating_sub(now));
                (h.tuple.clone(), ttl)
            });
            tuples.extend(held);
            let batches = wire_batches(tuples);
            for to in fresh {
                for tuples in &batches {
                    let tuples = tuples.clone();
                    self.send(to, Msg::Replicate { tuples, ack: None });
                }
            }
        }
    }

    /// Sends tuples drained from the store to their owners, keeping a copy
    /// where this peer is still a replica.
    pub(super) fn hand_over(&mut self, drained: Vec<(Tuple, Option<u64>)>, now: u64) {
        let mut by_owner: BTreeMap<u64, Vec<Wire>> = BTreeMap::new();
        for (stored, expires_at) in drained {
            let Some(wire) = Peer::wire(stored, expires_at, now) else {
                continue;
            };
            let index = self.index_of(&wire.0);
            let set = self.view.replicas(index, self.config.replicas);
            if set.contains(&self.id) {
                self.keep_copy(wire.clone(), now);
            }
            if let Some(&owner) = set.first() {
                by_owner.entry(owner).or_default().push(wire);
            }
        }
        for (to, tuples) in by_owner {
            self.send_handover(to, tuples, false);
        }
    }

    /// Leaves gracefully: releases waiters and reservations, fails the
    /// pending client operations, and hands every tuple to the successor,
    /// which adopts them even before its view shows this peer gone.
    pub(super) fn on_leave(&mut self, now: u64) {
        for waiter in std::mem::take(&mut self.waiters).into_keys() {
            self.store.unpark(waiter);
        }
        self.parked.clear();
        for reservation in std::mem::take(&mut self.held).into_keys() {
            self.store.decline(reservation, now);
        }
        let ops: Vec<_> = self
            .queries
            .keys()
            .chain(self.outs_pending())
            .copied()
            .collect();
        for op in ops {
            self.reply(op, Reply::Failed(OverlayError::Leaving));
        }
        self.queries.clear();
        self.clear_outs();
        self.last_returns(now);
        let all = self.store.drain_matching(|_| true);
        let rest = Arc::clone(&self.view);
        let Some(&to) = rest.successors(self.id, 1).first() else {
            return;
        };
        let tuples: Vec<Wire> = all
            .into_iter()
            .filter_map(|(t, e)| Peer::wire(t, e, now))
            .collect();
        self.send_handover(to, tuples, true);
    }

    /// Sends tuples in batches of at most [`MAX_BATCH`](super::MAX_BATCH)
    /// tuples and [`MAX_BATCH_BYTES`](super::MAX_BATCH_BYTES), so that no
    /// message passes the wire's size limit however large the arc or its
    /// tuples.
    pub(super) fn send_handover(&mut self, to: u64, tuples: Vec<Wire>, adopt: bool) {
        for tuples in wire_batches(tuples) {
            self.send(to, Msg::Handover { tuples, adopt });
        }
    }
}
