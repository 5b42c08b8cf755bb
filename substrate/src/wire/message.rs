//! The messages of `/halley/space/1`.
//!
//! Every [`Message`] names a request id. The client picks ids (unique among
//! its requests in flight on the stream); the node answers each request with
//! one final response under the same id: [`Response::Ack`],
//! [`Response::Tuples`], [`Response::Status`] or [`Response::Error`]. A long
//! answer arrives as [`Response::More`] chunks before its final `Tuples`; a
//! subscription's `Ack` is followed by one [`Response::Notify`] per matching
//! tuple until the client cancels it. [`Request::Cancel`] has no answer of
//! its own: the request it names, if still running, ends with
//! [`Response::Cancelled`] (nothing taken). So every request gets exactly
//! one final answer, and a client can tell a cancelled take from one that
//! had taken its tuples already.
//!
//! Room to grow: bincode writes an enum's variant as its index, so new
//! variants (the peer-to-peer messages of the overlay, new requests) are
//! appended at the end of these enums and old peers keep decoding the rest.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::space::{SpaceError, Step};
use crate::template::Template;
use crate::tuple::Tuple;

/// One frame's worth of protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A client's request.
    Request { id: u64, request: Request },
    /// The node's answer (or one of its parts) to request `id`.
    Response { id: u64, response: Response },
    /// Peer to peer, on `/halley/peer/6` only.
    Peer(super::PeerMessage),
    /// The sequencing of a peer link, on `/halley/peer/6` only (see
    /// [`super::LinkFrame`]).
    Link(super::LinkFrame),
}

/// What a client asks of the space. Timeouts follow [`crate::Space`]: `None`
/// waits forever, zero does not block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Store every tuple (each expiring after `ttl`, if given).
    Out {
        tuples: Vec<Tuple>,
        ttl: Option<Duration>,
    },
    /// Remove and return between 1 and `max` matching tuples.
    Take {
        template: Template,
        max: u32,
        timeout: Option<Duration>,
    },
    /// Return a copy of one matching tuple.
    Read {
        template: Template,
        timeout: Option<Duration>,
    },
    /// Return copies of the matching tuples, at most `limit`.
    Scan {
        template: Template,
        limit: Option<u64>,
    },
    /// Notify every tuple written from now on that matches.
    Subscribe { template: Template },
    /// Abandon the request whose id this message carries: a waiting take or
    /// read gives up without removing anything, a subscription ends
    /// (this is how a client unsubscribes). No answer of its own.
    Cancel,
    /// Describe the space: its peers and what they hold.
    Status,
    /// Present a job's capability (its text form, `hcap1-…`) to a
    /// gateway: the stream may then do what it allows, and nothing else
    /// (see `node::gate`). Answered `Ack`, or refused.
    Present { capability: String },
    /// Run these steps one after the other, each once the one before has
    /// finished (so their effects happen in this order), in one round trip:
    /// answered by one [`Response::Steps`]. At most
    /// [`crate::space::MAX_STEPS`] steps, and only the last may wait (every
    /// earlier take has a zero timeout), or the request is refused whole
    /// before any step runs ([`crate::space::check_steps`]). The tuples the last step takes may come first as `More`
    /// chunks, as a take's do.
    Steps(Vec<Step>),
    /// The ring's members as this node sees them, without their counts:
    /// answered at once from its own view by [`Response::Members`] (where
    /// `Status` asks every member to count). Empty from a node serving
    /// alone. What a direct client refreshes its routes with.
    Members,
}

/// What the node answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Done: tuples stored, or a subscription started.
    Ack,
    /// The (last part of the) tuples taken, read or scanned; empty when a
    /// take or read timed out.
    Tuples(Vec<Tuple>),
    /// A first part of a long answer; the final part is `Tuples`.
    More(Vec<Tuple>),
    /// A tuple written that matches a subscription.
    Notify(Tuple),
    /// The answer to `Status`.
    Status(Status),
    /// The request failed.
    Error { kind: ErrorKind, message: String },
    /// The request was cancelled before it finished: nothing was taken.
    Cancelled,
    /// The answers to the steps of a [`Request::Steps`], in order: `Ack`
    /// for an `Out`, `Tuples` for a `Take`. A step that failed (or a last
    /// step cancelled) ends the list with its `Error` (or `Cancelled`): the
    /// steps before it took effect, the ones after it never ran.
    Steps(Vec<Response>),
    /// The answer to `Members`.
    Members(Vec<RingMember>),
}

/// Why a request failed, as a [`SpaceError`] says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was refused (too large, malformed, over a limit).
    Refused,
    /// The node cannot reach its space.
    Unreachable,
}

impl Response {
    /// The error answer that carries `error`.
    pub fn error(error: &SpaceError) -> Response {
        let (kind, message) = match error {
            SpaceError::Refused(m) => (ErrorKind::Refused, m.clone()),
            SpaceError::Unreachable(m) => (ErrorKind::Unreachable, m.clone()),
        };
        Response::Error { kind, message }
    }

    /// The refusal that carries `message`.
    pub fn refused(message: impl Into<String>) -> Response {
        Response::Error {
            kind: ErrorKind::Refused,
            message: message.into(),
        }
    }
}

impl Response {
    /// The tuples this answer hands over: those of `Tuples` and `More`,
    /// and of every `Tuples` among a `Steps`' answers.
    pub fn into_tuples(self) -> Vec<Tuple> {
        match self {
            Response::Tuples(tuples) | Response::More(tuples) => tuples,
            Response::Steps(answers) => answers
                .into_iter()
                .flat_map(Response::into_tuples)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl ErrorKind {
    /// The [`SpaceError`] a client reports for this failure.
    pub fn into_error(self, message: String) -> SpaceError {
        match self {
            ErrorKind::Refused => SpaceError::Refused(message),
            ErrorKind::Unreachable => SpaceError::Unreachable(message),
        }
    }
}

/// The space as one node sees it (`halley status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// One entry per member of the ring.
    pub peers: Vec<PeerStatus>,
    /// Tuples in the space, each counted once.
    pub tuples: u64,
}

/// One member of the ring, as [`Request::Members`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMember {
    /// Its peer id.
    pub id: String,
    /// The address it listens on, ending in `/p2p/<id>`.
    pub addr: String,
    /// Its place on the ring (the end of the arc it owns).
    pub place: u64,
}

/// One member of the ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its peer id.
    pub id: String,
    /// The address it listens on, ending in `/p2p/<id>`.
    pub addr: String,
    /// Tuples it holds as their primary.
    pub tuples: u64,
    /// Its place on the ring (the end of the arc it owns); `None` for a
    /// node serving alone (`--solo`).
    pub place: Option<u64>,
}
