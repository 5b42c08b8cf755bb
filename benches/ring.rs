//! Benchmarks through a 3-peer ring (`halley node --ring` and two
//! `--join`, release build, started here), beside Redis measured in the
//! same run, runs interleaved so that both see the same machine:
//!
//! - **W4 round trip**: client A puts `("ping", i)`; client B, blocked in a
//!   take of `("ping", ?int)`, gets it and puts `("pong", i)`; A takes it.
//!   Measured with A and B on different peers (the realistic setup: two
//!   processes each talking to their nearest peer) and on the same peer;
//!   and again with B taking `("ping", i)` exactly, to show what the
//!   formal field costs (a take with one asks every candidate peer).
//!   Redis: A `LPUSH req`, B `BRPOP req` then `LPUSH rep`, A `BRPOP rep`.
//! - **out+in pairs/s with 4 concurrent clients**: each client, connected
//!   to peer `c % 3`, puts one of its own tuples and takes it back, one
//!   pair after the other; keywords are hashed strings, so the tuples spread
//!   over the ring. Redis: each client `LPUSH`es to its own list and
//!   `RPOP`s it back, one pair after the other.
//!
//! - **the same through [`DirectSpace`]**: each client sends every
//!   operation straight to the peer holding what it touches (an `out` to
//!   the tuple's primary, a take with one candidate peer to it), as a
//!   Redis Cluster client sends each key to its slot's node; A and B, and
//!   the 4 clients, enter the ring at the same peers as above.
//!
//! Both Redis loads use the `redis` crate's blocking client (one TCP
//! connection per client, as `../shared/peers/rust` does), so both sides
//! do the same thing. When that Redis has a replica, both loads run a
//! second time with a `WAIT 1` after each command that changes a list:
//! the client goes on only once the replica has the change, as a Halley
//! client does once R = 2 peers hold (or have dropped) the tuple — the
//! like-for-like peer of the ring's R = 2 (`benches/ring/redis_peer.rs`).
//! A replica: `redis-server --port <p2> --replicaof 127.0.0.1 <port>
//! --save "" --appendonly no --dir /tmp --daemonize yes` (the primary
//! writes its snapshot for the replica in its `--dir`).
//!
//! `cargo bench --bench ring [-- <w4-rounds> <pairs-per-client> <runs>]`
//! (default 3,000, 5,000, 5). Redis at 127.0.0.1:$REDIS_PORT (default
//! 6390: `~/peers/start_redis.sh`); without one, Halley alone. Prints every
//! run and the medians.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "ring/redis_peer.rs"]
mod redis_peer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use halley_substrate::{
    DirectSpace, Field, Kind, Multiaddr, RemoteSpace, Space, Template, Tuple, tuple,
};

use common::Node;

/// W4 rounds before the measured ones.
const WARMUP: usize = 500;
/// Concurrent clients of the throughput load.
const CLIENTS: usize = 4;
/// How long a client waits to connect.
const CONNECT: Duration = Duration::from_secs(10);

/// What one run measured, for every system and load.
#[derive(Debug, Default)]
struct Run {
    w4_apart: f64,
    w4_same: f64,
    /// The same with B taking `("ping", i)` exactly (B knows `i`): no
    /// formal field, so the take asks one peer instead of every peer.
    w4_apart_exact: f64,
    w4_same_exact: f64,
    /// W4 apart with both clients [`DirectSpace`]s.
    w4_direct: f64,
    w4_direct_exact: f64,
    w4_redis: Option<f64>,
    /// Redis with a `WAIT 1` after each change (a replica has it).
    w4_redis_replicated: Option<f64>,
    pairs: f64,
    /// Pairs with every client a [`DirectSpace`].
    pairs_direct: f64,
    pairs_redis: Option<f64>,
    pairs_redis_replicated: Option<f64>,
}

fn main() {
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(3_000);
    let pairs = numbers.get(1).copied().unwrap_or(5_000);
    let runs = numbers.get(2).copied().unwrap_or(5);
    let port: u16 = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6390);
    let redis = redis_peer::reachable(port).then_some(port);
    if redis.is_none() {
        println!("no Redis at 127.0.0.1:{port}: Halley alone");
    }
    let replicated = redis.filter(|&p| redis_peer::replicas(p) > 0);
    if redis.is_some() && replicated.is_none() {
        println!("the Redis at 127.0.0.1:{port} has no replica: no replicated (WAIT 1) runs");
    }

    let ring = ring();
    let addrs: Vec<Multiaddr> = ring.iter().map(|n| n.addr.parse().unwrap()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "3-peer ring; W4 {rounds} rounds (+{WARMUP} warm-up), {CLIENTS} clients × {pairs} \
         out+in pairs; {runs} runs, interleaved with Redis"
    );
    let (out_us, in_us) = runtime.block_on(async { one_client(remote(&addrs[0]).await).await });
    println!(
        "one client alone, peer 0: out median {out_us:.0} µs, in (present, exact) {in_us:.0} µs"
    );
    let (out_us, in_us) = runtime.block_on(async { one_client(direct(&addrs[0]).await).await });
    println!(
        "one direct client alone, entering at peer 0: out median {out_us:.0} µs, \
         in (present, exact) {in_us:.0} µs"
    );
    let mut results = Vec::new();
    for run in 0..runs {
        let base = (run * (WARMUP + rounds)) as i64;
        let w4_remote = |a: usize, b: usize, offset: i64, exact: bool| {
            let base = base + (offset << 40);
            runtime.block_on(async {
                w4(
                    remote(&addrs[a]).await,
                    remote(&addrs[b]).await,
                    base,
                    rounds,
                    exact,
                )
                .await
            })
        };
        let w4_direct = |offset: i64, exact: bool| {
            let base = base + (offset << 40);
            runtime.block_on(async {
                w4(
                    direct(&addrs[0]).await,
                    direct(&addrs[1]).await,
                    base,
                    rounds,
                    exact,
                )
                .await
            })
        };
        let mut r = Run {
            w4_apart: w4_remote(0, 1, 0, false),
            ..Run::default()
        };
        r.w4_redis = redis.map(|p| median(redis_peer::w4(p, WARMUP, rounds, false)));
        r.w4_redis_replicated = replicated.map(|p| median(redis_peer::w4(p, WARMUP, rounds, true)));
        r.w4_same = w4_remote(0, 0, 1, false);
        r.w4_apart_exact = w4_remote(0, 1, 2, true);
        r.w4_same_exact = w4_remote(0, 0, 3, true);
        r.w4_direct = w4_direct(4, false);
        r.w4_direct_exact = w4_direct(5, true);
        r.pairs = runtime.block_on(async {
            let spaces = futures::future::join_all(addrs.iter().cycle().take(CLIENTS).map(remote));
            out_in(spaces.await, run, pairs).await
        });
        r.pairs_direct = runtime.block_on(async {
            let spaces = futures::future::join_all(addrs.iter().cycle().take(CLIENTS).map(direct));
            out_in(spaces.await, run + runs, pairs).await
        });
        r.pairs_redis = redis.map(|p| redis_peer::pairs(p, CLIENTS, pairs, false));
        r.pairs_redis_replicated = replicated.map(|p| redis_peer::pairs(p, CLIENTS, pairs, true));
        println!(
            "run {}: W4 median apart {:.0} µs, same peer {:.0} µs (exact takes: {:.0}, {:.0}), \
             direct {:.0} µs (exact {:.0}), Redis {} (replicated {}); pairs/s Halley {:.0}, \
             direct {:.0}, Redis {} (replicated {})",
            run + 1,
            r.w4_apart,
            r.w4_same,
            r.w4_apart_exact,
            r.w4_same_exact,
            r.w4_direct,
            r.w4_direct_exact,
            show(r.w4_redis, "µs"),
            show(r.w4_redis_replicated, "µs"),
            r.pairs,
            r.pairs_direct,
            show(r.pairs_redis, ""),
            show(r.pairs_redis_replicated, ""),
        );
        results.push(r);
    }
    summary(&results);
}

/// Starts the ring and waits until every peer sees all three.
fn ring() -> Vec<Node> {
    let first = Node::start_with(&["--ring"]);
    let join = first.addr.clone();
    let nodes = vec![
        first,
        Node::start_with(&["--join", &join]),
        Node::start_with(&["--join", &join]),
    ];
    for node in &nodes {
        common::eventually("every peer to see the ring of three", || {
            common::ring_size(&node.addr, &[]) == Some(3)
        });
    }
    nodes
}

/// A client of the peer at `addr`.
async fn remote(addr: &Multiaddr) -> RemoteSpace {
    RemoteSpace::connect(addr.clone(), CONNECT)
        .await
        .expect("connect")
}

/// A client entering the ring at `addr` and talking to every peer.
async fn direct(addr: &Multiaddr) -> DirectSpace {
    let space = DirectSpace::connect(addr.clone(), CONNECT)
        .await
        .expect("connect");
    assert_eq!(
        space.direct_members(),
        3,
        "a direct client reaches all three peers"
    );
    space
}

/// The median W4 round trip in µs between clients `a` and `b`, tuples
/// numbered from `base`; B takes `("ping", ?int)`, or with `exact`
/// `("ping", i)`.
async fn w4<S: Space>(a: S, b: S, base: i64, rounds: usize, exact: bool) -> f64 {
    let total = WARMUP + rounds;
    let pings = Template::new(vec![Field::Actual("ping".into()), Field::Typed(Kind::Int)]);
    let echo = tokio::spawn(async move {
        for i in base..base + total as i64 {
            let template = if exact {
                Template::exact(&tuple!("ping", i))
            } else {
                pings.clone()
            };
            let ping = b.take(template, None).await.expect("B takes");
            let i = ping.expect("a ping").get(1).and_then(|v| v.as_int());
            b.out(tuple!("pong", i.expect("an int")))
                .await
                .expect("B puts");
        }
    });
    let mut samples = Vec::with_capacity(total);
    for i in base..base + total as i64 {
        let start = Instant::now();
        a.out(tuple!("ping", i)).await.expect("A puts");
        let pong = a.take(Template::exact(&tuple!("pong", i)), None).await;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(pong.expect("A takes"), Some(tuple!("pong", i)));
    }
    echo.await.expect("B finishes");
    median(samples.split_off(WARMUP))
}

/// Median µs of one `out`, and of one `in` of a tuple that is there
/// (exact template), for a lone client.
async fn one_client<S: Space>(space: S) -> (f64, f64) {
    let (mut outs, mut ins) = (Vec::new(), Vec::new());
    for i in 0..1_000 {
        let t = pair_tuple(10_000, 0, i);
        let start = Instant::now();
        space.out(t.clone()).await.expect("out");
        outs.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        let got = space.take(Template::exact(&t), Some(CONNECT)).await;
        ins.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got.expect("in"), Some(t));
    }
    (median(outs), median(ins))
}

/// Out+in pairs per second of the clients `spaces` at once (the bench
/// connects client `c` to peer `c % 3`), tuples of run `run`.
async fn out_in<S: Space>(spaces: Vec<S>, run: usize, pairs: usize) -> f64 {
    let ready = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut clients = Vec::new();
    for (c, space) in spaces.into_iter().enumerate() {
        let ready = ready.clone();
        clients.push(tokio::spawn(async move {
            ready.wait().await;
            for i in 0..pairs {
                let t = pair_tuple(run, c, i);
                space.out(t.clone()).await.expect("out");
                let got = space.take(Template::exact(&t), Some(CONNECT)).await;
                assert_eq!(got.expect("in"), Some(t));
            }
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    for client in clients {
        client.await.expect("a client failed");
    }
    (CLIENTS * pairs) as f64 / start.elapsed().as_secs_f64()
}

/// Client `c`'s `i`th tuple of run `run`: a hashed keyword, so the tuples
/// spread over the ring's arcs.
fn pair_tuple(run: usize, c: usize, i: usize) -> Tuple {
    let n = ((run * CLIENTS + c) * 1_000_000 + i) as u64;
    let key = format!("k{:08x}", n.wrapping_mul(2_654_435_761) as u32);
    tuple!(key, n as i64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn show(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(
        || "-".into(),
        |v| format!("{v:.0} {unit}").trim().to_owned(),
    )
}

/// Medians over the runs (min–max), and the ratios to Redis.
fn summary(results: &[Run]) {
    let over = |f: &dyn Fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            (median(v), lo, hi)
        })
    };
    let line = |what: &str, f: &dyn Fn(&Run) -> Option<f64>, unit: &str| {
        if let Some((m, lo, hi)) = over(f) {
            println!("{what}: median {m:.0}{unit} ({lo:.0}–{hi:.0})");
        }
    };
    let ratio = |what: &str, f: &dyn Fn(&Run) -> Option<f64>| {
        if let Some((m, lo, hi)) = over(f) {
            println!("{what}: median {m:.2}× ({lo:.2}–{hi:.2})");
        }
    };
    println!("--- medians of {} runs", results.len());
    line(
        "W4 through the ring, A and B on different peers",
        &|r| Some(r.w4_apart),
        " µs",
    );
    line(
        "W4 through the ring, A and B on the same peer",
        &|r| Some(r.w4_same),
        " µs",
    );
    line(
        "W4 through the ring, B takes exactly, different peers",
        &|r| Some(r.w4_apart_exact),
        " µs",
    );
    line(
        "W4 through the ring, B takes exactly, same peer",
        &|r| Some(r.w4_same_exact),
        " µs",
    );
    line(
        "W4 through the ring, direct clients",
        &|r| Some(r.w4_direct),
        " µs",
    );
    line(
        "W4 through the ring, direct clients, B takes exactly",
        &|r| Some(r.w4_direct_exact),
        " µs",
    );
    line("W4 Redis", &|r| r.w4_redis, " µs");
    line(
        "W4 Redis with a replica, WAIT 1 after each change",
        &|r| r.w4_redis_replicated,
        " µs",
    );
    line("out+in pairs/s, 4 clients, ring", &|r| Some(r.pairs), "");
    line(
        "out+in pairs/s, 4 direct clients, ring",
        &|r| Some(r.pairs_direct),
        "",
    );
    line(
        "out+in pairs/s, 4 clients, Redis LPUSH+RPOP",
        &|r| r.pairs_redis,
        "",
    );
    line(
        "out+in pairs/s, 4 clients, Redis LPUSH+WAIT 1+RPOP+WAIT 1",
        &|r| r.pairs_redis_replicated,
        "",
    );
    ratio("W4 apart / Redis, per run", &|r| {
        r.w4_redis.map(|x| r.w4_apart / x)
    });
    ratio("W4 same peer / Redis, per run", &|r| {
        r.w4_redis.map(|x| r.w4_same / x)
    });
    ratio("W4 apart, exact takes / Redis, per run", &|r| {
        r.w4_redis.map(|x| r.w4_apart_exact / x)
    });
    ratio("W4 direct / Redis, per run", &|r| {
        r.w4_redis.map(|x| r.w4_direct / x)
    });
    ratio("W4 direct, exact takes / Redis, per run", &|r| {
        r.w4_redis.map(|x| r.w4_direct_exact / x)
    });
    ratio("pairs/s ring / Redis, per run", &|r| {
        r.pairs_redis.map(|x| r.pairs / x)
    });
    ratio("pairs/s direct / Redis, per run", &|r| {
        r.pairs_redis.map(|x| r.pairs_direct / x)
    });
    ratio("W4 apart / replicated Redis, per run", &|r| {
        r.w4_redis_replicated.map(|x| r.w4_apart / x)
    });
    ratio("W4 direct / replicated Redis, per run", &|r| {
        r.w4_redis_replicated.map(|x| r.w4_direct / x)
    });
    ratio("pairs/s ring / replicated Redis, per run", &|r| {
        r.pairs_redis_replicated.map(|x| r.pairs / x)
    });
    ratio("pairs/s direct / replicated Redis, per run", &|r| {
        r.pairs_redis_replicated.map(|x| r.pairs_direct / x)
    });
}
