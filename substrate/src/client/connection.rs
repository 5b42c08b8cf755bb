//! The three tasks behind a [`RemoteSpace`](super::RemoteSpace): the swarm
//! driver, the reader that hands answers to their waiters, and the writer
//! that batches queued requests into as few writes as it can.

use std::sync::Arc;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};
use tokio::sync::mpsc;

use super::pending::{Delivered, Pending, Waiter};
use crate::net::Behaviour;
use crate::spin::Spin;
use crate::wire::{self, Message, Request, Response};

/// Requests the writer encodes into one write.
const BATCH: usize = 64;

/// Polls the swarm for as long as the client lives (its connections need
/// it), logging what happens to them.
pub(super) async fn drive(mut swarm: Swarm<Behaviour>) {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(peer = %peer_id, cause = ?cause, "disconnected");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            _ => {}
        }
    }
}

/// Reads answers until the stream ends, then closes `pending`.
pub(super) async fn read<R: AsyncRead + Unpin>(
    stream: R,
    peer: PeerId,
    pending: Arc<Pending>,
    requests: mpsc::Sender<(u64, Request)>,
) {
    let mut frames = wire::frames(stream);
    let reason = loop {
        match frames.next().await {
            Some(Ok(Message::Response { id, response })) => match pending.deliver(id, response) {
                Delivered::Done => {}
                Delivered::Cancel => {
                    if requests.send((id, Request::Cancel)).await.is_err() {
                        break format!("connection to {peer} closed");
                    }
                }
                Delivered::PutBack(tuples) => {
                    let back = Waiter::GaveUp {
                        put_back: false,
                        subscription: false,
                    };
                    let Ok(id) = pending.register(back) else {
                        continue;
                    };
                    let out = Request::Out { tuples, ttl: None };
                    if requests.send((id, out)).await.is_err() {
                        break format!("connection to {peer} closed");
                    }
                }
            },
            Some(Ok(Message::Request { .. } | Message::Peer(_) | Message::Link(_))) => {
                break format!("{peer} sent a request to a client");
            }
            Some(Err(e)) => break format!("connection to {peer} broken: {e}"),
            None => break format!("connection to {peer} closed"),
        }
    };
    tracing::debug!(%reason, "connection lost");
    pending.close(reason);
}

/// Writes queued requests until the queue closes or a write fails; a
/// request too large for a frame is answered with a refusal instead.
pub(super) async fn write<W: AsyncWrite + Unpin>(
    mut stream: W,
    mut requests: mpsc::Receiver<(u64, Request)>,
    pending: Arc<Pending>,
    spin: Spin,
) {
    let mut buf = Vec::new();
    while let Some((id, request)) = requests.recv().await {
        buf.clear();
        encode(&mut buf, id, &request, &pending);
        for _ in 1..BATCH {
            match requests.try_recv() {
                Ok((id, request)) => encode(&mut buf, id, &request, &pending),
                Err(_) => break,
            }
        }
        let written = async {
            stream.write_all(&buf).await?;
            stream.flush().await
        };
        spin.kick();
        if let Err(e) = written.await {
            pending.close(format!("cannot write to the node: {e}"));
            return;
        }
        if buf.capacity() > wire::MAX_FRAME {
            buf = Vec::new();
        }
    }
}

fn encode(buf: &mut Vec<u8>, id: u64, request: &Request, pending: &Pending) {
    if let Err(e) = wire::encode_request(buf, id, request) {
        pending.deliver(id, Response::refused(format!("request {id}: {e}")));
    }
}
