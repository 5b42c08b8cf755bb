//! A node serving its share of a ring of peers: [`RingSpace`] is the
//! [`Space`] the node's client streams use, backed by one driver task
//! ([`driver`]) that owns this peer's sans-io [`crate::overlay::Peer`] and
//! the membership, and talks to the other peers over `/halley/peer/6`
//! ([`links`]).
//!
//! Every client request becomes one overlay operation
//! ([`crate::overlay::Event::Client`]), a bulk `out` one batch `out` per
//! [`crate::overlay::MAX_BATCH`] tuples ([`crate::overlay::Op::OutAll`]);
//! its replies come back through a channel per operation. A take or read whose future is dropped (its
//! client went away, or cancelled it) cancels the operation in the overlay
//! ([`crate::overlay::Event::Cancel`]): it is unregistered at every
//! candidate, offers to it are declined, and tuples already taken for it
//! are put back; so are tuples whose answer arrived after the client left.
//!
//! Bounds: operations reach the driver through a bounded queue
//! ([`OPS`]; a full one holds the client back); cancels, put-backs and
//! unsubscriptions, at most one per operation admitted, through a second
//! queue the driver serves first. An operation's replies come through a
//! channel of its own: one slot for a single answer, [`NOTIFY_BUFFER`]
//! for a subscription, whose reader is cut off (the subscription ends)
//! when it lets that many notifications pile up.

mod checks;
mod driver;
mod links;
mod trust;

/// What the driver checks of an overlay message off a peer link before
/// its peer sees it (also what the `overlay` fuzz target applies).
pub use checks::{BadOverlay, epoch_plausible, overlay as check_overlay};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p_stream::Control;
use tokio::sync::{mpsc, oneshot};

use super::{Command, Served};
use crate::overlay::{Config, Op, OpId, OverlayError, Reply};
use crate::space::{Space, SpaceError, Subscription};
use crate::template::Template;
use crate::tuple::Tuple;
use crate::wire::{RingMember, Status};

/// Tuples of one bulk `out` in flight at once (in batches of at most
/// [`crate::overlay::MAX_BATCH`]): an eighth of the overlay's default
/// `max_pending`, so that several clients' bulk writes fit at once.
const OUT_WINDOW: usize = 512;
/// Operations queued for the driver at most.
const OPS: usize = 1_024;
/// Notifications a subscription's reader may leave unread before it is
/// cut off.
pub(super) const NOTIFY_BUFFER: usize = 32;

/// What a node hands the ring: how to reach other peers.
pub(super) struct Link {
    pub control: Control,
    pub dial: mpsc::Sender<Command>,
    pub address: Multiaddr,
    /// Kicked after each message to a peer: its answer comes soon.
    pub spin: crate::spin::Spin,
    /// The node's counters (the driver counts the counts it is asked for).
    pub metrics: Arc<super::metrics::Metrics>,
}

/// What the space handle asks of the driver.
enum Input {
    Op {
        op: OpId,
        request: Op,
        replies: mpsc::Sender<Reply>,
    },
    /// The client of this operation went away.
    Cancel(OpId),
    /// Tuples taken for a client that never received them.
    PutBack(Vec<Tuple>),
    Status(oneshot::Sender<Status>),
    /// The members of this peer's view, at once.
    Members(oneshot::Sender<Vec<RingMember>>),
    Leave(oneshot::Sender<()>),
}

/// The space of a ring, as one node serves it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RingSpace {
    inputs: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Input>,
    next_op: Arc<AtomicU64>,
    count: Arc<AtomicU64>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

impl RingSpace {
    pub(super) fn start(link: Link, join: Vec<Multiaddr>, config: Config) -> RingSpace {
        let (inputs, receiver) = mpsc::channel(OPS);
        // Unbounded because it is sent from `Drop` (a cancel, a put-back,
        // an unsubscribe), which cannot wait. It cannot grow past the
        // operations in flight: each sends at most two inputs, once, when it
        // ends, and operations are bounded by `OPS`, the streams' in-flight
        // limit and each client's share; the driver drains it first.
        let (control, controls) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicU64::new(0));
        driver::spawn(link, join, config, receiver, controls, count.clone());
        RingSpace {
            inputs,
            control,
            next_op: Arc::new(AtomicU64::new(0)),
            count,
        }
    }

    /// Leaves the ring: hands this peer's tuples over and tells the others;
    /// returns once the handover is sent (or the driver is gone).
    pub async fn leave(&self) {
        let (done, wait) = oneshot::channel();
        if self.inputs.send(Input::Leave(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Starts `request`, waiting for room in the driver's queue; its
    /// replies arrive on the receiver.
    async fn submit(&self, request: Op) -> Result<(OpId, mpsc::Receiver<Reply>), SpaceError> {
        let (input, op, receiver) = self.input(request);
        self.inputs.send(input).await.map_err(|_| gone())?;
        Ok((op, receiver))
    }

    /// The driver's input for `request`, with the channel of its replies.
    fn input(&self, request: Op) -> (Input, OpId, mpsc::Receiver<Reply>) {
        let op = OpId(self.next_op.fetch_add(1, Ordering::Relaxed));
        let room = match request {
            Op::Subscribe { .. } => NOTIFY_BUFFER + 1,
            _ => 1,
        };
        let (replies, receiver) = mpsc::channel(room);
        let input = Input::Op {
            op,
            request,
            replies,
        };
        (input, op, receiver)
    }

    /// Runs `request` to its one answer; dropped before that, it cancels
    /// the operation.
    async fn ask(&self, request: Op) -> Result<Reply, SpaceError> {
        let (op, replies) = self.submit(request).await?;
        let pending = Pending {
            op,
            replies,
            control: self.control.clone(),
            done: false,
        };
        match pending.answer().await? {
            Reply::Failed(e) => Err(failed(e)),
            reply => Ok(reply),
        }
    }
}

/// An operation waiting for its answer. Dropped before it has it, it
/// cancels the operation, and puts back the tuples of an answer that had
/// already arrived unread.
struct Pending {
    op: OpId,
    replies: mpsc::Receiver<Reply>,
    control: mpsc::UnboundedSender<Input>,
    done: bool,
}

impl Pending {
    async fn answer(mut self) -> Result<Reply, SpaceError> {
        let reply = self.replies.recv().await;
        self.done = true;
        reply.ok_or_else(gone)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Closed first: the driver either delivered the answer before (it
        // is read here) or finds the channel closed and puts it back.
        self.replies.close();
        let mut back = Vec::new();
        while let Ok(reply) = self.replies.try_recv() {
            if let Reply::Taken(tuples) = reply {
                back.extend(tuples.into_iter().map(|t| t.tuple));
            }
        }
        let _ = self.control.send(Input::Cancel(self.op));
        if !back.is_empty() {
            let _ = self.control.send(Input::PutBack(back));
        }
    }
}

/// A failed operation's error: over a limit is a refusal, the rest is
/// the space out of reach.
fn failed(error: OverlayError) -> SpaceError {
    match error {
        OverlayError::Busy | OverlayError::Full => SpaceError::Refused(error.to_string()),
        OverlayError::Timeout | OverlayError::Leaving => SpaceError::Unreachable(error.to_string()),
    }
}

/// Waits for a batch `out`'s acknowledgement.
async fn stored(mut replies: mpsc::Receiver<Reply>) -> Result<(), SpaceError> {
    match replies.recv().await.ok_or_else(gone)? {
        Reply::StoredAll { .. } => Ok(()),
        Reply::Failed(e) => Err(failed(e)),
        other => Err(SpaceError::Unreachable(format!("out answered {other:?}"))),
    }
}

fn gone() -> SpaceError {
    SpaceError::Unreachable("the ring driver has stopped".into())
}

fn wait_ms(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// A subscription through the ring; dropping it unsubscribes.
#[derive(Debug)]
pub struct RingSubscription {
    op: OpId,
    replies: mpsc::Receiver<Reply>,
    space: RingSpace,
}

impl Subscription for RingSubscription {
    async fn next(&mut self) -> Option<Tuple> {
        loop {
            match self.replies.recv().await? {
                Reply::Notified(tagged) => return Some(tagged.tuple),
                Reply::Ended | Reply::Failed(_) => return None,
                _ => {}
            }
        }
    }
}

impl Drop for RingSubscription {
    fn drop(&mut self) {
        let unsubscribe = Op::Unsubscribe {
            subscription: self.op,
        };
        let (input, _, _) = self.space.input(unsubscribe);
        let _ = self.space.control.send(input);
    }
}

impl Space for RingSpace {
    type Subscription = RingSubscription;

    async fn out_all(&self, tuples: Vec<Tuple>, ttl: Option<Duration>) -> Result<(), SpaceError> {
        // One overlay operation a batch; a sliding window of them.
        let ttl_ms = wait_ms(ttl);
        let mut waiting = std::collections::VecDeque::new();
        let mut in_flight = 0;
        for tuples in crate::overlay::batches(tuples) {
            while in_flight + tuples.len() > OUT_WINDOW
                && let Some((count, replies)) = waiting.pop_front()
            {
                stored(replies).await?;
                in_flight -= count;
            }
            in_flight += tuples.len();
            let count = tuples.len();
            let (_, replies) = self.submit(Op::OutAll { tuples, ttl_ms }).await?;
            waiting.push_back((count, replies));
        }
        for (_, replies) in waiting {
            stored(replies).await?;
        }
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
        let wait_ms = wait_ms(timeout);
        let request = Op::In {
            template,
            wait_ms,
            max,
        };
        match self.ask(request).await? {
            Reply::Taken(taken) => Ok(taken.into_iter().map(|t| t.tuple).collect()),
            other => Err(SpaceError::Unreachable(format!("in answered {other:?}"))),
        }
    }

    async fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> Result<Option<Tuple>, SpaceError> {
        let wait_ms = wait_ms(timeout);
        match self.ask(Op::Rd { template, wait_ms }).await? {
            Reply::Found(found) => Ok(found.map(|t| t.tuple)),
            other => Err(SpaceError::Unreachable(format!("rd answered {other:?}"))),
        }
    }

    async fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let limit = limit.unwrap_or(usize::MAX);
        match self.ask(Op::Scan { template, limit }).await? {
            Reply::Listed(tuples) => Ok(tuples.into_iter().map(|t| t.tuple).collect()),
            other => Err(SpaceError::Unreachable(format!("scan answered {other:?}"))),
        }
    }

    async fn subscribe(&self, template: Template) -> Result<RingSubscription, SpaceError> {
        let (op, replies) = self.submit(Op::Subscribe { template }).await?;
        Ok(RingSubscription {
            op,
            replies,
            space: self.clone(),
        })
    }
}

impl Served for RingSpace {
    fn tuple_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    async fn status(&self) -> Option<Status> {
        let (answer, status) = oneshot::channel();
        self.inputs.send(Input::Status(answer)).await.ok()?;
        status.await.ok()
    }

    async fn members(&self) -> Vec<RingMember> {
        let (answer, members) = oneshot::channel();
        if self.inputs.send(Input::Members(answer)).await.is_err() {
            return Vec::new();
        }
        members.await.unwrap_or_default()
    }
}
