//! Guarantee 6 of CONTRACT.md: bad input never crashes a node. Junk on the
//! raw TCP port, and an authenticated `/halley/space/1` stream sending a
//! malformed frame or an over-limit length: each is refused and logged, and
//! the node goes on serving everyone else.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use halley_substrate::net::{self, Protocol};
use halley_substrate::wire::{self, Message, Request, Response};
use halley_substrate::{Multiaddr, PeerId};
use libp2p::identity::Keypair;

use common::{Node, run};

const WAIT: Duration = Duration::from_secs(20);

/// Reads until the node closes the stream; fails if it does not within WAIT.
async fn closed_by_node(stream: &mut libp2p::Stream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    read.await
        .expect("the node kept a stream that sent junk open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_is_refused_and_the_node_goes_on() {
    let node = Node::start();

    // Junk on the TCP port, before any handshake.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", node.port())).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    junk.extend((0..512u32).map(|i| (i * 7919 % 251) as u8));
    tcp.write_all(&junk).unwrap();
    let mut rest = Vec::new();
    // The node hangs up (EOF or reset); a read timeout would be an error.
    if let Err(e) = tcp.read_to_end(&mut rest) {
        assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "the node kept junk open"
        );
    }

    // An authenticated libp2p connection with misbehaving streams.
    let addr: Multiaddr = node.addr.parse().unwrap();
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("no peer id in {addr}")
    };
    let mut swarm = net::swarm(Keypair::generate_ed25519(), None).unwrap();
    let me = *swarm.local_peer_id();
    let control = swarm.behaviour().stream.new_control();
    swarm.dial(addr).unwrap();
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let open = |mut control: libp2p_stream::Control, peer: PeerId| async move {
        tokio::time::timeout(WAIT, control.open_stream(peer, wire::PROTOCOL))
            .await
            .expect("open a stream in time")
            .expect("open a stream")
    };

    let mut garbage = open(control.clone(), peer).await;
    let mut frame = 12u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0xff; 12]);
    garbage.write_all(&frame).await.unwrap();
    garbage.flush().await.unwrap();
    closed_by_node(&mut garbage).await;

    let mut huge = open(control.clone(), peer).await;
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    huge.flush().await.unwrap();
    closed_by_node(&mut huge).await;

    // The same connection still serves a well-behaved stream.
    let mut good = open(control.clone(), peer).await;
    let mut buf = Vec::new();
    wire::encode_request(&mut buf, 5, &Request::Status).unwrap();
    good.write_all(&buf).await.unwrap();
    good.flush().await.unwrap();
    let mut frames = wire::frames(good);
    let answer = tokio::time::timeout(WAIT, frames.next()).await.unwrap();
    match answer {
        Some(Ok(Message::Response {
            id: 5,
            response: Response::Status(status),
        })) => assert_eq!(status.peers.len(), 1),
        other => panic!("unexpected answer {other:?}"),
    }
    driver.abort();

    // And so does a brand-new client.
    let out = run(&["out", "--peer", &node.addr, "(\"after\", 1)"], None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let read = run(&["rd", "--peer", &node.addr, "(\"after\", ?int)"], None);
    assert_eq!(read.stdout, "(\"after\", 1)\n");

    let log = node.stderr();
    assert!(log.contains("refused an incoming connection"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log to a pipe: {log}"
    );
    assert_eq!(
        log.matches("closing a stream that sent a bad frame")
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("malformed frame"), "{log}");
    assert!(log.contains("over the limit"), "{log}");
    for warning in log.lines().filter(|l| l.contains("bad frame")) {
        assert!(warning.contains(&format!("peer={me}")), "{warning}");
    }
}
