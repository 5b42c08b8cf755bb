//! The messages of `/halley/peer/6`: what the peers of one ring say to each
//! other, framed like `/halley/space/1` (a [`super::Message::Peer`] each).
//!
//! Membership: a joining peer sends [`PeerMessage::Join`] to the member it
//! was told of, which answers [`PeerMessage::Members`] (everyone, itself
//! included, and the view epoch) and announces the newcomer to the others
//! with [`PeerMessage::Joined`]. A peer found dead, or leaving, is announced
//! with [`PeerMessage::Gone`]. Overlay traffic travels as
//! [`PeerMessage::Overlay`]; `status` asks each member its count with
//! [`PeerMessage::CountAsk`]. A heavy peer asks a light one to move
//! into its arc with [`PeerMessage::Move`]; the light one hands its tuples
//! to its successor and tells everyone [`PeerMessage::Moved`].
//!
//! A link is reliable while both peers live, even when the connection under
//! it is replaced: each stream begins with [`LinkFrame::Hello`], naming the
//! writer's session and the number of the stream's first message (the
//! others follow in order, one more each); the reader answers
//! [`LinkFrame::Ack`] on the same stream now and then, and a writer whose
//! stream breaks sends what is not yet acknowledged again on a fresh one,
//! where the reader skips what it has already delivered.

use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

use crate::overlay::Msg;

/// The protocol peers negotiate for their own traffic.
pub const PEER_PROTOCOL: StreamProtocol = StreamProtocol::new("/halley/peer/6");

/// One member of the ring: its listening address, ending in
/// `/p2p/<peer id>`, and its place on the ring when it has moved there to
/// spread the load (`None`: the place its peer id gives).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub addr: String,
    pub at: Option<u64>,
}

/// One message between peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Newcomer → member: let me in.
    Join {
        member: Member,
    },
    /// Member → newcomer: the ring, and the epoch of its view.
    Members {
        members: Vec<Member>,
        epoch: u64,
    },
    /// `member` joined; the view with it has `epoch`.
    Joined {
        member: Member,
        epoch: u64,
    },
    /// `member` left or was found dead; the view without it has `epoch`.
    Gone {
        member: Member,
        epoch: u64,
    },
    /// An overlay message sent under the view of `epoch`.
    Overlay {
        msg: Msg,
        epoch: u64,
    },
    /// How many tuples do you hold as primary? Answered by `Count`.
    CountAsk {
        token: u64,
    },
    Count {
        token: u64,
        tuples: u64,
    },
    /// Heaviest peer → a light one, to spread the load: leave your place
    /// and join again at `at`, which takes over part of my arc.
    Move {
        at: u64,
    },
    /// A member moved: `member` (the sender itself) left its place and is
    /// now at `member.at`; the views with the two changes end at `epoch`.
    Moved {
        member: Member,
        epoch: u64,
    },
}

/// The sequencing of one peer stream (a [`super::Message::Link`] each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkFrame {
    /// Writer → reader, first on every stream: the writer's `session` (a
    /// random number per link it opens) and the number of the stream's
    /// first [`PeerMessage`]; each one after it is numbered one more.
    Hello { session: u64, first: u64 },
    /// Reader → writer: every message up to number `through` is delivered.
    Ack { through: u64 },
    /// Writer → reader: nothing, to find out whether the stream still
    /// carries (a write to a dead connection fails).
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::OpId;
    use crate::wire::{Message, frame};

    #[test]
    fn peer_messages_survive_a_frame() {
        let message = Message::Peer(PeerMessage::Overlay {
            msg: Msg::Cancel { op: OpId(7) },
            epoch: 3,
        });
        let mut buf = Vec::new();
        frame::encode(&mut buf, &message).unwrap();
        assert_eq!(frame::decode(&buf[4..]).unwrap(), message);
        let join = Message::Peer(PeerMessage::Members {
            members: vec![Member {
                addr: "/ip4/1.2.3.4/tcp/1".into(),
                at: Some(42),
            }],
            epoch: 9,
        });
        buf.clear();
        frame::encode(&mut buf, &join).unwrap();
        assert_eq!(frame::decode(&buf[4..]).unwrap(), join);
    }
}
