//! Small rings driven by hand, then the seeded simulations with churn.

use std::sync::Arc;

use super::sim::{Outcome, Plan, Sim};
use super::*;
use crate::ring::Ring;

pub(super) fn tuple(key: &str, n: i64) -> Tuple {
    Tuple::new(vec![Value::Str(key.into()), Value::Int(n)])
}

pub(super) fn exact(t: &Tuple) -> Template {
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
        max: 1,
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
        reply: Reply::Taken(vec![found])
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
        reply: Reply::Taken(vec![])
    }));
    assert!(peer.primary_ids().is_empty());
}

/// Delivers every message between the peers until none is left.
pub(super) fn settle(
    peers: &mut [Peer],
    mut pending: Vec<(u64, Command)>,
    now: u64,
) -> Vec<(OpId, Reply)> {
    let mut replies = Vec::new();
    while let Some((from, command)) = pending.pop() {
        match command {
            Command::Send { to, msg, epoch } => {
                let peer = peers.iter_mut().find(|p| p.id() == to).expect("a member");
                let out = peer.handle(Event::Message { from, msg, epoch }, now);
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
        max: 1,
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
    assert!(matches!(&replies[..], [(OpId(2), Reply::Taken(found))] if found[0].tuple == t));
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
        evictions: 0,
        freezes: 0,
        span_ms: 10_000,
    };
    let a = Sim::run(plan, Config::default());
    let b = Sim::run(plan, Config::default());
    assert_eq!(a, b);
    let c = Sim::run(Plan { seed: 8, ..plan }, Config::default());
    assert_ne!(a.digest, c.digest);
}

/// A small run with heavy churn (30% of the peers: crashes, leaves and
/// joins), with two copies for even seeds and three for odd ones.
fn heavy_churn(seed: u64) -> (Plan, Config) {
    let config = Config {
        replicas: 2 + seed as usize % 2,
        ..Config::default()
    };
    let plan = Plan {
        seed,
        peers: 60,
        ops: 800,
        churn: 18,
        evictions: 0,
        freezes: 0,
        span_ms: 12_000,
    };
    (plan, config)
}

/// Many small runs with heavy churn, each checked.
#[test]
fn twenty_seeds_with_heavy_churn_keep_the_invariants() {
    let (mut cancelled, mut put_back, mut several) = (0, 0, 0);
    for seed in 0..20 {
        let (plan, config) = heavy_churn(seed);
        let outcome = Sim::run(plan, config);
        assert!(
            outcome.crashes + outcome.leaves > 0,
            "seed {seed}: {outcome:?}"
        );
        cancelled += outcome.cancelled;
        put_back += outcome.put_back;
        several += outcome.tuples_taken - outcome.ins_found;
    }
    // The races were run: cancels, some after an accept, takes of several.
    println!("cancelled {cancelled}, put back {put_back}, extra tuples taken {several}");
    assert!(cancelled > 0 && put_back > 0 && several > 0);
}

/// The same runs with every taken tuple going down its chain named by id
/// (`name_from` 0): a link without its copy asks for the chain again
/// whole, and nothing is lost or doubled.
#[test]
fn twenty_seeds_with_heavy_churn_and_tuples_named_by_id_keep_the_invariants() {
    let (mut resends, mut several) = (0, 0);
    for seed in 0..20 {
        let (plan, config) = heavy_churn(seed);
        let config = Config {
            name_from: 0,
            ..config
        };
        let outcome = Sim::run(plan, config);
        resends += outcome.resends;
        several += outcome.tuples_taken - outcome.ins_found;
    }
    println!("chains sent again whole {resends}, extra tuples taken {several}");
    assert!(resends > 0 && several > 0);
}

fn churned_run(peers: usize, ops: usize, span_ms: u64) {
    let plan = Plan {
        seed: 2026,
        peers,
        ops,
        churn: peers / 10,
        evictions: 0,
        freezes: 0,
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

/// Ten seeds of 40 peers under `plan`'s churn, evictions and freezes;
/// the outcomes, each run's peer count checked.
fn ten_seeds(plan: Plan) -> Vec<Outcome> {
    (0..10)
        .map(|seed| {
            let outcome = Sim::run(Plan { seed, ..plan }, Config::default());
            assert_eq!(
                outcome.peers_at_end,
                plan.peers + outcome.joins - outcome.leaves - outcome.crashes,
                "seed {seed}: {outcome:?}"
            );
            outcome
        })
        .collect()
}

/// Live peers wrongly declared gone and re-admitted, beside crashes,
/// leaves and joins: nothing lost, nothing taken twice, copies restored.
#[test]
fn peers_wrongly_declared_gone_come_back_without_duplicates() {
    let plan = Plan {
        seed: 0,
        peers: 40,
        ops: 800,
        churn: 6,
        evictions: 6,
        freezes: 0,
        span_ms: 12_000,
    };
    for outcome in ten_seeds(plan) {
        assert_eq!(outcome.evictions, 6, "{outcome:?}");
    }
}

/// Live peers frozen until the others drop them and serve their arcs from
/// the copies, then resumed (told they were gone) and let back in, beside
/// crashes, leaves and joins: nothing lost, nothing taken twice.
#[test]
fn frozen_peers_dropped_and_resumed_take_nothing_twice() {
    let plan = Plan {
        seed: 0,
        peers: 40,
        ops: 1_200,
        churn: 4,
        evictions: 0,
        freezes: 6,
        span_ms: 12_000,
    };
    for outcome in ten_seeds(plan) {
        assert_eq!(outcome.freezes, 6, "{outcome:?}");
    }
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
        churn: 45,
        evictions: 0,
        freezes: 0,
        span_ms: 10_000,
    };
    let config = Config {
        replicas: 1,
        ..Config::default()
    };
    Sim::run(plan, config);
}

/// Skewed keys (`("t", i)`, random hex strings) under churn: without
/// moves they crowd a few peers; with the balancer's moves the busiest
/// peer ends within 1.5 times the mean, and no tuple is lost, doubled or
/// taken twice (the simulation's invariants).
#[test]
fn balancing_moves_spread_skewed_keys_and_lose_nothing() {
    let plan = Plan {
        seed: 13,
        peers: 10,
        ops: 5_000,
        churn: 4,
        evictions: 0,
        freezes: 0,
        span_ms: 20_000,
    };
    let config = Config::default();
    let (_, crowded, uniform) = Sim::run_skewed(plan, config, false, 0);
    let (outcome, loads, moved) = Sim::run_skewed(plan, config, true, 90_000);
    let (before, after) = (super::spread(&crowded), super::spread(&loads));
    println!(
        "skewed keys on {} peers: busiest/mean {before:.2} without moves {crowded:?}, \
         {after:.2} after {} moves {loads:?} (churn: {} joins, {} leaves, {} crashes)",
        plan.peers, outcome.moves, outcome.joins, outcome.leaves, outcome.crashes
    );
    // Templates still ask only the peers whose arcs can hold matches.
    let keyspace = crate::keyspace::Keyspace::default();
    let t = || Field::Actual(Value::Str("t".into()));
    let range = crate::template::Range::new(Value::Int(100), Value::Int(200), true).unwrap();
    let templates = [
        (
            "(\"t\", 7, *)",
            vec![t(), Field::Actual(Value::Int(7)), Field::Any],
        ),
        (
            "(\"t\", 100..=200, *)",
            vec![t(), Field::Range(range), Field::Any],
        ),
        (
            "(\"t\", ?int, *)",
            vec![t(), Field::Typed(crate::tuple::Kind::Int), Field::Any],
        ),
        (
            "(\"a\"*, *, *)",
            vec![Field::Prefix("a".into()), Field::Any, Field::Any],
        ),
        ("(*, *, *)", vec![Field::Any, Field::Any, Field::Any]),
    ];
    for (name, fields) in templates {
        let ranges = keyspace.ranges_for(&Template::new(fields), config.max_ranges);
        let (was, now) = (
            uniform.owners_of(&ranges).len(),
            moved.owners_of(&ranges).len(),
        );
        println!(
            "{name}: peers asked {was} of {} before the moves, {now} of {} after",
            uniform.len(),
            moved.len()
        );
        if name.contains('7') {
            assert_eq!((was, now), (1, 1));
        }
    }
    assert!(before > 2.0, "the keys are not skewed: {crowded:?}");
    assert!(outcome.moves > 0);
    assert!(after <= 1.5, "{loads:?}");
    assert!(outcome.tuples_at_end > 500, "{outcome:?}");
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
    let routers: std::collections::HashMap<u64, crate::ring::Router> = view
        .iter()
        .map(|id| (id, crate::ring::Router::from_view(id, &view, 8)))
        .collect();
    let keyspace = crate::keyspace::Keyspace::default();
    let keys = 50;
    let mut asked = [0usize; 3];
    let mut hops = 0;
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
        // An exact-keyword operation routed from a random peer instead of
        // sent straight to the owner the view shows.
        let from = view.owner(rng.next()).unwrap();
        let index = keyspace.index_of(&Tuple::new(vec![
            Value::Str(format!("task-{k}")),
            Value::Int(k * 37),
        ]));
        let found = crate::ring::lookup(from, index, 64, |p| routers.get(&p)).unwrap();
        assert_eq!(Some(found.owner), view.owner(index));
        hops += found.hops;
    }
    let mean = asked.map(|a| a as f64 / keys as f64);
    let mean_hops = f64::from(hops) / keys as f64;
    println!(
        "100 peers, peers asked by wildcard keywords 0/1/2: {mean:?}; \
         routing hops for an exact template: {mean_hops:.2}; \
         each asked peer is one direct message"
    );
    assert!(mean_hops <= 0.5 * 100f64.log2() + 1.0);
    assert_eq!(mean[0], 1.0);
    assert!(mean[0] < mean[1] && mean[1] < mean[2], "{mean:?}");
    assert!(mean[2] <= 100.0);
}

/// A hand-driven ring: peers in memory and a queue of commands, delivered
/// in order (no delays), with the view changed by hand.
pub(super) struct Small {
    pub(super) peers: Vec<Peer>,
    pub(super) view: Ring,
    epoch: u64,
}

impl Small {
    pub(super) fn new(ids: &[u64]) -> Small {
        let view: Ring = ids.iter().copied().collect();
        let shared = Arc::new(view.clone());
        let peers = ids
            .iter()
            .map(|&id| Peer::new(id, Config::default(), Arc::clone(&shared)).unwrap())
            .collect();
        Small {
            peers,
            view,
            epoch: 0,
        }
    }

    pub(super) fn run(&mut self, at: u64, event: Event, now: u64) -> Vec<(OpId, Reply)> {
        let peer = self.peers.iter_mut().find(|p| p.id() == at).unwrap();
        let first = peer.handle(event, now);
        settle(
            &mut self.peers,
            first.into_iter().map(|c| (at, c)).collect(),
            now,
        )
    }

    /// Every peer takes the new view before any message sent under it
    /// arrives (as in the simulation).
    pub(super) fn change(&mut self, changed: u64, now: u64) -> Vec<(OpId, Reply)> {
        self.epoch += 1;
        let shared = Arc::new(self.view.clone());
        let mut pending = Vec::new();
        for peer in &mut self.peers {
            let view = Arc::clone(&shared);
            let epoch = self.epoch;
            let out = peer.handle(
                Event::View {
                    view,
                    changed,
                    epoch,
                },
                now,
            );
            pending.extend(out.into_iter().map(|c| (peer.id(), c)));
        }
        settle(&mut self.peers, pending, now)
    }

    /// The new view reaches the peers one by one, in `order`, each peer's
    /// messages delivered before the next peer has it.
    pub(super) fn change_lagging(&mut self, changed: u64, order: &[u64], now: u64) {
        self.epoch += 1;
        let shared = Arc::new(self.view.clone());
        for &id in order {
            let view = Arc::clone(&shared);
            let epoch = self.epoch;
            self.run(
                id,
                Event::View {
                    view,
                    changed,
                    epoch,
                },
                now,
            );
        }
    }

    /// (primaries, copies) counted over all peers.
    pub(super) fn counts(&self) -> (usize, usize) {
        let primaries = self.peers.iter().map(|p| p.primary_ids().len()).sum();
        let copies = self.peers.iter().map(|p| p.copy_ids().len()).sum();
        (primaries, copies)
    }
}

pub(super) fn write_all(ring: &mut Small, n: i64) {
    let at = ring.peers[0].id();
    for k in 0..n {
        let out = Op::Out {
            tuple: tuple(&format!("t{k}"), k),
            ttl_ms: None,
        };
        let replies = ring.run(
            at,
            Event::Client {
                op: OpId(k as u64),
                request: out,
            },
            0,
        );
        assert!(
            matches!(replies[..], [(_, Reply::Stored { .. })]),
            "{replies:?}"
        );
    }
}

#[test]
fn a_crash_is_taken_over_and_copies_restored() {
    let ids = [1u64 << 60, 5 << 60, 9 << 60, 13 << 60];
    let mut ring = Small::new(&ids);
    write_all(&mut ring, 40);
    assert_eq!(ring.counts(), (40, 40));
    let victim = ring
        .peers
        .iter()
        .max_by_key(|p| p.primary_ids().len())
        .unwrap()
        .id();
    ring.peers.retain(|p| p.id() != victim);
    ring.view.remove(victim);
    ring.change(victim, 1);
    assert_eq!(ring.counts(), (40, 40));
}

/// The survivors learn of the crash one after another, the new primary
/// first: its copies to the next peer arrive before that peer's view shows
/// it a replica, and are held back until it does.
#[test]
fn a_takeover_survives_views_arriving_one_by_one() {
    let ids = [1u64 << 60, 5 << 60, 9 << 60, 13 << 60];
    let mut ring = Small::new(&ids);
    write_all(&mut ring, 40);
    let victim = ring
        .peers
        .iter()
        .max_by_key(|p| p.primary_ids().len())
        .unwrap()
        .id();
    ring.peers.retain(|p| p.id() != victim);
    ring.view.remove(victim);
    let order: Vec<u64> = ring.view.successors(victim, 3);
    ring.change_lagging(victim, &order, 1);
    assert_eq!(ring.counts(), (40, 40));
}

#[test]
fn a_join_takes_its_arc_and_a_leave_hands_everything_over() {
    let ids = [1u64 << 60, 9 << 60];
    let mut ring = Small::new(&ids);
    write_all(&mut ring, 40);
    let newcomer = 5u64 << 60;
    ring.view.insert(newcomer);
    let view = Arc::new(ring.view.clone());
    ring.peers
        .push(Peer::new(newcomer, Config::default(), view).unwrap());
    ring.change(newcomer, 1);
    assert_eq!(ring.counts(), (40, 40));
    let at = ring.peers.iter().position(|p| p.id() == newcomer).unwrap();
    let held = ring.peers[at].primary_ids().len();
    assert!(held > 0, "the newcomer took no tuples");

    let leaver = ring.peers[0].id();
    ring.run(leaver, Event::Leave, 2);
    ring.peers.retain(|p| p.id() != leaver);
    ring.view.remove(leaver);
    ring.change(leaver, 3);
    assert_eq!(ring.counts(), (40, 40));
}

#[test]
fn a_blocking_in_waits_for_an_out_at_another_peer() {
    let ids = [1u64 << 62, 2 << 62, 3 << 62];
    let mut ring = Small::new(&ids);
    let t = tuple("late", 1);
    let take = Op::In {
        template: exact(&t),
        wait_ms: Some(5_000),
        max: 1,
    };
    let replies = ring.run(
        ids[0],
        Event::Client {
            op: OpId(1),
            request: take,
        },
        0,
    );
    assert!(replies.is_empty());
    let out = Op::Out {
        tuple: t.clone(),
        ttl_ms: None,
    };
    let replies = ring.run(
        ids[2],
        Event::Client {
            op: OpId(2),
            request: out,
        },
        10,
    );
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, (OpId(1), Reply::Taken(f)) if f[..] == [Tagged { id: f[0].id, tuple: t.clone() }]))
    );
    assert_eq!(ring.counts(), (0, 0));
}

#[test]
fn a_subscription_hears_each_write_once_across_peers_and_migrations() {
    let ids = [1u64 << 62, 2 << 62, 3 << 62];
    let mut ring = Small::new(&ids);
    let news = Template::new(vec![
        Field::Actual(Value::Str("news".into())),
        Field::Typed(crate::tuple::Kind::Int),
    ]);
    let subscribe = Op::Subscribe { template: news };
    assert!(
        ring.run(
            ids[0],
            Event::Client {
                op: OpId(1),
                request: subscribe
            },
            0
        )
        .is_empty()
    );
    let mut heard = Vec::new();
    for (n, t) in [tuple("news", 1), tuple("other", 1), tuple("news", 2)]
        .into_iter()
        .enumerate()
    {
        let out = Op::Out {
            tuple: t,
            ttl_ms: None,
        };
        let op = OpId(10 + n as u64);
        for (op, reply) in ring.run(ids[1 + n % 2], Event::Client { op, request: out }, 1) {
            if let Reply::Notified(tagged) = reply {
                assert_eq!(op, OpId(1));
                heard.push(tagged.tuple);
            }
        }
    }
    assert_eq!(heard, vec![tuple("news", 1), tuple("news", 2)]);

    // A newcomer owning the first tuple's index: it migrates, unheard.
    let newcomer = crate::keyspace::Keyspace::default().index_of(&tuple("news", 1));
    ring.view.insert(newcomer);
    let view = Arc::new(ring.view.clone());
    ring.peers
        .push(Peer::new(newcomer, Config::default(), view).unwrap());
    assert_eq!(ring.change(newcomer, 2), vec![]);
    assert_eq!(ring.counts(), (3, 3));
    let at = ring.peers.iter().find(|p| p.id() == newcomer).unwrap();
    assert!(!at.primary_ids().is_empty(), "nothing migrated");

    let unsubscribe = Op::Unsubscribe {
        subscription: OpId(1),
    };
    let replies = ring.run(
        ids[0],
        Event::Client {
            op: OpId(2),
            request: unsubscribe,
        },
        3,
    );
    assert_eq!(replies, vec![(OpId(2), Reply::Ended)]);
    let out = Op::Out {
        tuple: tuple("news", 3),
        ttl_ms: None,
    };
    let replies = ring.run(
        ids[2],
        Event::Client {
            op: OpId(20),
            request: out,
        },
        4,
    );
    assert!(
        matches!(replies[..], [(OpId(20), Reply::Stored { .. })]),
        "{replies:?}"
    );
}

#[test]
fn a_peer_refuses_operations_past_its_bound() {
    let view = Arc::new(Ring::from_iter([42]));
    let config = Config {
        max_pending: 1,
        ..Config::default()
    };
    let mut peer = Peer::new(42, config, view).unwrap();
    let wait = Op::In {
        template: exact(&tuple("none", 0)),
        wait_ms: None,
        max: 1,
    };
    let replies = peer.handle(
        Event::Client {
            op: OpId(1),
            request: wait.clone(),
        },
        0,
    );
    assert!(!replies.iter().any(|c| matches!(c, Command::Reply { .. })));
    let replies = peer.handle(
        Event::Client {
            op: OpId(2),
            request: wait,
        },
        1,
    );
    assert_eq!(
        replies,
        vec![Command::Reply {
            op: OpId(2),
            reply: Reply::Failed(OverlayError::Busy)
        }]
    );
    // Writes have a pool of their own: the waiting take leaves room.
    let replies = peer.handle(
        Event::Client {
            op: OpId(3),
            request: Op::Out {
                tuple: tuple("none", 0),
                ttl_ms: None,
            },
        },
        2,
    );
    assert!(
        replies.iter().any(|c| matches!(
            c,
            Command::Reply {
                op: OpId(1),
                reply: Reply::Taken(_)
            }
        )),
        "{replies:?}"
    );
}

#[test]
fn a_leave_hands_a_large_arc_over_in_bounded_batches() {
    let ids = [1u64 << 62, 3 << 62];
    let mut ring = Small::new(&ids);
    let n = 600;
    for k in 0..n {
        let out = Op::Out {
            tuple: tuple("bulk", k),
            ttl_ms: None,
        };
        ring.run(
            ids[0],
            Event::Client {
                op: OpId(k as u64),
                request: out,
            },
            0,
        );
    }
    let holder = ring
        .peers
        .iter()
        .max_by_key(|p| p.primary_ids().len())
        .unwrap();
    let (holder_id, held) = (holder.id(), holder.primary_ids().len());
    assert_eq!(held, n as usize);
    let at = ring.peers.iter().position(|p| p.id() == holder_id).unwrap();
    let commands = ring.peers[at].handle(Event::Leave, 1);
    let sizes: Vec<usize> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Send {
                msg:
                    Msg::Handover {
                        tuples,
                        adopt: true,
                    },
                ..
            } => Some(tuples.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![256, 256, 88]);
}

/// A message sent under a view the receiver never gets (its sender changed
/// its view alone) is held back for a while, then heard under the
/// receiver's view, whose number rises to the sender's.
#[test]
fn a_message_from_a_view_that_never_comes_is_heard_after_a_wait() {
    let ids = [1u64 << 62, 2 << 62];
    let view = Arc::new(Ring::from_iter(ids));
    let mut peer = Peer::new(ids[0], Config::default(), view).unwrap();
    let check = Msg::Check {
        chunk: 0,
        ids: vec![TupleId { origin: 9, seq: 1 }],
    };
    let from = ids[1];
    let held = peer.handle(
        Event::Message {
            from,
            msg: check,
            epoch: 5,
        },
        100,
    );
    let answered = |commands: &[Command]| {
        commands
            .iter()
            .any(|c| matches!(c, Command::Send { to, msg: Msg::Checked { .. }, .. } if *to == from))
    };
    assert!(!answered(&held), "held back: {held:?}");
    let armed = held.iter().find_map(|c| match c {
        Command::ArmTimer { at } => Some(*at),
        _ => None,
    });
    assert_eq!(armed, Some(2_100), "{held:?}");
    assert!(!answered(&peer.handle(Event::Timer, 2_099)));
    let heard = peer.handle(Event::Timer, 2_100);
    assert!(answered(&heard), "{heard:?}");
    assert!(
        heard
            .iter()
            .all(|c| !matches!(c, Command::Send { epoch, .. } if *epoch != 5)),
        "answered under the sender's view number: {heard:?}"
    );
}

/// A SIGKILLed peer loses what it had not yet written: were a take
/// answered by its primary while its `Remove` went to the replicas in the
/// same turn, a crash between the two writes would leave a copy to be
/// taken again, or lose the tuple. Answered through the chain of copy
/// holders (`answer`), no crash does either.
#[test]
fn crashes_that_lose_unwritten_messages_keep_the_invariants() {
    let (mut unwritten, mut answers) = (0, 0);
    for seed in 0..12 {
        let (plan, config) = heavy_churn(seed);
        let outcome = Sim::run_with_lossy_crashes(plan, config);
        unwritten += outcome.unwritten_lost;
        answers += outcome.take_answers_lost;
    }
    println!("{unwritten} unwritten messages lost, {answers} of them answering takes");
    assert!(
        answers >= 5,
        "only {answers} take answers lost of {unwritten}"
    );
}
