//! The candidate side of `in`, `rd` and `scan`: match now or park a
//! waiter; a take's only candidate removes what matches now and sends it
//! at once ([`Ask::Direct`]); otherwise, and when a parked waiter wakes,
//! reserve under a lease and offer; on accept remove the tuple here
//! and answer through the replicas (`answer`); on decline or a lapsed lease put it back (and hand
//! it on if the arc moved meanwhile); register subscriptions and forward
//! their notifications.

use super::bulk::bounded;
use super::msg::{Ask, Wire};
use super::{MAX_BATCH_BYTES, Msg, OpId, Peer, Tagged, with_id_field};
use crate::store::{Effect, ReservationId, WaitKind};
use crate::template::Template;

/// A tuple this peer reserved and offered.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) requester: u64,
    /// The requester's operation it was offered to.
    pub(super) op: OpId,
    pub(super) tuple: Tagged,
    pub(super) lease_end: u64,
}

/// A parked request from another peer's query.
#[derive(Debug)]
pub(super) struct Parked {
    requester: u64,
    op: OpId,
    round: u32,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_ask(
        &mut self,
        from: u64,
        op: OpId,
        round: u32,
        ask: Ask,
        template: Template,
        wait_ms: Option<u64>,
        now: u64,
    ) {
        self.on_cancel(from, op, now);
        if !self.member() {
            // Evicted: nothing here is the ring's.
            match ask {
                Ask::Take(_) | Ask::Direct(_) | Ask::Read => {
                    self.send(from, Msg::NoMatch { op, round })
                }
                Ask::Scan(_) => self.copies_to(from, op, round, Vec::new()),
                Ask::Subscribe => {}
            }
            return;
        }
        let template = with_id_field(&template);
        let lease_ms = self.config.lease_ms;
        let kind = match ask {
            Ask::Direct(max) => {
                let tuples = self.take_now(&template, max, now);
                if !tuples.is_empty() {
                    self.answer_take(from, op, tuples, now);
                    return;
                }
                WaitKind::Reserve { lease_ms }
            }
            Ask::Take(max) => {
                let (mut found, mut bytes, limit) = (Vec::new(), 0, self.answer_bytes());
                while found.len() < max.max(1) && bytes < limit {
                    match self.store.reserve(&template, lease_ms, now) {
                        Some(reserved) => {
                            bytes += reserved.1.encoded_len_hint();
                            found.push(reserved);
                        }
                        None => break,
                    }
                }
                if !found.is_empty() {
                    self.offer(from, op, round, found, now);
                    return;
                }
                WaitKind::Reserve { lease_ms }
            }
            Ask::Read => match self.store.read(&template, now) {
                Some(stored) => {
                    self.copies_to(from, op, round, vec![stored]);
                    return;
                }
                None => WaitKind::Read,
            },
            Ask::Scan(limit) => {
                let found = self.store.scan(&template, limit, now);
                self.copies_to(from, op, round, found);
                return;
            }
            Ask::Subscribe => {
                // Over the store's bound the subscription is not made here.
                if let Ok(id) = self.store.subscribe(template) {
                    self.subscribers.insert(id, (from, op));
                    self.subscribed.insert((from, op), id);
                }
                return;
            }
        };
        let parked = match wait_ms {
            Some(0) => None,
            _ => self
                .store
                .park(template, kind, wait_ms.map(|w| now.saturating_add(w)))
                .ok(),
        };
        match parked {
            Some(waiter) => {
                let requester = from;
                self.waiters.insert(
                    waiter,
                    Parked {
                        requester,
                        op,
                        round,
                    },
                );
                self.parked.insert((from, op), waiter);
                // A take of several gathers what every candidate holds now:
                // it needs to hear that this one holds nothing; a direct
                // take, that nothing is on its way.
                if matches!(ask, Ask::Take(max) if max > 1) || matches!(ask, Ask::Direct(_)) {
                    self.send(from, Msg::Waiting { op, round });
                }
            }
            None => self.send(from, Msg::NoMatch { op, round }),
        }
    }

    fn offer(
        &mut self,
        to: u64,
        op: OpId,
        round: u32,
        reserved: Vec<(ReservationId, crate::tuple::Tuple)>,
        now: u64,
    ) {
        let lease_end = now + self.config.lease_ms;
        let mut reservations = Vec::with_capacity(reserved.len());
        for (reservation, stored) in reserved {
            let Some(tuple) = Tagged::from_stored(stored) else {
                continue;
            };
            let held = Held {
                requester: to,
                op,
                tuple,
                lease_end,
            };
            self.held.insert(reservation, held);
            reservations.push(reservation);
        }
        self.send(
            to,
            Msg::Offer {
                op,
                round,
                reservations,
            },
        );
    }

    /// Removes up to `max` matches here at once (their copies go as the
    /// take is answered, [`Peer::answer_take`]): a take's only candidate
    /// answers with them, no offer and accept. Stops once they reach
    /// [`Peer::answer_bytes`] (the first always goes).
    fn take_now(&mut self, template: &Template, max: usize, now: u64) -> Vec<Wire> {
        let (mut taken, mut bytes, limit) = (Vec::new(), 0, self.answer_bytes());
        while taken.len() < max.max(1) && bytes < limit {
            let Some((reservation, stored)) =
                self.store.reserve(template, self.config.lease_ms, now)
            else {
                break;
            };
            let Some(tuple) = Tagged::from_stored(stored) else {
                // Not a tuple of the overlay's (no id): left where it is.
                let effects = self.store.decline(reservation, now);
                self.on_effects(effects, now);
                break;
            };
            bytes += tuple.tuple.encoded_len_hint();
            taken.extend(self.remove_reserved(reservation, tuple, now));
        }
        taken
    }

    /// Bytes of tuples one candidate's answer to a take holds at most
    /// (the first tuple always goes): [`MAX_BATCH_BYTES`], so that the
    /// answer and its chain through the copies fit a message; the asker's
    /// take returns fewer, as "up to" allows. A peer alone sends its
    /// answer over no link: unbounded (a client's door splits a long
    /// answer into frames).
    pub(super) fn answer_bytes(&self) -> usize {
        if self.view.len() == 1 && self.view.contains(self.id) {
            usize::MAX
        } else {
            MAX_BATCH_BYTES
        }
    }

    /// Removes a reserved tuple here (its copies go with
    /// [`Peer::answer_take`]): the tuple with its time left, `None` if
    /// the reservation has lapsed.
    fn remove_reserved(
        &mut self,
        reservation: ReservationId,
        tuple: Tagged,
        now: u64,
    ) -> Option<Wire> {
        let (_, expires_at) = self.store.accept_expiring(reservation)?;
        self.tombstone(tuple.id, now);
        Some((tuple, expires_at.map(|e| e.saturating_sub(now))))
    }

    /// Sends `stored`'s tuples to `to` as copies, in parts a message can
    /// carry (one message, perhaps empty, when they fit).
    fn copies_to(&mut self, to: u64, op: OpId, round: u32, stored: Vec<crate::tuple::Tuple>) {
        let tuples = stored.into_iter().filter_map(Tagged::from_stored).collect();
        let mut parts = bounded(tuples, |t: &Tagged| &t.tuple);
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        let mut parts = parts.into_iter().peekable();
        while let Some(tuples) = parts.next() {
            let more = parts.peek().is_some();
            self.send(
                to,
                Msg::Copies {
                    op,
                    round,
                    tuples,
                    more,
                },
            );
        }
    }

    /// Carries out the store's effects: wakes become offers or copies,
    /// timeouts become `NoMatch`. The overlay makes no store subscriptions.
    pub(super) fn on_effects(&mut self, effects: Vec<Effect>, now: u64) {
        for effect in effects {
            match effect {
                Effect::Wake {
                    waiter,
                    tuples,
                    reservation,
                } => {
                    let Some(p) = self.unpark(waiter) else {
                        continue;
                    };
                    match reservation {
                        Some(r) => {
                            let stored = tuples.into_iter().next().expect("one reserved tuple");
                            self.offer(p.requester, p.op, p.round, vec![(r, stored)], now);
                        }
                        None => self.copies_to(p.requester, p.op, p.round, tuples),
                    }
                }
                Effect::TimedOut { waiter } => {
                    if let Some(p) = self.unpark(waiter) {
                        let msg = Msg::NoMatch {
                            op: p.op,
                            round: p.round,
                        };
                        self.send(p.requester, msg);
                    }
                }
                Effect::Notify {
                    subscription,
                    tuple,
                } => {
                    if let Some(&(to, op)) = self.subscribers.get(&subscription)
                        && let Some(tuple) = Tagged::from_stored(tuple)
                    {
                        self.send(to, Msg::Notified { op, tuple });
                    }
                }
            }
        }
    }

    fn unpark(&mut self, waiter: crate::store::WaiterId) -> Option<Parked> {
        let p = self.waiters.remove(&waiter)?;
        self.parked.remove(&(p.requester, p.op));
        Some(p)
    }

    /// The requester no longer wants anything for `op` (it ended, was
    /// cancelled, or starts a new round): its waiter goes, and tuples
    /// reserved for it go back now rather than when its decline arrives,
    /// so that its next operation already finds them.
    pub(super) fn on_cancel(&mut self, from: u64, op: OpId, now: u64) {
        if let Some(waiter) = self.parked.remove(&(from, op)) {
            self.waiters.remove(&waiter);
            self.store.unpark(waiter);
        }
        let offered: Vec<ReservationId> = self
            .held
            .iter()
            .filter(|(_, h)| h.requester == from && h.op == op)
            .map(|(&r, _)| r)
            .collect();
        if !offered.is_empty() {
            self.on_decline(offered, now);
        }
        if let Some(id) = self.subscribed.remove(&(from, op)) {
            self.subscribers.remove(&id);
            self.store.unsubscribe(id);
        }
    }

    /// After a view change: requesters no longer in the view are gone
    /// (crashed, left, or dropped while alive, in which case they ask
    /// again once back): their waiters and subscriptions here end, and
    /// what was offered to them goes back now, not when its lease lapses.
    pub(super) fn forget_departed(&mut self, now: u64) {
        let view = &self.view;
        let gone: std::collections::BTreeSet<(u64, OpId)> = self
            .parked
            .keys()
            .chain(self.subscribed.keys())
            .copied()
            .chain(self.held.values().map(|h| (h.requester, h.op)))
            .filter(|&(requester, _)| !view.contains(requester))
            .collect();
        for (requester, op) in gone {
            self.on_cancel(requester, op, now);
        }
    }

    /// Removes the accepted tuples still reserved for `from` here and at
    /// the replicas, and answers `from` with them (possibly none).
    pub(super) fn on_accept(
        &mut self,
        from: u64,
        op: OpId,
        reservations: Vec<ReservationId>,
        now: u64,
    ) {
        let mut taken = Vec::with_capacity(reservations.len());
        for reservation in reservations {
            let mine = self.held.get(&reservation).filter(|h| h.requester == from);
            let Some(tuple) = mine.map(|h| h.tuple.clone()) else {
                continue;
            };
            // Lapsed in the store: the timer forgets (and rehomes) it.
            if let Some(wire) = self.remove_reserved(reservation, tuple, now) {
                self.held.remove(&reservation);
                taken.push(wire);
            }
        }
        self.answer_take(from, op, taken, now);
    }

    pub(super) fn on_decline(&mut self, reservations: Vec<ReservationId>, now: u64) {
        for reservation in reservations {
            if let Some(held) = self.held.remove(&reservation) {
                let effects = self.store.decline(reservation, now);
                self.on_effects(effects, now);
                self.rehome(&held.tuple, now);
            }
        }
    }

    /// Forgets reservations whose lease the store has let lapse.
    pub(super) fn lapse_reservations(&mut self, now: u64) {
        let lapsed: Vec<ReservationId> = self
            .held
            .iter()
            .filter(|(_, h)| h.lease_end <= now)
            .map(|(&r, _)| r)
            .collect();
        for r in lapsed {
            let held = self.held.remove(&r).expect("listed");
            self.rehome(&held.tuple, now);
        }
    }

    /// Hands a tuple back in the store on to its owner if this peer's arc
    /// moved while it was reserved.
    fn rehome(&mut self, tuple: &Tagged, now: u64) {
        let index = self.index_of(tuple);
        if self.view.owner(index) == Some(self.id) {
            return;
        }
        let stored = tuple.stored();
        let back = self.store.drain_matching(|t| *t == stored);
        self.hand_over(back, now);
    }
}
