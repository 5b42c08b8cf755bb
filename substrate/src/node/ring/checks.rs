//! Checks on what other peers say, before the driver uses any of it: a
//! member's address ([`member`]), a peer id's ring place ([`ring_id`]), a
//! view epoch ([`epoch_plausible`]) and the lists inside overlay messages
//! ([`overlay`]). A peer is an adversary: nothing it
//! sends is sliced, indexed or added to before it has passed here.

use libp2p::identity::PublicKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::overlay::{CHECK_BATCH, MAX_BATCH, Msg};
use crate::wire::Member;

/// The longest member address accepted, in bytes of text.
pub(super) const MAX_ADDR: usize = 512;
/// How far past this peer's own epoch a peer's epoch may claim to be: a
/// ring changes its view a few times a second at most, so a jump this
/// large is a lie (and would otherwise push the epoch to `u64::MAX`).
pub(super) const MAX_EPOCH_JUMP: u64 = 1 << 20;

/// The most replicas a `Stored` may name: far more than any space keeps
/// copies (`--replicas`), far fewer than a message could carry.
pub(super) const MAX_REPLICAS: usize = 64;

/// Multihash codes a libp2p peer id is made with.
const IDENTITY: u64 = 0x00;
const SHA2_256: u64 = 0x12;

/// A member address that passed [`member`].
#[derive(Clone, Debug)]
pub(super) struct Checked {
    pub addr: Multiaddr,
    pub peer: PeerId,
    pub id: u64,
}

/// Why a member address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum BadMember {
    #[error("address of {0} bytes (at most {MAX_ADDR})")]
    TooLong(usize),
    #[error("not a multiaddr: {0}")]
    NotAnAddress(String),
    #[error("no TCP port in the address")]
    NoTcp,
    #[error("the address does not end in /p2p/<peer id>")]
    NoPeerId,
    #[error("peer id {0} is not the id of a public key")]
    BadPeerId(PeerId),
}

/// Checks a member address a peer sent: a multiaddr of bounded length,
/// with an IP or DNS host and a TCP port, ending in the id of a real key.
/// Its ring id is the place it names (any index: a place another member
/// holds is refused where members are added), else [`ring_id`].
pub(super) fn member(member: &Member) -> Result<Checked, BadMember> {
    if member.addr.len() > MAX_ADDR {
        return Err(BadMember::TooLong(member.addr.len()));
    }
    let addr: Multiaddr = member
        .addr
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| BadMember::NotAnAddress(e.to_string()))?;
    if !addr.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
        return Err(BadMember::NoTcp);
    }
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(BadMember::NoPeerId);
    };
    let default = ring_id(&peer).ok_or(BadMember::BadPeerId(peer))?;
    let id = member.at.unwrap_or(default);
    Ok(Checked { addr, peer, id })
}

/// A peer's place on the ring: the last 8 bytes of its id (random bytes
/// of its public key); `None` for an id no key has (too short, or an
/// inline key that does not decode), which no peer can authenticate as.
pub(super) fn ring_id(peer: &PeerId) -> Option<u64> {
    let hash = peer.as_ref();
    let real = match hash.code() {
        IDENTITY => {
            PublicKey::try_decode_protobuf(hash.digest()).is_ok_and(|key| key.to_peer_id() == *peer)
        }
        SHA2_256 => hash.digest().len() == 32,
        _ => false,
    };
    if !real {
        return None;
    }
    let bytes = peer.to_bytes();
    let tail: [u8; 8] = bytes.get(bytes.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Why an overlay message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadOverlay {
    #[error("a Stored naming {0} replicas (at most {MAX_REPLICAS})")]
    TooManyReplicas(usize),
    #[error("a batch message of {0} tuples (at most {MAX_BATCH})")]
    BatchTooLong(usize),
    #[error("a Check or Checked naming {0} ids (at most {CHECK_BATCH})")]
    TooManyIds(usize),
    #[error("a take's chain naming {0} links (at most {MAX_REPLICAS})")]
    TooManyLinks(usize),
}

/// Checks the fields of an overlay message that the overlay would
/// otherwise keep as they came: the replicas a `Stored` names are what its
/// origin waits for; a batch message's tuples or ids, each handled in
/// turn, are at most what a peer sends ([`MAX_BATCH`]), so that one
/// message's work stays bounded whatever the frame could hold; a `Check`
/// or `Checked` carries at most one chunk of ids; a take's chain (the
/// links a `Remove` passes through, those a `Taken` releases) is at most
/// a replica set long.
pub fn overlay(msg: &Msg) -> Result<(), BadOverlay> {
    let batch = match msg {
        Msg::Stored { replicas, .. } | Msg::StoredBatch { replicas, .. }
            if replicas.len() > MAX_REPLICAS =>
        {
            return Err(BadOverlay::TooManyReplicas(replicas.len()));
        }
        Msg::Check { ids, .. } | Msg::Checked { removed: ids, .. } if ids.len() > CHECK_BATCH => {
            return Err(BadOverlay::TooManyIds(ids.len()));
        }
        Msg::Remove { chain, .. } if chain.rest.len() + chain.done.len() > MAX_REPLICAS => {
            return Err(BadOverlay::TooManyLinks(
                chain.rest.len() + chain.done.len(),
            ));
        }
        Msg::Taken { links, .. } if links.len() > MAX_REPLICAS => {
            return Err(BadOverlay::TooManyLinks(links.len()));
        }
        Msg::RouteBatch { tuples, .. } => tuples.len(),
        Msg::ReplicateBatch { tuples, .. } => tuples.len(),
        Msg::StoredBatch { ids, .. } | Msg::CopiedBatch { ids, .. } => ids.len(),
        _ => 0,
    };
    match batch > MAX_BATCH {
        true => Err(BadOverlay::BatchTooLong(batch)),
        false => Ok(()),
    }
}

/// Whether `theirs`, an epoch a peer sent, is one this peer (at `ours`)
/// can believe.
pub fn epoch_plausible(theirs: u64, ours: u64) -> bool {
    theirs <= ours.saturating_add(MAX_EPOCH_JUMP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn real() -> (PeerId, String) {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        (peer, format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}"))
    }

    #[test]
    fn a_real_member_passes_with_the_id_of_its_key_tail() {
        let (peer, addr) = real();
        let checked = member(&Member {
            addr: addr.clone(),
            at: None,
        })
        .unwrap();
        assert_eq!(checked.peer, peer);
        let bytes = peer.to_bytes();
        let tail = u64::from_be_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
        assert_eq!(checked.id, tail);
        // A member that moved is where it says.
        let moved = member(&Member { addr, at: Some(7) }).unwrap();
        assert_eq!((moved.peer, moved.id), (peer, 7));
    }

    #[test]
    fn malformed_members_are_refused_without_a_panic() {
        let (peer, _) = real();
        let long = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}{}", "x".repeat(MAX_ADDR));
        let cases = [
            ("/ip4/127.0.0.1/tcp/1/p2p/11", "BadPeerId"),
            ("/ip4/127.0.0.1/tcp/1/p2p/1", "NotAnAddress"),
            ("/ip4/127.0.0.1/tcp/1", "NoPeerId"),
            ("/ip4/127.0.0.1/udp/1/p2p/11", "NoTcp"),
            ("not an address", "NotAnAddress"),
            ("", "NoTcp"),
            (long.as_str(), "TooLong"),
        ];
        for (addr, kind) in cases {
            let at = Some(1);
            let err = member(&Member {
                addr: addr.into(),
                at,
            })
            .unwrap_err();
            assert!(format!("{err:?}").starts_with(kind), "{addr}: {err:?}");
        }
        // A sha2-256 multihash of the wrong length, and an inline "key"
        // that is not one.
        let short_sha = PeerId::from_bytes(&[0x12, 4, 1, 2, 3, 4]).unwrap();
        assert_eq!(ring_id(&short_sha), None);
        let not_a_key = PeerId::from_bytes(&[0x00, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!(ring_id(&not_a_key), None);
    }

    #[test]
    fn a_stored_naming_too_many_replicas_is_refused() {
        use crate::overlay::{OpId, TupleId};
        let stored = |n: usize| Msg::Stored {
            op: OpId(1),
            id: TupleId { origin: 2, seq: 3 },
            hops: 1,
            replicas: (0..n as u64).collect(),
        };
        assert_eq!(overlay(&stored(1)), Ok(()));
        assert_eq!(overlay(&stored(MAX_REPLICAS)), Ok(()));
        let err = overlay(&stored(MAX_REPLICAS + 1)).unwrap_err();
        assert_eq!(err, BadOverlay::TooManyReplicas(MAX_REPLICAS + 1));
    }

    #[test]
    fn a_take_chain_naming_too_many_links_is_refused() {
        use crate::overlay::{Chain, OpId};
        let chain = |rest: usize, done: usize| Msg::Remove {
            tuples: Vec::new(),
            chain: Chain {
                asker: 1,
                op: OpId(2),
                by: 3,
                rest: (0..rest as u64).collect(),
                done: (0..done as u64).collect(),
            },
        };
        let taken = |n: usize| Msg::Taken {
            op: OpId(2),
            by: 3,
            tuples: Vec::new(),
            links: (0..n as u64).collect(),
        };
        assert_eq!(overlay(&chain(1, 1)), Ok(()));
        assert_eq!(overlay(&chain(MAX_REPLICAS / 2, MAX_REPLICAS / 2)), Ok(()));
        let err = overlay(&chain(MAX_REPLICAS, 1)).unwrap_err();
        assert_eq!(err, BadOverlay::TooManyLinks(MAX_REPLICAS + 1));
        assert_eq!(overlay(&taken(MAX_REPLICAS)), Ok(()));
        let err = overlay(&taken(MAX_REPLICAS + 1)).unwrap_err();
        assert_eq!(err, BadOverlay::TooManyLinks(MAX_REPLICAS + 1));
    }

    #[test]
    fn a_check_or_checked_past_one_chunk_is_refused() {
        use crate::overlay::TupleId;
        let ids = |n: usize| {
            (0..n as u64)
                .map(|seq| TupleId { origin: 1, seq })
                .collect()
        };
        let check = |n| Msg::Check {
            chunk: 0,
            ids: ids(n),
        };
        let checked = |n| Msg::Checked {
            chunk: 0,
            removed: ids(n),
        };
        assert_eq!(overlay(&check(CHECK_BATCH)), Ok(()));
        assert_eq!(overlay(&checked(CHECK_BATCH)), Ok(()));
        let too_many = || Err(BadOverlay::TooManyIds(CHECK_BATCH + 1));
        assert_eq!(overlay(&check(CHECK_BATCH + 1)), too_many());
        assert_eq!(overlay(&checked(CHECK_BATCH + 1)), too_many());
    }

    #[test]
    fn batch_messages_past_the_bound_are_refused() {
        use crate::overlay::{OpId, Tagged, TupleId};
        let id = |seq| TupleId { origin: 2, seq };
        let wire = |seq| {
            let tuple = crate::tuple::Tuple::new(vec![1i64.into()]);
            (Tagged { id: id(seq), tuple }, None)
        };
        let messages = |n: usize| {
            let ids: Vec<TupleId> = (0..n as u64).map(id).collect();
            let wires: Vec<_> = (0..n as u64).map(wire).collect();
            let (op, origin) = (OpId(1), 2);
            vec![
                Msg::RouteBatch {
                    hops: 1,
                    origin,
                    op,
                    tuples: wires.iter().cloned().map(|w| (7, w)).collect(),
                },
                Msg::ReplicateBatch {
                    tuples: wires.into_iter().map(|w| (7, w)).collect(),
                    origin,
                    op,
                },
                Msg::StoredBatch {
                    op,
                    ids: ids.clone(),
                    replicas: vec![3],
                },
                Msg::CopiedBatch { op, ids },
            ]
        };
        for msg in messages(MAX_BATCH) {
            assert_eq!(overlay(&msg), Ok(()));
        }
        for msg in messages(MAX_BATCH + 1) {
            let err = overlay(&msg).unwrap_err();
            assert_eq!(err, BadOverlay::BatchTooLong(MAX_BATCH + 1));
        }
        let stored = Msg::StoredBatch {
            op: OpId(1),
            ids: vec![id(1)],
            replicas: (0..=MAX_REPLICAS as u64).collect(),
        };
        let err = overlay(&stored).unwrap_err();
        assert_eq!(err, BadOverlay::TooManyReplicas(MAX_REPLICAS + 1));
    }

    #[test]
    fn epochs_far_ahead_are_not_believed() {
        assert!(epoch_plausible(10, 5));
        assert!(epoch_plausible(5 + MAX_EPOCH_JUMP, 5));
        assert!(!epoch_plausible(6 + MAX_EPOCH_JUMP, 5));
        assert!(!epoch_plausible(u64::MAX, 5));
        assert!(epoch_plausible(u64::MAX, u64::MAX));
    }
}
