//! Unit tests of the store: each path of out, take, waiters, reservations,
//! subscriptions, expiry and limits.

use super::*;
use crate::template::Field;
use crate::tuple;
use crate::tuple::{Kind, Value};

fn tpl(fields: Vec<Field>) -> Template {
    Template::new(fields)
}

fn task(name: &str) -> Template {
    tpl(vec![Field::Actual(name.into()), Field::Typed(Kind::Int)])
}

fn any2() -> Template {
    tpl(vec![Field::Any, Field::Any])
}

fn out(store: &mut Store, t: Tuple) -> Vec<Effect> {
    store.out(t, None, 0).unwrap()
}

#[test]
fn take_is_oldest_first_and_removes() {
    let mut s = Store::new();
    for i in 0..3 {
        out(&mut s, tuple!("a", i as i64));
    }
    out(&mut s, tuple!("b", 9_i64));
    assert_eq!(s.take(&task("a"), 1, 0), vec![tuple!("a", 0_i64)]);
    assert_eq!(
        s.take(&task("a"), 5, 0),
        vec![tuple!("a", 1_i64), tuple!("a", 2_i64)]
    );
    assert!(s.take(&task("a"), 1, 0).is_empty());
    assert_eq!(s.len(), 1);
    assert!(s.take(&task("b"), 0, 0).is_empty());
}

#[test]
fn non_indexed_templates_scan_by_arity_in_age_order() {
    let mut s = Store::new();
    out(&mut s, tuple!("b", 1_i64));
    out(&mut s, tuple!(1_i64));
    out(&mut s, tuple!("a", 2_i64));
    let t = tpl(vec![Field::Typed(Kind::Str), Field::Any]);
    assert_eq!(
        s.scan(&t, 10, 0),
        vec![tuple!("b", 1_i64), tuple!("a", 2_i64)]
    );
    assert_eq!(s.scan(&t, 1, 0), vec![tuple!("b", 1_i64)]);
    assert!(s.scan(&t, 0, 0).is_empty());
    assert_eq!(s.read(&t, 0), Some(tuple!("b", 1_i64)));
    assert_eq!(s.take(&any2(), 2, 0).len(), 2);
    assert_eq!(s.len(), 1);
}

#[test]
fn empty_tuples_are_indexed_too() {
    let mut s = Store::new();
    out(&mut s, tuple!());
    assert_eq!(s.read(&tpl(vec![]), 0), Some(tuple!()));
    assert_eq!(s.take(&tpl(vec![]), 2, 0), vec![tuple!()]);
}

#[test]
fn expired_tuples_are_never_returned_and_tick_collects_them() {
    let mut s = Store::new();
    s.out(tuple!("a", 1_i64), Some(10), 0).unwrap();
    s.out(tuple!("a", 2_i64), None, 0).unwrap();
    assert_eq!(s.next_deadline(), Some(10));
    assert_eq!(s.read(&task("a"), 9), Some(tuple!("a", 1_i64)));
    assert_eq!(s.read(&task("a"), 10), Some(tuple!("a", 2_i64)));
    assert_eq!(s.scan(&task("a"), 9, 10).len(), 1);
    assert_eq!(s.len(), 2);
    assert!(s.tick(10).is_empty());
    assert_eq!(s.len(), 1);
    assert_eq!(s.next_deadline(), None);
    assert!(s.out(tuple!("a", 3_i64), Some(5), 5).unwrap().is_empty());
    assert_eq!(s.len(), 1);
}

#[test]
fn out_wakes_every_reader_and_the_first_taker() {
    let mut s = Store::new();
    let r1 = s.park(task("a"), WaitKind::Read, None).unwrap();
    let t1 = s.park(any2(), WaitKind::Take, None).unwrap();
    let t2 = s.park(task("a"), WaitKind::Take, None).unwrap();
    let r2 = s.park(task("a"), WaitKind::Read, None).unwrap();
    let other = s.park(task("b"), WaitKind::Take, None).unwrap();
    let t = tuple!("a", 1_i64);
    let wake = |w, t: &Tuple| Effect::Wake {
        waiter: w,
        tuples: vec![t.clone()],
        reservation: None,
    };
    // r2 arrived after the takers and still reads it; the taker comes last.
    assert_eq!(
        out(&mut s, t.clone()),
        vec![wake(r1, &t), wake(r2, &t), wake(t1, &t)]
    );
    assert!(s.is_empty());
    assert_eq!(s.waiting(), 2);
    assert_eq!(out(&mut s, t.clone()), vec![wake(t2, &t)]);
    assert!(s.is_empty());
    assert!(!s.unpark(r2));
    assert!(s.unpark(other));
    assert_eq!(s.waiting(), 0);
    assert!(out(&mut s, t).is_empty());
    assert_eq!(s.len(), 1);
}

#[test]
fn waiters_time_out_in_tick() {
    let mut s = Store::new();
    let w1 = s.park(task("a"), WaitKind::Take, Some(20)).unwrap();
    let w2 = s.park(task("a"), WaitKind::Read, Some(10)).unwrap();
    let w3 = s.park(task("a"), WaitKind::Read, None).unwrap();
    assert_eq!(s.next_deadline(), Some(10));
    assert!(s.tick(9).is_empty());
    assert_eq!(s.tick(10), vec![Effect::TimedOut { waiter: w2 }]);
    assert_eq!(s.tick(25), vec![Effect::TimedOut { waiter: w1 }]);
    assert_eq!(s.next_deadline(), None);
    assert!(s.unpark(w3));
}

#[test]
fn reserve_hides_until_accepted() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 1_i64));
    let (id, t) = s.reserve(&task("a"), 100, 0).unwrap();
    assert_eq!(t, tuple!("a", 1_i64));
    assert!(s.read(&task("a"), 1).is_none());
    assert!(s.reserve(&task("a"), 100, 1).is_none());
    assert_eq!(s.reserved(), 1);
    assert_eq!(s.next_deadline(), Some(100));
    assert_eq!(s.accept(id), Some(t));
    assert_eq!(s.accept(id), None, "double accept");
    assert_eq!(s.reserved(), 0);
    assert!(s.decline(id, 2).is_empty());
    assert!(s.is_empty());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn decline_returns_the_tuple_as_the_oldest() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 1_i64));
    out(&mut s, tuple!("a", 2_i64));
    let (id, _) = s.reserve(&task("a"), 100, 0).unwrap();
    out(&mut s, tuple!("a", 3_i64));
    assert!(s.decline(id, 5).is_empty());
    assert_eq!(s.accept(id), None, "accept after decline");
    assert_eq!(
        s.take(&task("a"), 3, 5),
        vec![tuple!("a", 1_i64), tuple!("a", 2_i64), tuple!("a", 3_i64)]
    );
}

#[test]
fn lapsed_lease_returns_the_tuple_and_accept_fails() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 1_i64));
    let (id, _) = s.reserve(&task("a"), 50, 10).unwrap();
    assert!(s.tick(59).is_empty());
    assert_eq!(s.reserved(), 1);
    assert!(s.tick(60).is_empty());
    assert_eq!(s.reserved(), 0);
    assert_eq!(s.accept(id), None);
    assert_eq!(s.take(&task("a"), 1, 60), vec![tuple!("a", 1_i64)]);
}

#[test]
fn lapse_wakes_a_waiter() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 1_i64));
    let (_, t) = s.reserve(&task("a"), 50, 0).unwrap();
    let w = s.park(task("a"), WaitKind::Take, None).unwrap();
    assert_eq!(
        s.tick(50),
        vec![Effect::Wake {
            waiter: w,
            tuples: vec![t],
            reservation: None
        }]
    );
    assert!(s.is_empty());
}

#[test]
fn decline_offers_to_a_reserve_waiter() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 1_i64));
    let (id, t) = s.reserve(&task("a"), 50, 0).unwrap();
    let w = s
        .park(any2(), WaitKind::Reserve { lease_ms: 30 }, Some(1000))
        .unwrap();
    let effects = s.decline(id, 10);
    let Some(Effect::Wake {
        waiter,
        tuples,
        reservation: Some(again),
    }) = effects.into_iter().next()
    else {
        panic!("expected a reserved wake");
    };
    assert_eq!((waiter, tuples), (w, vec![t.clone()]));
    assert_eq!(s.next_deadline(), Some(40));
    assert_eq!(s.accept(again), Some(t));
    assert!(s.is_empty());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn expired_reserved_tuple_is_dropped_on_return() {
    let mut s = Store::new();
    s.out(tuple!("a", 1_i64), Some(20), 0).unwrap();
    let (id, _) = s.reserve(&task("a"), 100, 0).unwrap();
    s.park(task("a"), WaitKind::Take, None).unwrap();
    assert!(s.decline(id, 30).is_empty());
    assert!(s.is_empty());
    assert_eq!(s.reserved(), 0);
}

#[test]
fn subscriptions_see_later_matching_writes() {
    let mut s = Store::new();
    out(&mut s, tuple!("a", 0_i64));
    let sub = s.subscribe(task("a")).unwrap();
    let all = s.subscribe(any2()).unwrap();
    let w = s.park(task("a"), WaitKind::Take, None).unwrap();
    let t = tuple!("a", 1_i64);
    assert_eq!(
        out(&mut s, t.clone()),
        vec![
            Effect::Notify {
                subscription: sub,
                tuple: t.clone()
            },
            Effect::Notify {
                subscription: all,
                tuple: t.clone()
            },
            Effect::Wake {
                waiter: w,
                tuples: vec![t],
                reservation: None
            },
        ]
    );
    assert!(s.unsubscribe(sub));
    assert!(!s.unsubscribe(sub));
    let effects = out(&mut s, tuple!("b", 1_i64));
    assert_eq!(effects.len(), 1);
    assert!(out(&mut s, tuple!(1_i64)).is_empty());
}

#[test]
fn limits_refuse_instead_of_growing() {
    let mut s = Store::with_limits(Limits {
        max_tuples: 2,
        max_waiters: 1,
        max_subscriptions: 1,
    });
    out(&mut s, tuple!("a", 1_i64));
    let (id, _) = s.reserve(&task("a"), 10, 0).unwrap();
    out(&mut s, tuple!("a", 2_i64));
    assert_eq!(s.room(), 0);
    assert_eq!(s.out(tuple!("a", 3_i64), None, 0), Err(StoreError::Full(2)));
    assert!(s.accept(id).is_some());
    assert_eq!(s.room(), 1);
    s.park(task("a"), WaitKind::Read, None).unwrap();
    assert_eq!(
        s.park(task("a"), WaitKind::Read, None),
        Err(StoreError::TooManyWaiters(1))
    );
    s.subscribe(task("a")).unwrap();
    assert_eq!(
        s.subscribe(task("a")),
        Err(StoreError::TooManySubscriptions(1))
    );
}

#[test]
fn drain_matching_takes_tuples_oldest_first_with_expiry() {
    let mut s = Store::new();
    out(&mut s, tuple!("b", 1_i64));
    s.out(tuple!("a", 2_i64), Some(99), 0).unwrap();
    out(&mut s, tuple!("a", 3_i64));
    out(&mut s, tuple!(Value::Int(4)));
    let drained = s.drain_matching(|t| t.len() == 2);
    assert_eq!(
        drained,
        vec![
            (tuple!("b", 1_i64), None),
            (tuple!("a", 2_i64), Some(99)),
            (tuple!("a", 3_i64), None)
        ]
    );
    assert_eq!(s.len(), 1);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn stored_copies_every_visible_tuple_oldest_first() {
    let mut s = Store::new();
    out(&mut s, tuple!("b", 1_i64));
    s.out(tuple!("a", 2_i64), Some(99), 0).unwrap();
    out(&mut s, tuple!(Value::Int(4)));
    s.reserve(&task("b"), 10, 0).unwrap();
    assert_eq!(
        s.stored(),
        vec![
            (tuple!("a", 2_i64), Some(99)),
            (tuple!(Value::Int(4)), None)
        ]
    );
    assert_eq!(s.len(), 2);
}

#[test]
fn taking_and_returning_from_the_middle_keeps_age_order() {
    let mut s = Store::new();
    for i in 0..5 {
        out(&mut s, tuple!("a", i as i64));
    }
    let middle = tpl(vec![
        Field::Actual("a".into()),
        Field::Actual(Value::Int(2)),
    ]);
    let (id, t) = s.reserve(&middle, 10, 0).unwrap();
    assert_eq!(t, tuple!("a", 2_i64));
    let third = tpl(vec![
        Field::Actual("a".into()),
        Field::Actual(Value::Int(3)),
    ]);
    assert_eq!(s.take(&third, 1, 0), vec![tuple!("a", 3_i64)]);
    assert!(s.decline(id, 1).is_empty());
    let all: Vec<i64> = s
        .scan(&task("a"), 10, 1)
        .iter()
        .filter_map(|t| t.get(1).and_then(Value::as_int))
        .collect();
    assert_eq!(all, vec![0, 1, 2, 4]);
    let by_arity: Vec<Tuple> = s.scan(&any2(), 10, 1);
    assert_eq!(by_arity, s.scan(&task("a"), 10, 1));
}
