//! One peer's state, the event dispatch, routing, `out` and replication.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::msg::{Ask, View, Wire};
use super::query::Query;
use super::serve::{Held, Parked};
use super::{Command, Config, Event, Msg, Op, OpId, Reply, Tagged, TupleId};
use crate::keyspace::Keyspace;
use crate::ring::{Hop, Ring, Router};
use crate::store::{Effect, ReservationId, Store, SubscriptionId, WaiterId};
use crate::template::Template;
use crate::tuple::Tuple;

/// Messages from a newer view held back at most.
const MAX_EARLY: usize = 4_096;

/// A primary's `out` waiting for its replicas' acknowledgements.
#[derive(Debug)]
struct Replicating {
    origin: u64,
    op: OpId,
    id: TupleId,
    hops: u32,
    waiting: BTreeSet<u64>,
}

/// A client's `out` waiting for its acknowledgement; re-sent (same id, so
/// the primary stores it once) every `retry_ms` until the deadline.
#[derive(Debug)]
struct Writing {
    deadline: u64,
    retry_at: u64,
    index: u64,
    tuple: Tagged,
    expires_at: Option<u64>,
}

/// One peer of the overlay. See the module docs.
#[derive(Debug)]
pub struct Peer {
    pub(super) id: u64,
    pub(super) config: Config,
    pub(super) keyspace: Keyspace,
    pub(super) view: View,
    router: Option<Router>,
    /// The stretch of ring whose changes move this peer's tuples: from its
    /// R-th predecessor to its R-th successor; `None` on small rings.
    pub(super) span: Option<(u64, u64)>,
    /// This peer's replica set after itself: its next R−1 peers.
    pub(super) successors: Vec<u64>,
    /// The predecessor when the view last concerned this peer.
    pub(super) predecessor: Option<u64>,
    /// The tuples this peer is primary for (stored form).
    pub(super) store: Store,
    /// Copies held for the arcs this peer is a replica of.
    pub(super) copies: BTreeMap<TupleId, (Tagged, Option<u64>)>,
    copy_expiries: BTreeSet<(u64, TupleId)>,
    tombstones: BTreeMap<TupleId, u64>,
    tombstone_ends: BTreeSet<(u64, TupleId)>,
    next_seq: u64,
    next_token: u64,
    outs: BTreeMap<OpId, Writing>,
    replicating: BTreeMap<u64, Replicating>,
    pub(super) queries: BTreeMap<OpId, Query>,
    pub(super) held: BTreeMap<ReservationId, Held>,
    pub(super) waiters: BTreeMap<WaiterId, Parked>,
    pub(super) parked: BTreeMap<(u64, OpId), WaiterId>,
    /// Other peers' subscriptions registered in the store.
    pub(super) subscribers: BTreeMap<SubscriptionId, (u64, OpId)>,
    pub(super) subscribed: BTreeMap<(u64, OpId), SubscriptionId>,
    armed: Option<u64>,
    /// The epoch of the newest view taken.
    epoch: u64,
    /// Messages sent under a newer view than this peer's, held back.
    early: Vec<(u64, Msg, u64)>,
    inbox: VecDeque<Msg>,
    commands: Vec<Command>,
}

impl Peer {
    /// Peer `id` with membership `view` (which should contain it).
    pub fn new(
        id: u64,
        config: Config,
        view: Arc<Ring>,
    ) -> Result<Peer, crate::keyspace::KeyspaceError> {
        let mut peer = Peer {
            id,
            config,
            keyspace: Keyspace::new(config.dims)?,
            view,
            router: None,
            span: None,
            successors: Vec::new(),
            predecessor: None,
            store: Store::new(),
            copies: BTreeMap::new(),
            copy_expiries: BTreeSet::new(),
            tombstones: BTreeMap::new(),
            tombstone_ends: BTreeSet::new(),
            next_seq: 0,
            next_token: 0,
            outs: BTreeMap::new(),
            replicating: BTreeMap::new(),
            queries: BTreeMap::new(),
            held: BTreeMap::new(),
            waiters: BTreeMap::new(),
            parked: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            subscribed: BTreeMap::new(),
            armed: None,
            epoch: 0,
            early: Vec::new(),
            inbox: VecDeque::new(),
            commands: Vec::new(),
        };
        peer.refresh_neighbourhood();
        Ok(peer)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Client operations still in flight here.
    pub fn pending(&self) -> usize {
        self.outs.len() + self.queries.len()
    }

    /// Queries whose accept is in flight: a crash now may lose the tuple
    /// accepted (taken at its candidate, never delivered).
    pub fn accepting(&self) -> usize {
        self.queries.values().filter(|q| q.accepting()).count()
    }

    /// The ids this peer holds as primary, stored or reserved, in order.
    pub fn primary_ids(&self) -> Vec<TupleId> {
        let mut ids: Vec<TupleId> = self
            .store
            .stored()
            .into_iter()
            .filter_map(|(t, _)| Tagged::from_stored(t))
            .map(|t| t.id)
            .chain(self.held.values().map(|h| h.tuple.id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The ids this peer holds copies of for other primaries, in order.
    pub fn copy_ids(&self) -> Vec<TupleId> {
        self.copies.keys().copied().collect()
    }

    /// The peers a template's operations ask: the owners of its cover.
    pub fn candidates(&self, template: &Template) -> Vec<u64> {
        let ranges = self.keyspace.ranges_for(template, self.config.max_ranges);
        self.view.owners_of(&ranges)
    }

    /// Feeds one event at time `now`; returns what the driver must do.
    pub fn handle(&mut self, event: Event, now: u64) -> Vec<Command> {
        if let Event::View {
            view,
            changed,
            epoch,
        } = event
        {
            self.epoch = self.epoch.max(epoch);
            // Most changes are far away: only the view and router change.
            if !self.on_view(view, changed, now) && self.early.is_empty() {
                return Vec::new();
            }
            self.replay_early(now);
            return self.finish_event(now);
        }
        match event {
            Event::Client { op, request } => self.on_client(op, request, now),
            Event::Message { from, msg, epoch } if epoch > self.epoch => {
                // Sent under a view this peer has not seen yet: held back
                // until it has (beyond the bound, dropped: senders retry).
                if self.early.len() < MAX_EARLY {
                    self.early.push((from, msg, epoch));
                }
            }
            Event::Message { from, msg, .. } => self.on_message(from, msg, now),
            Event::Timer => self.on_timer(now),
            Event::View { .. } => unreachable!("handled above"),
            Event::Leave => self.on_leave(now),
        }
        self.finish_event(now)
    }

    fn replay_early(&mut self, now: u64) {
        let epoch = self.epoch;
        let (due, later) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|&(_, _, e)| e <= epoch);
        self.early = later;
        for (from, msg, _) in due {
            self.on_message(from, msg, now);
        }
    }

    fn finish_event(&mut self, now: u64) -> Vec<Command> {
        while let Some(msg) = self.inbox.pop_front() {
            self.on_message(self.id, msg, now);
        }
        self.arm();
        std::mem::take(&mut self.commands)
    }

    fn on_client(&mut self, op: OpId, request: Op, now: u64) {
        let ends = matches!(request, Op::Unsubscribe { .. });
        if !ends && self.pending() >= self.config.max_pending {
            self.reply(op, Reply::Failed(super::OverlayError::Busy));
            return;
        }
        match request {
            Op::Out { tuple, ttl_ms } => {
                let id = TupleId {
                    origin: self.id,
                    seq: self.next_seq,
                };
                self.next_seq += 1;
                let writing = Writing {
                    deadline: now + self.config.out_timeout_ms,
                    retry_at: now,
                    index: self.keyspace.index_of(&tuple),
                    tuple: Tagged { id, tuple },
                    expires_at: ttl_ms.map(|t| now + t),
                };
                self.outs.insert(op, writing);
                self.retry_outs(now);
            }
            Op::In { template, wait_ms } => self.start(op, Ask::Take, template, wait_ms, now),
            Op::Rd { template, wait_ms } => self.start(op, Ask::Read, template, wait_ms, now),
            Op::Scan { template, limit } => {
                self.start(op, Ask::Scan(limit), template, Some(0), now)
            }
            Op::Subscribe { template } => self.start(op, Ask::Subscribe, template, None, now),
            Op::Unsubscribe { subscription } => self.unsubscribe(op, subscription),
        }
    }

    fn on_message(&mut self, from: u64, msg: Msg, now: u64) {
        match msg {
            Msg::Route {
                index,
                hops,
                origin,
                op,
                tuple,
            } => self.route(index, hops, origin, op, tuple, now),
            Msg::Stored { op, id, hops } => {
                if self.outs.remove(&op).is_some() {
                    self.reply(op, Reply::Stored { id, hops });
                }
            }
            Msg::Replicate { tuples, token } => {
                for wire in tuples {
                    self.place(wire, false, now);
                }
                if let Some(token) = token {
                    self.send(from, Msg::ReplicaAck { token });
                }
            }
            Msg::ReplicaAck { token } => self.replica_acked(token, from),
            Msg::Handover { tuples, adopt } => {
                for wire in tuples {
                    if adopt {
                        self.adopt(wire, None, now);
                    } else {
                        self.place(wire, true, now);
                    }
                }
            }
            Msg::Remove { tuple } => self.on_remove(tuple, now),
            Msg::Ask {
                op,
                round,
                ask,
                template,
                wait_ms,
            } => self.on_ask(from, op, round, ask, template, wait_ms, now),
            Msg::Offer {
                op,
                round,
                reservation,
                tuple: _,
            } => self.on_offer(from, op, round, reservation),
            Msg::Copies { op, round, tuples } => self.on_copies(from, op, round, tuples),
            Msg::NoMatch { op, round } => self.on_no_match(from, op, round),
            Msg::Accept { op, reservation } => self.on_accept(from, op, reservation, now),
            Msg::Decline { reservation } => self.on_decline(reservation, now),
            Msg::Taken { op, tuple } => self.on_taken(op, tuple),
            Msg::AcceptFailed { op } => self.on_accept_failed(op, now),
            Msg::Cancel { op } => self.on_cancel(from, op),
            Msg::Notified { op, tuple } => self.on_notified(op, tuple),
        }
    }

    fn on_timer(&mut self, now: u64) {
        self.armed = None;
        let effects = self.store.tick(now);
        self.on_effects(effects, now);
        self.lapse_reservations(now);
        self.expire_queries(now);
        let late: Vec<OpId> = self
            .outs
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(&op, _)| op)
            .collect();
        for op in late {
            self.outs.remove(&op);
            self.reply(op, Reply::Failed(super::OverlayError::Timeout));
        }
        self.retry_outs(now);
        while let Some(&(at, id)) = self.tombstone_ends.first() {
            if at > now {
                break;
            }
            self.tombstone_ends.pop_first();
            self.tombstones.remove(&id);
        }
        while let Some(&(at, id)) = self.copy_expiries.first() {
            if at > now {
                break;
            }
            self.copy_expiries.pop_first();
            self.copies.remove(&id);
        }
    }

    /// Arms the timer for the earliest thing due, if that changed.
    fn arm(&mut self) {
        let due = [
            self.store.next_deadline(),
            self.outs.values().map(|w| w.retry_at.min(w.deadline)).min(),
            self.queries.values().filter_map(Query::due).min(),
            self.held.values().map(|h| h.lease_end).min(),
            self.tombstone_ends.first().map(|&(at, _)| at),
            self.copy_expiries.first().map(|&(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = due
            && self.armed != Some(at)
        {
            self.armed = Some(at);
            self.commands.push(Command::ArmTimer { at });
        }
    }

    pub(super) fn send(&mut self, to: u64, msg: Msg) {
        if to == self.id {
            self.inbox.push_back(msg);
        } else {
            let epoch = self.epoch;
            self.commands.push(Command::Send { to, msg, epoch });
        }
    }

    pub(super) fn reply(&mut self, op: OpId, reply: Reply) {
        self.commands.push(Command::Reply { op, reply });
    }

    fn router(&mut self) -> &Router {
        let (id, view, successors) = (self.id, &self.view, self.config.successors);
        self.router
            .get_or_insert_with(|| Router::from_view(id, view, successors))
    }

    pub(super) fn forget_router(&mut self) {
        self.router = None;
    }

    /// Forwards an `out` one hop, or stores it here if this peer owns it.
    fn route(&mut self, index: u64, hops: u32, origin: u64, op: OpId, wire: Wire, now: u64) {
        let next = match self.router().next_hop(index) {
            Hop::Here => None,
            Hop::Owner(p) | Hop::Forward(p) => Some(p),
        };
        match next {
            None => self.adopt(wire, Some((origin, op, hops)), now),
            Some(p) if hops < self.config.max_hops => {
                let msg = Msg::Route {
                    index,
                    hops: hops + 1,
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
        let expires_at = ttl.map(|t| now + t);
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
                // Full: not stored, not acknowledged; the origin times out.
                Err(_) => return,
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
    fn retry_outs(&mut self, now: u64) {
        let retry_ms = self.config.retry_ms;
        let due: Vec<(OpId, u64, super::msg::Wire)> = self
            .outs
            .iter_mut()
            .filter(|(_, w)| w.retry_at <= now)
            .map(|(&op, w)| {
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

    fn replica_acked(&mut self, token: u64, from: u64) {
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
        let expires_at = ttl.map(|t| now + t);
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
