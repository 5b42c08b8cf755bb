//! A seeded, deterministic simulation of the overlay: N peers, a message
//! queue with random delays on a virtual clock, random client operations at
//! random peers, and churn (joins, graceful leaves, crashes). Each
//! membership change reaches every peer at once; a crash or leave is
//! announced `DETECT_MS` after it happened (the failure detector's delay).
//! Changes are spaced so that no two hit the same replica neighbourhood
//! within `SETTLE_MS`: fewer than R copies of an arc are ever lost at once.
//! With `evictions`, some live peers are wrongly declared gone and
//! re-admitted `SETTLE_MS` later: the peer learns first (it is fenced: it
//! drops what it held and serves only its clients, through the others),
//! the others `DETECT_MS` later (they take its arc over). With `freezes`,
//! some live peers stop (a frozen process: what reaches them waits), the
//! others drop them `DETECT_MS` later and serve their arcs from the
//! copies, and `SETTLE_MS / 2` after that they resume: told they were gone
//! ([`Event::Doubted`], its messages unheard by the others, which have not
//! let it in again yet), then let back in, then handed what waited.
//! Some blocking `in`s and `rd`s are cancelled a random time after they
//! start (their client went away); what a cancelled take had taken must be
//! back in the space under its new id.
//! [`Sim::run_skewed`] writes skewed keys (`("t", i)` and random hex
//! strings, which an order-preserving keyspace crowds on one peer) and
//! moves peers as [`super::balance`] plans, every `BALANCE_MS`, under the
//! same invariants. [`Sim::run_with_batches`] mixes batch `out`s
//! ([`Op::OutAll`]) of 2 to 8 tuples into the writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Command, Config, Event, Msg, Op, OpId, OverlayError, Peer, Reply, TupleId};
use crate::keyspace::Keyspace;
use crate::ring::Ring;
use crate::template::{Field, Template};
use crate::tuple::{Tuple, Value};

const DETECT_MS: u64 = 500;
const SETTLE_MS: u64 = 1_500;
const MAX_DELAY_MS: u64 = 20;
/// How often the balanced run looks for a move.
const BALANCE_MS: u64 = 1_000;
/// Primaries the heaviest peer holds before a move is worth it.
const MIN_LOAD: u64 = 16;

/// SplitMix64: the simulation's only source of randomness.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug)]
enum Item {
    Deliver {
        to: u64,
        from: u64,
        msg: Msg,
        epoch: u64,
    },
    Timer {
        peer: u64,
    },
    Client {
        peer: u64,
        op: OpId,
    },
    Churn,
    Evict,
    /// The others drop the evicted `peer` from their view.
    Expel {
        peer: u64,
    },
    Readmit {
        peer: u64,
    },
    Freeze,
    /// The others drop the frozen `peer`.
    DropFrozen {
        peer: u64,
    },
    Thaw {
        peer: u64,
    },
    Cancel {
        peer: u64,
        op: OpId,
    },
    Gone {
        peer: u64,
    },
    Balance,
    /// A moving peer joins at its new place.
    Arrive {
        peer: u64,
    },
}

/// What a run did, for the assertions and the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) outs_acked: usize,
    /// Tuples of the batch `out`s acknowledged.
    pub(super) batch_tuples_acked: usize,
    /// Outs that timed out.
    pub(super) outs_failed: usize,
    /// Outs whose peer left before they were acknowledged.
    pub(super) outs_left: usize,
    pub(super) ins_found: usize,
    /// Tuples taken by `in`s (several per `in` with a `max` above one).
    pub(super) tuples_taken: usize,
    /// `in`s asked of several candidates for shares of their `max` (at
    /// least one per candidate when they started).
    pub(super) share_takes: usize,
    pub(super) ins_empty: usize,
    /// Operations ended by a cancel, and tuples they put back.
    pub(super) cancelled: usize,
    pub(super) put_back: usize,
    pub(super) rds_found: usize,
    pub(super) scanned: usize,
    pub(super) hops: u64,
    pub(super) routed: u64,
    pub(super) joins: usize,
    pub(super) leaves: usize,
    pub(super) crashes: usize,
    /// Messages a crashed peer had not written (lossy crashes), and how
    /// many of them answered or removed taken tuples.
    pub(super) unwritten_lost: usize,
    pub(super) take_answers_lost: usize,
    /// Take chains sent again whole: a link held no copy of a tuple they
    /// named by id ([`Msg::Resend`]).
    pub(super) resends: usize,
    pub(super) evictions: usize,
    pub(super) freezes: usize,
    /// Balancing moves (a leave and a join each).
    pub(super) moves: usize,
    pub(super) peers_at_end: usize,
    pub(super) tuples_at_end: usize,
    pub(super) digest: u64,
}

impl Outcome {
    pub(super) fn mean_hops(&self) -> f64 {
        self.hops as f64 / self.routed.max(1) as f64
    }
}

/// The parameters of one run.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub(super) seed: u64,
    pub(super) peers: usize,
    pub(super) ops: usize,
    /// Membership changes during the run.
    pub(super) churn: usize,
    /// Live peers wrongly declared gone (and re-admitted) during the run.
    pub(super) evictions: usize,
    /// Live peers frozen until dropped, then resumed and re-admitted.
    pub(super) freezes: usize,
    /// Virtual milliseconds over which operations and churn are spread.
    pub(super) span_ms: u64,
}

pub(super) struct Sim {
    config: Config,
    keyspace: Keyspace,
    rng: Rng,
    now: u64,
    seq: u64,
    ring: Arc<Ring>,
    /// Views broadcast so far.
    epoch: u64,
    peers: BTreeMap<u64, Peer>,
    queue: BTreeMap<(u64, u64), Item>,
    /// Recent membership changes: (time, id).
    recent: Vec<(u64, u64)>,
    written: Vec<Tuple>,
    kinds: BTreeMap<(u64, OpId), char>,
    acked: BTreeSet<TupleId>,
    /// Acknowledged outs with a TTL, all expired by the end of the run.
    expiring: BTreeSet<TupleId>,
    taken: BTreeMap<TupleId, u32>,
    /// New ids of tuples put back by cancelled takes, and the ids they
    /// were taken under.
    returned: BTreeMap<TupleId, TupleId>,
    /// Keys crowded as real ones are (see the module docs).
    skewed: bool,
    /// A third of the writes are batch `out`s.
    batches: bool,
    /// Half the takes range widely over the second field and take up to
    /// 32: many take several from several candidates, by shares.
    shares: bool,
    /// A crash also loses what the peer had sent but not yet written to
    /// its sockets: each of its undelivered messages with probability ½
    /// (a SIGKILLed process). A peer whose own query awaits taken tuples
    /// is still not crashed: its client goes with it, and what was taken
    /// for it is lost (see the README's guarantees).
    lossy_crashes: bool,
    /// The tuples of `out`s in flight, and of every id acknowledged or
    /// taken: a take answered after its query ended (a frozen candidate
    /// serving it late) is put back under a new id no reply names, found
    /// again by its fields.
    writing: BTreeMap<(u64, OpId), Vec<Tuple>>,
    fields: BTreeMap<TupleId, Tuple>,
    /// Frozen peers, and what reached them meanwhile.
    frozen: BTreeMap<u64, Vec<Item>>,
    outcome: Outcome,
}

impl Sim {
    pub(super) fn new(seed: u64, peers: usize, config: Config) -> Sim {
        let mut rng = Rng(seed);
        let ring: Ring = (0..peers).map(|_| rng.next()).collect();
        let ring = Arc::new(ring);
        let peers = ring
            .iter()
            .map(|id| {
                (
                    id,
                    Peer::new(id, config, Arc::clone(&ring)).expect("valid dims"),
                )
            })
            .collect();
        Sim {
            config,
            keyspace: Keyspace::new(config.dims).expect("valid dims"),
            rng,
            now: 0,
            seq: 0,
            ring,
            epoch: 0,
            peers,
            queue: BTreeMap::new(),
            recent: Vec::new(),
            written: Vec::new(),
            kinds: BTreeMap::new(),
            acked: BTreeSet::new(),
            expiring: BTreeSet::new(),
            taken: BTreeMap::new(),
            returned: BTreeMap::new(),
            skewed: false,
            batches: false,
            shares: false,
            lossy_crashes: false,
            writing: BTreeMap::new(),
            fields: BTreeMap::new(),
            frozen: BTreeMap::new(),
            outcome: Outcome::default(),
        }
    }

    fn push(&mut self, at: u64, item: Item) {
        self.seq += 1;
        self.queue.insert((at, self.seq), item);
    }

    /// Runs a plan to quiescence and checks the invariants.
    pub(super) fn run(plan: Plan, config: Config) -> Outcome {
        let mut sim = Sim::new(plan.seed, plan.peers, config);
        sim.schedule(plan);
        sim.finish()
    }

    /// Runs a plan with batch `out`s among the writes.
    pub(super) fn run_with_batches(plan: Plan, config: Config) -> Outcome {
        let mut sim = Sim::new(plan.seed, plan.peers, config);
        sim.batches = true;
        sim.schedule(plan);
        sim.finish()
    }

    /// Runs a plan whose takes often take several from several
    /// candidates (by shares, `take_share`), batch `out`s among the
    /// writes to stock them.
    /// Runs a plan whose crashes lose the crashed peer's unwritten
    /// messages ([`Sim::lossy_crashes`]).
    pub(super) fn run_with_lossy_crashes(plan: Plan, config: Config) -> Outcome {
        let mut sim = Sim::new(plan.seed, plan.peers, config);
        sim.lossy_crashes = true;
        sim.schedule(plan);
        sim.finish()
    }

    pub(super) fn run_with_shares(plan: Plan, config: Config) -> Outcome {
        let mut sim = Sim::new(plan.seed, plan.peers, config);
        sim.batches = true;
        sim.shares = true;
        sim.schedule(plan);
        sim.finish()
    }

    /// Runs a plan with skewed keys and, with `moves`, balancing moves
    /// every `BALANCE_MS` until `settle_ms` after its operations; the
    /// outcome, each peer's primaries at the end, in ring order, and the
    /// ring.
    pub(super) fn run_skewed(
        plan: Plan,
        config: Config,
        moves: bool,
        settle_ms: u64,
    ) -> (Outcome, Vec<u64>, Arc<Ring>) {
        let mut sim = Sim::new(plan.seed, plan.peers, config);
        sim.skewed = true;
        sim.schedule(plan);
        let rounds = (BALANCE_MS..plan.span_ms + settle_ms).step_by(BALANCE_MS as usize);
        for at in rounds.filter(|_| moves) {
            sim.push(at, Item::Balance);
        }
        let outcome = sim.finish();
        let loads = sim
            .ring
            .iter()
            .map(|id| sim.peers[&id].primary_count() as u64);
        (outcome, loads.collect(), Arc::clone(&sim.ring))
    }

    fn schedule(&mut self, plan: Plan) {
        let sim = self;
        for n in 0..plan.ops {
            let at = sim.rng.below(plan.span_ms);
            let peer = sim.random_peer();
            sim.push(
                at,
                Item::Client {
                    peer,
                    op: OpId(n as u64),
                },
            );
        }
        for n in 0..plan.churn {
            let at =
                plan.span_ms / 10 + n as u64 * (plan.span_ms * 8 / 10) / plan.churn.max(1) as u64;
            sim.push(at, Item::Churn);
        }
        for n in 0..plan.evictions {
            let at = plan.span_ms / 8 + n as u64 * (plan.span_ms * 7 / 10) / plan.evictions as u64;
            sim.push(at, Item::Evict);
        }
        for n in 0..plan.freezes {
            let at = plan.span_ms / 7 + n as u64 * (plan.span_ms * 7 / 10) / plan.freezes as u64;
            sim.push(at, Item::Freeze);
        }
    }

    fn finish(&mut self) -> Outcome {
        while let Some(((at, _), item)) = self.queue.pop_first() {
            self.now = at;
            self.step(item);
        }
        self.check();
        std::mem::take(&mut self.outcome)
    }

    fn random_peer(&mut self) -> u64 {
        // The owner of a random index: a peer chosen in proportion to its
        // arc, in O(log N).
        let index = self.rng.next();
        self.ring.owner(index).expect("a non-empty ring")
    }

    fn step(&mut self, item: Item) {
        let target = match &item {
            Item::Deliver { to, .. } => Some(*to),
            Item::Timer { peer } | Item::Client { peer, .. } | Item::Cancel { peer, .. } => {
                Some(*peer)
            }
            _ => None,
        };
        if let Some(waiting) = target.and_then(|p| self.frozen.get_mut(&p)) {
            waiting.push(item);
            return;
        }
        match item {
            Item::Deliver {
                to,
                from,
                msg,
                epoch,
            } => {
                self.outcome.resends += usize::from(matches!(msg, Msg::Resend { .. }));
                self.feed(to, Event::Message { from, msg, epoch })
            }
            Item::Timer { peer } => self.feed(peer, Event::Timer),
            Item::Client { peer, op } => {
                let (kind, request) = self.random_op();
                let peer = if self.peers.contains_key(&peer) {
                    peer
                } else {
                    self.random_peer()
                };
                if !self.peers.contains_key(&peer) {
                    return;
                }
                let waits = matches!(&request, Op::In { wait_ms: Some(w), .. } | Op::Rd { wait_ms: Some(w), .. } if *w > 0);
                if waits && self.rng.below(3) == 0 {
                    let at = self.now + self.rng.below(200);
                    self.push(at, Item::Cancel { peer, op });
                }
                self.kinds.insert((peer, op), kind);
                if let Op::In { template, max, .. } = &request {
                    let k = self.peers[&peer].candidates(template).len();
                    self.outcome.share_takes += usize::from(k > 1 && *max >= k);
                }
                match &request {
                    Op::Out { tuple, .. } => {
                        self.writing.insert((peer, op), vec![tuple.clone()]);
                    }
                    Op::OutAll { tuples, .. } => {
                        self.writing.insert((peer, op), tuples.clone());
                    }
                    _ => {}
                }
                self.feed(peer, Event::Client { op, request });
            }
            Item::Cancel { peer, op } => self.feed(peer, Event::Cancel { op }),
            Item::Evict => self.evict(),
            Item::Expel { peer } => {
                self.epoch += 1;
                self.send_view(peer, |p| p != peer);
                self.push(self.now + SETTLE_MS, Item::Readmit { peer });
            }
            Item::Readmit { peer } => {
                let mut ring = (*self.ring).clone();
                ring.insert(peer);
                self.ring = Arc::new(ring);
                self.broadcast(peer);
            }
            Item::Freeze => self.freeze(),
            Item::DropFrozen { peer } => {
                let mut ring = (*self.ring).clone();
                ring.remove(peer);
                self.ring = Arc::new(ring);
                self.epoch += 1;
                self.send_view(peer, |p| p != peer);
                self.push(self.now + SETTLE_MS / 2, Item::Thaw { peer });
            }
            Item::Thaw { peer } => self.thaw(peer),
            Item::Churn => self.churn(),
            Item::Balance => self.balance(),
            Item::Arrive { peer } => self.arrive(peer),
            Item::Gone { peer } => {
                let mut ring = (*self.ring).clone();
                ring.remove(peer);
                self.ring = Arc::new(ring);
                self.broadcast(peer);
            }
        }
    }

    fn feed(&mut self, to: u64, event: Event) {
        let now = self.now;
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        let commands = peer.handle(event, now);
        self.apply(to, commands);
    }

    fn apply(&mut self, from: u64, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Send { to, msg, epoch } => {
                    let at = self.now + 1 + self.rng.below(MAX_DELAY_MS);
                    self.push(
                        at,
                        Item::Deliver {
                            to,
                            from,
                            msg,
                            epoch,
                        },
                    );
                }
                Command::ArmTimer { at } => self.push(at.max(self.now), Item::Timer { peer: from }),
                Command::Reply { op, reply } => self.record(from, op, reply),
            }
        }
    }

    fn record(&mut self, peer: u64, op: OpId, reply: Reply) {
        let kind = self.kinds.remove(&(peer, op)).expect("a reply per op");
        let written = self.writing.remove(&(peer, op)).unwrap_or_default();
        let ids = match &reply {
            Reply::Stored { id, .. } => std::slice::from_ref(id),
            Reply::StoredAll { ids } => ids.as_slice(),
            _ => &[],
        };
        // A batch's ids are given in the order of its tuples.
        self.fields.extend(ids.iter().copied().zip(written));
        let line = format!("{} {peer} {} {kind} {reply:?}", self.now, op.0);
        self.outcome.digest = fnv(self.outcome.digest, line.as_bytes());
        match (kind, reply) {
            ('o' | 't', Reply::Stored { id, hops }) => {
                self.outcome.outs_acked += 1;
                self.outcome.hops += u64::from(hops);
                self.outcome.routed += 1;
                let set = if kind == 't' {
                    &mut self.expiring
                } else {
                    &mut self.acked
                };
                assert!(set.insert(id), "{id:?} acknowledged twice");
            }
            ('b' | 'e', Reply::StoredAll { ids }) => {
                self.outcome.outs_acked += 1;
                self.outcome.batch_tuples_acked += ids.len();
                let set = if kind == 'e' {
                    &mut self.expiring
                } else {
                    &mut self.acked
                };
                for id in ids {
                    assert!(set.insert(id), "{id:?} acknowledged twice");
                }
            }
            ('o' | 't' | 'b' | 'e', Reply::Failed(OverlayError::Timeout)) => {
                self.outcome.outs_failed += 1
            }
            ('o' | 't' | 'b' | 'e', Reply::Failed(OverlayError::Leaving)) => {
                self.outcome.outs_left += 1
            }
            ('s', Reply::Listed(found)) => {
                self.outcome.scanned += found.len();
                assert!(
                    found.windows(2).all(|w| w[0].id < w[1].id),
                    "a scan repeats a tuple"
                );
            }
            ('i', Reply::Taken(tuples)) if !tuples.is_empty() => {
                self.outcome.ins_found += 1;
                for t in tuples {
                    self.outcome.tuples_taken += 1;
                    *self.taken.entry(t.id).or_default() += 1;
                    self.fields.insert(t.id, t.tuple);
                }
            }
            ('i', Reply::Taken(_) | Reply::Failed(_)) => self.outcome.ins_empty += 1,
            ('i' | 'r', Reply::Cancelled { returned }) => {
                self.outcome.cancelled += 1;
                for (old, new) in returned {
                    self.outcome.put_back += 1;
                    *self.taken.entry(old).or_default() += 1;
                    let again = self.returned.insert(new, old);
                    assert!(again.is_none(), "{new:?} put back twice");
                }
            }
            ('r', Reply::Found(found)) => self.outcome.rds_found += usize::from(found.is_some()),
            ('r' | 's', Reply::Failed(_)) => {}
            (kind, reply) => panic!("unexpected reply {reply:?} to a {kind}"),
        }
    }

    /// Outs (half, one in eight with a TTL; with `batches`, a third of
    /// them batches of 2 to 8 tuples), ins (a third, half of them
    /// blocking), rds and scans; templates name a written tuple's keywords
    /// exactly, or range over the second.
    fn random_op(&mut self) -> (char, Op) {
        let roll = self.rng.below(24);
        if roll < 12 || self.written.is_empty() {
            if self.batches && self.rng.below(3) == 0 {
                let n = 2 + self.rng.below(7);
                let tuples = (0..n).map(|_| self.random_tuple()).collect();
                let ttl_ms = (self.rng.below(8) == 0).then(|| 500 + self.rng.below(2_000));
                let kind = if ttl_ms.is_some() { 'e' } else { 'b' };
                return (kind, Op::OutAll { tuples, ttl_ms });
            }
            let tuple = self.random_tuple();
            let ttl_ms = (self.rng.below(8) == 0).then(|| 500 + self.rng.below(2_000));
            let kind = if ttl_ms.is_some() { 't' } else { 'o' };
            return (kind, Op::Out { tuple, ttl_ms });
        }
        let like = self.written[self.rng.below(self.written.len() as u64) as usize].clone();
        let wide = self.shares && self.rng.below(2) == 0;
        let first = match &like.fields()[0] {
            // Every key of the written tuple's kind: several candidates.
            value if wide => Field::Typed(value.kind()),
            value => Field::Actual(value.clone()),
        };
        let second = if wide || self.rng.below(4) == 0 {
            let width = if wide { 600 } else { 100 };
            let lo = self.rng.below(1_000 - width) as i64;
            let range =
                crate::template::Range::new(Value::Int(lo), Value::Int(lo + width as i64), false);
            Field::Range(range.expect("ints"))
        } else {
            Field::Actual(like.fields()[1].clone())
        };
        let template = Template::new(vec![first, second, Field::Any]);
        let wait_ms = if self.rng.below(2) == 0 {
            Some(0)
        } else {
            Some(3_000)
        };
        let max = match self.rng.below(3) {
            _ if wide => 1 + self.rng.below(32) as usize,
            0 => 1 + self.rng.below(8) as usize,
            _ => 1,
        };
        match roll {
            12..20 => (
                'i',
                Op::In {
                    template,
                    wait_ms,
                    max,
                },
            ),
            20..23 => ('r', Op::Rd { template, wait_ms }),
            _ => (
                's',
                Op::Scan {
                    template,
                    limit: 100,
                },
            ),
        }
    }

    /// A tuple to write. Hot string keys crowd a few peers; random ints
    /// spread over all. Skewed: one key and counted ints, or random hex
    /// strings.
    fn random_tuple(&mut self) -> Tuple {
        let n = self.written.len() as i64;
        let (key, second) = match (self.skewed, self.rng.below(2)) {
            (false, 0) => (Value::Str(format!("k{}", self.rng.below(40))), None),
            (false, _) => (Value::Int(self.rng.next() as i64), None),
            (true, 0) => (Value::Str("t".into()), Some(n)),
            (true, _) => (
                Value::Str(format!("{:08x}", self.rng.next() as u32)),
                Some(n),
            ),
        };
        let second = second.unwrap_or_else(|| self.rng.below(1_000) as i64);
        let tuple = Tuple::new(vec![
            key,
            Value::Int(second),
            Value::Int(self.rng.next() as i64),
        ]);
        self.written.push(tuple.clone());
        tuple
    }

    fn churn(&mut self) {
        let r = self.config.replicas;
        for attempt in 0..50 {
            // Lossy crashes strike a peer with a take's answer on its way
            // whenever there is one (and it is quiet around).
            let answering = (self.lossy_crashes && attempt < 25)
                .then(|| self.answering())
                .flatten();
            let kind = answering.map_or_else(|| self.rng.below(3), |_| 2);
            let id = match kind {
                0 => self.rng.next(),
                _ => answering.unwrap_or_else(|| self.victim()),
            };
            // A leave fails the operations pending at the peer and a crash
            // drops them, which is fine, but not while an accept is in
            // flight: the tuple would be taken and never delivered.
            let busy = kind != 0 && self.peers.get(&id).is_none_or(|p| p.accepting() > 0);
            if busy || !self.quiet_around(id, r) {
                continue;
            }
            self.recent.push((self.now, id));
            match kind {
                0 => {
                    let mut ring = (*self.ring).clone();
                    ring.insert(id);
                    self.ring = Arc::new(ring);
                    let peer =
                        Peer::new(id, self.config, Arc::clone(&self.ring)).expect("valid dims");
                    self.peers.insert(id, peer);
                    self.broadcast(id);
                    self.outcome.joins += 1;
                }
                1 => {
                    self.feed(id, Event::Leave);
                    self.peers.remove(&id);
                    self.push(self.now + DETECT_MS, Item::Gone { peer: id });
                    self.outcome.leaves += 1;
                }
                _ => {
                    self.peers.remove(&id);
                    if self.lossy_crashes {
                        self.lose_unwritten(id);
                    }
                    self.kinds.retain(|&(p, _), _| p != id);
                    self.push(self.now + DETECT_MS, Item::Gone { peer: id });
                    self.outcome.crashes += 1;
                }
            }
            return;
        }
        panic!("no quiet place for a membership change at {}", self.now);
    }

    /// A peer with a take's answer or removal not yet delivered, if any:
    /// the crash the chain of copy holders (`answer`) is for.
    fn answering(&mut self) -> Option<u64> {
        let senders: Vec<u64> = self
            .queue
            .values()
            .filter_map(|item| match item {
                Item::Deliver {
                    from,
                    msg: Msg::Remove { .. } | Msg::Taken { .. },
                    ..
                } if self.peers.contains_key(from) => Some(*from),
                _ => None,
            })
            .collect();
        let n = senders.len() as u64;
        (n > 0).then(|| senders[self.rng.below(n) as usize])
    }

    /// Drops each undelivered message from the crashed peer `id` with
    /// probability ½: what it had not yet written when it was killed.
    fn lose_unwritten(&mut self, id: u64) {
        let unwritten: Vec<(u64, u64)> = self
            .queue
            .iter()
            .filter(|(_, item)| matches!(item, Item::Deliver { from, .. } if *from == id))
            .map(|(key, _)| *key)
            .collect();
        for key in unwritten {
            if self.rng.below(2) == 0 {
                let lost = self.queue.remove(&key);
                self.outcome.unwritten_lost += 1;
                let answer = |msg: &Msg| matches!(msg, Msg::Remove { .. } | Msg::Taken { .. });
                if let Some(Item::Deliver { msg, .. }) = &lost
                    && answer(msg)
                {
                    self.outcome.take_answers_lost += 1;
                }
            }
        }
    }

    /// Moves a peer as the balancer plans it, when the places it leaves
    /// and joins are quiet: it leaves now, and `DETECT_MS` later the views
    /// drop its old place and add it at the heavy peer's split point.
    fn balance(&mut self) {
        let loads: Vec<(u64, u64)> = self
            .ring
            .iter()
            .filter_map(|id| Some((id, self.peers.get(&id)?.primary_count() as u64)))
            .collect();
        if loads.len() != self.ring.len() {
            return;
        }
        let Some(m) = super::balance::plan(&loads, MIN_LOAD) else {
            return;
        };
        let r = self.config.replicas;
        let busy = self.peers[&m.mover].accepting() > 0;
        if busy || !self.quiet_around(m.mover, r) || !self.quiet_around(m.heavy, r) {
            return;
        }
        let Some(at) = self.peers[&m.heavy].split_point(m.below) else {
            return;
        };
        // As the node's `Moved`: the old place's view, then at once the
        // new place's, once the handover has landed (it takes at most
        // `MAX_DELAY_MS`, the views come `DETECT_MS` later).
        let arrive = self.now + DETECT_MS;
        self.recent.push((self.now, m.mover));
        self.recent.push((arrive, at));
        self.feed(m.mover, Event::Leave);
        self.peers.remove(&m.mover);
        self.push(arrive, Item::Gone { peer: m.mover });
        self.push(arrive, Item::Arrive { peer: at });
        self.outcome.moves += 1;
    }

    fn arrive(&mut self, id: u64) {
        if self.ring.contains(id) {
            return;
        }
        let mut ring = (*self.ring).clone();
        ring.insert(id);
        self.ring = Arc::new(ring);
        let peer = Peer::new(id, self.config, Arc::clone(&self.ring)).expect("valid dims");
        self.peers.insert(id, peer);
        self.broadcast(id);
    }

    /// A random peer, or half the time the primary of a random written
    /// tuple: changes that move tuples are the ones worth testing.
    fn victim(&mut self) -> u64 {
        if self.written.is_empty() || self.rng.below(2) == 0 {
            return self.random_peer();
        }
        let n = self.rng.below(self.written.len() as u64) as usize;
        let index = self.keyspace.index_of(&self.written[n]);
        self.ring.owner(index).expect("a non-empty ring")
    }

    /// Whether no change in the last `SETTLE_MS` lies within `r` peers of `id`.
    fn quiet_around(&mut self, id: u64, r: usize) -> bool {
        let now = self.now;
        self.recent.retain(|&(at, _)| at + SETTLE_MS > now);
        let mut before = id;
        for _ in 0..r + 1 {
            before = self.ring.predecessor(before).unwrap_or(before);
        }
        let after = self
            .ring
            .successors(id, r + 1)
            .last()
            .copied()
            .unwrap_or(id);
        let reach = after.wrapping_sub(before);
        self.recent
            .iter()
            .all(|&(_, c)| c.wrapping_sub(before) > reach)
    }

    /// A live peer no change is near and no accept is in flight at, for a
    /// wrong word that it is gone; `what` names it in the panic if there
    /// is none.
    fn quiet_victim(&mut self, what: &str) -> u64 {
        let r = self.config.replicas;
        for _ in 0..50 {
            let id = self.victim();
            let busy = self.peers.get(&id).is_none_or(|p| p.accepting() > 0);
            if !busy && self.quiet_around(id, r) {
                return id;
            }
        }
        panic!("no quiet place for {what} at {}", self.now);
    }

    /// Wrongly declares a live peer gone: it learns at once, the others
    /// `DETECT_MS` later.
    fn evict(&mut self) {
        let id = self.quiet_victim("an eviction");
        // The re-admission is a change too: nothing may change near it
        // from now until it has settled.
        let readmit = self.now + DETECT_MS + SETTLE_MS;
        self.recent.push((self.now, id));
        self.recent.push((readmit, id));
        let mut ring = (*self.ring).clone();
        ring.remove(id);
        self.ring = Arc::new(ring);
        self.epoch += 1;
        self.send_view(id, |p| p == id);
        self.push(self.now + DETECT_MS, Item::Expel { peer: id });
        self.outcome.evictions += 1;
    }

    /// Freezes a live peer: what reaches it waits; the others drop it
    /// `DETECT_MS` later.
    fn freeze(&mut self) {
        let id = self.quiet_victim("a freeze");
        let back = self.now + DETECT_MS + SETTLE_MS / 2;
        self.recent.push((self.now, id));
        self.recent.push((back, id));
        self.frozen.insert(id, Vec::new());
        self.push(self.now + DETECT_MS, Item::DropFrozen { peer: id });
        self.outcome.freezes += 1;
    }

    /// The frozen peer resumes and is told it was gone (the others do not
    /// hear what it sends until they let it in again), is let in again,
    /// and gets what waited for it.
    fn thaw(&mut self, peer: u64) {
        let waiting = self.frozen.remove(&peer).unwrap_or_default();
        let now = self.now;
        if let Some(p) = self.peers.get_mut(&peer) {
            let commands = p.handle(Event::Doubted, now);
            let heard = commands
                .into_iter()
                .filter(|c| !matches!(c, Command::Send { to, .. } if *to != peer))
                .collect();
            self.apply(peer, heard);
        }
        let mut ring = (*self.ring).clone();
        ring.insert(peer);
        self.ring = Arc::new(ring);
        self.broadcast(peer);
        for item in waiting {
            self.push(self.now, item);
        }
    }

    fn broadcast(&mut self, changed: u64) {
        self.epoch += 1;
        self.send_view(changed, |_| true);
    }

    /// Gives the current ring, as view `self.epoch`, to the peers `to`
    /// picks.
    fn send_view(&mut self, changed: u64, to: impl Fn(u64) -> bool) {
        let (now, epoch) = (self.now, self.epoch);
        let mut busy = Vec::new();
        for (&id, peer) in &mut self.peers {
            // A frozen peer learns of changes when it resumes (its own
            // view keeps it a member: its driver never drops itself).
            if !to(id) || self.frozen.contains_key(&id) {
                continue;
            }
            let view = Arc::clone(&self.ring);
            let event = Event::View {
                view,
                changed,
                epoch,
            };
            let commands = peer.handle(event, now);
            if !commands.is_empty() {
                busy.push((id, commands));
            }
        }
        for (id, commands) in busy {
            self.apply(id, commands);
        }
    }

    /// The ids held or taken that no reply named (put back after a late
    /// `Taken`), with their fields.
    fn put_back_unnamed(&self, held: &BTreeMap<TupleId, u64>) -> Vec<(TupleId, Tuple)> {
        let named = |id: &TupleId| {
            self.acked.contains(id) || self.returned.contains_key(id) || self.expiring.contains(id)
        };
        let mut unnamed: Vec<(TupleId, Tuple)> = self
            .taken
            .keys()
            .filter(|id| !named(id))
            .filter_map(|id| Some((*id, self.fields.get(id)?.clone())))
            .collect();
        for (&p, peer) in &self.peers {
            if !held.values().any(|&q| q == p) {
                continue;
            }
            for (stored, _) in peer.store.stored() {
                if let Some(tagged) = super::Tagged::from_stored(stored)
                    && !named(&tagged.id)
                {
                    unnamed.push((tagged.id, tagged.tuple));
                }
            }
        }
        unnamed
    }

    /// The invariants after quiescence.
    fn check(&mut self) {
        assert!(self.kinds.is_empty(), "unanswered: {:?}", self.kinds);
        for (id, &n) in &self.taken {
            assert_eq!(n, 1, "{id:?} taken {n} times");
        }
        let mut held: BTreeMap<TupleId, u64> = BTreeMap::new();
        for (&p, peer) in &self.peers {
            assert_eq!(peer.primary_count(), peer.primary_ids().len(), "peer {p}");
            for id in peer.primary_ids() {
                assert!(held.insert(id, p).is_none(), "{id:?} held by two primaries");
            }
        }
        // A put-back keeps its time to live. Whether its tuple was written
        // with one is known once that write is acknowledged, which may come
        // after the take (a batch waits for all its tuples).
        let written_with_ttl = |mut id: TupleId| {
            while let Some(&old) = self.returned.get(&id) {
                id = old;
            }
            self.expiring.contains(&id)
        };
        let (expiring, returned): (Vec<TupleId>, Vec<TupleId>) =
            self.returned.keys().partition(|&&id| written_with_ttl(id));
        let mut put_back = self.put_back_unnamed(&held);
        for id in self.acked.iter().chain(&returned) {
            let present = held.contains_key(id);
            let taken = self.taken.contains_key(id);
            let mut moved = || {
                let fields = self.fields.get(id)?;
                let at = put_back.iter().position(|(_, f)| f == fields)?;
                Some(put_back.swap_remove(at))
            };
            let found = present || taken || moved().is_some();
            assert!(!(present && taken), "{id:?}: present and taken");
            assert!(found, "{id:?}: present {present}, taken {taken}");
        }
        for id in self.taken.keys() {
            assert!(!held.contains_key(id), "{id:?} taken and still held");
        }
        for id in self.expiring.iter().chain(&expiring) {
            assert!(!held.contains_key(id), "{id:?} outlived its TTL");
        }
        let r = self.config.replicas;
        let mut copies = 0;
        for (&p, peer) in &self.peers {
            copies += peer.copy_ids().len();
            for id in peer.copy_ids() {
                let primary = held.get(&id).copied();
                let expected = primary.is_some_and(|q| self.ring.successors(q, r - 1).contains(&p));
                assert!(
                    expected,
                    "{id:?} copied at {p:#x}, primary {primary:x?}, acked {}, taken {}",
                    self.acked.contains(&id),
                    self.taken.contains_key(&id)
                );
            }
        }
        for (id, &p) in &held {
            for s in self.ring.successors(p, r - 1) {
                let copied = self.peers[&s].copy_ids().contains(id);
                assert!(copied, "{id:?} held at {p:#x} has no copy at {s:#x}");
            }
        }
        let wanted = held.len() * (r - 1).min(self.ring.len() - 1);
        assert_eq!(copies, wanted, "replica copies after quiescence");
        self.outcome.peers_at_end = self.peers.len();
        self.outcome.tuples_at_end = held.len();
        let end = format!("{:?}", (self.outcome.peers_at_end, held.len(), copies));
        self.outcome.digest = fnv(self.outcome.digest, end.as_bytes());
    }
}

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    if hash == 0 {
        hash = 0xcbf2_9ce4_8422_2325;
    }
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
