//! The requests a client is waiting on, by id, and how answers reach them.
//!
//! The reading task delivers each answer here; a request's caller registers
//! before sending and gets its answer through a oneshot. Subscriptions get
//! their tuples through a bounded channel. Once the connection is lost the
//! table is closed: every waiter is told, and no new one registers.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::space::SpaceError;
use crate::tuple::Tuple;
use crate::wire::{ErrorKind, Response};

/// Who waits for the answers to one request.
#[derive(Debug)]
pub(super) enum Waiter {
    /// One final answer; `More` chunks gather in `more` until it comes.
    Reply {
        reply: oneshot::Sender<Response>,
        more: Vec<Tuple>,
    },
    /// A subscription: its `Ack` (or error), then a stream of tuples.
    Feed {
        ack: Option<oneshot::Sender<Response>>,
        feed: mpsc::Sender<Tuple>,
    },
}

/// What the reader should do after delivering an answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delivered {
    Done,
    /// The subscription fell behind (its buffer is full) or was dropped:
    /// it has ended, and the node should be told to cancel it.
    Cancel,
}

#[derive(Debug, Default)]
struct Table {
    waiters: HashMap<u64, Waiter>,
    /// Why the connection is gone, once it is.
    closed: Option<String>,
}

/// The waiters of one connection.
#[derive(Debug, Default)]
pub(super) struct Pending(Mutex<Table>);

impl Pending {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waiter` for request `id`, unless the connection is gone.
    pub(super) fn register(&self, id: u64, waiter: Waiter) -> Result<(), SpaceError> {
        let mut table = self.table();
        if let Some(reason) = &table.closed {
            return Err(SpaceError::Unreachable(reason.clone()));
        }
        table.waiters.insert(id, waiter);
        Ok(())
    }

    /// Forgets request `id`; true if it was still waiting.
    pub(super) fn forget(&self, id: u64) -> bool {
        self.table().waiters.remove(&id).is_some()
    }

    /// Hands answer `response` to the waiter of request `id`.
    pub(super) fn deliver(&self, id: u64, response: Response) -> Delivered {
        let mut table = self.table();
        let Some(waiter) = table.waiters.get_mut(&id) else {
            // Cancelled by its caller meanwhile.
            return Delivered::Done;
        };
        match (waiter, response) {
            (Waiter::Reply { more, .. }, Response::More(tuples)) => {
                more.extend(tuples);
                Delivered::Done
            }
            (Waiter::Feed { feed, .. }, Response::Notify(tuple)) => match feed.try_send(tuple) {
                Ok(()) => Delivered::Done,
                Err(e) => {
                    if matches!(e, mpsc::error::TrySendError::Full(_)) {
                        tracing::warn!(id, "a subscriber fell behind; ending its subscription");
                    }
                    table.waiters.remove(&id);
                    Delivered::Cancel
                }
            },
            (Waiter::Feed { ack, .. }, Response::Ack) => {
                if let Some(ack) = ack.take() {
                    let _ = ack.send(Response::Ack);
                }
                Delivered::Done
            }
            (_, response) => {
                match table.waiters.remove(&id) {
                    Some(Waiter::Reply { reply, more }) => {
                        let response = match response {
                            Response::Tuples(last) if !more.is_empty() => {
                                let mut all = more;
                                all.extend(last);
                                Response::Tuples(all)
                            }
                            other => other,
                        };
                        let _ = reply.send(response);
                    }
                    // An error or a stray answer ends a subscription.
                    Some(Waiter::Feed { ack: Some(ack), .. }) => {
                        let _ = ack.send(response);
                    }
                    Some(Waiter::Feed { ack: None, .. }) | None => {}
                }
                Delivered::Done
            }
        }
    }

    /// Closes the table: every waiter learns the connection is gone because
    /// of `reason`; later registrations fail.
    pub(super) fn close(&self, reason: String) {
        let waiters = {
            let mut table = self.table();
            table.closed.get_or_insert(reason.clone());
            std::mem::take(&mut table.waiters)
        };
        for (_, waiter) in waiters {
            let lost = Response::Error {
                kind: ErrorKind::Unreachable,
                message: reason.clone(),
            };
            match waiter {
                Waiter::Reply { reply, .. } => {
                    let _ = reply.send(lost);
                }
                Waiter::Feed { ack: Some(ack), .. } => {
                    let _ = ack.send(lost);
                }
                // Dropping the feed ends the subscription's stream.
                Waiter::Feed { ack: None, .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;

    fn reply(pending: &Pending, id: u64) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter::Reply {
            reply: tx,
            more: Vec::new(),
        };
        pending.register(id, waiter).unwrap();
        rx
    }

    #[test]
    fn chunks_gather_into_one_answer() {
        let pending = Pending::default();
        let mut rx = reply(&pending, 7);
        pending.deliver(7, Response::More(vec![tuple!(1_i64)]));
        assert!(rx.try_recv().is_err());
        pending.deliver(7, Response::Tuples(vec![tuple!(2_i64)]));
        assert_eq!(
            rx.try_recv().unwrap(),
            Response::Tuples(vec![tuple!(1_i64), tuple!(2_i64)])
        );
        assert!(!pending.forget(7));
    }

    #[test]
    fn a_full_feed_ends_the_subscription() {
        let pending = Pending::default();
        let (ack, mut acked) = oneshot::channel();
        let (feed, mut tuples) = mpsc::channel(1);
        let waiter = Waiter::Feed {
            ack: Some(ack),
            feed,
        };
        pending.register(3, waiter).unwrap();
        assert_eq!(pending.deliver(3, Response::Ack), Delivered::Done);
        assert_eq!(acked.try_recv().unwrap(), Response::Ack);
        let note = |i: i64| Response::Notify(tuple!(i));
        assert_eq!(pending.deliver(3, note(1)), Delivered::Done);
        assert_eq!(pending.deliver(3, note(2)), Delivered::Cancel);
        assert_eq!(tuples.try_recv().unwrap(), tuple!(1_i64));
        assert!(matches!(
            tuples.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn closing_fails_every_waiter_and_later_registrations() {
        let pending = Pending::default();
        let mut rx = reply(&pending, 1);
        pending.close("gone".into());
        assert!(matches!(
            rx.try_recv().unwrap(),
            Response::Error { kind: ErrorKind::Unreachable, ref message } if message == "gone"
        ));
        let (tx, _rx) = oneshot::channel();
        let again = pending.register(
            2,
            Waiter::Reply {
                reply: tx,
                more: Vec::new(),
            },
        );
        assert!(matches!(again, Err(SpaceError::Unreachable(m)) if m == "gone"));
    }
}
