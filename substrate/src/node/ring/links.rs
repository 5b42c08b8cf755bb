//! The streams between peers: one outbound `/halley/peer/1` stream per
//! member, written by a task of its own from a bounded queue, and one
//! reading task per inbound stream. An outbound stream that breaks is
//! reopened once; one that cannot be opened, or breaks again, reports the
//! peer [`LinkEvent::Lost`] to the driver; an inbound stream that ends,
//! [`LinkEvent::Ended`].
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
//! does a full queue (the driver's side, [`Outbound::send`]).
//!
//! Anyone who can connect may open `/halley/peer/1`, but only a peer the
//! driver knows ([`Known`]: members, the peers it joins through, and lost
//! members) is heard: a stranger may send `Join` and nothing else until it
//! is a member. Its other messages wait (one at a time, so the stream
//! pushes back) for at most [`STRANGER_WAIT`], for the case of a newcomer
//! that speaks before its `Joined` has arrived here; then the stream is
//! closed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use libp2p_stream::Control;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use super::super::Command;
use super::checks::ring_id;
use crate::spin::Spin;
use crate::wire::{self, Message, PEER_PROTOCOL, PeerMessage};

/// Attempts to open a stream to a peer before it counts as lost.
const OPEN_ATTEMPTS: u32 = 30;
/// Pause between attempts.
const OPEN_PAUSE: Duration = Duration::from_millis(100);
/// Messages the writer encodes into one write at most.
const BATCH: usize = 256;
/// Messages queued for one peer at most.
pub(super) const QUEUE: usize = 16_384;
/// Messages queued for one peer above which the driver takes no client
/// operations: the other half is room for what the peers' own messages
/// make it send.
pub(super) const HIGH: usize = QUEUE / 2;
/// How long a write to a peer may make no progress before the peer counts
/// as not draining its stream, and is disconnected.
const STALL: Duration = Duration::from_secs(10);
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
    link: (Spin, Drained),
) -> Outbound {
    let (queue, receiver) = mpsc::channel(QUEUE);
    let task = write(control, dial, peer, addr, receiver, events, link);
    tokio::spawn(task.in_current_span());
    Outbound { queue }
}

async fn write(
    mut control: Control,
    dial: mpsc::Sender<Command>,
    peer: PeerId,
    addr: Multiaddr,
    mut queue: mpsc::Receiver<PeerMessage>,
    events: mpsc::Sender<LinkEvent>,
    (spin, drained): (Spin, Drained),
) {
    let Some(mut stream) = opened(&mut control, &dial, peer, &addr).await else {
        let _ = events.send(LinkEvent::Lost { peer }).await;
        return;
    };
    let mut buf = Vec::new();
    while batch(&mut queue, &mut buf, peer).await {
        drained.notify_one();
        spin.kick();
        match write_within(&mut stream, &buf, STALL).await {
            Ok(()) => continue,
            Err(Failure::Stalled) => {
                tracing::warn!(%peer, stall = ?STALL, "disconnecting a peer that does not drain its stream");
                let _ = events.send(LinkEvent::Lost { peer }).await;
                return;
            }
            Err(Failure::Broken(e)) => {
                // Two peers dialling each other may get two connections,
                // and one of them closes: try a fresh stream before giving
                // up.
                tracing::info!(%peer, error = %e, "peer stream broken, reopening");
            }
        }
        let Some(fresh) = opened(&mut control, &dial, peer, &addr).await else {
            let _ = events.send(LinkEvent::Lost { peer }).await;
            return;
        };
        stream = fresh;
        if let Err(e) = write_within(&mut stream, &buf, STALL).await {
            tracing::info!(%peer, error = ?e, "peer stream broken");
            let _ = events.send(LinkEvent::Lost { peer }).await;
            return;
        }
    }
    let _ = stream.close().await;
}

/// Waits for the next message and encodes it, with up to [`BATCH`] - 1
/// more already queued, into `buf`; false once the driver has dropped the
/// queue.
async fn batch(queue: &mut mpsc::Receiver<PeerMessage>, buf: &mut Vec<u8>, peer: PeerId) -> bool {
    let Some(first) = queue.recv().await else {
        return false;
    };
    buf.clear();
    let mut next = Some(first);
    let mut count = 0;
    while let Some(msg) = next.take() {
        if let Err(e) = wire::encode(buf, &Message::Peer(msg)) {
            tracing::error!(%peer, error = %e, "dropping a peer message that cannot be sent");
        }
        count += 1;
        if count < BATCH {
            next = queue.try_recv().ok();
        }
    }
    true
}

/// Why a write failed.
#[derive(Debug)]
enum Failure {
    /// The stream took nothing for the whole bound.
    Stalled,
    Broken(std::io::Error),
}

/// Writes and flushes `buf`, failing if the stream takes nothing for
/// `stall` (the bound restarts whenever a part of `buf` is written).
async fn write_within<W: AsyncWrite + Unpin>(
    stream: &mut W,
    mut buf: &[u8],
    stall: Duration,
) -> Result<(), Failure> {
    while !buf.is_empty() {
        let n = within(stall, stream.write(buf)).await?;
        if n == 0 {
            return Err(Failure::Broken(std::io::ErrorKind::WriteZero.into()));
        }
        buf = &buf[n..];
    }
    within(stall, stream.flush()).await
}

/// `io`'s outcome, or [`Failure::Stalled`] if it takes longer than `stall`.
async fn within<T>(
    stall: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(stall, io).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(Failure::Broken(e)),
        Err(_) => Err(Failure::Stalled),
    }
}

/// A fresh stream to `peer`, dialling `addr` if need be; `None` after
/// [`OPEN_ATTEMPTS`] failures.
async fn opened(
    control: &mut Control,
    dial: &mpsc::Sender<Command>,
    peer: PeerId,
    addr: &Multiaddr,
) -> Option<libp2p::Stream> {
    for _ in 0..OPEN_ATTEMPTS {
        let _ = dial.send(Command::Dial(peer, addr.clone())).await;
        match control.open_stream(peer, PEER_PROTOCOL).await {
            Ok(stream) => return Some(stream),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "opening a peer stream");
                tokio::time::sleep(OPEN_PAUSE).await;
            }
        }
    }
    tracing::warn!(%peer, "cannot reach peer");
    None
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
    let task = async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(read(peer, stream, events.clone(), known.clone()).in_current_span());
        }
    };
    tokio::spawn(task.in_current_span());
}

async fn read(
    peer: PeerId,
    stream: libp2p::Stream,
    events: mpsc::Sender<LinkEvent>,
    mut known: Known,
) {
    // Checked once per stream (it decodes the peer's public key: tens
    // of microseconds), not once per message.
    if ring_id(&peer).is_none() {
        tracing::warn!(%peer, "closing a peer stream from a peer id that names no key");
        return;
    }
    let mut frames = wire::frames(stream);
    loop {
        match frames.next().await {
            Some(Ok(Message::Peer(msg))) => {
                if !heard(peer, &msg, &mut known).await {
                    tracing::warn!(%peer, "closing a peer stream from a peer that is not a member");
                    break;
                }
                if events
                    .send(LinkEvent::Message { from: peer, msg })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Ok(_)) => {
                tracing::warn!(%peer, "closing a peer stream that sent a client message");
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing a peer stream that sent a bad frame");
                break;
            }
            None => break,
        }
    }
    let _ = events.send(LinkEvent::Ended { peer }).await;
}

/// Whether `msg` from `peer` is to be heard: a `Join` always, anything else
/// once `peer` is known, waiting up to [`STRANGER_WAIT`] for that.
async fn heard(peer: PeerId, msg: &PeerMessage, known: &mut Known) -> bool {
    if matches!(msg, PeerMessage::Join { .. }) || known.borrow().contains(&peer) {
        return true;
    }
    let wait = known.wait_for(|known| known.contains(&peer));
    matches!(tokio::time::timeout(STRANGER_WAIT, wait).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests;
