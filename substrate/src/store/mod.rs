//! The local tuple store: sans-io, the building block of the whole space.
//!
//! No clock, no I/O, no randomness: the caller passes `now` (milliseconds on
//! its own monotonic clock) and carries out the [`Effect`]s each call returns.
//! The embedded space ([`crate::embedded`]) drives one store behind a mutex;
//! the libp2p node drives one per peer, and uses reservations for the
//! distributed exactly-once `in`.
//!
//! Semantics:
//! - Oldest match first: every tuple gets a sequence number when written.
//! - `out` offers the tuple to the matching parked waiters: every `Read`
//!   waiter gets a copy, then the first `Take` or `Reserve` waiter in arrival
//!   order gets the tuple itself (then it is not stored). Effects list the
//!   readers in arrival order, the taker last. Matching subscriptions are
//!   notified of every written tuple (before the wakes).
//! - A tuple expires at its `expires_at` (it is never returned at or after
//!   it); [`Store::tick`] collects it.
//! - A reservation moves a tuple out of sight under a lease. `accept` removes
//!   it for good; `decline`, or the lease lapsing in `tick`, returns it with
//!   its original age and offers it to waiters as an `out` would (it is not
//!   notified to subscribers again: it was not written again). The lease is
//!   enforced by `tick`: until `tick` sees it lapsed, `accept` succeeds.
//! - `park` does not look at the stored tuples: the driver tries `take`,
//!   `read` or `reserve` first, in the same `&mut` borrow.
//!
//! Cost: a template whose first field is an actual value (or with no fields)
//! looks only at the tuples sharing its arity and first value; any other
//! template walks the tuples of its arity, oldest first (a merge of the
//! per-first-value runs), until it has enough.
//! An `out` looks only at the waiters and subscriptions whose template has its
//! first value, or no actual first value and its arity. Bounds: [`Limits`].

mod effect;
mod hash;
mod index;
mod table;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

pub use effect::{Effect, Limits, ReservationId, StoreError, SubscriptionId, WaitKind, WaiterId};

use hash::FastMap;
use index::TemplateIndex;
use table::{Slot, Stored, Table, tuple_key};

use crate::template::Template;
use crate::tuple::{Tuple, Value};

#[derive(Debug)]
struct Waiter {
    template: Template,
    kind: WaitKind,
    deadline: Option<u64>,
}

#[derive(Debug)]
struct Reservation {
    slot: Slot,
    stored: Stored,
    lease_end: u64,
}

/// The local tuple store. See the module docs for its semantics.
#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    table: Table,
    next_seq: u64,
    waiters: FastMap<u64, Waiter>,
    waiter_index: TemplateIndex,
    waiter_deadlines: BTreeSet<(u64, u64)>,
    next_waiter: u64,
    reservations: FastMap<u64, Reservation>,
    lease_ends: BTreeSet<(u64, u64)>,
    next_reservation: u64,
    subscriptions: FastMap<u64, Template>,
    subscription_index: TemplateIndex,
    next_subscription: u64,
}

impl Store {
    /// An empty store with the default [`Limits`].
    pub fn new() -> Self {
        Store::default()
    }

    /// An empty store that also indexes every tuple by its arity and last
    /// value, so that an exact template (every field an actual value) is
    /// answered without walking its bucket: for the overlay, whose tuples
    /// end in a unique id and which asks for one on every write it adopts.
    /// Costs about a third more per `out` and `in`.
    pub fn with_exact_index() -> Self {
        Store {
            table: Table::with_exact_index(),
            ..Store::default()
        }
    }

    /// This store holding at most `max` tuples (stored plus reserved).
    pub fn holding_at_most(mut self, max: usize) -> Self {
        self.limits.max_tuples = max;
        self
    }

    /// An empty store with these limits.
    pub fn with_limits(limits: Limits) -> Self {
        Store {
            limits,
            ..Store::default()
        }
    }

    /// Tuples stored and visible (not under reservation), counting expired
    /// ones that `tick` has not collected yet.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Tuples under reservation.
    pub fn reserved(&self) -> usize {
        self.reservations.len()
    }

    /// Parked waiters.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// How many more tuples `out` accepts before [`StoreError::Full`].
    pub fn room(&self) -> usize {
        self.limits
            .max_tuples
            .saturating_sub(self.table.len() + self.reservations.len())
    }

    /// Writes `tuple`, expiring at `expires_at`. See the module docs for how
    /// it meets waiters and subscriptions. A tuple already expired at `now` is
    /// dropped without effects.
    pub fn out(
        &mut self,
        tuple: Tuple,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<Vec<Effect>, StoreError> {
        if self.room() == 0 {
            return Err(StoreError::Full(self.limits.max_tuples));
        }
        let stored = Stored { tuple, expires_at };
        if !stored.live(now) {
            return Ok(Vec::new());
        }
        let key = tuple_key(&stored.tuple);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut effects = Vec::new();
        for id in self
            .subscription_index
            .candidates(key.hash, stored.tuple.len())
        {
            if self.subscriptions[&id].matches(&stored.tuple) {
                effects.push(Effect::Notify {
                    subscription: SubscriptionId(id),
                    tuple: stored.tuple.clone(),
                });
            }
        }
        self.offer(Slot { key, seq }, stored, now, &mut effects);
        Ok(effects)
    }

    /// Offers a tuple to the parked waiters, then stores what is left of it.
    fn offer(&mut self, slot: Slot, stored: Stored, now: u64, effects: &mut Vec<Effect>) {
        let mut taker = None;
        for id in self
            .waiter_index
            .candidates(slot.key.hash, stored.tuple.len())
        {
            let waiter = &self.waiters[&id];
            if !waiter.template.matches(&stored.tuple) {
                continue;
            }
            match waiter.kind {
                WaitKind::Read => {
                    self.remove_waiter(id);
                    effects.push(Effect::Wake {
                        waiter: WaiterId(id),
                        tuples: vec![stored.tuple.clone()],
                        reservation: None,
                    });
                }
                WaitKind::Take | WaitKind::Reserve { .. } => {
                    taker.get_or_insert(id);
                }
            }
        }
        let Some(id) = taker else {
            self.table.insert(slot, stored);
            return;
        };
        let waiter = WaiterId(id);
        match self.remove_waiter(id).kind {
            WaitKind::Reserve { lease_ms } => {
                let tuples = vec![stored.tuple.clone()];
                let reservation = self.add_reservation(slot, stored, now + lease_ms);
                effects.push(Effect::Wake {
                    waiter,
                    tuples,
                    reservation: Some(reservation),
                });
            }
            WaitKind::Take | WaitKind::Read => effects.push(Effect::Wake {
                waiter,
                tuples: vec![stored.tuple],
                reservation: None,
            }),
        }
    }

    /// Removes and returns up to `max` tuples matching `template`, oldest
    /// first.
    pub fn take(&mut self, template: &Template, max: usize, now: u64) -> Vec<Tuple> {
        if max == 0 {
            return Vec::new();
        }
        if max == 1 {
            let Some((slot, _)) = self.table.first(template, now) else {
                return Vec::new();
            };
            return self
                .table
                .remove(slot)
                .map(|s| s.tuple)
                .into_iter()
                .collect();
        }
        let mut slots = Vec::new();
        self.table.visit(template, now, |slot, _| {
            slots.push(slot);
            if slots.len() == max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        slots
            .into_iter()
            .filter_map(|slot| self.table.remove(slot))
            .map(|stored| stored.tuple)
            .collect()
    }

    /// A copy of the oldest tuple matching `template`.
    pub fn read(&self, template: &Template, now: u64) -> Option<Tuple> {
        self.table
            .first(template, now)
            .map(|(_, stored)| stored.tuple.clone())
    }

    /// Whether a live tuple whose fields are `head` then `last` is stored
    /// and visible (not under reservation), as `read` of the exact template
    /// would say, without building the template or copying the tuple.
    pub fn contains(&self, head: &[Value], last: &Value, now: u64) -> bool {
        self.table.find(head, last, now).is_some()
    }

    /// Takes the live tuple whose fields are `head` then `last`, as `take`
    /// of the exact template with `max` 1 would, without building the
    /// template (or the tuple's fields in one vector) first.
    pub fn take_exact(&mut self, head: &[Value], last: &Value, now: u64) -> Option<Tuple> {
        let slot = self.table.find(head, last, now)?;
        self.table.remove(slot).map(|stored| stored.tuple)
    }

    /// Copies of up to `limit` tuples matching `template`, oldest first.
    pub fn scan(&self, template: &Template, limit: usize, now: u64) -> Vec<Tuple> {
        let mut found = Vec::new();
        if limit == 0 {
            return found;
        }
        self.table.visit(template, now, |_, stored| {
            found.push(stored.tuple.clone());
            if found.len() == limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        found
    }

    /// Moves the oldest tuple matching `template` out of sight under a lease
    /// ending at `now + lease_ms`; returns the reservation and a copy.
    pub fn reserve(
        &mut self,
        template: &Template,
        lease_ms: u64,
        now: u64,
    ) -> Option<(ReservationId, Tuple)> {
        let (slot, _) = self.table.first(template, now)?;
        let stored = self.table.remove(slot)?;
        let tuple = stored.tuple.clone();
        Some((self.add_reservation(slot, stored, now + lease_ms), tuple))
    }

    fn add_reservation(&mut self, slot: Slot, stored: Stored, lease_end: u64) -> ReservationId {
        let id = self.next_reservation;
        self.next_reservation += 1;
        self.lease_ends.insert((lease_end, id));
        self.reservations.insert(
            id,
            Reservation {
                slot,
                stored,
                lease_end,
            },
        );
        ReservationId(id)
    }

    /// When the reserved tuple of `id` expires, if it has a time to live
    /// (`None` too if the reservation is unknown).
    pub fn reserved_expiry(&self, id: ReservationId) -> Option<u64> {
        self.reservations.get(&id.0)?.stored.expires_at
    }

    /// Removes a reserved tuple for good. `None` if the reservation is
    /// unknown: never made, already accepted or declined, or lapsed.
    pub fn accept(&mut self, id: ReservationId) -> Option<Tuple> {
        self.accept_expiring(id).map(|(tuple, _)| tuple)
    }

    /// [`Store::accept`], with the tuple's expiry time (if it has one).
    pub fn accept_expiring(&mut self, id: ReservationId) -> Option<(Tuple, Option<u64>)> {
        let reservation = self.reservations.remove(&id.0)?;
        self.lease_ends.remove(&(reservation.lease_end, id.0));
        Some((reservation.stored.tuple, reservation.stored.expires_at))
    }

    /// Returns a reserved tuple to the space with its original age (dropped
    /// if it has expired meanwhile). Unknown reservations are ignored.
    pub fn decline(&mut self, id: ReservationId, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(reservation) = self.reservations.remove(&id.0) {
            self.lease_ends.remove(&(reservation.lease_end, id.0));
            self.restore(reservation, now, &mut effects);
        }
        effects
    }

    fn restore(&mut self, reservation: Reservation, now: u64, effects: &mut Vec<Effect>) {
        if reservation.stored.live(now) {
            self.offer(reservation.slot, reservation.stored, now, effects);
        }
    }

    /// Parks a waiter for the next matching tuple, until `deadline` (none:
    /// forever). Does not look at the stored tuples.
    pub fn park(
        &mut self,
        template: Template,
        kind: WaitKind,
        deadline: Option<u64>,
    ) -> Result<WaiterId, StoreError> {
        if self.waiters.len() >= self.limits.max_waiters {
            return Err(StoreError::TooManyWaiters(self.limits.max_waiters));
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiter_index.insert(id, &template);
        if let Some(at) = deadline {
            self.waiter_deadlines.insert((at, id));
        }
        self.waiters.insert(
            id,
            Waiter {
                template,
                kind,
                deadline,
            },
        );
        Ok(WaiterId(id))
    }

    /// Removes a parked waiter; `false` if it was not parked (any more).
    pub fn unpark(&mut self, id: WaiterId) -> bool {
        if !self.waiters.contains_key(&id.0) {
            return false;
        }
        self.remove_waiter(id.0);
        true
    }

    fn remove_waiter(&mut self, id: u64) -> Waiter {
        let waiter = self
            .waiters
            .remove(&id)
            .expect("indexed waiters are parked");
        self.waiter_index.remove(id, &waiter.template);
        if let Some(at) = waiter.deadline {
            self.waiter_deadlines.remove(&(at, id));
        }
        waiter
    }

    /// Subscribes to the tuples written from now on that match `template`.
    pub fn subscribe(&mut self, template: Template) -> Result<SubscriptionId, StoreError> {
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            return Err(StoreError::TooManySubscriptions(
                self.limits.max_subscriptions,
            ));
        }
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.subscription_index.insert(id, &template);
        self.subscriptions.insert(id, template);
        Ok(SubscriptionId(id))
    }

    /// Ends a subscription; `false` if it did not exist.
    pub fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        match self.subscriptions.remove(&id.0) {
            Some(template) => {
                self.subscription_index.remove(id.0, &template);
                true
            }
            None => false,
        }
    }

    /// The earliest time `tick` has something to do: a tuple expiry, a waiter
    /// deadline or a lease end.
    pub fn next_deadline(&self) -> Option<u64> {
        [
            self.table.next_expiry(),
            self.waiter_deadlines.first().map(|&(at, _)| at),
            self.lease_ends.first().map(|&(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Everything due at `now`, in this order: waiters whose deadline is `now`
    /// or earlier time out (by deadline, then arrival); expired tuples are
    /// dropped; reservations whose lease ended are returned (by lease end,
    /// then reservation id), each offered to the waiters left.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(&(at, id)) = self.waiter_deadlines.first() {
            if at > now {
                break;
            }
            self.remove_waiter(id);
            effects.push(Effect::TimedOut {
                waiter: WaiterId(id),
            });
        }
        self.table.expire(now);
        while let Some(&(at, id)) = self.lease_ends.first() {
            if at > now {
                break;
            }
            self.lease_ends.remove(&(at, id));
            let reservation = self
                .reservations
                .remove(&id)
                .expect("every lease has its reservation");
            self.restore(reservation, now, &mut effects);
        }
        effects
    }

    /// Copies of the stored tuples (not those under reservation), oldest
    /// first, with their expiry times: what a peer sends to a new replica.
    pub fn stored(&self) -> Vec<(Tuple, Option<u64>)> {
        self.table.copies()
    }

    /// Calls `f` on every stored tuple (not those under reservation), in
    /// no particular order, copying nothing.
    pub fn each(&self, f: impl FnMut(&Tuple)) {
        self.table.each(f)
    }

    /// Removes and returns the stored tuples `select` picks, oldest first,
    /// with their expiry times (for handing them to another peer). Reserved
    /// tuples are not included.
    pub fn drain_matching(
        &mut self,
        select: impl FnMut(&Tuple) -> bool,
    ) -> Vec<(Tuple, Option<u64>)> {
        self.table.drain_matching(select)
    }
}
