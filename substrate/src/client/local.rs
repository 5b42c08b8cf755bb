//! The client's end of a node's local door ([`crate::node::local`]): a
//! Unix-domain socket of this machine instead of a libp2p swarm, with the
//! same frames.
//!
//! Its address is the multiaddr `/unix/<path>`, the path absolute without
//! its leading slash (`/unix/tmp/halley.sock` is `/tmp/halley.sock`), as
//! [`parse_address`] reads it and [`local_address`] writes it. The node
//! speaks first: `Status` naming itself (so the client learns its peer id)
//! or `Error` when it refuses the connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use futures::io::BufReader;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use super::ConnectError;
use crate::wire::{self, Message, Response};

/// Read buffer of the connection: a header and a body in one read.
const READ_BUFFER: usize = 64 * 1024;

/// The reading half of a local connection, buffered.
pub(super) type Reader = BufReader<Compat<OwnedReadHalf>>;
/// The writing half of a local connection.
pub(super) type Writer = Compat<OwnedWriteHalf>;

/// Reads an address: `/unix/<path>` for a local door (the rest of the text
/// is the path, slashes and all), any other multiaddr as it is.
pub fn parse_address(text: &str) -> Result<Multiaddr, libp2p::multiaddr::Error> {
    match text.strip_prefix("/unix") {
        Some(path) if path.len() > 1 && path.starts_with('/') => {
            Ok(Multiaddr::empty().with(Protocol::Unix(path[1..].to_owned().into())))
        }
        Some("" | "/") => Err(libp2p::multiaddr::Error::InvalidProtocolString),
        _ => text.parse(),
    }
}

/// The address of the local door at the absolute `path`.
pub fn local_address(path: &Path) -> Multiaddr {
    let text = path.to_string_lossy();
    let relative = text.trim_start_matches('/').to_owned();
    Multiaddr::empty().with(Protocol::Unix(relative.into()))
}

/// The socket path `addr` names, if it is a local door's address.
pub fn socket_path(addr: &Multiaddr) -> Option<PathBuf> {
    match addr.iter().next() {
        Some(Protocol::Unix(path)) => Some(Path::new("/").join(path.as_ref())),
        _ => None,
    }
}

/// Connects to the local door at `path` and reads the node's greeting,
/// within `timeout`: the node's peer id and the connection's halves.
pub(super) async fn open(
    addr: &Multiaddr,
    path: &Path,
    timeout: Duration,
) -> Result<(PeerId, Reader, Writer), ConnectError> {
    let fail = |reason: String| ConnectError::Dial {
        addr: addr.clone(),
        reason,
    };
    let timed_out = || ConnectError::Timeout {
        addr: addr.clone(),
        timeout,
    };
    let opened = tokio::time::timeout(timeout, async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let (reader, writer) = stream.into_split();
        let mut reader = BufReader::with_capacity(READ_BUFFER, reader.compat());
        let greeting = wire::frames(&mut reader).next().await;
        let peer = match greeting {
            Some(Ok(Message::Response {
                id: 0,
                response: Response::Status(status),
            })) => match status.peers.first().map(|me| me.id.parse::<PeerId>()) {
                Some(Ok(peer)) => peer,
                _ => return Err(fail("the node's greeting does not name it".into())),
            },
            Some(Ok(Message::Response {
                id: 0,
                response: Response::Error { message, .. },
            })) => return Err(fail(format!("the node refused the connection: {message}"))),
            Some(Ok(other)) => return Err(fail(format!("unexpected greeting: {other:?}"))),
            Some(Err(e)) => return Err(fail(format!("bad greeting: {e}"))),
            None => return Err(fail("the node closed the connection".into())),
        };
        Ok((peer, reader, writer.compat_write()))
    })
    .await;
    opened.unwrap_or_else(|_| Err(timed_out()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_address_keeps_its_whole_path() {
        let addr = parse_address("/unix/tmp/some dir/halley.sock").unwrap();
        assert_eq!(
            socket_path(&addr),
            Some(PathBuf::from("/tmp/some dir/halley.sock"))
        );
        assert_eq!(addr.to_string(), "/unix/tmp/some dir/halley.sock");
        assert_eq!(local_address(Path::new("/tmp/some dir/halley.sock")), addr);
    }

    #[test]
    fn other_addresses_parse_as_multiaddrs() {
        let tcp = parse_address("/ip4/127.0.0.1/tcp/4001").unwrap();
        assert_eq!(socket_path(&tcp), None);
        assert!(parse_address("/unix/").is_err());
        assert!(parse_address("not an address").is_err());
    }
}
