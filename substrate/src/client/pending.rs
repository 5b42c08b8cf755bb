//! The requests a client is waiting on, by id, and how answers reach them.
//!
//! A caller registers (and so gets the request's id) before sending; the
//! reading task delivers each answer here, and the caller gets it through a
//! oneshot. Subscriptions get their tuples through a bounded channel. A
//! caller that gives up leaves a tombstone until the request's final answer
//! comes (the node answers every request once, `Cancelled` when the cancel
//! was in time): tuples a given-up take had already taken are handed back
//! for the reader to put back in the space. Once the connection is lost the
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
    /// Nobody: the caller gave up. Waits for the final answer, and hands
    /// back what a take took meanwhile if `put_back`.
    GaveUp { put_back: bool, subscription: bool },
}

/// What the reader should do after delivering an answer.
#[derive(Debug, PartialEq)]
pub(super) enum Delivered {
    Done,
    /// A subscription fell behind (its buffer is full) or was dropped: tell
    /// the node to cancel it.
    Cancel,
    /// A take whose caller gave up had taken these: put them back.
    PutBack(Vec<Tuple>),
}

#[derive(Debug, Default)]
struct Table {
    waiters: HashMap<u64, Waiter>,
    next_id: u64,
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

    /// Registers `waiter` under a fresh request id, unless the connection
    /// is gone.
    pub(super) fn register(&self, waiter: Waiter) -> Result<u64, SpaceError> {
        let mut table = self.table();
        if let Some(reason) = &table.closed {
            return Err(SpaceError::Unreachable(reason.clone()));
        }
        table.next_id += 1;
        let id = table.next_id;
        table.waiters.insert(id, waiter);
        Ok(id)
    }

    /// The caller of request `id` gives up. `None` if it was no longer
    /// waiting (its answer came, or the connection went); otherwise the
    /// node should be told to cancel it, and, if `put_back`, the tuples
    /// that already came in `More` chunks go back to the space.
    pub(super) fn give_up(&self, id: u64, put_back: bool) -> Option<Vec<Tuple>> {
        let mut table = self.table();
        let waiter = table.waiters.get_mut(&id)?;
        let subscription = matches!(waiter, Waiter::Feed { .. });
        let gave_up = Waiter::GaveUp {
            put_back,
            subscription,
        };
        match std::mem::replace(waiter, gave_up) {
            Waiter::Reply { more, .. } if put_back => Some(more),
            _ => Some(Vec::new()),
        }
    }

    /// Forgets request `id`, which was never sent.
    pub(super) fn forget(&self, id: u64) {
        self.table().waiters.remove(&id);
    }

    /// Hands answer `response` to the waiter of request `id`.
    pub(super) fn deliver(&self, id: u64, response: Response) -> Delivered {
        let mut table = self.table();
        let Some(waiter) = table.waiters.get_mut(&id) else {
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
                    table.waiters.insert(
                        id,
                        Waiter::GaveUp {
                            put_back: false,
                            subscription: true,
                        },
                    );
                    Delivered::Cancel
                }
            },
            (Waiter::Feed { ack, .. }, Response::Ack) => {
                if let Some(ack) = ack.take() {
                    let _ = ack.send(Response::Ack);
                }
                Delivered::Done
            }
            (Waiter::GaveUp { put_back, .. }, Response::More(tuples)) => {
                if *put_back {
                    Delivered::PutBack(tuples)
                } else {
                    Delivered::Done
                }
            }
            (
                Waiter::GaveUp {
                    subscription: true, ..
                },
                Response::Notify(_) | Response::Ack,
            ) => Delivered::Done,
            (_, response) => match table.waiters.remove(&id) {
                Some(Waiter::Reply { reply, more }) => {
                    let response = match response {
                        Response::Tuples(last) if !more.is_empty() => {
                            let mut all = more;
                            all.extend(last);
                            Response::Tuples(all)
                        }
                        // The chunks were the last step's.
                        Response::Steps(mut answers) if !more.is_empty() => {
                            if let Some(Response::Tuples(last)) = answers.last_mut() {
                                let mut all = more;
                                all.append(last);
                                *last = all;
                            }
                            Response::Steps(answers)
                        }
                        other => other,
                    };
                    let _ = reply.send(response);
                    Delivered::Done
                }
                // An error or a stray answer ends a subscription.
                Some(Waiter::Feed { ack: Some(ack), .. }) => {
                    let _ = ack.send(response);
                    Delivered::Done
                }
                Some(Waiter::GaveUp { put_back: true, .. }) => {
                    let taken = response.into_tuples();
                    if taken.is_empty() {
                        Delivered::Done
                    } else {
                        Delivered::PutBack(taken)
                    }
                }
                Some(Waiter::Feed { ack: None, .. } | Waiter::GaveUp { .. }) | None => {
                    Delivered::Done
                }
            },
        }
    }

    /// Whether the table was closed: the connection is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.table().closed.is_some()
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
                Waiter::Feed { ack: None, .. } | Waiter::GaveUp { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;

    fn reply(pending: &Pending) -> (u64, oneshot::Receiver<Response>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter::Reply {
            reply: tx,
            more: Vec::new(),
        };
        (pending.register(waiter).unwrap(), rx)
    }

    #[test]
    fn chunks_gather_into_one_answer() {
        let pending = Pending::default();
        let (id, mut rx) = reply(&pending);
        pending.deliver(id, Response::More(vec![tuple!(1_i64)]));
        assert!(rx.try_recv().is_err());
        pending.deliver(id, Response::Tuples(vec![tuple!(2_i64)]));
        assert_eq!(
            rx.try_recv().unwrap(),
            Response::Tuples(vec![tuple!(1_i64), tuple!(2_i64)])
        );
        assert!(pending.give_up(id, true).is_none());
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
        let id = pending.register(waiter).unwrap();
        assert_eq!(pending.deliver(id, Response::Ack), Delivered::Done);
        assert_eq!(acked.try_recv().unwrap(), Response::Ack);
        let note = |i: i64| Response::Notify(tuple!(i));
        assert_eq!(pending.deliver(id, note(1)), Delivered::Done);
        assert_eq!(pending.deliver(id, note(2)), Delivered::Cancel);
        // Notifications in flight are dropped until the node's last word.
        assert_eq!(pending.deliver(id, note(3)), Delivered::Done);
        assert_eq!(pending.deliver(id, Response::Cancelled), Delivered::Done);
        assert!(pending.give_up(id, false).is_none());
        assert_eq!(tuples.try_recv().unwrap(), tuple!(1_i64));
        assert!(matches!(
            tuples.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn closing_fails_every_waiter_and_later_registrations() {
        let pending = Pending::default();
        let (_, mut rx) = reply(&pending);
        pending.close("gone".into());
        assert!(matches!(
            rx.try_recv().unwrap(),
            Response::Error { kind: ErrorKind::Unreachable, ref message } if message == "gone"
        ));
        let (tx, _rx) = oneshot::channel();
        let again = pending.register(Waiter::Reply {
            reply: tx,
            more: Vec::new(),
        });
        assert!(matches!(again, Err(SpaceError::Unreachable(m)) if m == "gone"));
    }

    #[test]
    fn what_a_given_up_take_took_is_handed_back() {
        let pending = Pending::default();
        let (id, _rx) = reply(&pending);
        assert!(pending.give_up(id, true).is_some());
        let more = pending.deliver(id, Response::More(vec![tuple!(1_i64)]));
        assert_eq!(more, Delivered::PutBack(vec![tuple!(1_i64)]));
        let last = pending.deliver(id, Response::Tuples(vec![tuple!(2_i64)]));
        assert_eq!(last, Delivered::PutBack(vec![tuple!(2_i64)]));
        assert!(
            pending.give_up(id, true).is_none(),
            "the final answer clears the tombstone"
        );

        let (id, _rx) = reply(&pending);
        assert!(pending.give_up(id, true).is_some());
        assert_eq!(pending.deliver(id, Response::Cancelled), Delivered::Done);
        assert!(pending.give_up(id, true).is_none());
    }

    #[test]
    fn chunks_that_came_before_the_caller_gave_up_go_back_too() {
        let pending = Pending::default();
        let (id, _rx) = reply(&pending);
        pending.deliver(id, Response::More(vec![tuple!(1_i64)]));
        assert_eq!(pending.give_up(id, true), Some(vec![tuple!(1_i64)]));
        let last = pending.deliver(id, Response::Tuples(vec![tuple!(2_i64)]));
        assert_eq!(last, Delivered::PutBack(vec![tuple!(2_i64)]));

        let (id, _rx) = reply(&pending);
        pending.deliver(id, Response::More(vec![tuple!(3_i64)]));
        assert_eq!(
            pending.give_up(id, false),
            Some(Vec::new()),
            "a read keeps nothing"
        );
    }

    #[test]
    fn a_request_never_sent_is_forgotten() {
        let pending = Pending::default();
        let (id, _rx) = reply(&pending);
        pending.forget(id);
        assert!(pending.give_up(id, true).is_none());
        assert_eq!(
            pending.deliver(id, Response::Tuples(vec![tuple!(1_i64)])),
            Delivered::Done
        );
    }
}
