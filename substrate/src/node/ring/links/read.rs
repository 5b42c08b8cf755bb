//! The reader of one inbound peer stream. The stream begins with the
//! writer's [`LinkFrame::Hello`]; the reader numbers the messages that
//! follow, hands the driver each one not delivered before (a writer sends
//! its unacknowledged messages again on a fresh stream), and acknowledges
//! what it delivered: at once every [`ACK_EVERY`] messages, else within
//! [`ACK_WITHIN`].
//!
//! What each writer session has delivered is kept in [`Sessions`], shared
//! by the readers, so that two streams of one session (a broken one still
//! draining, its replacement) deliver each message once and in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::super::checks::ring_id;
use super::write::write_within;
use super::{Known, LinkEvent, STALL, STRANGER_WAIT};
use crate::wire::{self, LinkFrame, Message, PeerMessage};

/// Messages delivered before the reader acknowledges them at once.
pub(super) const ACK_EVERY: u64 = 1_024;
/// How long a delivered message waits for its acknowledgement at most.
pub(super) const ACK_WITHIN: Duration = Duration::from_millis(100);
/// Writer sessions remembered at most.
pub(super) const SESSIONS: usize = 1_024;

/// The next message number each writer session (a peer and its random
/// session number) is to deliver.
#[derive(Clone, Debug, Default)]
pub(super) struct Sessions(Arc<Mutex<HashMap<(PeerId, u64), Cursor>>>);

/// The next message number a session delivers; a reader holds it while it
/// delivers, so the session's streams take turns.
pub(super) type Cursor = Arc<tokio::sync::Mutex<u64>>;

impl Sessions {
    /// The cursor of `peer`'s `session`, starting at `first` if new; `None`
    /// when [`SESSIONS`] are held by open streams already.
    pub(super) fn enter(&self, peer: PeerId, session: u64, first: u64) -> Option<Cursor> {
        let mut sessions = self.0.lock().expect("no reader panics holding it");
        if let Some(cursor) = sessions.get(&(peer, session)) {
            return Some(cursor.clone());
        }
        // A session no stream holds is done with when its peer starts
        // another, or when room is needed.
        sessions.retain(|&(of, _), cursor| Arc::strong_count(cursor) > 1 || of != peer);
        if sessions.len() >= SESSIONS {
            sessions.retain(|_, cursor| Arc::strong_count(cursor) > 1);
        }
        if sessions.len() >= SESSIONS {
            return None;
        }
        let cursor = Cursor::new(tokio::sync::Mutex::new(first));
        sessions.insert((peer, session), cursor.clone());
        Some(cursor)
    }
}

/// Reads `peer`'s stream until it ends, then reports it
/// [`LinkEvent::Ended`].
pub(super) async fn read<S: AsyncRead + AsyncWrite>(
    peer: PeerId,
    stream: S,
    events: mpsc::Sender<LinkEvent>,
    mut known: Known,
    sessions: Sessions,
) {
    // Checked once per stream (it decodes the peer's public key: tens
    // of microseconds), not once per message.
    if ring_id(&peer).is_none() {
        tracing::warn!(%peer, "closing a peer stream from a peer id that names no key");
        return;
    }
    let (source, mut sink) = stream.split();
    let mut frames = wire::frames(source);
    let hello = tokio::time::timeout(STRANGER_WAIT, frames.next()).await;
    let Ok(Some(Ok(Message::Link(LinkFrame::Hello { session, first })))) = hello else {
        tracing::warn!(%peer, "closing a peer stream that does not begin with a hello");
        return;
    };
    let Some(cursor) = sessions.enter(peer, session, first) else {
        tracing::warn!(%peer, "closing a peer stream: too many peer sessions open");
        return;
    };
    let mut reader = Reader {
        peer,
        number: first,
        unacked: 0,
        ack_by: None,
    };
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = sleep_until(reader.ack_by) => {
                if !reader.ack(&mut sink).await {
                    break;
                }
                continue;
            }
        };
        match frame {
            Some(Ok(Message::Peer(msg))) => {
                if !heard(peer, &msg, &mut known).await {
                    tracing::warn!(%peer, "closing a peer stream from a peer that is not a member");
                    break;
                }
                match reader.deliver(msg, &cursor, &events).await {
                    Delivery::Done => {}
                    Delivery::Gap => break,
                    Delivery::DriverGone => return,
                }
                if reader.unacked >= ACK_EVERY && !reader.ack(&mut sink).await {
                    break;
                }
            }
            Some(Ok(Message::Link(LinkFrame::Ping))) => {}
            Some(Ok(_)) => {
                tracing::warn!(%peer, "closing a peer stream that sent what a peer does not send");
                break;
            }
            Some(Err(e)) if e.is_bad_frame() => {
                tracing::warn!(%peer, error = %e, "closing a peer stream that sent a bad frame");
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "a peer stream broke");
                break;
            }
            None => {
                // The writer closed its side: what it sent last is owed.
                reader.ack(&mut sink).await;
                break;
            }
        }
    }
    let _ = events.send(LinkEvent::Ended { peer }).await;
}

/// Waits until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One stream's numbering and its acknowledgements owed.
struct Reader {
    peer: PeerId,
    /// The number of the next message on this stream.
    number: u64,
    /// Messages received since the last acknowledgement.
    unacked: u64,
    /// When the oldest of them is to be acknowledged.
    ack_by: Option<Instant>,
}

enum Delivery {
    Done,
    /// The writer skipped messages: it broke the protocol.
    Gap,
    DriverGone,
}

impl Reader {
    /// Hands `msg` to the driver unless the session delivered it already.
    async fn deliver(
        &mut self,
        msg: PeerMessage,
        cursor: &Cursor,
        events: &mpsc::Sender<LinkEvent>,
    ) -> Delivery {
        let number = self.number;
        self.number += 1;
        self.unacked += 1;
        self.ack_by
            .get_or_insert_with(|| Instant::now() + ACK_WITHIN);
        let mut next = cursor.lock().await;
        if number < *next {
            return Delivery::Done;
        }
        if number > *next {
            tracing::warn!(peer = %self.peer, expected = *next, got = number, "closing a peer stream that skipped messages");
            return Delivery::Gap;
        }
        let event = LinkEvent::Message {
            from: self.peer,
            msg,
        };
        if events.send(event).await.is_err() {
            return Delivery::DriverGone;
        }
        *next += 1;
        Delivery::Done
    }

    /// Acknowledges every message received; false if the stream is broken.
    async fn ack<W: AsyncWrite + Unpin>(&mut self, sink: &mut W) -> bool {
        self.ack_by = None;
        if self.unacked == 0 {
            return true;
        }
        self.unacked = 0;
        let mut buf = Vec::new();
        let through = self.number - 1;
        wire::encode(&mut buf, &Message::Link(LinkFrame::Ack { through }))
            .expect("an ack is small");
        match write_within(sink, &buf, STALL).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(peer = %self.peer, error = ?e, "cannot acknowledge on a peer stream");
                false
            }
        }
    }
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
