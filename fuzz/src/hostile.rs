//! The `overlay` target: a ring of four sans-io peers
//! (`halley_substrate::overlay::Peer`) holding tuples as primaries and as
//! copies, with a take and an `out` in flight, a parked `in` and a
//! subscription, attacked by its members. The input is a sequence of
//! steps: a message from member k to peer j, as bytes (raw, or crafted
//! from the ring's real ids and tuples, or an honest message seen earlier
//! sent again), a client operation, honest messages delivered, time
//! passing, and the view changes one member's word makes at peer j (a
//! `Joined` naming a peer that is none of the four, a `Gone` naming its
//! sender, a `Gone` naming j, which sets j's tuples aside until it has
//! checked them).
//!
//! Every message from the attacker goes through what the node does to
//! bytes off a peer link before its peer sees them
//! (`wire::frame::decode`, then the driver's epoch and overlay checks);
//! the sender is always a member of the receiver's view, since its driver
//! drops anyone else's messages (honest ones too) before they reach its
//! peer. (Not modelled: a joining node also hears the peer it joins
//! through before that one is in its view.) A run ends by delivering all
//! that is in flight and letting timers fire.
//!
//! What must hold: no panic; a peer replies only to operations its client
//! started, and to each once (notifications aside); a peer holds at most
//! its `max_tuples` as primary. A tuple's survival is not asserted: a
//! member may take or remove any tuple (the protocol trusts members to
//! remove only what was taken), so no peer can keep a tuple from a lying
//! member.

mod choices;
mod craft;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use halley_substrate::node::{check_overlay, epoch_plausible};
use halley_substrate::overlay::{
    Command, Config, Event, Msg, Op, OpId, Peer, Reply, Tagged, TupleId,
};
use halley_substrate::wire::{self, Message, PeerMessage};
use halley_substrate::{Template, Tuple, Value, parse_template};

use choices::Choices;
use craft::Pool;

/// The members: the places on the ring of the four peers, between the
/// indexes of the tuples written at the start, so that each is the
/// primary of some ("a", 2; "a", 1 and "big"; the "m"s; "q" and the "z"s)
/// and the replica of others.
const IDS: [u64; 4] = [
    0x1200_c000_0000_0000,
    0x1202_0000_0000_0000,
    0x1210_0000_0000_0000,
    0x1216_0000_0000_0000,
];
/// Peer ids none of the four has, which messages may name all the same,
/// and which a lying member may announce as joined.
const STRANGERS: [u64; 2] = [0, 12_345];
/// Steps of one input at most.
const MAX_STEPS: usize = 64;
/// Client operations of one input at most.
const MAX_OPS: u64 = 32;
/// Bytes of one raw message at most.
const MAX_RAW: usize = 4_096;
/// Honest messages in flight at most; past it a run stops (it has
/// amplified enough to show).
const MAX_IN_FLIGHT: usize = 20_000;
/// Honest messages kept for the attacker to send again.
const LOG: usize = 64;
/// Ids and tuples remembered for crafting, at most.
const POOL: usize = 256;

/// A run over `data`.
pub fn run(data: &[u8]) {
    let mut choices = Choices::new(data);
    let mut ring = Ring::set_up();
    for _ in 0..MAX_STEPS {
        if choices.is_empty() || ring.flooded() {
            break;
        }
        ring.step(&mut choices);
    }
    ring.settle();
}

/// An honest message in flight.
struct Sent {
    from: u64,
    to: u64,
    msg: Msg,
    epoch: u64,
}

struct Ring {
    peers: Vec<Peer>,
    /// Each peer's driver: its members (itself included), whom it hears,
    /// and its view epoch.
    members: Vec<BTreeSet<u64>>,
    epochs: Vec<u64>,
    config: Config,
    now: u64,
    in_flight: VecDeque<Sent>,
    /// Recent honest messages, for the attacker to send again.
    log: VecDeque<Msg>,
    /// Tuple ids and tuples seen (held, written, taken), for crafting.
    ids: Vec<TupleId>,
    tagged: Vec<Tagged>,
    /// Each client operation's peer.
    issued: BTreeMap<OpId, u64>,
    /// Operations answered for good.
    finished: BTreeSet<OpId>,
}

impl Ring {
    /// The ring with its tuples written and stored, a parked `in` (of a
    /// template no tuple matches), a subscription, then a take of two and
    /// an `out` whose messages are still in flight.
    fn set_up() -> Ring {
        let config = Config {
            // Small tuples are named by id down a take's chain too.
            name_from: 64,
            max_tuples: 48,
            max_pending: 32,
            balance: false,
            ..Config::default()
        };
        let view: Arc<halley_substrate::ring::Ring> = Arc::new(IDS.into_iter().collect());
        let peers = IDS
            .iter()
            .map(|&id| Peer::new(id, config, Arc::clone(&view)).expect("a valid config"))
            .collect();
        let mut ring = Ring {
            peers,
            members: vec![IDS.into_iter().collect(); IDS.len()],
            epochs: vec![0; IDS.len()],
            config,
            now: 0,
            in_flight: VecDeque::new(),
            log: VecDeque::new(),
            ids: Vec::new(),
            tagged: Vec::new(),
            issued: BTreeMap::new(),
            finished: BTreeSet::new(),
        };
        let written = [
            tuple("a", 1),
            tuple("a", 2),
            tuple("m", 3),
            tuple("m", 4),
            tuple("z", 5),
            tuple("z", 6),
            Tuple::new(vec![
                "big".into(),
                Value::Int(7),
                Value::Bytes(vec![7; 100]),
            ]),
            tuple("q", 8),
        ];
        for (i, t) in written.into_iter().enumerate() {
            let request = Op::Out {
                tuple: t,
                ttl_ms: None,
            };
            ring.client(i % IDS.len(), request);
        }
        ring.deliver(usize::MAX);
        let wait = |text: &str, wait_ms, max| Op::In {
            template: parse_template(text).expect("a fixed template"),
            wait_ms,
            max,
        };
        ring.client(0, wait(r#"(*, ?bool)"#, None, 1));
        let subscribe = Op::Subscribe {
            template: parse_template(r#"(?str, ?int)"#).expect("a fixed template"),
        };
        ring.client(1, subscribe);
        // What the ring holds, for crafting.
        for text in [r#"(*, *)"#, r#"(*, *, *)"#] {
            let template = parse_template(text).expect("a fixed template");
            ring.client(
                0,
                Op::Scan {
                    template,
                    limit: 64,
                },
            );
        }
        ring.deliver(usize::MAX);
        ring.client(2, wait(r#"(*, ?int)"#, Some(5_000), 2));
        let out = Op::Out {
            tuple: tuple("a", 9),
            ttl_ms: Some(30_000),
        };
        ring.client(3, out);
        ring.remember_held();
        ring
    }

    fn flooded(&self) -> bool {
        self.in_flight.len() >= MAX_IN_FLIGHT
    }

    fn step(&mut self, c: &mut Choices) {
        match c.below(10) {
            0 => {
                let Some((from, to)) = self.sender_and_receiver(c) else {
                    return;
                };
                // A frame body whose message is `Message::Peer` (2) of
                // `PeerMessage::Overlay` (4): the rest is the overlay
                // message and its epoch, as the bytes say.
                let len = c.below(256) * MAX_RAW / 256;
                let mut body = vec![2, 4];
                body.extend_from_slice(c.bytes(len));
                self.off_the_link(from, to, &body);
            }
            1..=3 => {
                let Some((from, to)) = self.sender_and_receiver(c) else {
                    return;
                };
                self.remember_held();
                let peers: Vec<u64> = IDS.into_iter().chain(STRANGERS).collect();
                let pool = Pool {
                    peers: &peers,
                    ids: &self.ids,
                    tagged: &self.tagged,
                    ops: self.issued.len() as u64,
                };
                let msg = craft::message(c, &pool);
                let epoch = epoch(c, self.epochs[to]);
                self.send_as(from, to, msg, epoch);
            }
            4 if !self.log.is_empty() => {
                let Some((from, to)) = self.sender_and_receiver(c) else {
                    return;
                };
                let msg = self.log[c.below(self.log.len())].clone();
                let epoch = epoch(c, self.epochs[to]);
                self.send_as(from, to, msg, epoch);
            }
            5 => self.deliver(1 + c.below(32)),
            6 => {
                self.now += [1, 50, 500, 1_000, 2_001, 5_000, 10_001, 60_001][c.below(8)];
                for at in 0..self.peers.len() {
                    self.feed(at, Event::Timer);
                }
            }
            7 => self.membership(c),
            _ => self.client_step(c),
        }
    }

    /// A peer `to` (an index) and a member `from` it hears, if any.
    fn sender_and_receiver(&self, c: &mut Choices) -> Option<(u64, usize)> {
        let to = c.below(IDS.len());
        let others: Vec<u64> = self.members[to]
            .iter()
            .copied()
            .filter(|&id| id != IDS[to])
            .collect();
        let from = *others.get(c.below(others.len().max(1)))?;
        Some((from, to))
    }

    /// A view change at one peer that a member's word makes its driver
    /// take: a member announced as joined that is none of the four (or
    /// one of them let go earlier), a member's `Gone` about itself, or a
    /// member's `Gone` about this peer (it sets aside what it holds, and
    /// is let in again: the same members, a new view).
    fn membership(&mut self, c: &mut Choices) {
        let at = c.below(IDS.len());
        let me = IDS[at];
        let changed = match c.below(3) {
            0 => {
                let absent: Vec<u64> = IDS
                    .into_iter()
                    .chain(STRANGERS)
                    .filter(|id| !self.members[at].contains(id))
                    .collect();
                let Some(&joined) = absent.get(c.below(absent.len().max(1))) else {
                    return;
                };
                self.members[at].insert(joined);
                joined
            }
            1 => {
                let others: Vec<u64> = self.members[at]
                    .iter()
                    .copied()
                    .filter(|&id| id != me)
                    .collect();
                let Some(&gone) = others.get(c.below(others.len().max(1))) else {
                    return;
                };
                self.members[at].remove(&gone);
                gone
            }
            _ => {
                self.feed(at, Event::Doubted);
                me
            }
        };
        self.epochs[at] += 1;
        let view = Arc::new(self.members[at].iter().copied().collect());
        let epoch = self.epochs[at];
        self.feed(
            at,
            Event::View {
                view,
                changed,
                epoch,
            },
        );
    }

    /// `msg` from member `from` under `epoch`, through the bytes of a
    /// peer link.
    fn send_as(&mut self, from: u64, to: usize, msg: Msg, epoch: u64) {
        let mut frame = Vec::new();
        let message = Message::Peer(PeerMessage::Overlay { msg, epoch });
        if wire::encode(&mut frame, &message).is_ok() {
            self.off_the_link(from, to, &frame[4..]);
        }
    }

    /// A frame body off the link from member `from`, handled as the node
    /// does: decoded, then fed to the peer if it is an overlay message
    /// whose epoch and fields pass the driver's checks.
    fn off_the_link(&mut self, from: u64, to: usize, body: &[u8]) {
        let Ok(Message::Peer(PeerMessage::Overlay { msg, epoch })) = wire::frame::decode(body)
        else {
            return;
        };
        if !epoch_plausible(epoch, self.epochs[to]) || check_overlay(&msg).is_err() {
            return;
        }
        self.feed(to, Event::Message { from, msg, epoch });
    }

    fn client_step(&mut self, c: &mut Choices) {
        if self.issued.len() as u64 >= MAX_OPS {
            return;
        }
        let at = c.below(IDS.len());
        // Templates whose keyword fields are kinds or exact values: the
        // cover of a value range or prefix takes milliseconds, a hundred
        // times a whole run of these.
        let templates = [
            r#"(*, *)"#,
            r#"(*, ?int)"#,
            r#"(?str, ?int)"#,
            r#"(?str, *, *)"#,
            r#"(*, ?bool)"#,
            r#"("a", 1)"#,
            r#"("big", 7, *)"#,
            r#"("a", 9)"#,
        ];
        let template = |c: &mut Choices| -> Template {
            parse_template(templates[c.below(templates.len())]).expect("a fixed template")
        };
        let wait_ms = [None, Some(0), Some(3_000)][c.below(3)];
        let request = match c.below(9) {
            0 => Op::Out {
                tuple: craft::tuple(c),
                ttl_ms: wait_ms,
            },
            1 => Op::OutAll {
                tuples: (0..1 + c.below(3)).map(|_| craft::tuple(c)).collect(),
                ttl_ms: wait_ms,
            },
            2 | 3 => Op::In {
                template: template(c),
                wait_ms,
                max: 1 + c.below(3),
            },
            4 => Op::Rd {
                template: template(c),
                wait_ms,
            },
            5 => Op::Scan {
                template: template(c),
                limit: 1 + c.below(8),
            },
            6 => Op::Subscribe {
                template: template(c),
            },
            7 => {
                let op = OpId(c.below(self.issued.len() + 1) as u64);
                return self.feed(at, Event::Cancel { op });
            }
            _ => Op::Unsubscribe {
                subscription: OpId(c.below(self.issued.len() + 1) as u64),
            },
        };
        self.client(at, request);
    }

    /// Client operation `request` at peer `at`, under the next op id.
    fn client(&mut self, at: usize, request: Op) {
        let op = OpId(self.issued.len() as u64);
        self.issued.insert(op, IDS[at]);
        self.feed(at, Event::Client { op, request });
    }

    /// Delivers up to `n` honest messages in flight, in the order sent.
    fn deliver(&mut self, n: usize) {
        for _ in 0..n {
            let Some(Sent {
                from,
                to,
                msg,
                epoch,
            }) = self.in_flight.pop_front()
            else {
                return;
            };
            // Its driver hears members only.
            let Some(at) = IDS.iter().position(|&id| id == to) else {
                continue;
            };
            if !self.members[at].contains(&from) {
                continue;
            }
            if self.log.len() == LOG {
                self.log.pop_front();
            }
            self.log.push_back(msg.clone());
            self.feed(at, Event::Message { from, msg, epoch });
        }
    }

    /// Everything in flight delivered, then timers past every lease,
    /// retry and wait, each followed by delivery.
    fn settle(&mut self) {
        self.deliver(MAX_IN_FLIGHT);
        for later in [2_001, 10_001, 61_000] {
            self.now += later;
            for at in 0..self.peers.len() {
                self.feed(at, Event::Timer);
            }
            self.deliver(MAX_IN_FLIGHT);
        }
    }

    fn feed(&mut self, at: usize, event: Event) {
        let now = self.now;
        let commands = self.peers[at].handle(event, now);
        let from = IDS[at];
        for command in commands {
            match command {
                Command::Send { to, msg, epoch } => {
                    if !self.flooded() {
                        self.in_flight.push_back(Sent {
                            from,
                            to,
                            msg,
                            epoch,
                        });
                    }
                }
                Command::Reply { op, reply } => self.replied(from, op, reply),
                Command::ArmTimer { .. } => {}
            }
        }
        let held = self.peers[at].primary_count();
        assert!(
            held <= self.config.max_tuples,
            "peer {from:x} holds {held} tuples as primary, over its max_tuples"
        );
    }

    fn replied(&mut self, at: u64, op: OpId, reply: Reply) {
        assert_eq!(
            self.issued.get(&op),
            Some(&at),
            "a reply to {op:?} at {at:x}, which its client never started: {reply:?}"
        );
        if !matches!(reply, Reply::Notified(_)) {
            assert!(
                self.finished.insert(op),
                "a second reply to {op:?}: {reply:?}"
            );
        }
        match reply {
            Reply::Stored { id, .. } => self.remember_ids([id]),
            Reply::StoredAll { ids } => self.remember_ids(ids),
            Reply::Cancelled { returned } => {
                self.remember_ids(returned.into_iter().flat_map(|(a, b)| [a, b]))
            }
            Reply::Found(Some(t)) | Reply::Notified(t) => self.remember_tagged([t]),
            Reply::Taken(ts) | Reply::Listed(ts) => self.remember_tagged(ts),
            Reply::Found(None) | Reply::Ended | Reply::Failed(_) => {}
        }
    }

    /// The ids every peer holds, as primary or copy.
    fn remember_held(&mut self) {
        let held: Vec<TupleId> = self
            .peers
            .iter()
            .flat_map(|p| p.primary_ids().into_iter().chain(p.copy_ids()))
            .collect();
        self.remember_ids(held);
    }

    fn remember_ids(&mut self, ids: impl IntoIterator<Item = TupleId>) {
        for id in ids {
            if self.ids.len() < POOL && !self.ids.contains(&id) {
                self.ids.push(id);
            }
        }
    }

    fn remember_tagged(&mut self, tagged: impl IntoIterator<Item = Tagged>) {
        for t in tagged {
            self.remember_ids([t.id]);
            if self.tagged.len() < POOL && !self.tagged.contains(&t) {
                self.tagged.push(t);
            }
        }
    }
}

/// The epoch a message claims, against its receiver's `view` epoch: the
/// same, a little ahead (held back until the view comes or its wait
/// ends), as far ahead as the driver believes, past that, or behind.
fn epoch(c: &mut Choices, view: u64) -> u64 {
    match c.below(8) {
        0 => view + 1,
        1 => view + 2,
        2 => view + (1 << 20),
        3 => u64::MAX,
        4 => view.saturating_sub(1),
        _ => view,
    }
}

fn tuple(key: &str, n: i64) -> Tuple {
    Tuple::new(vec![key.into(), Value::Int(n)])
}
