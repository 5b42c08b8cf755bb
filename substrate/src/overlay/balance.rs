//! Spreading the load by moving peers, after Karger and Ruhl's item
//! balancing ("Simple efficient load balancing algorithms for peer-to-peer
//! systems", SPAA 2004) and Ganesan, Bawa and Garcia-Molina's neighbour
//! adjustment ("Online balancing of range-partitioned data", VLDB 2004).
//!
//! The keyspace is order-preserving, so real data sits in a small part of
//! the ring, and peers placed by the hash of their key own mostly empty
//! arcs. No static map fixes that; moving peers to where the data is does.
//! A move is a graceful leave (the mover's tuples go to its successor, as
//! any leave's do) and a join at a new ring position, the index below
//! which a chosen number of the heaviest peer's tuples lie
//! ([`super::Peer::split_point`]): the newcomer takes them over as any
//! newcomer does. So a move keeps every guarantee of leaves and joins.
//!
//! [`plan`] is pure: from every peer's count of primaries it picks the
//! one move that lowers the sum of squared loads the most, or none if no
//! move lowers it by at least a 64th of the heaviest load's square (the
//! hysteresis that makes the moves converge: each one lowers a positive
//! sum by a bounded-below amount, so the moves stop):
//! - the heaviest peer's predecessor moves up into the heaviest peer's
//!   arc, so that the two share their tuples equally (neighbour
//!   adjustment), or
//! - another peer leaves its arc to its successor and takes the lower
//!   half of the heaviest peer's tuples (reorder).
//!
//! Every peer that runs [`plan`] on the same counts finds the same move;
//! only its mover acts. The driver bounds how often (one move at a time,
//! a pause between rounds).

use super::Peer;
use super::membership::stored_index;

/// Tuples looked at, at most, to find a split point: a larger store is
/// sampled at an even stride.
const MAX_SAMPLE: usize = 16_384;

/// A move: `mover` leaves and joins again at the ring index below which
/// `below` of `heavy`'s primaries lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub mover: u64,
    pub heavy: u64,
    pub below: u64,
}

/// The move that spreads `loads` (each peer's id and count of primaries,
/// in ring order) the most; `None` when the heaviest peer holds fewer than
/// `min_load` tuples or no move helps enough.
pub fn plan(loads: &[(u64, u64)], min_load: u64) -> Option<Move> {
    let n = loads.len();
    let (h_at, &(heavy, h)) = loads
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.1.cmp(&b.1.1).then(b.1.0.cmp(&a.1.0)))?;
    if n < 2 || h < min_load.max(2) {
        return None;
    }
    let sq = |x: u64| i128::from(x) * i128::from(x);
    // Ranked by gain, then neighbour adjustments first: they move only
    // the heavy peer's tuples, a reorder the mover's too.
    let mut best: Option<((i128, bool), Move)> = None;
    for (i, &(mover, l)) in loads.iter().enumerate() {
        if i == h_at {
            continue;
        }
        let next = (i + 1) % n;
        let (gain, below) = if next == h_at {
            // Neighbour adjustment: both end with half of the two loads.
            let below = (h - l) / 2;
            let (a, b) = (l + below, h - below);
            (sq(l) + sq(h) - sq(a) - sq(b), below)
        } else {
            // Reorder: the successor takes the mover's arc.
            let s = loads[next].1;
            let below = h / 2;
            let before = sq(l) + sq(s) + sq(h);
            (before - sq(l + s) - sq(below) - sq(h - below), below)
        };
        let rank = (gain, next == h_at);
        let better = best.is_none_or(|(r, _)| rank > r);
        if below > 0 && better {
            best = Some((
                rank,
                Move {
                    mover,
                    heavy,
                    below,
                },
            ));
        }
    }
    best.filter(|&((gain, _), _)| gain * 64 >= sq(h))
        .map(|(_, m)| m)
}

impl Peer {
    /// The ring index inside this peer's arc below which (itself
    /// included) about `below` of its primaries lie, and at least one
    /// lies above: where a peer joining takes that many over. `None` if
    /// no index splits them so (too few, or all on one index). Walks the
    /// store once (sampled past [`MAX_SAMPLE`] tuples): asked once a move.
    pub fn split_point(&self, below: u64) -> Option<u64> {
        let after = self.view.arc(self.id).after;
        let total = self.primary_count();
        let stride = total / MAX_SAMPLE + 1;
        let offset = |index: u64| index.wrapping_sub(after).wrapping_sub(1);
        let mut offsets = Vec::with_capacity(total.min(MAX_SAMPLE + 1) + 1);
        let mut seen = 0usize;
        let keyspace = self.keyspace;
        self.store.each(|t| {
            if seen.is_multiple_of(stride) {
                offsets.push(offset(stored_index(&keyspace, t)));
            }
            seen += 1;
        });
        offsets.extend(self.held.values().map(|h| offset(self.index_of(&h.tuple))));
        offsets.sort_unstable();
        let at = usize::try_from(below / stride as u64)
            .ok()?
            .checked_sub(1)?;
        let split = *offsets.get(at)?;
        let top = *offsets.last()?;
        (split < top).then(|| after.wrapping_add(1).wrapping_add(split))
    }
}

/// The largest load over the mean of `loads`, as a ratio (1.0: even).
pub fn spread(loads: &[u64]) -> f64 {
    let total: u64 = loads.iter().sum();
    let max = loads.iter().copied().max().unwrap_or(0);
    if total == 0 {
        return 1.0;
    }
    max as f64 * loads.len() as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A peer at `id` alone on its ring, holding `("t", i)` for `i` in `0..n`.
    fn loaded(id: u64, n: i64) -> Peer {
        use crate::overlay::{Config, Event, Op, OpId};
        use crate::tuple::{Tuple, Value};
        let view = std::sync::Arc::new(crate::ring::Ring::from_iter([id]));
        let mut peer = Peer::new(id, Config::default(), view).unwrap();
        for i in 0..n {
            let tuple = Tuple::new(vec![Value::Str("t".into()), Value::Int(i)]);
            let request = Op::Out {
                tuple,
                ttl_ms: None,
            };
            peer.handle(
                Event::Client {
                    op: OpId(i as u64),
                    request,
                },
                0,
            );
        }
        assert_eq!(peer.primary_count(), n as usize);
        peer
    }

    #[test]
    fn a_split_point_leaves_the_asked_count_below_it() {
        use crate::tuple::{Tuple, Value};
        let keyspace = crate::keyspace::Keyspace::default();
        let index =
            |i: i64| keyspace.index_of(&Tuple::new(vec![Value::Str("t".into()), Value::Int(i)]));
        // Peers at both ends of the ring, so that the arc wraps or not.
        for id in [0, u64::MAX, index(500)] {
            let peer = loaded(id, 1_000);
            let after = peer.view.arc(id).after;
            let offset = |x: u64| x.wrapping_sub(after).wrapping_sub(1);
            for below in [1, 250, 500, 999] {
                let at = peer.split_point(below).expect("a split");
                let under = (0..1_000)
                    .filter(|&i| offset(index(i)) <= offset(at))
                    .count();
                assert_eq!(under as u64, below, "peer {id:#x}, {below} below");
                assert_ne!(at, id);
            }
            assert_eq!(peer.split_point(1_000), None, "nothing above");
            assert_eq!(peer.split_point(0), None);
        }
        // One index for every tuple: nothing splits them.
        let view = std::sync::Arc::new(crate::ring::Ring::from_iter([7]));
        let mut same = Peer::new(7, crate::overlay::Config::default(), view).unwrap();
        for i in 0..10 {
            let tuple = Tuple::new(vec![
                Value::Str("task".into()),
                Value::Str("job".into()),
                Value::Int(i),
            ]);
            let request = crate::overlay::Op::Out {
                tuple,
                ttl_ms: None,
            };
            same.handle(
                crate::overlay::Event::Client {
                    op: crate::overlay::OpId(i as u64),
                    request,
                },
                0,
            );
        }
        assert_eq!(same.split_point(5), None);
    }

    #[test]
    fn a_lone_heavy_peer_is_split_by_its_predecessor() {
        let loads = [(10, 0), (20, 0), (30, 1_000), (40, 0)];
        let m = plan(&loads, 10).unwrap();
        assert_eq!(
            m,
            Move {
                mover: 20,
                heavy: 30,
                below: 500
            }
        );
    }

    #[test]
    fn a_far_light_peer_takes_half_of_the_heaviest() {
        // The predecessor is loaded; 10's arc is cheap to hand to 20,
        // which holds nothing.
        let loads = [(10, 100), (20, 0), (30, 700), (40, 1_000)];
        assert_eq!(
            plan(&loads, 10),
            Some(Move {
                mover: 10,
                heavy: 40,
                below: 500
            })
        );
    }

    #[test]
    fn even_or_small_loads_stay() {
        assert_eq!(plan(&[(1, 100), (2, 100), (3, 100)], 10), None);
        assert_eq!(plan(&[(1, 9), (2, 0)], 10), None);
        assert_eq!(plan(&[(1, 1_000)], 10), None);
        assert_eq!(plan(&[], 10), None);
        // Near even: a move would gain too little to be worth it.
        assert_eq!(plan(&[(1, 100), (2, 110), (3, 95), (4, 105)], 10), None);
    }

    /// Applies moves to a model ring of tuples (sorted distinct indexes,
    /// no replicas) until `plan` stops; the number of moves.
    fn settle(peers: &mut Vec<u64>, tuples: &[u64], limit: usize) -> usize {
        for moves in 0..limit {
            let loads = model_loads(peers, tuples);
            let Some(m) = plan(&loads, 16) else {
                return moves;
            };
            let mine: Vec<u64> = {
                let after = predecessor(peers, m.heavy);
                let mut own: Vec<u64> = tuples
                    .iter()
                    .copied()
                    .filter(|&t| owner(peers, t) == m.heavy)
                    .map(|t| t.wrapping_sub(after).wrapping_sub(1))
                    .collect();
                own.sort_unstable();
                own.into_iter()
                    .map(|o| after.wrapping_add(1).wrapping_add(o))
                    .collect()
            };
            peers.retain(|&p| p != m.mover);
            let at = mine[m.below as usize - 1];
            assert!(!peers.contains(&at));
            peers.push(at);
            peers.sort_unstable();
        }
        panic!("no convergence in {limit} moves");
    }

    fn owner(peers: &[u64], index: u64) -> u64 {
        *peers.iter().find(|&&p| p >= index).unwrap_or(&peers[0])
    }

    fn predecessor(peers: &[u64], id: u64) -> u64 {
        let at = peers.iter().position(|&p| p == id).unwrap();
        peers[(at + peers.len() - 1) % peers.len()]
    }

    fn model_loads(peers: &[u64], tuples: &[u64]) -> Vec<(u64, u64)> {
        let mut loads: Vec<(u64, u64)> = peers.iter().map(|&p| (p, 0)).collect();
        for &t in tuples {
            let o = owner(peers, t);
            loads.iter_mut().find(|l| l.0 == o).unwrap().1 += 1;
        }
        loads
    }

    proptest! {
        /// Tuples crowded in a narrow stretch of the ring (as an
        /// order-preserving keyspace puts them) and peers anywhere: the
        /// moves stop, and the busiest peer ends within 1.5 times the mean.
        #[test]
        fn moves_converge_to_an_even_spread(
            peers in prop::collection::btree_set(any::<u64>(), 2..12),
            start in any::<u64>(),
            width in 1_000u64..1 << 40,
            seed in any::<u64>(),
            count in 200usize..3_000,
        ) {
            let mut rng = crate::overlay::sim::Rng(seed);
            let mut tuples: Vec<u64> = (0..count).map(|_| start.wrapping_add(rng.below(width))).collect();
            tuples.sort_unstable();
            tuples.dedup();
            let mut peers: Vec<u64> = peers.into_iter().filter(|p| !tuples.contains(p)).collect();
            prop_assume!(peers.len() >= 2);
            let limit = 20 * peers.len();
            let moves = settle(&mut peers, &tuples, limit);
            let loads: Vec<u64> = model_loads(&peers, &tuples).iter().map(|l| l.1).collect();
            prop_assert!(spread(&loads) <= 1.5, "{loads:?} after {moves} moves");
        }
    }
}
