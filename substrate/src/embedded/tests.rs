//! Tests of the embedded space: blocking and waking, timeouts, cancellation
//! without loss, TTL, subscriptions, shutdown, and a concurrent stress test.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;

use super::*;
use crate::template::Field;
use crate::tuple;
use crate::tuple::Kind;

fn job() -> Template {
    Template::new(vec![
        Field::Actual("job".into()),
        Field::Typed(Kind::Int),
        Field::Typed(Kind::Int),
    ])
}

fn any3() -> Template {
    Template::new(vec![Field::Any, Field::Typed(Kind::Int), Field::Any])
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn out_then_take_and_read() {
    let space = EmbeddedSpace::new();
    space.out(tuple!("job", 1_i64, 2_i64)).await.unwrap();
    assert_eq!(space.len(), 1);
    assert_eq!(
        space.read(job(), None).await.unwrap(),
        Some(tuple!("job", 1_i64, 2_i64))
    );
    assert_eq!(
        space.take(any3(), Some(Duration::ZERO)).await.unwrap(),
        Some(tuple!("job", 1_i64, 2_i64))
    );
    assert!(space.is_empty());
    assert_eq!(space.take(job(), Some(Duration::ZERO)).await.unwrap(), None);
    assert!(space.take_up_to(job(), 0, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn blocked_take_and_read_wake_on_a_later_out() {
    let space = EmbeddedSpace::new();
    let taker = tokio::spawn({
        let space = space.clone();
        async move { space.take(job(), None).await }
    });
    let reader = tokio::spawn({
        let space = space.clone();
        async move { space.read(job(), None).await }
    });
    tokio::time::sleep(5 * MS).await;
    space.out(tuple!("job", 7_i64, 0_i64)).await.unwrap();
    let t = tuple!("job", 7_i64, 0_i64);
    assert_eq!(taker.await.unwrap().unwrap(), Some(t.clone()));
    assert_eq!(reader.await.unwrap().unwrap(), Some(t));
    assert!(space.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timeouts_return_nothing_after_the_wait() {
    let space = EmbeddedSpace::new();
    let start = Instant::now();
    assert_eq!(space.take(job(), Some(50 * MS)).await.unwrap(), None);
    assert!(start.elapsed() >= 50 * MS);
    assert_eq!(space.read(job(), Some(20 * MS)).await.unwrap(), None);
    assert!(start.elapsed() >= 70 * MS);
    assert_eq!(space.shared.lock().store.waiting(), 0);
}

#[tokio::test]
async fn a_dropped_take_unparks_its_waiter() {
    let space = EmbeddedSpace::new();
    assert!(space.take(job(), None).now_or_never().is_none());
    assert_eq!(space.shared.lock().store.waiting(), 0);
    space.out(tuple!("job", 1_i64, 1_i64)).await.unwrap();
    assert_eq!(space.len(), 1);
}

#[tokio::test]
async fn a_tuple_handed_to_a_dropped_take_goes_back() {
    let space = EmbeddedSpace::new();
    space.out(tuple!("job", 0_i64, 0_i64)).await.unwrap();
    let (id, _) = space.shared.lock().store.reserve(&job(), 10, 0).unwrap();
    let mut take = Box::pin(space.take(job(), None));
    assert!(futures::poll!(&mut take).is_pending());
    space.out(tuple!("job", 1_i64, 1_i64)).await.unwrap();
    assert_eq!(space.len(), 0, "reserved for the parked take");
    drop(take);
    assert_eq!(space.len(), 1);
    // The first tuple comes back as the oldest, before the returned one.
    let now = space.shared.now();
    let effects = space.shared.lock().store.decline(id, now);
    assert!(effects.is_empty());
    assert_eq!(
        space.take_up_to(job(), 5, None).await.unwrap(),
        vec![tuple!("job", 0_i64, 0_i64), tuple!("job", 1_i64, 1_i64)]
    );
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_tuples_in_the_background() {
    let space = EmbeddedSpace::new();
    space
        .out_all(vec![tuple!("job", 1_i64, 1_i64)], Some(100 * MS))
        .await
        .unwrap();
    space.out(tuple!("job", 2_i64, 2_i64)).await.unwrap();
    tokio::time::sleep(99 * MS).await;
    assert_eq!(space.len(), 2);
    tokio::time::sleep(2 * MS).await;
    tokio::task::yield_now().await;
    assert_eq!(space.len(), 1);
    assert_eq!(
        space.scan(job(), None).await.unwrap(),
        vec![tuple!("job", 2_i64, 2_i64)]
    );
}

#[tokio::test]
async fn subscriptions_get_later_matches_only() {
    let space = EmbeddedSpace::new();
    space.out(tuple!("job", 0_i64, 0_i64)).await.unwrap();
    let mut sub = space.subscribe(job()).await.unwrap();
    space.out(tuple!("other", 1_i64, 1_i64)).await.unwrap();
    space.out(tuple!("job", 2_i64, 2_i64)).await.unwrap();
    assert_eq!(sub.next().await, Some(tuple!("job", 2_i64, 2_i64)));
    assert!(sub.next().now_or_never().is_none());
    drop(sub);
    assert_eq!(space.shared.lock().subscribers.len(), 0);
}

#[tokio::test]
async fn a_lagging_subscriber_loses_notifications_not_the_space() {
    let space = EmbeddedSpace::new();
    let mut sub = space.subscribe(job()).await.unwrap();
    let tuples: Vec<Tuple> = (0..SUBSCRIPTION_BUFFER as i64 + 10)
        .map(|i| tuple!("job", i, 0_i64))
        .collect();
    space.out_all(tuples, None).await.unwrap();
    assert_eq!(space.dropped_notifications(), 10);
    assert_eq!(sub.next().await, Some(tuple!("job", 0_i64, 0_i64)));
    drop(space);
    let mut left = 1;
    while sub.next().await.is_some() {
        left += 1;
    }
    assert_eq!(
        left, SUBSCRIPTION_BUFFER,
        "then None once the space is gone"
    );
}

#[tokio::test]
async fn the_timer_task_ends_with_the_last_handle() {
    let space = EmbeddedSpace::new();
    let timer = space.shared.timer.clone();
    let other = space.clone();
    drop(space);
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&timer), 3);
    drop(other);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(Arc::strong_count(&timer), 1);
}

#[tokio::test]
async fn a_full_space_refuses_out() {
    let space = EmbeddedSpace::with_limits(Limits {
        max_tuples: 2,
        ..Limits::default()
    });
    let three = vec![tuple!("job", 1_i64, 1_i64); 3];
    assert!(matches!(
        space.out_all(three, None).await,
        Err(SpaceError::Refused(_))
    ));
    assert!(space.is_empty());
}

/// Producers and takers (some impatient, cancelling their takes) on a
/// multi-thread runtime: every tuple is taken exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takers_take_every_tuple_exactly_once() {
    const PRODUCERS: i64 = 4;
    const PER_PRODUCER: i64 = 2_000;
    const TOTAL: usize = (PRODUCERS * PER_PRODUCER) as usize;
    let space = EmbeddedSpace::new();
    let taken = Arc::new(AtomicUsize::new(0));
    let mut takers = Vec::new();
    for t in 0..6_u64 {
        let space = space.clone();
        let taken = taken.clone();
        takers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let template = if t % 2 == 0 { job() } else { any3() };
            while taken.load(Ordering::SeqCst) < TOTAL {
                let max = 1 + (t as usize % 3);
                let take = space.take_up_to(template.clone(), max, Some(20 * MS));
                // Odd takers also cancel their takes from outside.
                let found = if t % 2 == 1 {
                    match tokio::time::timeout(Duration::from_micros(300 * t), take).await {
                        Ok(found) => found.unwrap(),
                        Err(_) => continue,
                    }
                } else {
                    take.await.unwrap()
                };
                taken.fetch_add(found.len(), Ordering::SeqCst);
                got.extend(found);
            }
            got
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let space = space.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                space.out(tuple!("job", p, i)).await.unwrap();
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let mut all = Vec::new();
    for t in takers {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), TOTAL, "no tuple taken twice");
    let distinct: HashSet<Tuple> = all.into_iter().collect();
    assert_eq!(distinct.len(), TOTAL, "every tuple taken");
    assert!(space.is_empty());
    assert_eq!(space.shared.lock().store.reserved(), 0);
}

#[tokio::test]
async fn a_huge_timeout_waits_like_none() {
    let space = EmbeddedSpace::new();
    let take = space.take(job(), Some(Duration::MAX));
    let out = async {
        tokio::time::sleep(2 * MS).await;
        space.out(tuple!("job", 3_i64, 3_i64)).await.unwrap();
    };
    let (got, ()) = tokio::join!(take, out);
    assert_eq!(got.unwrap(), Some(tuple!("job", 3_i64, 3_i64)));
}

#[tokio::test]
async fn a_tuple_declined_by_a_dropped_take_goes_to_the_next_taker() {
    let space = EmbeddedSpace::new();
    let mut first = Box::pin(space.take(job(), None));
    assert!(futures::poll!(&mut first).is_pending());
    let second = tokio::spawn({
        let space = space.clone();
        async move { space.take(job(), Some(Duration::from_secs(5))).await }
    });
    while space.shared.lock().store.waiting() < 2 {
        tokio::task::yield_now().await;
    }
    space.out(tuple!("job", 4_i64, 4_i64)).await.unwrap();
    drop(first);
    assert_eq!(
        second.await.unwrap().unwrap(),
        Some(tuple!("job", 4_i64, 4_i64))
    );
    assert!(space.is_empty());
    assert_eq!(space.shared.lock().store.reserved(), 0);
}

#[tokio::test]
async fn steps_run_in_order_and_a_failed_one_gives_back_what_came_before() {
    use crate::space::Step;
    let space = EmbeddedSpace::with_limits(Limits {
        max_tuples: 3,
        ..Limits::default()
    });
    let take = |template: Template, timeout| Step::Take {
        template,
        max: 8,
        timeout,
    };
    let put = |tuples| Step::Out { tuples, ttl: None };
    let taken = space
        .steps(vec![
            put(vec![
                tuple!("job", 1_i64, 1_i64),
                tuple!("job", 2_i64, 2_i64),
            ]),
            take(
                Template::exact(&tuple!("job", 1_i64, 1_i64)),
                Some(Duration::ZERO),
            ),
            take(job(), None),
        ])
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![
            vec![],
            vec![tuple!("job", 1_i64, 1_i64)],
            vec![tuple!("job", 2_i64, 2_i64)]
        ]
    );
    // A waiting take before the last step: nothing runs.
    let early = space
        .steps(vec![
            take(job(), None),
            put(vec![tuple!("job", 3_i64, 3_i64)]),
        ])
        .await;
    assert!(matches!(early, Err(SpaceError::Refused(_))), "{early:?}");
    assert!(space.is_empty());
    // The out past the limit fails: the take before it gives its tuple back.
    space.out(tuple!("job", 4_i64, 4_i64)).await.unwrap();
    let full = (5..9_i64).map(|i| tuple!("job", i, i)).collect();
    let failed = space
        .steps(vec![take(job(), Some(Duration::ZERO)), put(full)])
        .await;
    assert!(matches!(failed, Err(SpaceError::Refused(_))), "{failed:?}");
    let back = space.take(job(), Some(Duration::ZERO)).await.unwrap();
    assert_eq!(back, Some(tuple!("job", 4_i64, 4_i64)));
}
