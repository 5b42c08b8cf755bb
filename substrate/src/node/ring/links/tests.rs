//! The links without a network: a stream that takes nothing stalls a write
//! after the bound, one that takes a little at a time does not; a peer's
//! queue holds [`QUEUE`] messages, congested past [`HIGH`]; a writer holds
//! what is unacknowledged; a reader delivers each message of a session
//! once, in order, across the streams that carry it, and acknowledges it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};

use super::read::{ACK_EVERY, Sessions, read};
use super::write::{BATCH, Failure, Unacked, batch, write_within};
use super::*;
use crate::wire::{self, LinkFrame, Message};

/// A stream that never takes a byte.
struct Stuck;

impl AsyncWrite for Stuck {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Pending
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

/// A stream that takes `step` bytes after each `pause`, keeping them.
struct Trickle {
    step: usize,
    pause: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    taken: Vec<u8>,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let pause = self.pause;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        let n = buf.len().min(self.step);
        self.taken.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_takes_nothing_stalls_the_write_after_the_bound() {
    let start = tokio::time::Instant::now();
    let outcome = write_within(&mut Stuck, b"hello", STALL).await;
    assert!(matches!(outcome, Err(Failure::Stalled)), "{outcome:?}");
    assert_eq!(start.elapsed(), STALL);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_keeps_taking_is_never_stalled() {
    // 100 bytes, 3 at a time, each after 60 % of the bound: the whole write
    // takes far longer than the bound, but every part comes within it.
    let mut slow = Trickle {
        step: 3,
        pause: STALL * 6 / 10,
        sleep: None,
        taken: Vec::new(),
    };
    let buf: Vec<u8> = (0..100).collect();
    let start = tokio::time::Instant::now();
    write_within(&mut slow, &buf, STALL).await.expect("written");
    assert_eq!(slow.taken, buf);
    assert!(start.elapsed() > STALL * 10);
}

fn ping(token: u64) -> PeerMessage {
    PeerMessage::CountAsk { token }
}

#[tokio::test]
async fn a_queue_is_congested_past_high_and_refuses_past_its_bound() {
    let (queue, mut receiver) = mpsc::channel(QUEUE);
    let out = Outbound {
        queue,
        probe: Arc::default(),
    };
    for token in 0..HIGH as u64 {
        out.send(ping(token)).expect("room");
    }
    assert!(!out.congested());
    out.send(ping(0)).expect("room");
    assert!(out.congested());
    for token in HIGH as u64 + 1..QUEUE as u64 {
        out.send(ping(token)).expect("room");
    }
    assert_eq!(out.send(ping(0)), Err(Unsent::Full));

    // The writer takes a batch: there is room again.
    let peer = PeerId::random();
    let (buf, count) = batch(&mut receiver, Vec::new(), peer)
        .await
        .expect("a batch");
    assert_eq!(count, BATCH as u64);
    let mut expected = Vec::new();
    for token in 0..BATCH as u64 {
        wire::encode(&mut expected, &Message::Peer(ping(token))).unwrap();
    }
    assert_eq!(buf, expected, "the first {BATCH} messages, in order");
    assert_eq!(receiver.len(), QUEUE - BATCH);
    out.send(ping(0)).expect("room after the batch");

    drop(receiver);
    assert_eq!(out.send(ping(0)), Err(Unsent::Closed));
}

#[tokio::test]
async fn a_batch_ends_when_the_driver_drops_the_queue() {
    let (queue, mut receiver) = mpsc::channel(QUEUE);
    let out = Outbound {
        queue,
        probe: Arc::default(),
    };
    out.send(ping(7)).expect("room");
    drop(out);
    let (buf, count) = batch(&mut receiver, Vec::new(), PeerId::random())
        .await
        .expect("the queued message");
    assert!(!buf.is_empty());
    assert_eq!(count, 1);
    assert!(batch(&mut receiver, buf, PeerId::random()).await.is_none());
}

#[test]
fn a_writer_holds_batches_until_every_message_in_them_is_acknowledged() {
    let mut unacked = Unacked::default();
    assert_eq!(unacked.first(), 0);
    unacked.push(b"first".to_vec(), 3); // messages 0, 1, 2
    unacked.push(b"second".to_vec(), 2); // 3, 4
    assert_eq!(unacked.first(), 0);
    unacked.ack(2); // 0 and 1: the first batch is still partly owed
    assert_eq!(unacked.first(), 0);
    unacked.ack(3);
    assert_eq!(unacked.first(), 3, "the first batch let go");
    assert_eq!(
        unacked.buffer(),
        Vec::<u8>::new(),
        "its buffer, emptied, for reuse"
    );
    unacked.ack(5);
    assert_eq!(unacked.first(), 5, "none held: the next message's number");
    assert!(!unacked.full());
    unacked.push(Vec::new(), QUEUE as u64);
    assert!(unacked.full(), "{QUEUE} messages owed");
}

#[tokio::test(start_paused = true)]
async fn a_batch_left_unacknowledged_for_the_bound_is_overdue() {
    let mut unacked = Unacked::default();
    assert!(!unacked.overdue(STALL), "nothing held, nothing owed");
    unacked.push(b"first".to_vec(), 2);
    tokio::time::advance(STALL / 2).await;
    unacked.push(b"second".to_vec(), 2);
    assert!(!unacked.overdue(STALL));
    tokio::time::advance(STALL / 2).await;
    assert!(
        unacked.overdue(STALL),
        "the first batch is owed for the bound"
    );
    unacked.ack(2);
    assert!(!unacked.overdue(STALL), "the second is half as old");
    tokio::time::advance(STALL / 2).await;
    assert!(unacked.overdue(STALL));
    unacked.ack(4);
    assert!(!unacked.overdue(STALL));
}

/// An in-memory stream: reads `input` (then ends, or waits forever if
/// `open`), keeps what is written.
struct Pipe {
    input: futures::io::Cursor<Vec<u8>>,
    open: bool,
    output: Arc<Written>,
}

/// What was written to a [`Pipe`], and a kick each time more is.
#[derive(Default)]
struct Written {
    bytes: std::sync::Mutex<Vec<u8>>,
    more: Notify,
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let read = Pin::new(&mut self.input).poll_read(cx, buf);
        match read {
            Poll::Ready(Ok(0)) if self.open => Poll::Pending,
            read => read,
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.bytes.lock().unwrap().extend_from_slice(buf);
        self.output.more.notify_one();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A stream that says `hello`, then carries `tokens` as messages; and
/// where what the reader writes back lands.
fn stream(hello: LinkFrame, tokens: std::ops::Range<u64>) -> (Pipe, Arc<Written>) {
    let mut input = Vec::new();
    wire::encode(&mut input, &Message::Link(hello)).unwrap();
    for token in tokens {
        wire::encode(&mut input, &Message::Peer(ping(token))).unwrap();
    }
    let output = Arc::default();
    let pipe = Pipe {
        input: futures::io::Cursor::new(input),
        open: false,
        output: Arc::clone(&output),
    };
    (pipe, output)
}

/// Reads `pipe` as from `peer`, a member; the tokens the driver heard.
async fn delivered(peer: PeerId, pipe: Pipe, sessions: &Sessions) -> Vec<u64> {
    let (events, mut heard) = mpsc::channel(4 * EVENTS);
    let (_publish, known) = watch::channel(Arc::new(HashSet::from([peer])));
    read(peer, pipe, events, known, sessions.clone()).await;
    let mut tokens = Vec::new();
    while let Ok(event) = heard.try_recv() {
        match event {
            LinkEvent::Message {
                msg: PeerMessage::CountAsk { token },
                ..
            } => tokens.push(token),
            LinkEvent::Ended { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    tokens
}

/// The acknowledgements a reader wrote back.
fn acks(output: &Written) -> Vec<u64> {
    let bytes = output.bytes.lock().unwrap().clone();
    futures::executor::block_on_stream(wire::frames(futures::io::Cursor::new(bytes)))
        .map(|frame| match frame {
            Ok(Message::Link(LinkFrame::Ack { through })) => through,
            other => panic!("not an ack: {other:?}"),
        })
        .collect()
}

// A real key's peer id (the reader checks that the id names a key).
fn member() -> PeerId {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}

#[tokio::test(start_paused = true)]
async fn a_session_resent_on_a_fresh_stream_is_delivered_once_and_in_order() {
    let (peer, sessions) = (member(), Sessions::default());
    let (first, back) = stream(
        LinkFrame::Hello {
            session: 9,
            first: 0,
        },
        0..5,
    );
    assert_eq!(delivered(peer, first, &sessions).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(acks(&back), vec![4], "acknowledged as the stream ended");

    // The writer's stream broke before it heard the ack: it resends from
    // message 2, and goes on.
    let (again, back) = stream(
        LinkFrame::Hello {
            session: 9,
            first: 2,
        },
        2..8,
    );
    assert_eq!(delivered(peer, again, &sessions).await, vec![5, 6, 7]);
    assert_eq!(acks(&back), vec![7]);

    // A new session (the peer's next link) starts afresh.
    let (fresh, _) = stream(
        LinkFrame::Hello {
            session: 10,
            first: 0,
        },
        0..2,
    );
    assert_eq!(delivered(peer, fresh, &sessions).await, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_reader_acknowledges_at_once_every_ack_every_messages() {
    let (peer, sessions) = (member(), Sessions::default());
    let (pipe, back) = stream(
        LinkFrame::Hello {
            session: 1,
            first: 0,
        },
        0..ACK_EVERY + 3,
    );
    assert_eq!(
        delivered(peer, pipe, &sessions).await.len() as u64,
        ACK_EVERY + 3
    );
    assert_eq!(acks(&back), vec![ACK_EVERY - 1, ACK_EVERY + 2]);
}

#[tokio::test(start_paused = true)]
async fn a_reader_acknowledges_a_quiet_stream_within_the_bound() {
    let peer = member();
    let (mut pipe, back) = stream(
        LinkFrame::Hello {
            session: 2,
            first: 40,
        },
        40..43,
    );
    pipe.open = true;
    let (events, mut heard) = mpsc::channel(EVENTS);
    let (_publish, known) = watch::channel(Arc::new(HashSet::from([peer])));
    let reader = tokio::spawn(read(peer, pipe, events, known, Sessions::default()));
    for _ in 0..3 {
        heard.recv().await.expect("a message");
    }
    assert_eq!(acks(&back), Vec::<u64>::new(), "not at once");
    let delivered = tokio::time::Instant::now();
    back.more.notified().await;
    assert!(delivered.elapsed() <= super::read::ACK_WITHIN);
    assert_eq!(acks(&back), vec![42]);
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_skips_messages_or_says_no_hello_is_closed_unheard() {
    let (peer, sessions) = (member(), Sessions::default());
    let (pipe, _) = stream(
        LinkFrame::Hello {
            session: 3,
            first: 0,
        },
        0..2,
    );
    assert_eq!(delivered(peer, pipe, &sessions).await, vec![0, 1]);
    let (gap, _) = stream(
        LinkFrame::Hello {
            session: 3,
            first: 5,
        },
        5..7,
    );
    assert_eq!(delivered(peer, gap, &sessions).await, Vec::<u64>::new());

    let (mut bare, _) = stream(LinkFrame::Ping, 0..2);
    let mut input = Vec::new();
    wire::encode(&mut input, &Message::Peer(ping(0))).unwrap();
    bare.input = futures::io::Cursor::new(input);
    assert_eq!(delivered(peer, bare, &sessions).await, Vec::<u64>::new());
}
