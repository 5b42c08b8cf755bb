//! The writer of one peer link: it numbers what it sends (a session per
//! link, one number per message, from zero), keeps every batch until the
//! reader acknowledges it, and on a broken stream opens a fresh one and
//! sends the unacknowledged batches again, so nothing written to a
//! connection that closed under it is lost. It holds at most [`QUEUE`]
//! unacknowledged messages: past that it waits for acknowledgements, and a
//! reader that gives none for [`STALL`] gets the peer disconnected, like
//! one that takes nothing; so does one that leaves a message
//! unacknowledged for [`STALL`] (and [`ACK_GRACE`] more).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use libp2p_stream::Control;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::super::super::Command;
use super::{ACK_GRACE, Drained, LinkEvent, QUEUE, STALL};
use crate::spin::Spin;
use crate::wire::{self, LinkFrame, Message, PEER_PROTOCOL, PeerMessage};

/// Attempts to open a stream to a peer before it counts as lost.
const OPEN_ATTEMPTS: u32 = 30;
/// Pause between attempts.
const OPEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// Messages the writer encodes into one write at most.
pub(super) const BATCH: usize = 256;

/// Where the writer sends, and to whom it reports.
pub(super) struct Writer {
    pub control: Control,
    pub dial: mpsc::Sender<Command>,
    pub peer: PeerId,
    pub addr: Multiaddr,
    pub events: mpsc::Sender<LinkEvent>,
    pub spin: Spin,
    pub drained: Drained,
}

impl Writer {
    /// Sends what `queue` holds until the driver drops it; `probe` makes it
    /// write a [`LinkFrame::Ping`], to find a dead connection.
    pub(super) async fn run(mut self, mut queue: mpsc::Receiver<PeerMessage>, probe: Arc<Notify>) {
        let session = rand::random::<u64>();
        let mut unacked = Unacked::default();
        let Some(mut stream) = self.start(session, &unacked).await else {
            return self.lost().await;
        };
        // One timer for the oldest batch's bound, moved only when that
        // batch changes (not armed afresh for every batch written).
        let mut overdue = Box::pin(tokio::time::sleep_until(never()));
        loop {
            unacked.ack(stream.acked.below());
            if unacked.full() {
                if stream.acked.wait(STALL).await {
                    continue;
                }
                tracing::warn!(peer = %self.peer, stall = ?STALL, "disconnecting a peer that acknowledges nothing");
                return self.lost().await;
            }
            match unacked.oldest_at() {
                Some(at) if overdue.deadline() != at + STALL => overdue.as_mut().reset(at + STALL),
                None if overdue.deadline() < Instant::now() + STALL => {
                    overdue.as_mut().reset(never());
                }
                _ => {}
            }
            let written = tokio::select! {
                biased;
                () = probe.notified() => stream.write(&link_frame(LinkFrame::Ping)).await,
                () = overdue.as_mut() => {
                    if !caught_up(&stream.acked, &mut unacked).await {
                        tracing::warn!(peer = %self.peer, stall = ?STALL, "disconnecting a peer that acknowledges nothing it was sent");
                        return self.lost().await;
                    }
                    continue;
                }
                more = batch(&mut queue, unacked.buffer(), self.peer) => {
                    let Some((bytes, count)) = more else { break };
                    self.drained.notify_one();
                    self.spin.kick();
                    let bytes = unacked.push(bytes, count);
                    stream.write(bytes).await
                }
            };
            match written {
                Ok(()) => continue,
                Err(Failure::Stalled) => {
                    tracing::warn!(peer = %self.peer, stall = ?STALL, "disconnecting a peer that does not drain its stream");
                    return self.lost().await;
                }
                Err(Failure::Broken(e)) => {
                    // Two peers dialling each other may get two connections,
                    // and one of them closes, with what was written to it.
                    tracing::info!(peer = %self.peer, error = %e, "peer stream broken, reopening");
                }
            }
            match self.start(session, &unacked).await {
                Some(fresh) => stream = fresh,
                None => return self.lost().await,
            }
        }
        let _ = stream.sink.close().await;
    }

    async fn lost(&self) {
        let _ = self.events.send(LinkEvent::Lost { peer: self.peer }).await;
    }

    /// A fresh stream, told `session` and sent every unacknowledged batch;
    /// a stream that breaks at once is tried again once (two peers dialling
    /// each other may get two connections, and one of them closes).
    async fn start(&mut self, session: u64, unacked: &Unacked) -> Option<Stream> {
        match self.try_start(session, unacked).await {
            Err(Unstarted::Broken) => self.try_start(session, unacked).await.ok(),
            started => started.ok(),
        }
    }

    async fn try_start(&mut self, session: u64, unacked: &Unacked) -> Result<Stream, Unstarted> {
        let opened = opened(&mut self.control, &self.dial, self.peer, &self.addr)
            .await
            .ok_or(Unstarted::Unreachable)?;
        let (source, sink) = opened.split();
        let acked = Arc::new(Acked::default());
        let reader = tokio::spawn(hear_acks(source, acked.clone()).in_current_span());
        let mut stream = Stream {
            sink,
            acked,
            reader,
        };
        let first = unacked.first();
        let mut written = stream
            .write(&link_frame(LinkFrame::Hello { session, first }))
            .await;
        for bytes in unacked.batches() {
            if written.is_err() {
                break;
            }
            written = stream.write(bytes).await;
        }
        match written {
            Ok(()) => Ok(stream),
            Err(e) => {
                tracing::info!(peer = %self.peer, error = ?e, "peer stream broken");
                Err(Unstarted::Broken)
            }
        }
    }
}

/// Why a stream could not be started.
enum Unstarted {
    /// [`OPEN_ATTEMPTS`] failed.
    Unreachable,
    /// It opened, and broke.
    Broken,
}

/// One open stream of the link, and what its reader acknowledged.
struct Stream {
    sink: WriteHalf<libp2p::Stream>,
    acked: Arc<Acked>,
    reader: JoinHandle<()>,
}

impl Stream {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        write_within(&mut self.sink, bytes, STALL).await
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How many of the session's messages the reader has acknowledged.
#[derive(Debug, Default)]
struct Acked {
    below: AtomicU64,
    more: Notify,
}

impl Acked {
    /// Every message numbered below this is acknowledged.
    fn below(&self) -> u64 {
        self.below.load(Ordering::Acquire)
    }

    fn hear(&self, through: u64) {
        self.below
            .fetch_max(through.saturating_add(1), Ordering::AcqRel);
        self.more.notify_one();
    }

    /// Waits for an acknowledgement; false if none comes within `bound`.
    async fn wait(&self, bound: std::time::Duration) -> bool {
        tokio::time::timeout(bound, self.more.notified())
            .await
            .is_ok()
    }
}

/// Reads the reader's acknowledgements off the stream.
async fn hear_acks(source: ReadHalf<libp2p::Stream>, acked: Arc<Acked>) {
    let mut frames = wire::frames(source);
    while let Some(Ok(Message::Link(LinkFrame::Ack { through }))) = frames.next().await {
        acked.hear(through);
    }
}

fn link_frame(frame: LinkFrame) -> Vec<u8> {
    let mut buf = Vec::new();
    wire::encode(&mut buf, &Message::Link(frame)).expect("a link frame is small");
    buf
}

/// The batches sent and not yet acknowledged, in order.
#[derive(Debug, Default)]
pub(super) struct Unacked {
    batches: VecDeque<Sent>,
    /// The number the next message gets.
    next: u64,
    /// Messages held.
    held: usize,
    /// An acknowledged batch's buffer, for the next one.
    spare: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Sent {
    first: u64,
    count: u64,
    bytes: Vec<u8>,
    /// When it was first sent.
    at: Instant,
}

impl Unacked {
    /// The number of the oldest message held (the next one's if none is).
    pub(super) fn first(&self) -> u64 {
        self.batches.front().map_or(self.next, |sent| sent.first)
    }

    /// Holds a batch of `count` messages; its bytes, to write.
    pub(super) fn push(&mut self, bytes: Vec<u8>, count: u64) -> &[u8] {
        let first = self.next;
        self.next += count;
        self.held += usize::try_from(count).expect("a batch fits in memory");
        self.batches.push_back(Sent {
            first,
            count,
            bytes,
            at: Instant::now(),
        });
        &self.batches.back().expect("just pushed").bytes
    }

    /// Lets go of every batch whose messages are all numbered below `below`.
    pub(super) fn ack(&mut self, below: u64) {
        while let Some(sent) = self.batches.front()
            && sent.first + sent.count <= below
        {
            let sent = self.batches.pop_front().expect("a front");
            self.held -= usize::try_from(sent.count).expect("a batch fits in memory");
            self.spare = Some(sent.bytes);
        }
    }

    /// When the oldest batch held was first sent.
    pub(super) fn oldest_at(&self) -> Option<Instant> {
        self.batches.front().map(|sent| sent.at)
    }

    /// Whether a batch has waited `bound` or longer for its acknowledgement.
    pub(super) fn overdue(&self, bound: std::time::Duration) -> bool {
        self.oldest_at().is_some_and(|at| at.elapsed() >= bound)
    }

    /// Whether [`QUEUE`] messages or more wait for an acknowledgement.
    pub(super) fn full(&self) -> bool {
        self.held >= QUEUE
    }

    /// An empty buffer for the next batch.
    pub(super) fn buffer(&mut self) -> Vec<u8> {
        let mut buf = self.spare.take().unwrap_or_default();
        buf.clear();
        buf
    }

    fn batches(&self) -> impl Iterator<Item = &[u8]> {
        self.batches.iter().map(|sent| sent.bytes.as_slice())
    }
}

/// Waits for the next message and encodes it, with up to [`BATCH`] - 1
/// more already queued, into `buf`; the bytes and how many messages they
/// hold, or `None` once the driver has dropped the queue.
pub(super) async fn batch(
    queue: &mut mpsc::Receiver<PeerMessage>,
    mut buf: Vec<u8>,
    peer: PeerId,
) -> Option<(Vec<u8>, u64)> {
    let first = queue.recv().await?;
    let mut next = Some(first);
    let (mut taken, mut count) = (0, 0);
    while let Some(msg) = next.take() {
        match wire::encode(&mut buf, &Message::Peer(msg)) {
            Ok(()) => count += 1,
            Err(e) => {
                tracing::error!(%peer, error = %e, "dropping a peer message that cannot be sent")
            }
        }
        taken += 1;
        if taken < BATCH {
            next = queue.try_recv().ok();
        }
    }
    Some((buf, count))
}

/// Whether the reader acknowledges, within [`ACK_GRACE`], every batch
/// held for [`STALL`] or longer (it may be this very peer that was frozen,
/// with the acknowledgements waiting to be read).
async fn caught_up(acked: &Acked, unacked: &mut Unacked) -> bool {
    let grace_end = Instant::now() + ACK_GRACE;
    loop {
        unacked.ack(acked.below());
        if !unacked.overdue(STALL) {
            return true;
        }
        if Instant::now() >= grace_end {
            return false;
        }
        let _ = tokio::time::timeout_at(grace_end, acked.more.notified()).await;
    }
}

/// A time no bound reaches: a day from now.
fn never() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400)
}

/// Why a write failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The stream took nothing for the whole bound.
    Stalled,
    Broken(std::io::Error),
}

/// Writes and flushes `buf`, failing if the stream takes nothing for
/// `stall` (the bound restarts whenever a part of `buf` is written).
pub(super) async fn write_within<W: AsyncWrite + Unpin>(
    stream: &mut W,
    mut buf: &[u8],
    stall: std::time::Duration,
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
    stall: std::time::Duration,
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
