//! [`RemoteSpace`] against a real `halley node` process: multiplexed
//! requests, chunked bulk transfers, subscriptions, cancellation, and what
//! a lost connection does to waiting calls; steps in one request.

mod common;

use std::time::Duration;

use halley_substrate::wire::MAX_FRAME;
use halley_substrate::{
    Field, Kind, RemoteSpace, Space, SpaceError, Step, Subscription, Template, Tuple, Value, tuple,
};

use common::Node;

const WAIT: Duration = Duration::from_secs(20);

async fn connect(node: &Node) -> RemoteSpace {
    RemoteSpace::connect(node.addr.parse().unwrap(), WAIT)
        .await
        .expect("connect to the node")
}

/// Writes five tuples of a third of a frame each, more than one frame in
/// all; what it wrote.
async fn out_blobs(space: &RemoteSpace) -> Vec<Tuple> {
    let blob = vec![7u8; MAX_FRAME / 3];
    let big: Vec<Tuple> = (0..5_i64)
        .map(|i| tuple!("blob", i, blob.clone()))
        .collect();
    space.out_all(big.clone(), None).await.unwrap();
    big
}

fn template(name: &str, rest: usize) -> Template {
    let mut fields = vec![Field::Actual(Value::from(name))];
    fields.extend(std::iter::repeat_n(Field::Any, rest));
    Template::new(fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waits_share_one_connection() {
    let node = Node::start();
    let space = connect(&node).await;
    let waits: Vec<_> = (0..50_i64)
        .map(|i| {
            let space = space.clone();
            tokio::spawn(async move {
                let exact = Template::exact(&tuple!("slot", i));
                space.take(exact, None).await
            })
        })
        .collect();
    // Written in reverse: each wait gets its own tuple whatever the order.
    for i in (0..50_i64).rev() {
        space.out(tuple!("slot", i)).await.unwrap();
    }
    for (i, wait) in waits.into_iter().enumerate() {
        let got = tokio::time::timeout(WAIT, wait)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(tuple!("slot", i as i64)));
    }
    assert!(
        space
            .scan(template("slot", 1), None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// libp2p-stream queues one inbound stream at a time and drops (closes)
/// one that arrives while another waits to be accepted: clients dialling
/// at the same moment must still each get a served stream from `connect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connecting_at_once_are_all_served() {
    let node = Node::start();
    for round in 0..4_i64 {
        let clients: Vec<_> = (0..16_i64)
            .map(|i| {
                let addr = node.addr.parse().unwrap();
                tokio::spawn(async move {
                    let space = RemoteSpace::connect(addr, WAIT).await.expect("connect");
                    space.out(tuple!("client", round, i)).await?;
                    let exact = Template::exact(&tuple!("client", round, i));
                    space.take(exact, Some(WAIT)).await
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            let got = client.await.unwrap();
            assert_eq!(got.unwrap(), Some(tuple!("client", round, i as i64)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_transfers_above_the_frame_size_are_chunked() {
    let node = Node::start();
    let space = connect(&node).await;
    let big = out_blobs(&space).await;
    assert_eq!(space.status().await.unwrap().tuples, 5);

    let scanned = space.scan(template("blob", 2), None).await.unwrap();
    assert_eq!(scanned, big);
    let taken = space
        .take_up_to(template("blob", 2), 10, Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(taken, big);
    assert_eq!(space.status().await.unwrap().tuples, 0);

    let too_big = tuple!(vec![0u8; MAX_FRAME + 1]);
    let refused = space.out(too_big).await;
    assert!(
        matches!(refused, Err(SpaceError::Refused(_))),
        "{refused:?}"
    );
    // The connection survives a refused request.
    space.out(tuple!("small")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_see_later_writes_until_dropped() {
    let node = Node::start();
    let space = connect(&node).await;
    let writer = connect(&node).await;
    writer.out(tuple!("evt", 0_i64)).await.unwrap();
    let events = Template::new(vec![Field::Actual("evt".into()), Field::Typed(Kind::Int)]);
    let mut subscription = space.subscribe(events).await.unwrap();
    for i in 1..=3_i64 {
        writer.out(tuple!("evt", i)).await.unwrap();
        writer.out(tuple!("other", i)).await.unwrap();
    }
    for i in 1..=3_i64 {
        let next = tokio::time::timeout(WAIT, subscription.next())
            .await
            .unwrap();
        assert_eq!(next, Some(tuple!("evt", i)));
    }
    drop(subscription);
    // The node still answers on the same connection.
    assert_eq!(space.status().await.unwrap().tuples, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_take_is_cancelled_on_the_node() {
    let node = Node::start();
    let space = connect(&node).await;
    let jobs = template("job", 1);
    let gave_up = tokio::time::timeout(Duration::from_millis(200), space.take(jobs.clone(), None));
    assert!(gave_up.await.is_err(), "nothing to take yet");
    space.out(tuple!("job", 1_i64)).await.unwrap();
    let still_there = space
        .read(jobs, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(still_there, Some(tuple!("job", 1_i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_given_up_mid_flight_lose_nothing() {
    let node = Node::start();
    let space = connect(&node).await;
    let writer = connect(&node).await;
    common::takes_given_up_mid_flight_lose_nothing(&space, &writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_dropped_with_its_answer_unread_gives_the_tuple_back() {
    let node = Node::start();
    let space = connect(&node).await;
    space.out(tuple!("kept", 1_i64)).await.unwrap();
    // Sent, but not polled again: the answer arrives and waits unread. On
    // a fast loopback the answer may come back within the first poll
    // (the other runtime thread reads it): then the take is done, and the
    // tuple is written again for another try.
    let mut tries = 0;
    let take = loop {
        tries += 1;
        assert!(tries <= 50, "every take was answered within its first poll");
        let mut take = Box::pin(space.take(template("kept", 1), None));
        match futures::poll!(take.as_mut()) {
            std::task::Poll::Pending => break take,
            std::task::Poll::Ready(got) => {
                assert_eq!(got.unwrap(), Some(tuple!("kept", 1_i64)));
                space.out(tuple!("kept", 1_i64)).await.unwrap();
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(take);
    let back = space.take(template("kept", 1), Some(WAIT)).await.unwrap();
    assert_eq!(back, Some(tuple!("kept", 1_i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_fails_every_waiting_and_later_call() {
    let mut node = Node::start();
    let space = connect(&node).await;
    let waiting = {
        let space = space.clone();
        tokio::spawn(async move { space.take(template("never", 0), None).await })
    };
    // Let the take reach the node before it dies.
    space.status().await.unwrap();
    node.proc.kill();
    let failed = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(
        matches!(failed, Err(SpaceError::Unreachable(_))),
        "{failed:?}"
    );
    let later = space.out(tuple!("late")).await;
    assert!(
        matches!(later, Err(SpaceError::Unreachable(_))),
        "{later:?}"
    );
}

fn put(tuples: Vec<Tuple>) -> Step {
    Step::Out { tuples, ttl: None }
}

fn take(template: Template, max: u32, timeout: Option<Duration>) -> Step {
    Step::Take {
        template,
        max,
        timeout,
    }
}

/// Polls the node's tuple count until it is `want` (bounded by `WAIT`).
async fn until_count(space: &RemoteSpace, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = space.status().await.unwrap().tuples;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} tuples, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_take_effect_in_order_in_one_request() {
    let node = Node::start();
    let space = connect(&node).await;
    let taken = space
        .steps(vec![
            put(vec![tuple!("s", 1_i64), tuple!("s", 2_i64)]),
            take(
                Template::exact(&tuple!("s", 1_i64)),
                8,
                Some(Duration::ZERO),
            ),
            take(template("s", 1), 10, Some(Duration::ZERO)),
        ])
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![vec![], vec![tuple!("s", 1_i64)], vec![tuple!("s", 2_i64)]]
    );
    assert_eq!(space.status().await.unwrap().tuples, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_step_waits() {
    let node = Node::start();
    let space = connect(&node).await;
    let writer = connect(&node).await;
    // A waiting take before the last step: refused, and nothing ran.
    let refused = space
        .steps(vec![
            take(template("w", 0), 1, None),
            put(vec![tuple!("never")]),
        ])
        .await;
    assert!(
        matches!(refused, Err(SpaceError::Refused(_))),
        "{refused:?}"
    );
    assert_eq!(space.status().await.unwrap().tuples, 0);
    // The last one waits for a tuple written after the steps before it ran.
    let waiting = {
        let space = space.clone();
        tokio::spawn(async move {
            space
                .steps(vec![
                    put(vec![tuple!("x")]),
                    take(template("late", 1), 4, None),
                ])
                .await
        })
    };
    let x = writer.read(template("x", 0), Some(WAIT)).await.unwrap();
    assert_eq!(x, Some(tuple!("x")));
    writer.out(tuple!("late", 1_i64)).await.unwrap();
    let taken = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(taken, vec![vec![], vec![tuple!("late", 1_i64)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_given_up_while_waiting_give_back_what_they_took() {
    let node = Node::start();
    let space = connect(&node).await;
    space.out(tuple!("a", 1_i64)).await.unwrap();
    let mut steps = Box::pin(space.steps(vec![
        take(template("a", 1), 1, Some(Duration::ZERO)),
        take(template("b", 0), 1, None),
    ]));
    // Running (it polls on while the count is watched) until its first step took ("a", 1).
    let watch = until_count(&space, 0);
    tokio::select! {
        done = &mut steps => panic!("the steps ended: {done:?}"),
        () = watch => {}
    }
    drop(steps);
    let back = space.take(template("a", 1), Some(WAIT)).await.unwrap();
    assert_eq!(back, Some(tuple!("a", 1_i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_step_taking_more_than_a_frame_comes_in_chunks() {
    let node = Node::start();
    let space = connect(&node).await;
    let big = out_blobs(&space).await;
    let taken = space
        .steps(vec![
            put(vec![tuple!("small", 1_i64)]),
            take(template("small", 1), 1, Some(Duration::ZERO)),
            take(template("blob", 2), 10, Some(Duration::ZERO)),
        ])
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![vec![], vec![tuple!("small", 1_i64)], big.clone()]
    );
    // Outs above a frame go one step at a time, in chunks.
    let taken = space
        .steps(vec![
            put(big.clone()),
            take(template("blob", 2), 10, Some(Duration::ZERO)),
        ])
        .await
        .unwrap();
    assert_eq!(taken, vec![vec![], big]);
}
