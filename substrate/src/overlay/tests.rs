//! Small rings driven by hand, then the seeded simulations with churn.

use std::sync::Arc;

use super::sim::{Plan, Sim};
use super::*;
use crate::ring::Ring;

fn tuple(key: &str, n: i64) -> Tuple {
    Tuple::new(vec![Value::Str(key.into()), Value::Int(n)])
}

fn exact(t: &Tuple) -> Template {
    Template::exact(t)
}

#[test]
fn hidden_ids_round_trip_and_templates_ignore_them() {
    let tagged = Tagged {
        id: TupleId { origin: 7, seq: 9 },
        tuple: tuple("a", 1),
    };
    let stored = tagged.stored();
    assert_eq!(stored.len(), 3);
    assert!(with_id_field(&exact(&tagged.tuple)).matches(&stored));
    assert_eq!(Tagged::from_stored(stored), Some(tagged));
    assert_eq!(Tagged::from_stored(tuple("a", 1)), None);
}

/// A lone peer answers its own client: every message goes to itself.
#[test]
fn a_lone_peer_stores_takes_and_reads() {
    let view = Arc::new(Ring::from_iter([42]));
    let mut peer = Peer::new(42, Config::default(), view).unwrap();
    let out = Op::Out {
        tuple: tuple("a", 1),
        ttl_ms: None,
    };
    let replies = peer.handle(
        Event::Client {
            op: OpId(1),
            request: out,
        },
        0,
    );
    let id = TupleId { origin: 42, seq: 0 };
    assert!(replies.contains(&Command::Reply {
        op: OpId(1),
        reply: Reply::Stored { id, hops: 0 }
    }));
    let template = exact(&tuple("a", 1));
    let rd = Op::Rd {
        template: template.clone(),
        wait_ms: Some(0),
    };
    let replies = peer.handle(
        Event::Client {
            op: OpId(2),
            request: rd,
        },
        1,
    );
    let found = Tagged {
        id,
        tuple: tuple("a", 1),
    };
    assert!(replies.contains(&Command::Reply {
        op: OpId(2),
        reply: Reply::Found(Some(found.clone()))
    }));
    let take = Op::In {
        template: template.clone(),
        wait_ms: Some(0),
    };
    let replies = peer.handle(
        Event::Client {
            op: OpId(3),
            request: take.clone(),
        },
        2,
    );
    assert!(replies.contains(&Command::Reply {
        op: OpId(3),
        reply: Reply::Found(Some(found))
    }));
    let replies = peer.handle(
        Event::Client {
            op: OpId(4),
            request: take,
        },
        3,
    );
    assert!(replies.contains(&Command::Reply {
        op: OpId(4),
        reply: Reply::Found(None)
    }));
    assert!(peer.primary_ids().is_empty());
}

/// Delivers every message between the peers until none is left.
fn settle(peers: &mut [Peer], mut pending: Vec<(u64, Command)>, now: u64) -> Vec<(OpId, Reply)> {
    let mut replies = Vec::new();
    while let Some((from, command)) = pending.pop() {
        match command {
            Command::Send { to, msg } => {
                let peer = peers.iter_mut().find(|p| p.id() == to).expect("a member");
                let out = peer.handle(Event::Message { from, msg }, now);
                pending.extend(out.into_iter().map(|c| (to, c)));
            }
            Command::Reply { op, reply } => replies.push((op, reply)),
            Command::ArmTimer { .. } => {}
        }
    }
    replies
}

#[test]
fn an_out_is_acknowledged_after_its_replica_holds_it_and_an_in_removes_both() {
    let ids = [1u64 << 62, 2 << 62, 3 << 62];
    let view = Arc::new(Ring::from_iter(ids));
    let mut peers: Vec<Peer> = ids
        .iter()
        .map(|&id| Peer::new(id, Config::default(), Arc::clone(&view)).unwrap())
        .collect();
    let t = tuple("job", 5);
    let out = Op::Out {
        tuple: t.clone(),
        ttl_ms: None,
    };
    let first = peers[0].handle(
        Event::Client {
            op: OpId(1),
            request: out,
        },
        0,
    );
    let pending = first.into_iter().map(|c| (ids[0], c)).collect();
    let replies = settle(&mut peers, pending, 0);
    assert!(matches!(replies[..], [(OpId(1), Reply::Stored { .. })]));
    let primaries: usize = peers.iter().map(|p| p.primary_ids().len()).sum();
    let copies: usize = peers.iter().map(|p| p.copy_ids().len()).sum();
    assert_eq!((primaries, copies), (1, 1));

    let take = Op::In {
        template: exact(&t),
        wait_ms: Some(0),
    };
    let first = peers[2].handle(
        Event::Client {
            op: OpId(2),
            request: take,
        },
        1,
    );
    let pending = first.into_iter().map(|c| (ids[2], c)).collect();
    let replies = settle(&mut peers, pending, 1);
    assert!(matches!(&replies[..], [(OpId(2), Reply::Found(Some(found)))] if found.tuple == t));
    let left: usize = peers
        .iter()
        .map(|p| p.primary_ids().len() + p.copy_ids().len())
        .sum();
    assert_eq!(left, 0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let plan = Plan {
        seed: 7,
        peers: 100,
        ops: 600,
        churn: 10,
        span_ms: 10_000,
    };
    let a = Sim::run(plan, Config::default());
    let b = Sim::run(plan, Config::default());
    assert_eq!(a, b);
    let c = Sim::run(Plan { seed: 8, ..plan }, Config::default());
    assert_ne!(a.digest, c.digest);
}

/// Many small runs with heavy churn (30% of the peers), with two and three
/// copies, each checked.
#[test]
fn twenty_seeds_with_heavy_churn_keep_the_invariants() {
    for seed in 0..20 {
        let config = Config {
            replicas: 2 + seed as usize % 2,
            ..Config::default()
        };
        let plan = Plan {
            seed,
            peers: 60,
            ops: 800,
            churn: 18,
            span_ms: 12_000,
        };
        let outcome = Sim::run(plan, config);
        assert!(
            outcome.crashes + outcome.leaves > 0,
            "seed {seed}: {outcome:?}"
        );
    }
}

fn churned_run(peers: usize, ops: usize, span_ms: u64) {
    let plan = Plan {
        seed: 2026,
        peers,
        ops,
        churn: peers / 10,
        span_ms,
    };
    let outcome = Sim::run(plan, Config::default());
    let bound = 0.5 * (peers as f64).log2() + 1.0;
    println!(
        "{peers} peers: {outcome:?}, mean hops {:.2} (bound {bound:.2})",
        outcome.mean_hops()
    );
    assert!(outcome.mean_hops() <= bound);
    assert_eq!(outcome.joins + outcome.leaves + outcome.crashes, peers / 10);
    assert!(outcome.crashes > 0 && outcome.leaves > 0 && outcome.joins > 0);
    assert!(outcome.outs_acked > ops / 3, "{outcome:?}");
    assert_eq!(outcome.outs_failed, 0, "retries get every out through");
    assert!(outcome.ins_found > ops / 20, "{outcome:?}");
}

#[test]
fn a_thousand_peers_with_churn_lose_and_double_nothing() {
    churned_run(1_000, 4_000, 30_000);
}

#[test]
fn ten_thousand_peers_with_churn_lose_and_double_nothing() {
    churned_run(10_000, 6_000, 60_000);
}

/// The checker is not vacuous: with one copy per tuple, crashes lose
/// acknowledged tuples and the run fails.
#[test]
#[should_panic(expected = "present false, taken false")]
fn with_a_single_copy_crashes_lose_tuples() {
    let plan = Plan {
        seed: 11,
        peers: 100,
        ops: 2_000,
        churn: 30,
        span_ms: 10_000,
    };
    let config = Config {
        replicas: 1,
        ..Config::default()
    };
    Sim::run(plan, config);
}

/// Peers asked and routing hops for templates with 0, 1 and 2 wildcard
/// keywords on 100 peers (the figures for BENCHMARKS.md).
#[test]
fn wildcards_widen_the_peers_asked() {
    let mut rng = super::sim::Rng(5);
    let view = Arc::new(Ring::from_iter((0..100).map(|_| rng.next())));
    let peer = Peer::new(
        view.iter().next().unwrap(),
        Config::default(),
        Arc::clone(&view),
    )
    .unwrap();
    let keys = 50;
    let mut asked = [0usize; 3];
    for k in 0..keys {
        let key = Field::Actual(Value::Str(format!("task-{k}")));
        let n = Field::Actual(Value::Int(k * 37));
        let templates = [
            Template::new(vec![key.clone(), n, Field::Any]),
            Template::new(vec![key, Field::Any, Field::Any]),
            Template::new(vec![Field::Any, Field::Any, Field::Any]),
        ];
        for (wild, t) in templates.iter().enumerate() {
            asked[wild] += peer.candidates(t).len();
        }
    }
    let mean = asked.map(|a| a as f64 / keys as f64);
    println!("100 peers, peers asked by wildcard keywords 0/1/2: {mean:?}");
    assert_eq!(mean[0], 1.0);
    assert!(mean[0] < mean[1] && mean[1] < mean[2], "{mean:?}");
    assert!(mean[2] <= 100.0);
}
