//! The streams between peers: one outbound `/halley/peer/1` stream per
//! member, written by a task of its own from an unbounded queue, and one
//! reading task per inbound stream. An outbound stream that breaks is
//! reopened once; one that cannot be opened, or breaks again, reports the
//! peer [`LinkEvent::Lost`] to the driver; an inbound stream that ends,
//! [`LinkEvent::Ended`].
//!
//! What the readers hear reaches the driver through one bounded queue
//! ([`EVENTS`]): a reader waits for room, so a peer sending faster than the
//! driver handles is held back by its stream's flow control. The outbound
//! queues are not bounded: the driver never waits, and what it queues for
//! a peer is bounded by the operations pending at it.
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

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use libp2p_stream::Control;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::super::Command;
use crate::spin::Spin;
use crate::wire::{self, Message, PEER_PROTOCOL, PeerMessage};

/// Attempts to open a stream to a peer before it counts as lost.
const OPEN_ATTEMPTS: u32 = 30;
/// Pause between attempts.
const OPEN_PAUSE: Duration = Duration::from_millis(100);
/// Messages the writer encodes into one write at most.
const BATCH: usize = 256;
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
    Message {
        from: PeerId,
        msg: PeerMessage,
    },
    /// The outbound stream could not be opened or broke.
    Lost {
        peer: PeerId,
    },
    /// An inbound stream ended.
    Ended {
        peer: PeerId,
    },
}

/// The peer id an address ends in.
pub(super) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last()? {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
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
    spin: Spin,
) -> mpsc::UnboundedSender<PeerMessage> {
    let (queue, receiver) = mpsc::unbounded_channel();
    let task = write(control, dial, peer, addr, receiver, events, spin);
    tokio::spawn(task.in_current_span());
    queue
}

async fn write(
    mut control: Control,
    dial: mpsc::Sender<Command>,
    peer: PeerId,
    addr: Multiaddr,
    mut queue: mpsc::UnboundedReceiver<PeerMessage>,
    events: mpsc::Sender<LinkEvent>,
    spin: Spin,
) {
    let Some(mut stream) = opened(&mut control, &dial, peer, &addr).await else {
        let _ = events.send(LinkEvent::Lost { peer }).await;
        return;
    };
    let mut buf = Vec::new();
    while let Some(first) = queue.recv().await {
        buf.clear();
        let mut next = Some(first);
        let mut count = 0;
        while let Some(msg) = next.take() {
            if let Err(e) = wire::encode(&mut buf, &Message::Peer(msg)) {
                tracing::error!(%peer, error = %e, "dropping a peer message that cannot be sent");
            }
            count += 1;
            if count < BATCH {
                next = queue.try_recv().ok();
            }
        }
        spin.kick();
        if let Err(e) = write_all(&mut stream, &buf).await {
            // Two peers dialling each other may get two connections, and
            // one of them closes: try a fresh stream before giving up.
            tracing::info!(%peer, error = %e, "peer stream broken, reopening");
            let Some(fresh) = opened(&mut control, &dial, peer, &addr).await else {
                let _ = events.send(LinkEvent::Lost { peer }).await;
                return;
            };
            stream = fresh;
            if let Err(e) = write_all(&mut stream, &buf).await {
                tracing::info!(%peer, error = %e, "peer stream broken");
                let _ = events.send(LinkEvent::Lost { peer }).await;
                return;
            }
        }
    }
    let _ = stream.close().await;
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

async fn write_all(stream: &mut libp2p::Stream, buf: &[u8]) -> std::io::Result<()> {
    stream.write_all(buf).await?;
    stream.flush().await
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
