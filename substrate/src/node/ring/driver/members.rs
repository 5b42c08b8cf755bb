//! The driver's membership: who is heard, adding and dropping members,
//! probing a member said to be gone, refuting a word that this peer is,
//! and evicting itself when most members have said so.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use super::super::checks;
use super::super::links::peer_of;
use super::super::trust::Verdict;
use super::{DEPARTED, Driver, TELL_EVERY};
use crate::overlay::Event;
use crate::wire::{Member, PeerMessage};

/// How long a lost member is told, unasked, that it was found lost: long
/// enough for one that is alive after all (a stream broken under load, a
/// probe that came late) to hear it and join again.
const RETELL_FOR: Duration = Duration::from_secs(60);
/// How often a lost member is told so, unasked.
const RETELL_EVERY: Duration = Duration::from_secs(5);

/// A member found lost: its address, when it was dropped, and when it
/// was last told so.
#[derive(Debug)]
pub(super) struct Departed {
    member: Member,
    since: Instant,
    told: Option<Instant>,
}

impl Driver {
    /// Whether a message from `from` (ring id `id`) is to be heard: it is
    /// a member, or a peer this peer is joining through.
    pub(super) fn hears(&self, id: u64, from: PeerId) -> bool {
        self.members.contains_key(&id) || self.joining.iter().any(|a| peer_of(a) == Some(from))
    }

    /// Tells the link readers whom to let speak: members, the peers this
    /// peer joins through, and lost members (told so when they speak).
    pub(super) fn publish_known(&self) {
        let members = self.members.values().map(|(peer, _)| *peer);
        let joining = self.joining.iter().filter_map(peer_of);
        let departed = self
            .departed
            .values()
            .filter_map(|d| d.member.addr.parse().ok().as_ref().and_then(peer_of));
        let known = members.chain(joining).chain(departed).collect();
        self.known.send_replace(Arc::new(known));
    }

    /// Member `from` said this peer is gone: refuted by joining again
    /// through it, unless most members have said so.
    pub(super) fn doubted_by(&mut self, from: u64) {
        match self.doubters.doubt(from, &self.others(), Instant::now()) {
            Verdict::Evict => self.evict(),
            Verdict::Refute => {
                if self.refuted.is_some_and(|at| at.elapsed() < TELL_EVERY) {
                    return;
                }
                self.refuted = Some(Instant::now());
                tracing::warn!("a member found this peer gone: joining again through it");
                self.rejoin_through(from);
            }
        }
    }

    /// Asks peer `id` (a member, or one found lost) to let this peer in
    /// again, opening the link if need be. Found gone, this peer first sets
    /// aside what it holds until the peers around it say what they took
    /// meanwhile (`overlay::reconcile`).
    pub(super) fn rejoin_through(&mut self, id: u64) {
        self.feed(Event::Doubted);
        let addr = match (self.members.get(&id), self.departed.get(&id)) {
            (Some((_, member)), _) | (None, Some(Departed { member, .. })) => member.addr.parse(),
            (None, None) => return,
        };
        if let Ok(addr) = addr {
            self.connect(&addr);
        }
        let member = self.me.clone();
        self.send(id, PeerMessage::Join { member });
    }

    /// Whether `msg` says this very peer is gone.
    pub(super) fn names_me(&self, msg: &PeerMessage) -> bool {
        matches!(msg, PeerMessage::Gone { member, .. }
            if checks::member(member).is_ok_and(|checked| checked.id == self.my_id))
    }

    /// Tells the members lost in the last [`RETELL_FOR`] that they were,
    /// every [`RETELL_EVERY`]: one alive after all that is not talking to
    /// this peer would otherwise never learn it, and the two views would
    /// stay apart. A dead one costs a failed dial.
    pub(super) fn retell_departed(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .departed
            .iter()
            .filter(|(_, d)| now.duration_since(d.since) < RETELL_FOR)
            .filter(|(_, d)| {
                d.told
                    .is_none_or(|at| now.duration_since(at) >= RETELL_EVERY)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.tell_departed(id);
        }
    }

    /// Asks member `id` something it answers at once: any message from it
    /// clears it of suspicion.
    pub(super) fn probe(&mut self, id: u64) {
        if !self.links.contains_key(&id)
            && let Some(addr) = self.members.get(&id).and_then(|(_, m)| m.addr.parse().ok())
        {
            self.connect(&addr);
        }
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        self.send(id, PeerMessage::CountAsk { token });
    }

    /// Drops the suspects that did not answer their probe.
    pub(super) fn drop_silent(&mut self) {
        for id in self.suspects.silent(Instant::now()) {
            tracing::warn!(id, "a member said to be gone did not answer its probe");
            self.drop_lost(id);
        }
    }

    /// Drops member `id`, found lost, and tells the others.
    pub(super) fn drop_lost(&mut self, id: u64) {
        if let Some((_, member)) = self.members.get(&id).cloned() {
            self.remove(id);
            let epoch = self.epoch;
            self.broadcast(PeerMessage::Gone { member, epoch });
        }
    }

    /// Tells a lost member that is alive after all that it was found
    /// lost (it then joins again).
    pub(super) fn tell_departed(&mut self, id: u64) {
        let Some(Departed { member, told, .. }) = self.departed.get_mut(&id) else {
            return;
        };
        if told.is_some_and(|at| at.elapsed() < TELL_EVERY) {
            return;
        }
        *told = Some(Instant::now());
        let member = member.clone();
        if let Ok(addr) = member.addr.parse() {
            self.connect(&addr);
        }
        let epoch = self.epoch;
        self.send(id, PeerMessage::Gone { member, epoch });
        self.links.remove(&id);
    }

    /// The others found this peer lost while it was alive: out of its own
    /// view (it drops what it held for the ring), then in again through
    /// the members it knows.
    pub(super) fn evict(&mut self) {
        if self.evicted {
            return;
        }
        tracing::warn!("declared gone by the ring while alive: joining again");
        self.evicted = true;
        self.epoch = self.epoch.saturating_add(1);
        self.new_view(self.my_id);
        self.joining = self
            .members
            .iter()
            .filter(|&(&id, _)| id != self.my_id)
            .filter_map(|(_, (_, m))| m.addr.parse().ok())
            .collect();
        self.publish_known();
        self.asked = None;
        self.ask_to_join();
    }

    /// Adds `member` without a new view; its id if it is new. A member
    /// at a place another member holds is refused; one known at another
    /// place has moved (its old place is dropped first).
    pub(super) fn add_quietly(&mut self, member: &Member) -> Option<u64> {
        let checks::Checked { addr, peer, id } = checks::member(member)
            .inspect_err(|e| tracing::warn!(error = %e, "ignoring a bad member address"))
            .ok()?;
        if let Some((held_by, _)) = self.members.get(&id) {
            if *held_by != peer {
                tracing::warn!(%peer, at = id, "ignoring a member at a place another member holds");
            }
            return None;
        }
        if let Some(old) = self.ids.get(&peer).copied().filter(|&old| old != id)
            && self.members.contains_key(&old)
        {
            if old == self.my_id {
                return None;
            }
            self.remove(old);
        }
        self.departed.remove(&id);
        self.departed.retain(|_, d| d.member.addr != member.addr);
        self.ids.insert(peer, id);
        self.members.insert(id, (peer, member.clone()));
        self.publish_known();
        self.connect(&addr);
        Some(id)
    }

    /// Adds `member` and takes the new view; its id if it is new.
    pub(super) fn add(&mut self, member: &Member) -> Option<u64> {
        let id = self.add_quietly(member)?;
        self.epoch = self.epoch.saturating_add(1);
        tracing::info!(addr = %member.addr, epoch = self.epoch, "peer joined");
        self.new_view(id);
        Some(id)
    }

    /// Drops member `id` (found lost or announced gone) and takes the new
    /// view; it is remembered in case it turns out alive.
    pub(super) fn remove(&mut self, id: u64) {
        if id == self.my_id {
            return;
        }
        let Some((_, member)) = self.members.remove(&id) else {
            return;
        };
        if self.departed.len() >= DEPARTED
            && let Some((_, forgotten)) = self.departed.pop_first()
            && let Some(peer) = forgotten
                .member
                .addr
                .parse()
                .ok()
                .as_ref()
                .and_then(peer_of)
            && !self.members.values().any(|(p, _)| *p == peer)
        {
            self.ids.remove(&peer);
        }
        let departed = Departed {
            member,
            since: Instant::now(),
            told: None,
        };
        self.departed.insert(id, departed);
        self.publish_known();
        self.links.remove(&id);
        self.epoch = self.epoch.saturating_add(1);
        self.new_view(id);
    }
}
