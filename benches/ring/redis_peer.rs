//! The Redis side of `benches/ring.rs`: the `redis` crate's blocking client
//! (the one `../shared/peers/rust` uses) and the two loads, W4 and out+in
//! pairs, done the same way as Halley's.
//!
//! Each load runs two ways. **Alone**: every command answered by the one
//! Redis, as `../shared/peers` measures it. **Replicated**: when the Redis
//! has a replica, each command that changes a list is followed by
//! `WAIT 1 <ms>`, so the client goes on only once the replica has the
//! change, as a Halley client goes on only once R = 2 peers hold the
//! tuple (`out`) or have dropped it (`in`): the like-for-like peer of a
//! ring with R = 2.

use std::time::Instant;

use redis::{Commands, Connection};

/// How long a `WAIT` may block before the bench calls the replica lost.
const WAIT_MS: u64 = 5_000;

/// One connection to Redis at 127.0.0.1:`port`.
fn open(port: u16) -> redis::RedisResult<Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection()
}

/// Whether a Redis answers at 127.0.0.1:`port`.
pub fn reachable(port: u16) -> bool {
    open(port).is_ok()
}

/// The replicas connected to the Redis at `port` (`INFO replication`'s
/// `connected_slaves`).
pub fn replicas(port: u16) -> usize {
    let Ok(mut conn) = open(port) else {
        return 0;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// With `replicated`, waits until a replica has what `conn` changed.
fn settle(conn: &mut Connection, replicated: bool) {
    if replicated {
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(WAIT_MS)
            .query(conn)
            .expect("WAIT");
        assert!(acked >= 1, "no replica acknowledged within {WAIT_MS} ms");
    }
}

/// W4 round trips in µs after `warmup` unmeasured ones: A `LPUSH req`,
/// B (a thread) `BRPOP req` then `LPUSH rep`, A `BRPOP rep`; with
/// `replicated`, each of them followed by `WAIT 1`.
pub fn w4(port: u16, warmup: usize, rounds: usize, replicated: bool) -> Vec<f64> {
    const REQ: &str = "halley-bench:req";
    const REP: &str = "halley-bench:rep";
    let mut a = open(port).expect("Redis A");
    let _: () = a.del(&[REQ, REP]).expect("DEL");
    let total = warmup + rounds;
    let echo = std::thread::spawn(move || {
        let mut b = open(port).expect("Redis B");
        for _ in 0..total {
            let popped: Option<(String, Vec<u8>)> = b.brpop(REQ, 30.0).expect("B's BRPOP");
            let (_, got) = popped.expect("B's BRPOP timed out");
            settle(&mut b, replicated);
            let _: () = b.lpush(REP, got).expect("B's LPUSH");
            settle(&mut b, replicated);
        }
    });
    let payload = b"ping-00000000".repeat(8);
    let mut samples = Vec::with_capacity(total);
    for _ in 0..total {
        let start = Instant::now();
        let _: () = a.lpush(REQ, &payload).expect("A's LPUSH");
        settle(&mut a, replicated);
        let got: Option<(String, Vec<u8>)> = a.brpop(REP, 30.0).expect("A's BRPOP");
        settle(&mut a, replicated);
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got.expect("A's BRPOP timed out").1, payload);
    }
    echo.join().expect("B finishes");
    samples.split_off(warmup)
}

/// Pairs per second of `clients` threads each doing `pairs` times
/// `LPUSH` to its own list then `RPOP` of it; with `replicated`, each
/// followed by `WAIT 1`.
pub fn pairs(port: u16, clients: usize, pairs: usize, replicated: bool) -> f64 {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = open(port).expect("Redis client");
                let key = format!("halley-bench:pairs:{c}");
                let _: () = conn.del(&key).expect("DEL");
                barrier.wait();
                for i in 0..pairs {
                    let value = format!("k{i:08x}-{c}");
                    let _: () = conn.lpush(&key, &value).expect("LPUSH");
                    settle(&mut conn, replicated);
                    let got: Option<String> = conn.rpop(&key, None).expect("RPOP");
                    settle(&mut conn, replicated);
                    assert_eq!(got.as_deref(), Some(value.as_str()));
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("a Redis client failed");
    }
    (clients * pairs) as f64 / start.elapsed().as_secs_f64()
}
