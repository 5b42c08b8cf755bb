//! W4 of BENCHMARKS.md, the coordination round trip: client A puts
//! `("ping", i)`; client B, blocked in a take, receives it and puts
//! `("pong", i)`; A takes the reply. A and B are [`RemoteSpace`]s in two
//! processes (this one, and a copy of it started as B), each with its own
//! connection to one `halley node` process — the layout of the Redis peer
//! (`redisbench w4`).
//!
//! `cargo bench --bench w4 [-- <rounds> [<runs>]]` (default 10,000 rounds
//! after 1,000 warm-up rounds, 1 run). Each run measures, one after the
//! other: a plain `halley node` (a ring peer, alone) and `halley node
//! --solo` (the space without the overlay), each through libp2p (TCP,
//! noise, yamux) and through its local door (`--unix`, a Unix socket);
//! then Redis at 127.0.0.1:$REDIS_PORT (default 6390) if one answers, and
//! at the Unix socket $REDIS_SOCKET if set (`redis-server --unixsocket
//! <path>`) — A `LPUSH req` then `BRPOP rep`, B (its own process again)
//! `BRPOP req` then `LPUSH rep`, with the `redis` crate the peers use. It
//! prints the median, p99 and mean in microseconds of every run, one
//! request's round trip (`status`) for comparison, the node's CPU per
//! round (`/proc/<pid>/stat`: one status request and one W4 round), and at the
//! end the medians over the runs and each run's ratio to Redis over the
//! same kind of link (TCP to TCP, Unix socket to Unix socket).
//! The nodes inherit `HALLEY_SPIN_US` (0 turns their spin window off).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use halley_substrate::{Field, Kind, RemoteSpace, Space, Template, tuple};
use redis::Commands;

const WARMUP: usize = 1_000;
const DEFAULT_ROUNDS: usize = 10_000;

/// The argument that makes this binary client B: `echo <node> <rounds>`.
const ECHO: &str = "echo";
/// The argument that makes this binary Redis's client B:
/// `redis-echo <url> <rounds>`.
const REDIS_ECHO: &str = "redis-echo";
const REQ: &str = "halley-w4:req";
const REP: &str = "halley-w4:rep";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let operand = |at: usize, what: &str| args.get(at).expect(what).clone();
    if let Some(at) = args.iter().position(|a| a == ECHO) {
        let node = operand(at + 1, "echo <node> <rounds>");
        let rounds = operand(at + 2, "rounds").parse().expect("rounds");
        runtime.block_on(echo(&node, rounds));
        return;
    }
    if let Some(at) = args.iter().position(|a| a == REDIS_ECHO) {
        let url = operand(at + 1, "redis-echo <url> <rounds>");
        let rounds = operand(at + 2, "rounds").parse().expect("rounds");
        redis_echo(&url, rounds);
        return;
    }
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(DEFAULT_ROUNDS);
    let runs = numbers.get(1).copied().unwrap_or(1).max(1);
    let port: u16 = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6390);
    let redis_tcp = format!("redis://127.0.0.1:{port}/");
    let redis_unix = std::env::var("REDIS_SOCKET")
        .ok()
        .map(|path| format!("redis+unix://{path}"));
    let redis = [Some(redis_tcp), redis_unix].map(|url| url.filter(|u| redis_open(u).is_ok()));
    if redis[0].is_none() {
        println!("no Redis at 127.0.0.1:{port}");
    }
    if redis[1].is_none() {
        println!("no Redis at $REDIS_SOCKET (unset or not answering)");
    }
    let ring_door = socket_path("ring");
    let solo_door = socket_path("solo");
    let ring = common::Node::start_with(&["--unix", &ring_door]);
    let solo = common::Node::start_with(&["--solo", "--unix", &solo_door]);
    let layouts = [
        ("ring peer, libp2p", &ring, ring.addr.clone()),
        ("ring peer, unix", &ring, format!("/unix{ring_door}")),
        ("solo, libp2p", &solo, solo.addr.clone()),
        ("solo, unix", &solo, format!("/unix{solo_door}")),
    ];
    let mut medians: Vec<Row> = Vec::new();
    for run in 0..runs {
        println!("run {}", run + 1);
        let mut row = [None; COLUMNS];
        for (slot, (layout, node, addr)) in layouts.iter().enumerate() {
            let before = cpu_ticks(node.proc.id());
            let (requests, trips) = runtime.block_on(measure(addr, WARMUP + rounds));
            let ticks = cpu_ticks(node.proc.id()) - before;
            report(&format!("{layout}: one request (status)"), requests);
            row[slot] = Some(report(&format!("{layout}: W4 round trip"), trips));
            // 10 ms a tick (USER_HZ 100); a round is one status request
            // and one W4 round trip, as in BENCHMARKS.md's earlier figures.
            let per_round = ticks as f64 * 10_000.0 / (WARMUP + rounds) as f64;
            println!("  {layout}: node CPU {ticks} ticks, {per_round:.0} µs a (status + W4) round");
        }
        for (at, name) in [(4, "Redis, TCP"), (5, "Redis, unix")] {
            if let Some(url) = &redis[at - 4] {
                let trips = redis_trips(url, WARMUP + rounds);
                row[at] = Some(report(&format!("{name}: W4 round trip"), trips));
            }
        }
        medians.push(row);
    }
    summarize(&medians);
    let _ = std::fs::remove_file(&ring_door);
    let _ = std::fs::remove_file(&solo_door);
}

/// Halley's four layouts, then Redis over TCP and over its Unix socket.
const COLUMNS: usize = 6;
const NAMES: [&str; COLUMNS] = [
    "ring peer, libp2p",
    "ring peer, unix",
    "solo, libp2p",
    "solo, unix",
    "Redis, TCP",
    "Redis, unix",
];
/// Each Halley column's Redis peer: the same kind of link.
const PEER: [usize; 4] = [4, 5, 4, 5];
type Row = [Option<f64>; COLUMNS];

/// A socket path for a node's local door, unique to this run.
fn socket_path(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("halley-w4-{}-{name}.sock", std::process::id()));
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// User and system CPU ticks of process `pid` so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the node's stat");
    // Fields after the command name (which may hold spaces), from field 3.
    let after = stat.rsplit_once(')').expect("a stat line").1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Prints the sample's median, p99 and mean; returns the median in µs.
fn report(what: &str, mut samples: Vec<Duration>) -> f64 {
    let mut samples = samples.split_off(WARMUP);
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = micros(samples.iter().sum::<Duration>()) / samples.len() as f64;
    println!(
        "  {what} over {} rounds: median {:.0} µs, p99 {:.0} µs, mean {:.0} µs, max {:.0} µs",
        samples.len(),
        at(0.5),
        at(0.99),
        mean,
        at(1.0)
    );
    at(0.5)
}

/// The medians over the runs, and the median of each run's ratio to Redis
/// over the same kind of link.
fn summarize(runs: &[Row]) {
    let median = |mut v: Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let column = |i: usize| runs.iter().filter_map(|r| r[i]).collect::<Vec<f64>>();
    println!("over {} runs (median of the runs' medians):", runs.len());
    for (i, name) in NAMES.iter().enumerate() {
        if let Some(m) = median(column(i)) {
            println!("  W4 {name}: {m:.0} µs");
        }
    }
    for (i, peer) in PEER.iter().enumerate() {
        let ratios: Vec<f64> = runs
            .iter()
            .filter_map(|r| Some(r[i]? / r[*peer]?))
            .collect();
        let shown: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
        if let Some(m) = median(ratios.clone()) {
            println!(
                "  {} / {}: {m:.2}x (runs: {})",
                NAMES[i],
                NAMES[*peer],
                shown.join(", ")
            );
        }
    }
}

async fn connect(addr: &str) -> RemoteSpace {
    let addr = halley_substrate::client::parse_address(addr).expect("node address");
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
    let mut b =
        common::Proc::spawn(Command::new(this_binary()).args([ECHO, addr, &rounds.to_string()]));
    let trips = round_trips(&a, rounds).await;
    b.wait(Duration::from_secs(60));
    (requests, trips)
}

fn this_binary() -> std::path::PathBuf {
    std::env::current_exe().expect("this binary")
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

fn redis_open(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection()
}

/// Redis's W4, as `redisbench w4` does it: A here, B its own process.
fn redis_trips(url: &str, rounds: usize) -> Vec<Duration> {
    let mut a = redis_open(url).expect("Redis A");
    let _: () = a.del(&[REQ, REP]).expect("DEL");
    let mut b = common::Proc::spawn(Command::new(this_binary()).args([
        REDIS_ECHO,
        url,
        &rounds.to_string(),
    ]));
    let payload = b"ping-00000000".repeat(8);
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let _: () = a.lpush(REQ, &payload).expect("A's LPUSH");
        let got: Option<(String, Vec<u8>)> = a.brpop(REP, 30.0).expect("A's BRPOP");
        samples.push(start.elapsed());
        assert_eq!(got.expect("A's BRPOP timed out").1, payload);
    }
    b.wait(Duration::from_secs(60));
    samples
}

/// Redis's client B: `rounds` times `BRPOP req`, `LPUSH rep`.
fn redis_echo(url: &str, rounds: usize) {
    let mut b = redis_open(url).expect("Redis B");
    for _ in 0..rounds {
        let popped: Option<(String, Vec<u8>)> = b.brpop(REQ, 30.0).expect("B's BRPOP");
        let (_, got) = popped.expect("B's BRPOP timed out");
        let _: () = b.lpush(REP, got).expect("B's LPUSH");
    }
}
