//! Property test: random operation sequences run against the [`Store`] and
//! against a plain reference model (vectors scanned linearly); every result,
//! every effect and every observable count must be identical.

use proptest::prelude::*;

use super::*;
use crate::template::{Field, Range};
use crate::tuple::{Kind, Value};

fn live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// The reference: the semantics of the store, without any index.
#[derive(Debug, Default)]
struct Model {
    tuples: Vec<(u64, Tuple, Option<u64>)>,
    reserved: Vec<(u64, u64, Tuple, Option<u64>, u64)>,
    waiters: Vec<(u64, Template, WaitKind, Option<u64>)>,
    subs: Vec<(u64, Template)>,
    next_seq: u64,
    next_waiter: u64,
    next_reservation: u64,
    next_sub: u64,
}

impl Model {
    fn out(&mut self, tuple: Tuple, expires_at: Option<u64>, now: u64) -> Vec<Effect> {
        if !live(expires_at, now) {
            return Vec::new();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut effects: Vec<Effect> = self
            .subs
            .iter()
            .filter(|(_, t)| t.matches(&tuple))
            .map(|(id, _)| Effect::Notify {
                subscription: SubscriptionId(*id),
                tuple: tuple.clone(),
            })
            .collect();
        self.offer(seq, tuple, expires_at, now, &mut effects);
        effects
    }

    fn offer(
        &mut self,
        seq: u64,
        tuple: Tuple,
        expires_at: Option<u64>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let matching = |w: &(u64, Template, WaitKind, Option<u64>)| w.1.matches(&tuple);
        for w in self.waiters.iter().filter(|w| matching(w)) {
            if w.2 == WaitKind::Read {
                effects.push(Effect::Wake {
                    waiter: WaiterId(w.0),
                    tuples: vec![tuple.clone()],
                    reservation: None,
                });
            }
        }
        self.waiters
            .retain(|w| !(w.2 == WaitKind::Read && w.1.matches(&tuple)));
        if let Some(i) = self.waiters.iter().position(|w| w.1.matches(&tuple)) {
            let (id, _, kind, _) = self.waiters.remove(i);
            let waiter = WaiterId(id);
            if let WaitKind::Reserve { lease_ms } = kind {
                let rid = self.next_reservation;
                self.next_reservation += 1;
                self.reserved
                    .push((rid, seq, tuple.clone(), expires_at, now + lease_ms));
                effects.push(Effect::Wake {
                    waiter,
                    tuples: vec![tuple],
                    reservation: Some(ReservationId(rid)),
                });
            } else {
                effects.push(Effect::Wake {
                    waiter,
                    tuples: vec![tuple],
                    reservation: None,
                });
            }
            return;
        }
        let at = self.tuples.partition_point(|(s, _, _)| *s < seq);
        self.tuples.insert(at, (seq, tuple, expires_at));
    }

    fn matching(&self, template: &Template, now: u64) -> Vec<usize> {
        (0..self.tuples.len())
            .filter(|&i| live(self.tuples[i].2, now) && template.matches(&self.tuples[i].1))
            .collect()
    }

    fn take(&mut self, template: &Template, max: usize, now: u64) -> Vec<Tuple> {
        let mut found = self.matching(template, now);
        found.truncate(max);
        let mut taken: Vec<Tuple> = found
            .into_iter()
            .rev()
            .map(|i| self.tuples.remove(i).1)
            .collect();
        taken.reverse();
        taken
    }

    fn scan(&self, template: &Template, limit: usize, now: u64) -> Vec<Tuple> {
        self.matching(template, now)
            .into_iter()
            .take(limit)
            .map(|i| self.tuples[i].1.clone())
            .collect()
    }

    fn reserve(
        &mut self,
        template: &Template,
        lease: u64,
        now: u64,
    ) -> Option<(ReservationId, Tuple)> {
        let i = *self.matching(template, now).first()?;
        let (seq, tuple, expires_at) = self.tuples.remove(i);
        let rid = self.next_reservation;
        self.next_reservation += 1;
        self.reserved
            .push((rid, seq, tuple.clone(), expires_at, now + lease));
        Some((ReservationId(rid), tuple))
    }

    fn unreserve(&mut self, rid: u64) -> Option<(u64, Tuple, Option<u64>)> {
        let i = self.reserved.iter().position(|r| r.0 == rid)?;
        let (_, seq, tuple, expires_at, _) = self.reserved.remove(i);
        Some((seq, tuple, expires_at))
    }

    fn decline(&mut self, rid: u64, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some((seq, tuple, expires_at)) = self.unreserve(rid)
            && live(expires_at, now)
        {
            self.offer(seq, tuple, expires_at, now, &mut effects);
        }
        effects
    }

    fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut due: Vec<(u64, u64)> = self
            .waiters
            .iter()
            .filter_map(|w| w.3.filter(|&at| at <= now).map(|at| (at, w.0)))
            .collect();
        due.sort_unstable();
        self.waiters.retain(|w| w.3.is_none_or(|at| at > now));
        let mut effects: Vec<Effect> = due
            .into_iter()
            .map(|(_, id)| Effect::TimedOut {
                waiter: WaiterId(id),
            })
            .collect();
        self.tuples.retain(|t| live(t.2, now));
        let mut lapsed: Vec<(u64, u64)> = self
            .reserved
            .iter()
            .filter(|r| r.4 <= now)
            .map(|r| (r.4, r.0))
            .collect();
        lapsed.sort_unstable();
        for (_, rid) in lapsed {
            let (seq, tuple, expires_at) = self.unreserve(rid).unwrap();
            if live(expires_at, now) {
                self.offer(seq, tuple, expires_at, now, &mut effects);
            }
        }
        effects
    }

    fn next_deadline(&self) -> Option<u64> {
        let tuples = self.tuples.iter().filter_map(|t| t.2);
        let waiters = self.waiters.iter().filter_map(|w| w.3);
        let leases = self.reserved.iter().map(|r| r.4);
        tuples.chain(waiters).chain(leases).min()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Out(Tuple, Option<u64>),
    Take(Template, usize),
    Read(Template),
    Scan(Template, usize),
    Reserve(Template, u64),
    Accept(u64),
    Decline(u64),
    Park(Template, WaitKind, Option<u64>),
    Unpark(u64),
    Subscribe(Template),
    Unsubscribe(u64),
    Advance(u64),
    Contains(Tuple),
    TakeExact(Tuple),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0_i64..3).prop_map(Value::Int),
        prop::sample::select(vec!["a", "b"]).prop_map(Value::from),
    ]
}

fn tuple() -> impl Strategy<Value = Tuple> {
    prop::collection::vec(value(), 0..=3).prop_map(Tuple::new)
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        value().prop_map(Field::Actual),
        Just(Field::Any),
        prop::sample::select(vec![Kind::Int, Kind::Str]).prop_map(Field::Typed),
        (0_i64..3, 0_i64..3, any::<bool>()).prop_map(|(lo, hi, inc)| {
            Field::Range(Range::new(Value::Int(lo), Value::Int(hi), inc).unwrap())
        }),
        Just(Field::Prefix("a".into())),
    ]
}

/// Templates whose first field is an actual value half of the time (indexed),
/// anything else otherwise (scanned by arity); a few empty ones, and exact
/// ones (every field an actual value: looked up by the exact index).
fn template() -> impl Strategy<Value = Template> {
    let first = prop_oneof![value().prop_map(Field::Actual), field()];
    prop_oneof![
        1 => Just(Template::new(vec![])),
        3 => tuple().prop_map(|t| Template::exact(&t)),
        9 => (first, prop::collection::vec(field(), 0..=2)).prop_map(|(f, mut rest)| {
            rest.insert(0, f);
            Template::new(rest)
        }),
    ]
}

fn wait_kind() -> impl Strategy<Value = WaitKind> {
    prop_oneof![
        Just(WaitKind::Take),
        Just(WaitKind::Read),
        (1_u64..40).prop_map(|lease_ms| WaitKind::Reserve { lease_ms }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (tuple(), prop::option::of(1_u64..60)).prop_map(|(t, ttl)| Op::Out(t, ttl)),
        3 => (template(), 1_usize..4).prop_map(|(t, n)| Op::Take(t, n)),
        1 => template().prop_map(Op::Read),
        1 => (template(), 0_usize..4).prop_map(|(t, n)| Op::Scan(t, n)),
        2 => (template(), 1_u64..40).prop_map(|(t, l)| Op::Reserve(t, l)),
        1 => (0_u64..8).prop_map(Op::Accept),
        1 => (0_u64..8).prop_map(Op::Decline),
        3 => (template(), wait_kind(), prop::option::of(1_u64..60))
            .prop_map(|(t, k, d)| Op::Park(t, k, d)),
        1 => (0_u64..8).prop_map(Op::Unpark),
        1 => template().prop_map(Op::Subscribe),
        1 => (0_u64..4).prop_map(Op::Unsubscribe),
        2 => (0_u64..30).prop_map(Op::Advance),
        2 => tuple().prop_map(Op::Contains),
        2 => tuple().prop_map(Op::TakeExact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn store_behaves_like_the_model(
        ops in prop::collection::vec(op(), 1..120),
        exact_index in any::<bool>(),
    ) {
        let mut store = if exact_index { Store::with_exact_index() } else { Store::new() };
        let mut model = Model::default();
        let mut now = 0_u64;
        for op in ops {
            match op {
                Op::Out(t, ttl) => {
                    let expires_at = ttl.map(|ttl| now + ttl);
                    prop_assert_eq!(
                        store.out(t.clone(), expires_at, now).unwrap(),
                        model.out(t, expires_at, now)
                    );
                }
                Op::Take(t, n) => prop_assert_eq!(store.take(&t, n, now), model.take(&t, n, now)),
                Op::Read(t) => prop_assert_eq!(
                    store.read(&t, now),
                    model.scan(&t, 1, now).into_iter().next()
                ),
                Op::Scan(t, n) => prop_assert_eq!(store.scan(&t, n, now), model.scan(&t, n, now)),
                Op::Contains(t) => {
                    if let Some((last, head)) = t.fields().split_last() {
                        let exact = Template::exact(&t);
                        prop_assert_eq!(
                            store.contains(head, last, now),
                            !model.scan(&exact, 1, now).is_empty()
                        );
                    }
                }
                Op::TakeExact(t) => {
                    if let Some((last, head)) = t.fields().split_last() {
                        let exact = Template::exact(&t);
                        prop_assert_eq!(
                            store.take_exact(head, last, now),
                            model.take(&exact, 1, now).into_iter().next()
                        );
                    }
                }
                Op::Reserve(t, lease) => prop_assert_eq!(
                    store.reserve(&t, lease, now),
                    model.reserve(&t, lease, now)
                ),
                Op::Accept(id) => prop_assert_eq!(
                    store.accept(ReservationId(id)),
                    model.unreserve(id).map(|r| r.1)
                ),
                Op::Decline(id) => prop_assert_eq!(
                    store.decline(ReservationId(id), now),
                    model.decline(id, now)
                ),
                Op::Park(t, kind, timeout) => {
                    let deadline = timeout.map(|d| now + d);
                    let id = store.park(t.clone(), kind, deadline).unwrap();
                    prop_assert_eq!(id, WaiterId(model.next_waiter));
                    model.next_waiter += 1;
                    model.waiters.push((id.0, t, kind, deadline));
                }
                Op::Unpark(id) => {
                    let known = model.waiters.iter().position(|w| w.0 == id);
                    if let Some(i) = known {
                        model.waiters.remove(i);
                    }
                    prop_assert_eq!(store.unpark(WaiterId(id)), known.is_some());
                }
                Op::Subscribe(t) => {
                    let id = store.subscribe(t.clone()).unwrap();
                    prop_assert_eq!(id, SubscriptionId(model.next_sub));
                    model.next_sub += 1;
                    model.subs.push((id.0, t));
                }
                Op::Unsubscribe(id) => {
                    let known = model.subs.iter().position(|s| s.0 == id);
                    if let Some(i) = known {
                        model.subs.remove(i);
                    }
                    prop_assert_eq!(store.unsubscribe(SubscriptionId(id)), known.is_some());
                }
                Op::Advance(ms) => {
                    now += ms;
                    prop_assert_eq!(store.tick(now), model.tick(now));
                }
            }
            prop_assert_eq!(store.len(), model.tuples.len());
            prop_assert_eq!(store.reserved(), model.reserved.len());
            prop_assert_eq!(store.waiting(), model.waiters.len());
            prop_assert_eq!(store.next_deadline(), model.next_deadline());
        }
        let drained = store.drain_matching(|_| true);
        let expected: Vec<_> = model.tuples.into_iter().map(|(_, t, e)| (t, e)).collect();
        prop_assert_eq!(drained, expected);
    }
}
