//! Ownership on small rings, and seeded simulations of lookups on large
//! ones, with and without dead peers.

use std::collections::HashMap;

use super::*;
use crate::keyspace::Keyspace;
use crate::template::{Field, Template};
use crate::tuple;

/// SplitMix64: a seeded stream of ids, so simulations repeat exactly.
struct Ids(u64);

impl Iterator for Ids {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Some(z ^ (z >> 31))
    }
}

fn routers(view: &Ring, successors: usize) -> HashMap<u64, Router> {
    view.iter()
        .map(|id| (id, Router::from_view(id, view, successors)))
        .collect()
}

#[test]
fn owners_are_the_first_id_clockwise() {
    let ring: Ring = [10, 20, 30].into_iter().collect();
    assert_eq!(ring.owner(5), Some(10));
    assert_eq!(ring.owner(10), Some(10));
    assert_eq!(ring.owner(11), Some(20));
    assert_eq!(ring.owner(31), Some(10));
    assert_eq!(ring.owner(u64::MAX), Some(10));
    assert_eq!(Ring::new().owner(7), None);
    assert_eq!(ring.replicas(25, 2), vec![30, 10]);
    assert_eq!(ring.replicas(25, 9), vec![30, 10, 20]);
    assert_eq!(ring.successors(20, 2), vec![30, 10]);
    assert_eq!(ring.successors(25, 1), vec![30]);
    assert_eq!(ring.successors(30, 5), vec![10, 20]);
    assert_eq!(ring.predecessor(10), Some(30));
    assert_eq!(ring.predecessor(20), Some(10));
    assert_eq!(ring.predecessor(0), Some(30));
}

#[test]
fn arcs_partition_the_ring() {
    let ring: Ring = [10, 20, u64::MAX].into_iter().collect();
    for index in [0, 5, 10, 11, 20, 21, 1 << 40, u64::MAX - 1, u64::MAX] {
        let holders: Vec<u64> = ring
            .iter()
            .filter(|&p| ring.arc(p).contains(index))
            .collect();
        assert_eq!(holders, vec![ring.owner(index).unwrap()], "index {index}");
    }
    let lone: Ring = [42].into_iter().collect();
    assert_eq!(lone.predecessor(42), None);
    assert!(lone.arc(42).contains(0) && lone.arc(42).contains(u64::MAX));
}

#[test]
fn a_lone_peer_answers_everything() {
    let lone: Ring = [42].into_iter().collect();
    let router = Router::from_view(42, &lone, 4);
    assert!(router.successors().is_empty() && router.fingers().is_empty());
    assert_eq!(router.next_hop(7), Hop::Here);
    assert_eq!(router.next_hop(u64::MAX), Hop::Here);
}

#[test]
fn routers_hold_successors_and_fingers() {
    let view: Ring = [0, 1 << 10, 1 << 20, 1 << 40, 1 << 62]
        .into_iter()
        .collect();
    let router = Router::from_view(0, &view, 2);
    assert_eq!(router.predecessor(), Some(1 << 62));
    assert_eq!(router.successors(), &[1 << 10, 1 << 20]);
    assert_eq!(router.fingers(), &[1 << 10, 1 << 20, 1 << 40, 1 << 62]);
    assert_eq!(router.next_hop(5), Hop::Owner(1 << 10));
    assert_eq!(router.next_hop((1 << 20) + 1), Hop::Forward(1 << 20));
    assert_eq!(router.next_hop((1 << 62) + 1), Hop::Here);
}

#[test]
fn small_rings_take_one_hop() {
    let view: Ring = Ids(7).take(8).collect();
    let routers = routers(&view, 8);
    for (start, index) in Ids(8)
        .take(500)
        .map(|x| (view.replicas(x, 1)[0], x.rotate_left(17)))
    {
        let found = lookup(start, index, 64, |p| routers.get(&p)).unwrap();
        assert_eq!(found.owner, view.owner(index).unwrap());
        assert!(found.hops <= 1, "{} hops on 8 peers", found.hops);
    }
}

#[test]
fn a_thousand_peers_resolve_in_half_log_n_hops() {
    let n = 1000;
    let view: Ring = Ids(1).take(n).collect();
    assert_eq!(view.len(), n);
    let routers = routers(&view, 4);
    let peers: Vec<u64> = view.iter().collect();
    let lookups = 20_000;
    let mut total = 0u64;
    let mut worst = 0;
    for (i, index) in Ids(2).take(lookups).enumerate() {
        let start = peers[(index.rotate_left(29) as usize ^ i) % n];
        let found = lookup(start, index, 64, |p| routers.get(&p)).unwrap();
        assert_eq!(found.owner, view.owner(index).unwrap(), "index {index:#x}");
        total += u64::from(found.hops);
        worst = worst.max(found.hops);
    }
    let mean = total as f64 / lookups as f64;
    let bound = 0.5 * (n as f64).log2() + 1.0;
    assert!(mean <= bound, "mean {mean:.2} hops > {bound:.2}");
    assert!(
        f64::from(worst) <= 2.0 * (n as f64).log2(),
        "worst {worst} hops"
    );
}

#[test]
fn lookups_survive_dead_peers_through_successor_lists() {
    let view: Ring = Ids(3).take(1000).collect();
    let mut routers = routers(&view, 8);
    // A fifth of the peers die; no router is rebuilt, each learns of a
    // death only when a message to the dead peer times out.
    let dead: Ring = view.iter().filter(|p| p % 5 == 0).collect();
    let live: Ring = view.iter().filter(|p| !dead.contains(*p)).collect();
    assert!(dead.len() > 150);
    let starts: Vec<u64> = live.iter().collect();
    for (i, index) in Ids(4).take(3000).enumerate() {
        let mut at = starts[i * 7919 % starts.len()];
        let mut hops = 0;
        let owner = loop {
            assert!(hops < 200, "lookup for {index:#x} loops");
            let router = routers.get_mut(&at).unwrap();
            match router.next_hop(index) {
                Hop::Here => break at,
                Hop::Owner(p) | Hop::Forward(p) if dead.contains(p) => router.forget(p),
                Hop::Owner(p) => break p,
                Hop::Forward(p) => {
                    at = p;
                    hops += 1;
                }
            }
        };
        assert_eq!(owner, live.owner(index).unwrap(), "index {index:#x}");
    }
}

#[test]
fn lookups_give_up_after_max_hops() {
    let view: Ring = Ids(5).take(1000).collect();
    let routers = routers(&view, 2);
    let far = view.iter().next().unwrap();
    let start = view.predecessor(far.wrapping_sub(1 << 63)).unwrap();
    assert_eq!(
        lookup(start, far, 0, |p| routers.get(&p)),
        Err(LookupError::TooManyHops {
            index: far,
            hops: 0
        })
    );
    assert_eq!(
        lookup(1, far, 8, |p| routers.get(&p)),
        Err(LookupError::UnknownPeer(1))
    );
}

#[test]
fn owners_of_ranges_include_both_ends() {
    let ring: Ring = [10, 20, 30, 40].into_iter().collect();
    assert_eq!(ring.owners_of(&[12..=15]), vec![20]);
    assert_eq!(ring.owners_of(&[12..=25, 29..=30]), vec![20, 30]);
    assert_eq!(ring.owners_of(&[41..=u64::MAX]), vec![10]);
    assert_eq!(ring.owners_of(&[0..=u64::MAX]), vec![10, 20, 30, 40]);
    assert_eq!(ring.owners_of(&[]), Vec::<u64>::new());
}

#[test]
fn templates_ask_few_peers_and_always_the_primary() {
    let ring: Ring = Ids(6).take(1000).collect();
    let keyspace = Keyspace::default();
    let task = || Field::Actual("task".into());
    let cases = [
        (Template::new(vec![task(), Field::Actual(42_i64.into())]), 1),
        (Template::new(vec![task(), Field::Any]), 40),
        (Template::new(vec![task(), Field::Any, Field::Any]), 40),
    ];
    for (template, bound) in cases {
        let asked = ring.owners_of(&keyspace.ranges_for(&template, 32));
        assert!(
            asked.len() <= bound,
            "{template} asks {} peers",
            asked.len()
        );
        for t in [tuple!("task", 42_i64), tuple!("task", 42_i64, 1.5)] {
            if template.matches(&t) {
                let primary = ring.owner(keyspace.index_of(&t)).unwrap();
                assert!(asked.contains(&primary), "{template} misses {t}'s primary");
            }
        }
    }
}
