//! One peer's state, the event dispatch, routing, `out` and replication.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::answer::{Answers, Chains};
use super::msg::{Ask, View};
use super::query::Query;
use super::reconcile::Quarantine;
use super::serve::{Held, Parked};
use super::write::Writing;
use super::{Command, Config, Event, Msg, Op, OpId, Reply, Tagged, TupleId};
use crate::keyspace::{Cover, Covers, Keyspace};
use crate::ring::{Ring, Router};
use crate::store::{ReservationId, Store, SubscriptionId, WaiterId};
use crate::template::Template;

/// Messages from a newer view held back at most.
const MAX_EARLY: usize = 4_096;
/// How long a message from a newer view waits for that view at most. Views
/// are numbered by each peer (one past the highest it has seen), so a peer
/// that changed its view alone (it dropped and let back a member the others
/// never dropped) runs ahead of the others for good: past this wait its
/// messages count under the view the receiver has, whose number rises to
/// theirs.
const EARLY_WAIT_MS: u64 = 2_000;

/// One peer of the overlay. See the module docs.
#[derive(Debug)]
pub struct Peer {
    pub(super) id: u64,
    pub(super) config: Config,
    pub(super) keyspace: Keyspace,
    pub(super) view: View,
    pub(super) router: Option<Router>,
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
    pub(super) copy_expiries: BTreeSet<(u64, TupleId)>,
    pub(super) tombstones: super::tombstones::Tombstones,
    pub(super) next_seq: u64,
    pub(super) outs: BTreeMap<OpId, Writing>,
    /// Batch `out`s ([`Op::OutAll`]) waiting for their acknowledgement.
    pub(super) batches: super::bulk::Batches,
    /// When the timer must look at the writes (`outs`, `returns`) at the
    /// latest: exact after each timer, lowered as writes start, and left
    /// early when they end (a spurious timer is harmless).
    pub(super) writes_due: Option<u64>,
    /// Put-backs not yet acknowledged, by their new id.
    pub(super) returns: BTreeMap<TupleId, Writing>,
    pub(super) queries: BTreeMap<OpId, Query>,
    pub(super) held: BTreeMap<ReservationId, Held>,
    pub(super) waiters: BTreeMap<WaiterId, Parked>,
    pub(super) parked: BTreeMap<(u64, OpId), WaiterId>,
    /// Other peers' subscriptions registered in the store.
    pub(super) subscribers: BTreeMap<SubscriptionId, (u64, OpId)>,
    pub(super) subscribed: BTreeMap<(u64, OpId), SubscriptionId>,
    pub(super) armed: Option<u64>,
    /// The epoch of the newest view taken.
    pub(super) epoch: u64,
    /// Messages sent under a newer view than this peer's, held back: the
    /// sender, the message, its view's number and when it arrived.
    pub(super) early: Vec<(u64, Msg, u64, u64)>,
    pub(super) inbox: VecDeque<Msg>,
    pub(super) commands: Vec<Command>,
    /// What this peer set aside when a member said it was gone, until the
    /// peers around it say what they removed meanwhile.
    pub(super) quarantine: Option<Quarantine>,
    /// The number the next chunk of a `Check` gets.
    pub(super) next_chunk: u32,
    /// The others dropped this peer from the ring (it was evicted, or
    /// frozen past their patience): its queries' candidates forgot them,
    /// and are asked again once a view has it back.
    pub(super) dropped: bool,
    /// Takes answered down a chain of copy holders, passed on from here
    /// and not answered yet.
    pub(super) passing: Chains,
    /// Takes answered at this peer as their asker.
    pub(super) answers: Answers,
    /// Covers of recent templates' keyword fields: a cover of a box is
    /// costly (milliseconds), and clients repeat their templates.
    covers: Covers,
}

impl Peer {
    /// Peer `id` with membership `view` (which should contain it).
    pub fn new(
        id: u64,
        config: Config,
        view: Arc<Ring>,
    ) -> Result<Peer, crate::keyspace::KeyspaceError> {
        let keyspace = Keyspace::new(config.dims)?;
        let mut peer = Peer {
            id,
            config,
            keyspace,
            view,
            router: None,
            span: None,
            successors: Vec::new(),
            predecessor: None,
            store: Store::with_exact_index().holding_at_most(config.max_tuples),
            copies: BTreeMap::new(),
            copy_expiries: BTreeSet::new(),
            tombstones: Default::default(),
            next_seq: 0,
            outs: BTreeMap::new(),
            batches: Default::default(),
            writes_due: None,
            returns: BTreeMap::new(),
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
            quarantine: None,
            next_chunk: 0,
            dropped: false,
            passing: Chains::new(),
            answers: Answers::default(),
            covers: Covers::new(keyspace, config.max_ranges),
        };
        peer.refresh_neighbourhood();
        Ok(peer)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Numbers the tuples written here from `seq` on (a new peer counts
    /// from 0). A tuple's id is (peer id, sequence number): a peer taking
    /// an id another peer had before (a restart with the same key, a move
    /// to a place once held) must not count again from where that one did.
    pub fn number_ids_from(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Client operations still in flight here.
    pub fn pending(&self) -> usize {
        self.outs.len() + self.batches.len() + self.queries.len()
    }

    /// Queries whose accept is in flight, and put-backs not yet stored: a
    /// crash now may lose the tuples (taken at their candidate, never
    /// delivered or written back).
    pub fn accepting(&self) -> usize {
        self.queries.values().filter(|q| q.accepting()).count() + self.returns.len()
    }

    /// How many tuples this peer holds as primary, stored or reserved:
    /// [`Peer::primary_ids`]'s length, read from counters the store keeps
    /// (what `status` and `/metrics` report, at any size, in O(1)).
    pub fn primary_count(&self) -> usize {
        self.store.len() + self.held.len()
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

    /// The keyspace cover of `template`, remembered.
    pub(super) fn cover(&mut self, template: &Template) -> Cover {
        self.covers.cover(template)
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
            let moved = self.on_view(view, changed, now);
            self.forget_departed(now);
            self.resend_chains(now);
            let resent = !self.commands.is_empty() || !self.inbox.is_empty();
            let back = self.dropped && self.member();
            self.dropped &= !back;
            if !moved && !resent && self.early.is_empty() && self.queries.is_empty() {
                return Vec::new();
            }
            self.replay_early(now);
            self.reask(back, now);
            return self.finish_event(now);
        }
        match event {
            Event::Client { op, request } => self.on_client(op, request, now),
            Event::Message { from, msg, epoch } if epoch > self.epoch => {
                // Sent under a view this peer has not seen yet: held back
                // until it has (beyond the bound, dropped: senders retry).
                if self.early.len() < MAX_EARLY {
                    self.early.push((from, msg, epoch, now));
                }
            }
            Event::Message { from, msg, .. } => self.on_message(from, msg, now),
            Event::Timer => self.on_timer(now),
            Event::View { .. } => unreachable!("handled above"),
            Event::Leave => self.on_leave(now),
            Event::Cancel { op } => self.cancel(op, now),
            Event::PutBack { tuples } => {
                for (tuple, ttl_ms) in tuples {
                    self.start_return(tuple, ttl_ms, now);
                }
            }
            Event::Doubted => self.doubted(now),
        }
        self.finish_event(now)
    }

    fn replay_early(&mut self, now: u64) {
        let epoch = self.epoch;
        let (due, later) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|&(_, _, e, _)| e <= epoch);
        self.early = later;
        for (from, msg, _, _) in due {
            self.on_message(from, msg, now);
        }
    }

    /// Messages held back for [`EARLY_WAIT_MS`] without their view
    /// arriving: this peer takes their view's number and hears them.
    fn overdue_early(&mut self, now: u64) {
        let overdue = self
            .early
            .iter()
            .filter(|&&(_, _, _, at)| at + EARLY_WAIT_MS <= now)
            .map(|&(_, _, epoch, _)| epoch)
            .max();
        if let Some(epoch) = overdue {
            self.epoch = self.epoch.max(epoch);
            self.replay_early(now);
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
        // Writes and queries have a pool each: waiting queries, however
        // many, never leave a write without room.
        let busy = match request {
            Op::Unsubscribe { .. } => false,
            Op::Out { .. } => self.batch_busy(1),
            Op::OutAll { ref tuples, .. } => self.batch_busy(tuples.len()),
            _ => self.queries.len() >= self.config.max_pending,
        };
        if busy {
            self.reply(op, Reply::Failed(super::OverlayError::Busy));
            return;
        }
        match request {
            Op::Out { tuple, ttl_ms } => self.start_out(op, tuple, ttl_ms, now),
            Op::In {
                template,
                wait_ms,
                max,
            } => self.start(op, Ask::Take(max.max(1)), template, wait_ms, now),
            Op::Rd { template, wait_ms } => self.start(op, Ask::Read, template, wait_ms, now),
            Op::Scan { template, limit } => {
                self.start(op, Ask::Scan(limit), template, Some(0), now)
            }
            Op::Subscribe { template } => self.start(op, Ask::Subscribe, template, None, now),
            Op::Unsubscribe { subscription } => self.unsubscribe(op, subscription),
            Op::OutAll { tuples, ttl_ms } => self.start_batch(op, tuples, ttl_ms, now),
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
            Msg::Full { op } => self.on_full(op),
            Msg::Stored {
                op,
                id,
                hops,
                replicas,
            } => self.on_stored(op, id, hops, replicas),
            Msg::Replicate { tuples, ack } => {
                // Evicted, it keeps nothing: no confirmation either.
                let ack = ack.filter(|_| self.member());
                for wire in tuples {
                    let id = wire.0.id;
                    let Some(wire) = self.set_aside(wire, false, now) else {
                        continue;
                    };
                    self.place(wire, false, now);
                    if let Some((origin, op)) = ack {
                        self.send(origin, Msg::Copied { op, id });
                    }
                }
            }
            Msg::Copied { op, id } => self.on_copied(from, op, id),
            Msg::Handover { tuples, adopt } => {
                for wire in tuples {
                    let Some(wire) = self.set_aside(wire, true, now) else {
                        continue;
                    };
                    if adopt && self.member() {
                        self.adopt(wire, None, now);
                    } else {
                        self.place(wire, true, now);
                    }
                }
            }
            Msg::Remove { tuples, chain } => self.on_remove(tuples, chain, now),
            Msg::Answered { first } => self.on_answered(first),
            Msg::Resend { first } => self.on_resend(from, first, now),
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
                reservations,
            } => self.on_offer(from, op, round, reservations, now),
            Msg::Waiting { op, round } => self.on_waiting(from, op, round, now),
            Msg::Copies {
                op,
                round,
                tuples,
                more,
            } => self.on_copies(from, op, round, tuples, more, now),
            Msg::NoMatch { op, round } => self.on_no_match(from, op, round, now),
            Msg::Accept { op, reservations } => self.on_accept(from, op, reservations, now),
            Msg::Decline { reservations } => self.on_decline(reservations, now),
            Msg::Taken {
                op,
                by,
                tuples,
                links,
            } => self.on_taken(by, op, tuples, links, now),
            Msg::Cancel { op } => self.on_cancel(from, op, now),
            Msg::Notified { op, tuple } => self.on_notified(op, tuple),
            Msg::Check { chunk, ids } => self.on_check(from, chunk, ids),
            Msg::Checked { chunk, removed } => self.on_checked(from, chunk, removed, now),
            Msg::RouteBatch {
                hops,
                origin,
                op,
                tuples,
            } => self.route_batch(hops, origin, op, tuples, now),
            Msg::ReplicateBatch { tuples, origin, op } => {
                self.on_replicate_batch(tuples, origin, op, now)
            }
            Msg::StoredBatch { op, ids, replicas } => self.on_stored_batch(op, ids, replicas),
            Msg::CopiedBatch { op, ids } => self.on_copied_batch(from, op, ids),
        }
    }

    fn on_timer(&mut self, now: u64) {
        self.armed = None;
        self.overdue_early(now);
        let effects = self.store.tick(now);
        self.on_effects(effects, now);
        self.lapse_reservations(now);
        self.expire_queries(now);
        self.expire_chains(now);
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
        self.check_again(now);
        self.tombstones.expire(now);
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
            self.writes_due,
            self.queries.values().filter_map(Query::due).min(),
            self.held.values().map(|h| h.lease_end).min(),
            self.tombstones.next_end(),
            self.copy_expiries.first().map(|&(at, _)| at),
            self.quarantine.as_ref().map(Quarantine::due),
            self.chains_due(),
            self.early
                .iter()
                .map(|&(_, _, _, at)| at + EARLY_WAIT_MS)
                .min(),
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

    pub(super) fn router(&mut self) -> &Router {
        let (id, view, successors) = (self.id, &self.view, self.config.successors);
        self.router
            .get_or_insert_with(|| Router::from_view(id, view, successors))
    }

    pub(super) fn forget_router(&mut self) {
        self.router = None;
    }
}
