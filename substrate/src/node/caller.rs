//! Who is on the other end of a served stream: a libp2p peer, known by the
//! peer id its connection authenticated, or a process of this machine that
//! came in through the local door ([`super::local`]), known by its process
//! id and the number of its connection. Shares ([`super::shares`]) and logs
//! name callers this way; each local connection is a caller of its own.

use std::fmt;

use libp2p::PeerId;

/// The client of one served stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Caller {
    /// A libp2p peer (a client's throwaway identity, or a ring peer).
    Remote(PeerId),
    /// A connection to the local door: the `pid` its peer credentials
    /// named, and the door's count of connections so far.
    Local { pid: Option<i32>, connection: u64 },
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Remote(peer) => write!(f, "{peer}"),
            Caller::Local {
                pid: Some(pid),
                connection,
            } => write!(f, "local pid {pid} (connection {connection})"),
            Caller::Local {
                pid: None,
                connection,
            } => write!(f, "local connection {connection} (pid unknown)"),
        }
    }
}
