//! The writers' bounds, without a network: a stream that takes nothing
//! stalls a write after the bound, one that takes a little at a time does
//! not, and a peer's queue holds [`QUEUE`] messages, congested past
//! [`HIGH`].

use std::pin::Pin;
use std::task::{Context, Poll};

use super::*;

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
    let out = Outbound { queue };
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
    let mut buf = Vec::new();
    let peer = PeerId::random();
    assert!(batch(&mut receiver, &mut buf, peer).await);
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
    let out = Outbound { queue };
    out.send(ping(7)).expect("room");
    drop(out);
    let mut buf = Vec::new();
    assert!(batch(&mut receiver, &mut buf, PeerId::random()).await);
    assert!(!buf.is_empty());
    assert!(!batch(&mut receiver, &mut buf, PeerId::random()).await);
}
