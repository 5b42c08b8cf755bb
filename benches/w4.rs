//! W4 of BENCHMARKS.md, the coordination round trip: client A puts
//! `("ping", i)`; client B, blocked in a take, receives it and puts
//! `("pong", i)`; A takes the reply. Both clients are [`RemoteSpace`]s in
//! this process, each with its own connection to one `halley node` process.
//!
//! `cargo bench --bench w4 [-- <rounds>]` (default 10,000 rounds, after
//! 1,000 warm-up rounds); prints the median, p99 and mean in microseconds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use halley_substrate::{Field, Kind, RemoteSpace, Space, Template, tuple};

const WARMUP: usize = 1_000;
const DEFAULT_ROUNDS: usize = 10_000;

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let node = common::Node::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut samples = runtime.block_on(round_trips(&node.addr, WARMUP + rounds));
    let mut samples = samples.split_off(WARMUP);
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = micros(samples.iter().sum::<Duration>()) / samples.len() as f64;
    println!(
        "W4 round trip over {} rounds: median {:.0} µs, p99 {:.0} µs, mean {:.0} µs, max {:.0} µs",
        samples.len(),
        at(0.5),
        at(0.99),
        mean,
        at(1.0)
    );
}

async fn round_trips(addr: &str, rounds: usize) -> Vec<Duration> {
    let addr: halley_substrate::Multiaddr = addr.parse().expect("node address");
    let timeout = Duration::from_secs(10);
    let a = RemoteSpace::connect(addr.clone(), timeout)
        .await
        .expect("A connects");
    let b = RemoteSpace::connect(addr, timeout)
        .await
        .expect("B connects");
    let pings = Template::new(vec![Field::Actual("ping".into()), Field::Typed(Kind::Int)]);
    let echo = tokio::spawn(async move {
        for _ in 0..rounds {
            let ping = b.take(pings.clone(), None).await.expect("B takes");
            let ping = ping.expect("a ping");
            let i = ping.get(1).and_then(|v| v.as_int()).expect("an int");
            b.out(tuple!("pong", i)).await.expect("B puts");
        }
    });
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
    echo.await.expect("B finishes");
    samples
}
