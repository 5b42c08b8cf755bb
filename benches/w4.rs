//! W4 of BENCHMARKS.md, the coordination round trip: client A puts
//! `("ping", i)`; client B, blocked in a take, receives it and puts
//! `("pong", i)`; A takes the reply. A and B are [`RemoteSpace`]s in two
//! processes (this one, and a copy of it started as B), each with its own
//! connection to one `halley node` process — the layout of the Redis peer
//! (`redisbench w4`).
//!
//! `cargo bench --bench w4 [-- <rounds>]` (default 10,000 rounds, after
//! 1,000 warm-up rounds); prints the median, p99 and mean in microseconds,
//! and the same for one request's round trip (`status`) for comparison,
//! first through a plain `halley node` (a ring peer, alone), then through
//! `halley node --solo` (the space without the overlay).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use halley_substrate::{Field, Kind, RemoteSpace, Space, Template, tuple};

const WARMUP: usize = 1_000;
const DEFAULT_ROUNDS: usize = 10_000;

/// The argument that makes this binary client B: `echo <node> <rounds>`.
const ECHO: &str = "echo";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(at) = args.iter().position(|a| a == ECHO) {
        let node = args.get(at + 1).expect("echo <node> <rounds>");
        let rounds = args
            .get(at + 2)
            .and_then(|r| r.parse().ok())
            .expect("rounds");
        runtime.block_on(echo(node, rounds));
        return;
    }
    let rounds = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    for (layout, flags) in [("ring peer", &[][..]), ("solo", &["--solo"][..])] {
        let node = common::Node::start_with(flags);
        let (requests, trips) = runtime.block_on(measure(&node.addr, WARMUP + rounds));
        report(&format!("{layout}: one request (status)"), requests);
        report(&format!("{layout}: W4 round trip"), trips);
    }
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let mut samples = samples.split_off(WARMUP);
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = micros(samples.iter().sum::<Duration>()) / samples.len() as f64;
    println!(
        "{what} over {} rounds: median {:.0} µs, p99 {:.0} µs, mean {:.0} µs, max {:.0} µs",
        samples.len(),
        at(0.5),
        at(0.99),
        mean,
        at(1.0)
    );
}

async fn connect(addr: &str) -> RemoteSpace {
    let addr: halley_substrate::Multiaddr = addr.parse().expect("node address");
    RemoteSpace::connect(addr, Duration::from_secs(10))
        .await
        .expect("connects to the node")
}

async fn measure(addr: &str, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let a = connect(addr).await;
    let mut requests = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        a.status().await.expect("status");
        requests.push(start.elapsed());
    }
    let mut b = common::Proc::spawn(
        std::process::Command::new(std::env::current_exe().expect("this binary")).args([
            ECHO,
            addr,
            &rounds.to_string(),
        ]),
    );
    let trips = round_trips(&a, rounds).await;
    b.wait(Duration::from_secs(60));
    (requests, trips)
}

/// Client B: answers `rounds` pings with pongs.
async fn echo(addr: &str, rounds: usize) {
    let b = connect(addr).await;
    let pings = Template::new(vec![Field::Actual("ping".into()), Field::Typed(Kind::Int)]);
    for _ in 0..rounds {
        let ping = b.take(pings.clone(), None).await.expect("B takes");
        let ping = ping.expect("a ping");
        let i = ping.get(1).and_then(|v| v.as_int()).expect("an int");
        b.out(tuple!("pong", i)).await.expect("B puts");
    }
}

async fn round_trips(a: &RemoteSpace, rounds: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds as i64 {
        let start = Instant::now();
        a.out(tuple!("ping", i)).await.expect("A puts");
        let pong = a
            .take(Template::exact(&tuple!("pong", i)), None)
            .await
            .expect("A takes");
        samples.push(start.elapsed());
        assert_eq!(pong, Some(tuple!("pong", i)));
    }
    samples
}
