//! The ring: peers with 64-bit ids, each owning the arc of indexes up to its
//! id, and Chord-like routing over it. Sans-io and pure: the node feeds it
//! the peers it knows and the failures it detects, and sends the messages
//! it decides on.
//!
//! - [`Ring`] is a membership view: who owns an index (the first peer id at
//!   or after it, clockwise), a peer's arc, the replica set of an index, the
//!   owners of a template's keyspace ranges.
//! - [`Router`] is one peer's routing state built from its view: its
//!   predecessor, a successor list and up to 64 fingers (the owners of
//!   `id + 2^i`). [`Router::next_hop`] says whether it owns an index, knows
//!   the owner, or which closer peer to forward to; a lookup takes
//!   O(log N) hops, one hop on small rings where the fingers know everyone.
//! - [`lookup`] follows the hops through routers held in memory: the
//!   simulator's and the tests' driver of what the node does over the
//!   network.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// A set of peer ids on the ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    peers: BTreeSet<u64>,
}

impl Ring {
    pub fn new() -> Ring {
        Ring::default()
    }

    /// Adds a peer; false if it was there already.
    pub fn insert(&mut self, id: u64) -> bool {
        self.peers.insert(id)
    }

    /// Removes a peer; false if it was not there.
    pub fn remove(&mut self, id: u64) -> bool {
        self.peers.remove(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.peers.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peer ids in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.peers.iter().copied()
    }

    /// The peer owning `index`: the first id at or after it, wrapping.
    pub fn owner(&self, index: u64) -> Option<u64> {
        self.clockwise_from(index).next()
    }

    /// The `n` distinct peers holding `index` when each index lives on its
    /// owner and the owner's next `n - 1` peers (fewer on a small ring).
    pub fn replicas(&self, index: u64, n: usize) -> Vec<u64> {
        self.clockwise_from(index).take(n.min(self.len())).collect()
    }

    /// The `n` peers after `id`, clockwise, never `id` itself.
    pub fn successors(&self, id: u64, n: usize) -> Vec<u64> {
        self.clockwise_from(id.wrapping_add(1))
            .filter(|&p| p != id)
            .take(n.min(self.len()))
            .collect()
    }

    /// The last peer before `id`, counter-clockwise, never `id` itself.
    pub fn predecessor(&self, id: u64) -> Option<u64> {
        self.peers
            .range(..id)
            .next_back()
            .or_else(|| self.peers.range(id.wrapping_add(1)..).next_back())
            .copied()
            .filter(|&p| p != id)
    }

    /// The indexes `id` owns: `(predecessor, id]`, or the whole ring for a
    /// lone peer.
    pub fn arc(&self, id: u64) -> Arc {
        Arc {
            after: self.predecessor(id).unwrap_or(id),
            upto: id,
        }
    }

    /// The peers owning some index of `ranges` (each `start <= end`), in
    /// increasing order: the peers a template's keyspace cover asks.
    pub fn owners_of(&self, ranges: &[RangeInclusive<u64>]) -> Vec<u64> {
        let mut owners: Vec<u64> = ranges
            .iter()
            .flat_map(|r| {
                let inside = self.peers.range(r.clone()).copied();
                inside.chain(self.owner(*r.end()))
            })
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners
    }

    /// Every peer once, starting with the owner of `index`.
    fn clockwise_from(&self, index: u64) -> impl Iterator<Item = u64> + '_ {
        self.peers
            .range(index..)
            .chain(self.peers.range(..index))
            .copied()
    }
}

impl FromIterator<u64> for Ring {
    fn from_iter<I: IntoIterator<Item = u64>>(ids: I) -> Ring {
        Ring {
            peers: ids.into_iter().collect(),
        }
    }
}

/// The clockwise interval `(after, upto]`; the whole ring when the two are
/// equal (a lone peer owns everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arc {
    pub after: u64,
    pub upto: u64,
}

impl Arc {
    pub fn contains(&self, index: u64) -> bool {
        self.after == self.upto || between(self.after, index, self.upto)
    }
}

/// Whether `x` lies in the clockwise interval `(a, b]`, for `a != b`.
fn between(a: u64, x: u64, b: u64) -> bool {
    x.wrapping_sub(a).wrapping_sub(1) < b.wrapping_sub(a)
}

/// What a peer does with a lookup for an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// This peer owns the index.
    Here,
    /// This peer's successor list shows the owner: the last hop.
    Owner(u64),
    /// The known peer closest before the index: hand the lookup on.
    Forward(u64),
}

/// One peer's routing state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    id: u64,
    predecessor: Option<u64>,
    /// Distinct peers after this one, clockwise.
    successors: Vec<u64>,
    /// Distinct finger peers, never this one.
    fingers: Vec<u64>,
}

impl Router {
    /// The routing state of peer `id` given the peers it knows (`view`, with
    /// or without `id`), keeping `successor_count` successors.
    pub fn from_view(id: u64, view: &Ring, successor_count: usize) -> Router {
        let mut fingers: Vec<u64> = (0..64)
            .filter_map(|i| view.owner(id.wrapping_add(1 << i)))
            .filter(|&p| p != id)
            .collect();
        fingers.sort_unstable_by_key(|&p| p.wrapping_sub(id));
        fingers.dedup();
        Router {
            id,
            predecessor: view.predecessor(id),
            successors: view.successors(id, successor_count),
            fingers,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn predecessor(&self) -> Option<u64> {
        self.predecessor
    }

    pub fn successors(&self) -> &[u64] {
        &self.successors
    }

    pub fn fingers(&self) -> &[u64] {
        &self.fingers
    }

    /// Forgets a peer found dead: the lookup retries on the next successor
    /// or a nearer finger. A forgotten predecessor leaves ownership unknown
    /// until the view is refreshed: this peer then answers only for its
    /// own id and routes the rest around the ring.
    pub fn forget(&mut self, peer: u64) {
        self.successors.retain(|&p| p != peer);
        self.fingers.retain(|&p| p != peer);
        if self.predecessor == Some(peer) {
            self.predecessor = None;
        }
    }

    /// Where a lookup for `index` goes from this peer.
    pub fn next_hop(&self, index: u64) -> Hop {
        let owns = match self.predecessor {
            Some(p) => Arc {
                after: p,
                upto: self.id,
            }
            .contains(index),
            None => index == self.id || self.successors.is_empty(),
        };
        if owns {
            return Hop::Here;
        }
        let mut prev = self.id;
        for &s in &self.successors {
            if between(prev, index, s) {
                return Hop::Owner(s);
            }
            prev = s;
        }
        // The known peer in (id, index) nearest to the index. The last
        // successor is such a peer, since the index lies beyond it.
        let ahead = |p: u64| p.wrapping_sub(self.id);
        let limit = ahead(index);
        self.fingers
            .iter()
            .chain(&self.successors)
            .copied()
            .filter(|&p| ahead(p) < limit)
            .max_by_key(|&p| ahead(p))
            .map_or(Hop::Here, Hop::Forward)
    }
}

/// How a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub owner: u64,
    /// Messages sent: 0 when the first peer owns the index.
    pub hops: u32,
}

/// Why a lookup did not finish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no router for peer {0:#x}")]
    UnknownPeer(u64),
    #[error("lookup for {index:#x} still unresolved after {hops} hops")]
    TooManyHops { index: u64, hops: u32 },
}

/// Follows the hops of a lookup for `index` from peer `start` through the
/// routers `router_of` returns, giving up rather than forward a lookup that
/// has already made `max_hops` hops.
pub fn lookup<'a>(
    start: u64,
    index: u64,
    max_hops: u32,
    router_of: impl Fn(u64) -> Option<&'a Router>,
) -> Result<Lookup, LookupError> {
    let mut at = start;
    let mut hops = 0;
    loop {
        let router = router_of(at).ok_or(LookupError::UnknownPeer(at))?;
        match router.next_hop(index) {
            Hop::Here => return Ok(Lookup { owner: at, hops }),
            Hop::Owner(owner) => {
                return Ok(Lookup {
                    owner,
                    hops: hops + 1,
                });
            }
            Hop::Forward(next) => {
                if hops == max_hops {
                    return Err(LookupError::TooManyHops { index, hops });
                }
                at = next;
                hops += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
