//! The libp2p stack nodes and clients share: TCP without Nagle's delay,
//! optionally wrapped in the private-network handshake of a pre-shared key
//! (libp2p `pnet`), then noise and yamux; identify and ping; and generic
//! streams ([`libp2p_stream`]) for the long-lived `/halley/space/1`
//! streams.
//!
//! A swarm with a key talks only to swarms with the same key: with a
//! different key, or none, the connection's handshake fails. [`dial`]
//! connects a swarm to one address and says which of three ways a dial
//! fails it was: nobody reachable there, a node whose handshake failed
//! once connected (most likely a missing or different key), or something
//! listening that does not speak libp2p at all.

use std::error::Error;
use std::time::Duration;

pub use libp2p::multiaddr::Protocol;
pub use libp2p::pnet::PreSharedKey;

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

/// What identify announces as the protocol family.
const IDENTIFY_PROTOCOL: &str = "/halley/1.0.0";

/// A connection without streams closes after this long. Clients keep their
/// one stream open, so this only reaps connections nobody uses.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a new connection may take to finish its handshakes (pnet,
/// noise, yamux). A peer with a different key can leave the other side
/// waiting for bytes that never come; this bounds it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the libp2p stack could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the libp2p stack: {0}")]
pub struct NetError(String);

/// Why [`dial`] could not connect.
#[derive(Debug, thiserror::Error)]
pub enum DialFailure {
    /// Nothing answered at the address (refused, unreachable, bad address).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: Multiaddr, reason: String },
    /// Something answered, but the connection's handshake failed.
    #[error(
        "cannot reach {addr}: the handshake failed ({reason}) — does this node use a \
         --secret-file, and is it the same one?"
    )]
    Handshake { addr: Multiaddr, reason: String },
    /// Something answered, but not in libp2p's (so Halley's) protocol.
    #[error(
        "cannot reach {addr}: something listens there but does not speak Halley's protocol \
         (libp2p); it answered {answer}"
    )]
    NotHalley { addr: Multiaddr, answer: String },
    /// Neither within the time allowed.
    #[error("cannot reach {addr}: no connection within {:.1}s", .timeout.as_secs_f64())]
    Timeout { addr: Multiaddr, timeout: Duration },
}

/// The behaviours every Halley swarm runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Opens and accepts `/halley/space/1` streams through its `Control`.
    pub stream: libp2p_stream::Behaviour,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

/// A swarm on the tokio runtime with `keypair` as its identity; with
/// `secret`, it only connects to swarms holding the same key.
pub fn swarm(keypair: Keypair, secret: Option<PreSharedKey>) -> Result<Swarm<Behaviour>, NetError> {
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| transport(key, secret))
        .map_err(|e| NetError(e.to_string()))?
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .map_err(|e| NetError(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

/// TCP (nodelay), then the pnet handshake when there is a key, then noise
/// and yamux, the whole upgrade bounded by [`HANDSHAKE_TIMEOUT`].
fn transport(
    key: &Keypair,
    secret: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn Error + Send + Sync>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = noise::Config::new(key)?;
    let yamux = yamux::Config::default();
    Ok(match secret {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux)
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        None => tcp
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .timeout(HANDSHAKE_TIMEOUT)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    })
}

/// Dials `addr` (ending in `/p2p/<peer id>`) and drives `swarm` until the
/// connection is up, at most `timeout`. Other events meanwhile are dropped.
pub async fn dial(
    swarm: &mut Swarm<Behaviour>,
    addr: &Multiaddr,
    timeout: Duration,
) -> Result<PeerId, DialFailure> {
    let unreachable = |reason: String| DialFailure::Unreachable {
        addr: addr.clone(),
        reason,
    };
    let opts = DialOpts::from(addr.clone());
    let connection = opts.connection_id();
    swarm.dial(opts).map_err(|e| unreachable(e.to_string()))?;
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished {
                    peer_id,
                    connection_id,
                    ..
                } if connection_id == connection => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError {
                    connection_id,
                    error,
                    ..
                } if connection_id == connection => return Err(failure(addr, &error).await),
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| DialFailure::Timeout {
            addr: addr.clone(),
            timeout,
        })?
}

/// Sorts a failed dial by trying a bare TCP connection to the same
/// address ([`probe`]): if that fails too, nobody is there; if what
/// answers speaks libp2p (plain, or behind a pre-shared key), it is a
/// node on other terms (negotiation, noise or the pnet handshake failed or
/// timed out); anything else does not speak Halley at all. libp2p's
/// layered errors do not say which reliably: each layer hides the one
/// below from `source()`.
async fn failure(addr: &Multiaddr, error: &DialError) -> DialFailure {
    let reason = match error {
        DialError::Transport(attempts) => attempts
            .first()
            .map_or_else(|| error.to_string(), |(_, e)| innermost(e)),
        _ => error.to_string(),
    };
    let addr = addr.clone();
    if !matches!(error, DialError::Transport(_)) {
        return DialFailure::Unreachable { addr, reason };
    }
    match probe(&addr).await {
        Answer::Nobody => DialFailure::Unreachable { addr, reason },
        Answer::Libp2p => DialFailure::Handshake { addr, reason },
        Answer::Other(answer) => DialFailure::NotHalley { addr, answer },
    }
}

/// How long the bare TCP probe of [`failure`] may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a libp2p listener says first without a key: multistream-select's
/// header (length-prefixed). With a key it first sends a 24-byte nonce.
const MULTISTREAM: &[u8] = b"\x13/multistream/1.0.0\n";
const PNET_NONCE: usize = 24;

/// Who answers a bare TCP connection.
#[derive(Debug, PartialEq)]
enum Answer {
    Nobody,
    /// A libp2p listener, with or without a pre-shared key.
    Libp2p,
    /// Something else; what it said, in short.
    Other(String),
}

/// Connects to `addr`'s IP and port, offers multistream-select, and sorts
/// what comes back ([`Answer`]).
async fn probe(addr: &Multiaddr) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(mut socket) = tcp_connect(addr).await else {
        return Answer::Nobody;
    };
    let mut said = Vec::new();
    let talk = async {
        socket.write_all(MULTISTREAM).await?;
        let mut chunk = [0u8; 64];
        while said.len() < 64 {
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            said.extend_from_slice(&chunk[..n]);
            if said.starts_with(MULTISTREAM) || said.len() >= PNET_NONCE {
                break;
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(PROBE_TIMEOUT, talk).await;
    sort_answer(&said)
}

/// Sorts the first bytes a listener sent after our multistream header.
fn sort_answer(said: &[u8]) -> Answer {
    if said.starts_with(MULTISTREAM) {
        return Answer::Libp2p;
    }
    let text = said
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if said.len() >= PNET_NONCE && !text {
        // Binary noise of a nonce's length: a node behind a key.
        return Answer::Libp2p;
    }
    if said.is_empty() {
        return Answer::Other("nothing (it closed the connection or stayed silent)".into());
    }
    let shown: String = String::from_utf8_lossy(&said[..said.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Answer::Other(format!("{:?}", shown.trim()))
}

/// A plain TCP connection to `addr`'s IP and port, if one is had within
/// [`PROBE_TIMEOUT`].
async fn tcp_connect(addr: &Multiaddr) -> Option<tokio::net::TcpStream> {
    let mut ip = None;
    let mut port = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (ip, port) = (ip?, port?);
    let connect = tokio::net::TcpStream::connect((ip, port));
    tokio::time::timeout(PROBE_TIMEOUT, connect)
        .await
        .ok()?
        .ok()
}

/// The last error of the chain, in words: the cause, without the layers
/// that each repeat it.
fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_libp2p_and_the_rest() {
        assert_eq!(sort_answer(MULTISTREAM), Answer::Libp2p);
        let nonce: Vec<u8> = (0..24u8).map(|b| b.wrapping_mul(37) ^ 0x80).collect();
        assert_eq!(sort_answer(&nonce), Answer::Libp2p);
        let http = b"HTTP/1.0 400 Bad request\r\nServer: x\r\n\r\n";
        match sort_answer(http) {
            Answer::Other(said) => assert!(said.contains("HTTP/1.0 400"), "{said}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(sort_answer(b""), Answer::Other(s) if s.contains("nothing")));
        assert!(matches!(
            sort_answer(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Answer::Other(_)
        ));
    }
}
