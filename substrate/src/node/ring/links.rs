//! The streams between peers: one outbound `/halley/peer/6` stream per
//! member, written by a task of its own from a bounded queue ([`write`]),
//! and one reading task per inbound stream ([`read`]). A link is reliable
//! while both peers live: its messages are numbered and acknowledged, and
//! a writer whose stream breaks sends what was not acknowledged again on a
//! fresh one, where the reader skips what it delivered already. A stream
//! that cannot be reopened, or breaks again at once, reports the peer
//! [`LinkEvent::Lost`] to the driver; an inbound stream that ends,
//! [`LinkEvent::Ended`] (the driver then probes its own link to the peer,
//! [`Outbound::probe`]).
//!
//! What the readers hear reaches the driver through one bounded queue
//! ([`EVENTS`]): a reader waits for room, so a peer sending faster than the
//! driver handles is held back by its stream's flow control.
//!
//! What the driver sends a peer waits in a queue of [`QUEUE`] messages.
//! The driver never waits for room (two peers writing to each other would
//! each wait for the other to read): it stops taking client operations
//! while a queue holds more than [`HIGH`] (see [`Outbound::congested`]), which
//! holds the clients back, and goes on reading the peers, whose messages
//! are what fill the rest. Each writer kicks [`Drained`] when it takes
//! messages off its queue, so the driver resumes as soon as there is room.
//! A peer that does not drain is disconnected: a write that makes no
//! progress for [`STALL`] reports it [`LinkEvent::Lost`] (logged), and so
//! does a full queue (the driver's side, [`Outbound::send`]), and so does a
//! reader that acknowledges nothing while [`QUEUE`] messages wait for it,
//! and one that leaves a message unacknowledged for [`STALL`] (a frozen
//! process whose socket still takes bytes: it gets [`ACK_GRACE`] more once
//! the bound is up, for acknowledgements that waited behind a freeze of
//! this very peer).
//!
//! Anyone who can connect may open `/halley/peer/6`, but only a peer the
//! driver knows ([`Known`]: members, the peers it joins through, and lost
//! members) is heard: a stranger may send `Join` and nothing else until it
//! is a member. Its other messages wait (one at a time, so the stream
//! pushes back) for at most [`STRANGER_WAIT`], for the case of a newcomer
//! that speaks before its `Joined` has arrived here; then the stream is
//! closed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use libp2p_stream::Control;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use super::super::Command;
use crate::spin::Spin;
use crate::wire::{PEER_PROTOCOL, PeerMessage};

mod read;
mod write;

/// Messages queued for one peer at most.
pub(super) const QUEUE: usize = 16_384;
/// Messages queued for one peer above which the driver takes no client
/// operations: the other half is room for what the peers' own messages
/// make it send.
pub(super) const HIGH: usize = QUEUE / 2;
/// How long a write to a peer may make no progress before the peer counts
/// as not draining its stream, and is disconnected.
const STALL: Duration = Duration::from_secs(10);
/// How long a writer waits for acknowledgements once its oldest message
/// is [`STALL`] old, before it counts the peer lost: if this very peer was
/// the one frozen, the acknowledgements are on their way.
const ACK_GRACE: Duration = Duration::from_secs(1);
/// Link events queued for the driver at most.
pub(super) const EVENTS: usize = 1_024;
/// How long a message from a peer that is not a member waits for it to
/// become one.
const STRANGER_WAIT: Duration = Duration::from_secs(5);

/// The peers whose messages the driver hears, as it last published them.
pub(super) type Known = watch::Receiver<Arc<HashSet<PeerId>>>;

/// What the link tasks tell the driver.
#[derive(Debug)]
pub(super) enum LinkEvent {
    /// A message from `from`, whose id names a real key (checked once per
    /// stream); its ring place is the driver's to look up.
    Message { from: PeerId, msg: PeerMessage },
    /// The outbound stream could not be opened or broke.
    Lost { peer: PeerId },
    /// An inbound stream ended.
    Ended { peer: PeerId },
}

/// The peer id an address ends in.
pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last()? {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    }
}

/// Kicked by the writers when they take messages off their queues: the
/// driver, holding client operations back, looks again.
pub(super) type Drained = Arc<Notify>;

/// The driver's end of the queue to one peer; dropped, the stream closes.
#[derive(Debug)]
pub(super) struct Outbound {
    queue: mpsc::Sender<PeerMessage>,
    probe: Arc<Notify>,
}

/// Why a message could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unsent {
    /// [`QUEUE`] messages wait already: the peer does not drain.
    Full,
    /// The writer has stopped (it reports the peer lost).
    Closed,
}

impl Outbound {
    /// Queues `msg`, never waiting.
    pub(super) fn send(&self, msg: PeerMessage) -> Result<(), Unsent> {
        self.queue.try_send(msg).map_err(|e| match e {
            TrySendError::Full(_) => Unsent::Full,
            TrySendError::Closed(_) => Unsent::Closed,
        })
    }

    /// Makes the writer find out whether its stream still carries: if the
    /// connection under it is dead, it reopens, or reports the peer lost.
    pub(super) fn probe(&self) {
        self.probe.notify_one();
    }

    /// Whether more than [`HIGH`] messages wait.
    pub(super) fn congested(&self) -> bool {
        QUEUE - self.queue.capacity() > HIGH
    }
}

/// Starts the writer of the stream to `peer` at `addr`; send to the
/// returned queue, drop it to close the stream.
pub(super) fn open(
    control: Control,
    dial: mpsc::Sender<Command>,
    peer: PeerId,
    addr: Multiaddr,
    events: mpsc::Sender<LinkEvent>,
    (spin, drained): (Spin, Drained),
) -> Outbound {
    let (queue, receiver) = mpsc::channel(QUEUE);
    let probe = Arc::new(Notify::new());
    let writer = write::Writer {
        control,
        dial,
        peer,
        addr,
        events,
        spin,
        drained,
    };
    tokio::spawn(writer.run(receiver, probe.clone()).in_current_span());
    Outbound { queue, probe }
}

/// Accepts inbound peer streams and reads each in a task of its own.
pub(super) fn accept(mut control: Control, events: mpsc::Sender<LinkEvent>, known: Known) {
    let mut incoming = match control.accept(PEER_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!(error = %e, "cannot accept peer streams");
            return;
        }
    };
    let sessions = read::Sessions::default();
    let task = async move {
        while let Some((peer, stream)) = incoming.next().await {
            let reader = read::read(
                peer,
                stream,
                events.clone(),
                known.clone(),
                sessions.clone(),
            );
            tokio::spawn(reader.in_current_span());
        }
    };
    tokio::spawn(task.in_current_span());
}

#[cfg(test)]
mod tests;
