//! The embedded space: a [`Store`] in this process, behind the [`Space`] API.
//!
//! Every handle shares one store behind a mutex, plus the senders of the
//! parked waiters (`oneshot`) and of the subscribers (bounded `mpsc`). A
//! background tokio task sleeps until the store's next deadline (woken early
//! when an operation brings a nearer one) and runs [`Store::tick`]; it ends
//! when the last handle is dropped.
//!
//! Exactly-once `in`: a blocked take parks a [`WaitKind::Reserve`] waiter, so
//! a tuple handed to it is only reserved; the take accepts it as soon as it
//! receives it. If the take's future is dropped first (timeout, cancel), it
//! unparks its waiter or declines the reservation it was sent, and the tuple
//! goes back with its original age. The lease is a last resort that returns
//! the tuple even if neither happens.
//!
//! Bounds: the store's [`Limits`] (tuples, waiters, subscriptions; a full
//! space refuses `out` with [`SpaceError::Refused`]), 1,024 unread
//! notifications per subscriber, a 60 s lease on a tuple handed to a take.
//!
//! The clock is `tokio::time::Instant` (milliseconds since the space was
//! made), so tests can pause time. A subscriber that does not keep up loses
//! notifications (counted in [`EmbeddedSpace::dropped_notifications`]); it
//! never blocks the space.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::space::{Space, SpaceError, Subscription};
use crate::store::{Effect, Limits, ReservationId, Store, SubscriptionId, WaitKind, WaiterId};
use crate::template::Template;
use crate::tuple::Tuple;

/// How long a tuple handed to a blocked take stays reserved if the take
/// neither accepts nor declines it (it always does one, unless it hangs).
const LEASE_MS: u64 = 60_000;

/// Notifications a subscriber may have unread before new ones are dropped.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// What a parked waiter receives.
#[derive(Debug)]
enum Delivery {
    Tuples(Vec<Tuple>),
    Reserved(ReservationId),
    TimedOut,
}

#[derive(Debug)]
struct State {
    store: Store,
    waiters: HashMap<WaiterId, oneshot::Sender<Delivery>>,
    subscribers: HashMap<SubscriptionId, mpsc::Sender<Tuple>>,
    dropped_notifications: u64,
    /// The deadline the timer task sleeps until.
    armed: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    timer: Arc<Notify>,
    base: Instant,
    /// Dropped with the last handle: tells the timer task to end.
    _stop: oneshot::Sender<()>,
}

/// A tuple space in this process. Cheap to clone; every clone is the same
/// space.
#[derive(Clone)]
pub struct EmbeddedSpace {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedSpace")
            .field("tuples", &self.len())
            .finish()
    }
}

/// The subscription of an [`EmbeddedSpace`]; dropping it unsubscribes.
#[derive(Debug)]
pub struct EmbeddedSubscription {
    id: SubscriptionId,
    rx: mpsc::Receiver<Tuple>,
    shared: Weak<Shared>,
}

impl Default for EmbeddedSpace {
    fn default() -> Self {
        EmbeddedSpace::new()
    }
}

impl EmbeddedSpace {
    /// An empty space with the default [`Limits`]. Must be called inside a
    /// tokio runtime (it spawns the timer task).
    pub fn new() -> Self {
        EmbeddedSpace::with_limits(Limits::default())
    }

    /// An empty space with these limits (inside a tokio runtime).
    pub fn with_limits(limits: Limits) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel();
        let timer = Arc::new(Notify::new());
        let base = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store: Store::with_limits(limits),
                waiters: HashMap::new(),
                subscribers: HashMap::new(),
                dropped_notifications: 0,
                armed: None,
            }),
            timer: timer.clone(),
            base,
            _stop: stop_tx,
        });
        tokio::spawn(run_timer(Arc::downgrade(&shared), timer, stop_rx, base));
        EmbeddedSpace { shared }
    }

    /// Tuples stored (for `status`), not counting those being handed over.
    pub fn len(&self) -> usize {
        self.shared.lock().store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notifications dropped because a subscriber lagged.
    pub fn dropped_notifications(&self) -> u64 {
        self.shared.lock().dropped_notifications
    }

    /// Takes (or, for [`WaitKind::Read`], reads) up to `max` tuples now, or
    /// parks a waiter of `kind` until one is delivered or `timeout` passes.
    async fn find_or_wait(
        &self,
        template: Template,
        kind: WaitKind,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        // Past the clock's range: wait forever.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if let Some(found) = self.try_once(template.clone(), kind, max, left).await? {
                return Ok(found);
            }
            // A reservation lapsed before we could accept it: the tuple is
            // back in the space, so look again.
        }
    }

    /// One round of [`Self::find_or_wait`]; `None` if a tuple reserved for
    /// us could not be accepted any more.
    async fn try_once(
        &self,
        template: Template,
        kind: WaitKind,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<Tuple>>, SpaceError> {
        let (waiter, rx) = {
            let mut state = self.shared.lock();
            let now = self.shared.now();
            let found = match kind {
                WaitKind::Read => state.store.read(&template, now).into_iter().collect(),
                WaitKind::Take | WaitKind::Reserve { .. } => state.store.take(&template, max, now),
            };
            if !found.is_empty() || timeout == Some(Duration::ZERO) {
                return Ok(Some(found));
            }
            let deadline = timeout.and_then(|t| deadline_after(now, t));
            let waiter = state
                .store
                .park(template, kind, deadline)
                .map_err(|e| SpaceError::Refused(e.to_string()))?;
            let (tx, rx) = oneshot::channel();
            state.waiters.insert(waiter, tx);
            state.rearm(&self.shared.timer);
            (waiter, rx)
        };
        let pending = Pending {
            shared: self.shared.clone(),
            waiter,
            rx: Some(rx),
        };
        // No await between receiving a reservation and accepting it: a
        // dropped future either declines it (in `Pending`'s drop) or has it.
        Ok(match pending.recv().await? {
            Delivery::Tuples(tuples) => Some(tuples),
            Delivery::TimedOut => Some(Vec::new()),
            Delivery::Reserved(id) => self.shared.lock().store.accept(id).map(|t| vec![t]),
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The millisecond at which a wait of `timeout` from `now` ends (rounded up);
/// `None` if it is beyond the clock's range (wait forever).
fn deadline_after(now: u64, timeout: Duration) -> Option<u64> {
    let ms = u64::try_from(timeout.as_nanos().div_ceil(1_000_000)).ok()?;
    now.checked_add(ms)
}

impl State {
    /// Carries out the store's effects: wakes, timeouts, notifications.
    fn apply(&mut self, effects: Vec<Effect>, now: u64) {
        let mut declined = Vec::new();
        for effect in effects {
            match effect {
                Effect::Wake {
                    waiter,
                    tuples,
                    reservation,
                } => {
                    let delivery = match reservation {
                        Some(id) => Delivery::Reserved(id),
                        None => Delivery::Tuples(tuples),
                    };
                    let sent = match self.waiters.remove(&waiter) {
                        Some(tx) => tx.send(delivery),
                        None => Err(delivery),
                    };
                    if let Err(Delivery::Reserved(id)) = sent {
                        declined.push(id);
                    }
                }
                Effect::TimedOut { waiter } => {
                    if let Some(tx) = self.waiters.remove(&waiter) {
                        // A receiver gone meanwhile wanted nothing anyway.
                        let _ = tx.send(Delivery::TimedOut);
                    }
                }
                Effect::Notify {
                    subscription,
                    tuple,
                } => self.notify(subscription, tuple),
            }
        }
        for id in declined {
            let effects = self.store.decline(id, now);
            self.apply(effects, now);
        }
    }

    fn notify(&mut self, subscription: SubscriptionId, tuple: Tuple) {
        let Some(tx) = self.subscribers.get(&subscription) else {
            return;
        };
        match tx.try_send(tuple) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.dropped_notifications += 1,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.subscribers.remove(&subscription);
                self.store.unsubscribe(subscription);
            }
        }
    }

    /// Wakes the timer task if the store now has a nearer deadline than the
    /// one it sleeps until.
    fn rearm(&mut self, timer: &Notify) {
        let next = self.store.next_deadline();
        if next.is_some_and(|at| self.armed.is_none_or(|armed| at < armed)) {
            self.armed = next;
            timer.notify_one();
        }
    }
}

/// A parked waiter's receiving end. Dropped before it received (the caller's
/// future was dropped), it unparks the waiter, or returns a tuple already
/// reserved for it to the space.
struct Pending {
    shared: Arc<Shared>,
    waiter: WaiterId,
    rx: Option<oneshot::Receiver<Delivery>>,
}

impl Pending {
    async fn recv(mut self) -> Result<Delivery, SpaceError> {
        let rx = self.rx.as_mut().expect("a pending waiter has its receiver");
        let delivery = rx.await;
        self.rx = None;
        delivery.map_err(|_| SpaceError::Unreachable("the embedded space is gone".into()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        let mut state = self.shared.lock();
        if state.waiters.remove(&self.waiter).is_some() {
            state.store.unpark(self.waiter);
        } else if let Ok(Delivery::Reserved(id)) = rx.try_recv() {
            let now = self.shared.now();
            let effects = state.store.decline(id, now);
            state.apply(effects, now);
            // The tuple may have gone to another taker under a new lease.
            state.rearm(&self.shared.timer);
        }
    }
}

/// The timer task: ticks the store at each deadline, until the space is gone.
async fn run_timer(
    shared: Weak<Shared>,
    timer: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
    base: Instant,
) {
    loop {
        let deadline = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut state = shared.lock();
            let now = shared.now();
            let effects = state.store.tick(now);
            state.apply(effects, now);
            state.armed = state.store.next_deadline();
            state.armed
        };
        let wake_at = deadline.and_then(|ms| base.checked_add(Duration::from_millis(ms)));
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = timer.notified() => {}
            _ = sleep => {}
        }
    }
}

impl Space for EmbeddedSpace {
    type Subscription = EmbeddedSubscription;

    async fn out_all(&self, tuples: Vec<Tuple>, ttl: Option<Duration>) -> Result<(), SpaceError> {
        let mut state = self.shared.lock();
        let now = self.shared.now();
        let room = state.store.room();
        if tuples.len() > room {
            return Err(SpaceError::Refused(format!(
                "the space is full: it has room for {room} more tuples, not {}",
                tuples.len()
            )));
        }
        let expires_at = ttl.map(|ttl| deadline_after(now, ttl));
        for tuple in tuples {
            let effects = state
                .store
                .out(tuple, expires_at.flatten(), now)
                .map_err(|e| SpaceError::Refused(e.to_string()))?;
            state.apply(effects, now);
        }
        state.rearm(&self.shared.timer);
        Ok(())
    }

    async fn take_up_to(
        &self,
        template: Template,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let kind = WaitKind::Reserve { lease_ms: LEASE_MS };
        self.find_or_wait(template, kind, max, timeout).await
    }

    async fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> Result<Option<Tuple>, SpaceError> {
        let found = self
            .find_or_wait(template, WaitKind::Read, 1, timeout)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let state = self.shared.lock();
        let now = self.shared.now();
        Ok(state
            .store
            .scan(&template, limit.unwrap_or(usize::MAX), now))
    }

    async fn subscribe(&self, template: Template) -> Result<EmbeddedSubscription, SpaceError> {
        let mut state = self.shared.lock();
        let id = state
            .store
            .subscribe(template)
            .map_err(|e| SpaceError::Refused(e.to_string()))?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        state.subscribers.insert(id, tx);
        Ok(EmbeddedSubscription {
            id,
            rx,
            shared: Arc::downgrade(&self.shared),
        })
    }
}

impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Option<Tuple> {
        self.rx.recv().await
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut state = shared.lock();
            state.subscribers.remove(&self.id);
            state.store.unsubscribe(self.id);
        }
    }
}
