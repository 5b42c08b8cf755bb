//! A peer the others dropped while it was alive (frozen, stalled, cut
//! off for a while) and that comes back: while it was away its successor
//! served its arc from the copies, and some of those tuples were taken.
//! What this peer still holds of them must not be taken a second time.
//!
//! So when a member says this peer is gone ([`super::Event::Doubted`]), it
//! sets everything it holds for the ring aside: its stored tuples, its
//! reserved ones (their leases ran out while it was away) and its copies.
//! It asks the peers around it (its R successors, which took its arc
//! over, and its R predecessors, whose copies it holds) which of those
//! ids they removed meanwhile: a `Check` of the ids, answered by
//! `Checked` with the ones they hold a tombstone for. A peer that still
//! counts this peer gone does not hear it (the driver drops the message),
//! so the `Check`s are sent again every `retry_ms` until it is let back
//! in: by then that peer no longer serves the arc, and its answer is
//! final. The ids someone removed are tombstoned here and dropped; the
//! rest go back where the current view puts them (the store, the copies,
//! or the arc's owner) once every asked peer has answered or left the
//! view, or after half the tombstone lifetime, past which answers would
//! mean little.
//!
//! What reaches this peer in its first `retry_ms` after it was told (an
//! `out` routed here, copies, handovers) is set aside and checked too: it
//! may have been sent before the others dropped it and waited in the
//! sockets while it was frozen. An `out` set aside is not acknowledged;
//! its origin sends it again.
//!
//! Set aside, the tuples are not served: a take on this peer's arc waits
//! for them. A member that lies with `Gone` costs this peer one round of
//! checks, not its data: only the peers around it are asked, and only the
//! ids asked about are believed. Removal needs a tombstone, which lasts
//! `tombstone_ms`: a peer away for longer can bring back tuples taken
//! before that (the README says so).

use std::collections::{BTreeMap, BTreeSet};

use super::bulk::wire_batches;
use super::msg::Wire;
use super::{Msg, Peer, Tagged, TupleId};
use crate::store::Effect;

/// Ids one `Check` or `Checked` carries at most (16 bytes each).
pub const CHECK_BATCH: usize = 4_096;

/// What a doubted peer set aside, and who has yet to answer for it.
#[derive(Debug)]
pub(super) struct Quarantine {
    /// The tuples set aside.
    tuples: BTreeMap<TupleId, Aside>,
    /// The ids asked about, chunk by chunk (numbered by the peer, never
    /// twice: a late answer to an earlier round matches nothing), each
    /// sorted.
    chunks: BTreeMap<u32, Vec<TupleId>>,
    /// The peers asked.
    asked: BTreeSet<u64>,
    /// Per asked peer, the chunks it has not answered.
    unanswered: BTreeMap<u64, BTreeSet<u32>>,
    /// Ids set aside on arrival, not yet asked about.
    late: Vec<TupleId>,
    /// Until when what arrives is set aside.
    late_until: u64,
    /// When the unanswered chunks are sent again.
    retry_at: u64,
    /// When what is left goes back whatever the answers.
    until: u64,
}

/// A tuple set aside: with its expiry, and whether this peer stored it
/// (else it held a copy).
#[derive(Debug)]
struct Aside {
    tagged: Tagged,
    expires_at: Option<u64>,
    stored: bool,
}

impl Quarantine {
    /// When the timer must look at it.
    pub(super) fn due(&self) -> u64 {
        self.retry_at.min(self.until)
    }
}

impl Peer {
    /// A member said this peer is gone: sets aside what it holds and asks
    /// the peers around it what was removed meanwhile.
    pub(super) fn doubted(&mut self, now: u64) {
        self.dropped = true;
        if !self.member() || self.quarantine.is_some() {
            return;
        }
        let mut tuples = BTreeMap::new();
        let mut stored = Vec::new();
        for (reservation, _) in std::mem::take(&mut self.held) {
            if let Some(kept) = self.store.accept_expiring(reservation) {
                stored.push(kept);
            }
        }
        stored.extend(self.store.drain_matching(|_| true));
        for (tuple, expires_at) in stored {
            if let Some(tagged) = Tagged::from_stored(tuple) {
                let aside = Aside {
                    tagged,
                    expires_at,
                    stored: true,
                };
                tuples.insert(aside.tagged.id, aside);
            }
        }
        self.copy_expiries.clear();
        for (id, (tagged, expires_at)) in std::mem::take(&mut self.copies) {
            let aside = Aside {
                tagged,
                expires_at,
                stored: false,
            };
            tuples.entry(id).or_insert(aside);
        }
        let late: Vec<TupleId> = tuples.keys().copied().collect();
        self.quarantine = Some(Quarantine {
            tuples,
            chunks: BTreeMap::new(),
            asked: self.around(),
            unanswered: BTreeMap::new(),
            late,
            late_until: now + self.config.retry_ms,
            retry_at: now,
            until: now + self.config.tombstone_ms / 2,
        });
        self.check_again(now);
    }

    /// Sets a tuple that arrived (routed, copied, handed over) aside while
    /// what arrives may be stale; gives it back otherwise.
    pub(super) fn set_aside(&mut self, wire: Wire, stored: bool, now: u64) -> Option<Wire> {
        let Some(q) = self.quarantine.as_mut().filter(|q| now < q.late_until) else {
            return Some(wire);
        };
        let (tagged, ttl) = wire;
        let id = tagged.id;
        if q.tuples.contains_key(&id) {
            return None;
        }
        let aside = Aside {
            tagged,
            expires_at: ttl.map(|t| now.saturating_add(t)),
            stored,
        };
        q.tuples.insert(id, aside);
        q.late.push(id);
        q.retry_at = now;
        None
    }

    /// The peers that may have removed this peer's tuples or copies while
    /// it was away: its R successors and R predecessors.
    fn around(&self) -> BTreeSet<u64> {
        let r = self.config.replicas;
        let mut peers: BTreeSet<u64> = self.view.successors(self.id, r).into_iter().collect();
        let mut before = self.id;
        for _ in 0..r {
            match self.view.predecessor(before) {
                Some(p) => {
                    peers.insert(p);
                    before = p;
                }
                None => break,
            }
        }
        peers.remove(&self.id);
        peers
    }

    /// Sends every unanswered chunk to the peer that owes it, and goes
    /// back to the tuples whatever the answers once the time is up.
    pub(super) fn check_again(&mut self, now: u64) {
        let Some(q) = &mut self.quarantine else {
            return;
        };
        if !q.late.is_empty() {
            let mut late = std::mem::take(&mut q.late);
            late.sort_unstable();
            for ids in late.chunks(CHECK_BATCH) {
                let chunk = self.next_chunk;
                self.next_chunk = self.next_chunk.wrapping_add(1);
                q.chunks.insert(chunk, ids.to_vec());
                for &peer in q.asked.iter().filter(|&&p| self.view.contains(p)) {
                    q.unanswered.entry(peer).or_default().insert(chunk);
                }
            }
        }
        if now >= q.until || q.unanswered.is_empty() {
            return self.release(now);
        }
        if now < q.retry_at {
            return;
        }
        q.retry_at = now + self.config.retry_ms;
        let mut checks = Vec::new();
        for (&peer, chunks) in &q.unanswered {
            for &chunk in chunks {
                let ids = q.chunks[&chunk].clone();
                checks.push((peer, Msg::Check { chunk, ids }));
            }
        }
        for (to, msg) in checks {
            self.send(to, msg);
        }
    }

    /// Peer `from` asks which of `ids` were removed here.
    pub(super) fn on_check(&mut self, from: u64, chunk: u32, ids: Vec<TupleId>) {
        let removed = ids
            .into_iter()
            .filter(|id| self.tombstones.contains(id))
            .collect();
        self.send(from, Msg::Checked { chunk, removed });
    }

    /// Peer `from` removed `removed` of the ids of `chunk`: those (only
    /// ids asked about) are dropped for good.
    pub(super) fn on_checked(&mut self, from: u64, chunk: u32, removed: Vec<TupleId>, now: u64) {
        let Some(q) = &mut self.quarantine else {
            return;
        };
        let Some(owed) = q.unanswered.get_mut(&from) else {
            return;
        };
        if !owed.remove(&chunk) {
            return;
        }
        if owed.is_empty() {
            q.unanswered.remove(&from);
        }
        let asked = &q.chunks[&chunk];
        let gone: Vec<TupleId> = removed
            .into_iter()
            .filter(|id| asked.binary_search(id).is_ok())
            .collect();
        for id in &gone {
            q.tuples.remove(id);
        }
        let done = q.unanswered.is_empty() && q.late.is_empty();
        for id in gone {
            self.tombstone(id, now);
        }
        if done {
            self.release(now);
        }
    }

    /// A new view: peers asked that left it will not answer. True if that
    /// ended the wait (what was set aside is back).
    pub(super) fn check_view(&mut self, now: u64) -> bool {
        let view = std::sync::Arc::clone(&self.view);
        let Some(q) = &mut self.quarantine else {
            return false;
        };
        q.unanswered.retain(|&peer, _| view.contains(peer));
        let done = q.unanswered.is_empty() && q.late.is_empty();
        if done {
            self.release(now);
        }
        done
    }

    /// Puts what is left of the tuples set aside where the view says:
    /// this peer's own in the store (copied again to its successors), its
    /// copies among the copies, the rest of what it stored to the owner
    /// (a copy it is no longer a replica for is dropped).
    fn release(&mut self, now: u64) {
        let Some(q) = self.quarantine.take() else {
            return;
        };
        let r = self.config.replicas;
        let mut mine: Vec<Wire> = Vec::new();
        let mut elsewhere: BTreeMap<u64, Vec<Wire>> = BTreeMap::new();
        for (id, aside) in q.tuples {
            let Aside {
                tagged,
                expires_at,
                stored,
            } = aside;
            if expires_at.is_some_and(|at| at <= now) || self.tombstones.contains(&id) {
                continue;
            }
            let index = self.index_of(&tagged);
            let set = self.view.replicas(index, r);
            let wire = (tagged, expires_at.map(|at| at - now));
            if set.first() == Some(&self.id) {
                if !self.has(&wire.0, now) && self.restore(&wire.0, expires_at, now) {
                    mine.push(wire);
                }
            } else if set.contains(&self.id) {
                self.keep_copy(wire, now);
            } else if let Some(&owner) = set.first().filter(|_| stored) {
                elsewhere.entry(owner).or_default().push(wire);
            }
        }
        let batches = wire_batches(mine);
        for to in self.successors.clone() {
            for tuples in &batches {
                let tuples = tuples.clone();
                self.send(to, Msg::Replicate { tuples, ack: None });
            }
        }
        for (to, tuples) in elsewhere {
            self.send_handover(to, tuples, false);
        }
    }

    /// Stores a tuple set aside back as primary; false if the store is
    /// full. Waiters may take it; subscribers heard of it when written.
    fn restore(&mut self, tagged: &Tagged, expires_at: Option<u64>, now: u64) -> bool {
        match self.store.out(tagged.stored(), expires_at, now) {
            Ok(mut effects) => {
                effects.retain(|e| !matches!(e, Effect::Notify { .. }));
                self.on_effects(effects, now);
                true
            }
            Err(_) => false,
        }
    }
}
