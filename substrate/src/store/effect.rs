//! What the store hands back to its driver: ids, the kinds of waits, and the
//! effects the driver must carry out (wake a waiter, time one out, notify a
//! subscriber). The store never does any of this itself: it is sans-io.

use crate::tuple::Tuple;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(pub u64);
    };
}

id_type!(
    /// A parked waiter. Ids grow with arrival: a smaller id waited longer.
    WaiterId
);
id_type!(
    /// A reservation: a tuple moved out of sight under a lease.
    ReservationId
);
id_type!(
    /// A subscription to the tuples written from now on.
    SubscriptionId
);

/// What a parked waiter wants from the next matching tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// `in`: the tuple is removed and handed over; it is not stored. One tuple
    /// per wake, whatever the caller's `max`.
    Take,
    /// `rd`: a copy is handed over and the tuple goes on to the next waiter.
    Read,
    /// The distributed `in`: the tuple is handed over under a reservation
    /// lasting `lease_ms`, to be accepted or declined.
    Reserve { lease_ms: u64 },
}

/// Something the driver must do after a store call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The waiter got its tuple (and is no longer parked). `reservation` is
    /// set for a [`WaitKind::Reserve`] waiter: `tuples` is then a copy of the
    /// reserved tuple.
    Wake {
        waiter: WaiterId,
        tuples: Vec<Tuple>,
        reservation: Option<ReservationId>,
    },
    /// The waiter's deadline passed without a match (it is no longer parked).
    TimedOut { waiter: WaiterId },
    /// A tuple matching the subscription was written.
    Notify {
        subscription: SubscriptionId,
        tuple: Tuple,
    },
}

/// How much the store holds at most; calls that would pass a bound fail with
/// [`StoreError`] instead of growing without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Tuples stored plus tuples under reservation.
    pub max_tuples: usize,
    /// Parked waiters.
    pub max_waiters: usize,
    /// Live subscriptions.
    pub max_subscriptions: usize,
}

impl Default for Limits {
    /// 16 Mi tuples, 64 Ki waiters, 4 Ki subscriptions.
    fn default() -> Self {
        Limits {
            max_tuples: 1 << 24,
            max_waiters: 1 << 16,
            max_subscriptions: 1 << 12,
        }
    }
}

/// A store call refused because a bound in [`Limits`] would be passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is full ({0} tuples)")]
    Full(usize),
    #[error("too many parked waiters ({0})")]
    TooManyWaiters(usize),
    #[error("too many subscriptions ({0})")]
    TooManySubscriptions(usize),
}
