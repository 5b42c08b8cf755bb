//! The driver's part in spreading the load ([`crate::overlay::plan_move`]).
//!
//! A member holding at least [`MIN_LOAD`] tuples counts everyone's every
//! [`ROUND`] (times the ring's size over four, so the ring as a whole
//! counts about once a round), with the `CountAsk` that `status` uses.
//! If the plan makes this peer the heavy one, it finds its split point and
//! tells the mover ([`PeerMessage::Move`]). The mover, if no operation of
//! its clients is pending and the view has been still for [`SETTLE`],
//! leaves its place (the overlay hands its tuples to its successor, as a
//! graceful leave does), becomes a new overlay peer at the new place, and
//! tells every member [`PeerMessage::Moved`]; each drops the old place and
//! adds the new one (two views), and the owner of the new place hands the
//! mover its share, as to a newcomer.
//!
//! Order is what keeps every tuple: `Moved` goes on each link after what
//! the old peer sent on it (the handover first), and before anything the
//! new peer sends, so a member has adopted the handover before it sees
//! the move, and sees the move before any message from the new place
//! (whose later epoch would hold it back anyway). No member ever takes the
//! mover for gone, so nothing it sends is dropped as from a lost peer.
//!
//! Bounds: one move per heavy peer per [`SETTLE`], none while the view
//! changes, and the plan's hysteresis (see `overlay::balance`); a peer
//! whose tuples no index splits looks again after [`UNSPLIT_WAIT`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use super::Driver;
use super::checks;
use crate::overlay::{Event, Peer, plan_move};
use crate::ring::Ring;
use crate::wire::{Member, PeerMessage};

/// How often a loaded member of a ring of four or fewer counts the load.
const ROUND: Duration = Duration::from_secs(2);
/// How long the view must have been still, and since this peer's last
/// move or offer, before a count or a move.
const SETTLE: Duration = Duration::from_secs(5);
/// Primaries the heaviest peer holds before a move is worth it.
pub(super) const MIN_LOAD: u64 = 64;
/// How long a peer whose tuples no index splits (a job's tasks share
/// their keywords, so their index) waits before it looks again, unless
/// its load changes by a quarter.
const UNSPLIT_WAIT: Duration = Duration::from_secs(60);

/// When the driver last did what bounds the moves.
#[derive(Debug)]
pub(super) struct Balancer {
    next_round: Instant,
    /// The last change of the view.
    pub(super) changed: Instant,
    /// This peer's last move, or last move it asked for.
    acted: Option<Instant>,
    /// This peer's load when no index split it, and when.
    unsplit: Option<(u64, Instant)>,
}

impl Balancer {
    pub(super) fn new() -> Balancer {
        let now = Instant::now();
        Balancer {
            next_round: now,
            changed: now,
            acted: None,
            unsplit: None,
        }
    }

    /// Whether `load` was found unsplittable lately, near enough.
    fn unsplittable(&self, load: u64, now: Instant) -> bool {
        self.unsplit.is_some_and(|(was, at)| {
            now.duration_since(at) < UNSPLIT_WAIT && load.abs_diff(was) <= was / 4
        })
    }

    fn settled(&self, now: Instant) -> bool {
        now.duration_since(self.changed) >= SETTLE
            && self.acted.is_none_or(|at| now.duration_since(at) >= SETTLE)
    }
}

impl Driver {
    /// Counts the ring's load, when due, settled, and holding enough.
    pub(super) fn balance_round(&mut self) {
        if !self.config.balance {
            return;
        }
        let now = Instant::now();
        if now < self.balancer.next_round {
            return;
        }
        let rounds = u32::try_from(self.members.len().div_ceil(4)).unwrap_or(u32::MAX);
        self.balancer.next_round = now + ROUND.saturating_mul(rounds.max(1));
        let member = !self.evicted && self.joining.is_empty() && self.members.len() > 1;
        let load = self.peer.primary_count() as u64;
        if member
            && self.balancer.settled(now)
            && load >= MIN_LOAD
            && !self.balancer.unsplittable(load, now)
            && self.counting.values().all(|c| c.answer.is_some())
        {
            self.start_count(None);
        }
    }

    /// Every member's count is in: if the plan's heavy peer is this one,
    /// tells the mover where to go.
    pub(super) fn balance_counted(&mut self, counts: BTreeMap<u64, u64>) {
        if self.members.keys().any(|id| !counts.contains_key(id)) {
            return;
        }
        let loads: Vec<(u64, u64)> = self.members.keys().map(|id| (*id, counts[id])).collect();
        let Some(plan) = plan_move(&loads, MIN_LOAD) else {
            return;
        };
        if plan.heavy != self.my_id || !self.balancer.settled(Instant::now()) {
            return;
        }
        let Some(at) = self.peer.split_point(plan.below) else {
            let load = self.peer.primary_count() as u64;
            self.balancer.unsplit = Some((load, Instant::now()));
            tracing::debug!(load, "no index splits this peer's tuples");
            return;
        };
        if self.members.contains_key(&at) {
            return;
        }
        tracing::info!(
            mover = plan.mover,
            at,
            below = plan.below,
            ?loads,
            "asking a light peer to move into this arc"
        );
        self.balancer.acted = Some(Instant::now());
        self.send(plan.mover, PeerMessage::Move { at });
    }

    /// Member `from` asks this peer to move to `at`: done if nothing of
    /// this peer's clients is pending and the ring is settled.
    pub(super) fn move_asked(&mut self, from: u64, at: u64) {
        if !self.config.balance {
            tracing::info!(
                from,
                at,
                "asked to move, but balancing is off here (--no-balance)"
            );
            return;
        }
        let now = Instant::now();
        let ready = !self.evicted
            && self.joining.is_empty()
            && from != self.my_id
            && self.members.contains_key(&from)
            && !self.members.contains_key(&at)
            && self.peer.pending() == 0
            && self.balancer.settled(now);
        if !ready {
            tracing::debug!(from, at, "not moving now");
            return;
        }
        let old = self.my_id;
        let Some((me_peer, _)) = self.members.remove(&old) else {
            return;
        };
        tracing::info!(from = old, to = at, "moving to spread the load");
        self.balancer.acted = Some(now);
        // The old peer's handover goes out first, on each link.
        self.feed(Event::Leave);
        self.me.at = Some(at);
        self.my_id = at;
        self.members.insert(at, (me_peer, self.me.clone()));
        self.ids.insert(me_peer, at);
        let epoch = self.epoch.saturating_add(2);
        let member = self.me.clone();
        self.broadcast(PeerMessage::Moved { member, epoch });
        self.epoch = epoch;
        let lone = Arc::new(Ring::new());
        self.peer = Peer::new(at, self.config, lone).expect("the keyspace was valid");
        self.peer.number_ids_from(super::first_seq());
        self.new_view(at);
    }

    /// Member `from` (known at `old`) says it moved to the place its
    /// `member` names: the old place goes as on a leave, without taking it
    /// for gone, and the new one comes as on a join (two views).
    pub(super) fn moved(&mut self, from: PeerId, old: u64, member: &Member, epoch: u64) {
        let at = match checks::member(member) {
            Ok(checked) if checked.peer == from => checked.id,
            Ok(_) => {
                tracing::warn!(%from, "ignoring a Moved naming another peer");
                return;
            }
            Err(e) => {
                tracing::warn!(%from, error = %e, "ignoring a Moved with a bad address");
                return;
            }
        };
        if at == old || old == self.my_id || !self.members.contains_key(&old) {
            return;
        }
        self.epoch = self.epoch.max(epoch.saturating_sub(2));
        if self.members.contains_key(&at) {
            tracing::warn!(%from, at, "a member moved to a place another holds: dropping it");
            self.remove(old);
            return;
        }
        self.members.remove(&old);
        if let Some(link) = self.links.remove(&old) {
            self.links.insert(at, link);
        }
        self.epoch = self.epoch.saturating_add(1);
        self.new_view(old);
        self.ids.insert(from, at);
        self.members.insert(at, (from, member.clone()));
        self.epoch = self.epoch.saturating_add(1);
        self.new_view(at);
        self.publish_known();
    }
}
