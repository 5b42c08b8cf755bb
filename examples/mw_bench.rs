//! W1 and W2 of BENCHMARKS.md for master-worker: an embedded space served
//! on 127.0.0.1, a master in this process, 2 worker processes (this same
//! binary, in worker mode) reaching the space over the node API.
//!
//! ```sh
//! cargo run --release --example mw_bench -- w1   # 20,000 no-op tasks, 100-byte payloads
//! cargo run --release --example mw_bench -- w1 200000   # as many tasks as asked
//! cargo run --release --example mw_bench -- w1-unix [<tasks>]   # workers through the local door
//! cargo run --release --example mw_bench -- w2   # 2,000 tasks of 5 ms CPU
//! cargo build --release --bin halley && cargo run --release --example mw_bench -- w1-ring [<tasks>]
//! cargo build --release --bin halley && cargo run --release --example mw_bench -- w1-ring-unix
//! cargo build --release --bin halley && cargo run --release --example mw_bench -- w1-ring-direct
//! ```
//! `w1-unix` is `w1` with the workers connected through the embedded
//! node's local door (a Unix socket, `Node::serve_unix`) instead of
//! libp2p. `w1-ring` runs W1 through a ring of three `halley node` processes (the
//! release binary beside this one): the master on the first peer, one
//! worker on each of the others; `w1-ring-unix` the same with every node's
//! local door open and the master and each worker coming in through its
//! peer's door (clients on their peer's machine); `w1-ring-direct` the same with every
//! client a `DirectSpace` entering there (each operation sent straight to
//! the peer holding what it touches).
//! Each prints its 3 runs and their median. Timing covers submitting the
//! first task to collecting the last result; the workers are connected and
//! (W1) have run 200 warm-up tasks of the same job before it starts (as
//! `redisbench w1b` warms up with 200), so they know the task time and take
//! full batches from the first.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use halley_paradigms::master::Master;
use halley_paradigms::worker::Worker;
use halley_substrate::Space;
use halley_substrate::client::{DirectSpace, RemoteSpace};
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::node::Node;

#[path = "common/ring.rs"]
mod ring;
use ring::{Children, Ring};

/// Every process of the bench (the space's host with the master, the
/// workers) allocates as the `halley` binary does: mimalloc, without
/// transparent huge pages. Redis, the peer, runs on jemalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORKERS: usize = 2;
const RUNS: usize = 3;
/// W1 tasks run before the timing starts.
const WARMUP: usize = 200;

/// The worker processes run on one thread, as `halley worker` does; the
/// process hosting the space and the master on two, as `halley run` does.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match args.first().map(String::as_str) {
        Some("worker" | "worker-direct") => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [
            w1 @ ("w1" | "w1-unix" | "w1-ring" | "w1-ring-unix" | "w1-ring-direct"),
            ref rest @ ..,
        ] => {
            let layout = match w1 {
                "w1" => Layout::Embedded,
                "w1-unix" => Layout::EmbeddedUnix,
                "w1-ring" => Layout::Ring,
                "w1-ring-unix" => Layout::RingUnix,
                _ => Layout::RingDirect,
            };
            let tasks = match rest {
                [] => 20_000,
                [tasks] => tasks.parse().context("<tasks>: a number")?,
                _ => bail!("{w1} [<tasks>]"),
            };
            bench("w1", layout, tasks, |_| vec![7u8; 100]).await
        }
        ["w2"] => {
            let iterations = calibrate(Duration::from_millis(5));
            println!("w2: {iterations} busy-loop iterations ~ 5 ms here");
            let payload = move |_| iterations.to_le_bytes().to_vec();
            bench("w2", Layout::Embedded, 2_000, payload).await
        }
        ["worker", peer, job] => {
            let peer = halley_substrate::client::parse_address(peer)?;
            let space = RemoteSpace::connect(peer, Duration::from_secs(10)).await?;
            work(space, job).await
        }
        ["worker-direct", peer, job] => {
            let space = DirectSpace::connect(peer.parse()?, Duration::from_secs(10)).await?;
            work(space, job).await
        }
        _ => bail!("usage: mw_bench w1|w1-unix|w1-ring|w1-ring-unix|w1-ring-direct [<tasks>] | w2"),
    }
}

/// Where the space lives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// Embedded in this process, served on 127.0.0.1.
    Embedded,
    /// Embedded, the workers coming in through the node's local door.
    EmbeddedUnix,
    /// A ring of three `halley node` processes.
    Ring,
    /// The same ring, every client coming in through its peer's local door.
    RingUnix,
    /// The same ring, every client a [`DirectSpace`].
    RingDirect,
}

async fn bench(
    name: &str,
    layout: Layout,
    tasks: usize,
    payload: impl Fn(usize) -> Vec<u8>,
) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for run in 0..RUNS {
        let job = format!("{name}-{run}");
        let payloads: Vec<Vec<u8>> = (0..tasks).map(&payload).collect();
        let figure = match layout {
            Layout::Embedded => {
                let space = EmbeddedSpace::new();
                let node = Node::start("/ip4/127.0.0.1/tcp/0".parse()?, space.clone()).await?;
                let peer = node.address().to_string();
                let peers = [peer.clone(), peer];
                let figure = once(name, run, space, &peers, "worker", &job, payloads).await;
                node.stop().await;
                figure?
            }
            Layout::EmbeddedUnix => {
                let space = EmbeddedSpace::new();
                let mut node = Node::start("/ip4/127.0.0.1/tcp/0".parse()?, space.clone()).await?;
                let door =
                    std::env::temp_dir().join(format!("mw-bench-{}.sock", std::process::id()));
                let door = node.serve_unix(&door).await?;
                let peer = halley_substrate::client::local_address(&door).to_string();
                let peers = [peer.clone(), peer];
                let figure = once(name, run, space, &peers, "worker", &job, payloads).await;
                node.stop().await;
                figure?
            }
            Layout::Ring | Layout::RingUnix => {
                let ring = Ring::start(layout == Layout::RingUnix)?;
                ring.formed().await?;
                let entry = halley_substrate::client::parse_address(&ring.peers[0])?;
                let space = RemoteSpace::connect(entry, Duration::from_secs(10)).await?;
                once(name, run, space, &ring.peers[1..], "worker", &job, payloads).await?
            }
            Layout::RingDirect => {
                let ring = Ring::start(false)?;
                ring.formed().await?;
                let space =
                    DirectSpace::connect(ring.peers[0].parse()?, Duration::from_secs(10)).await?;
                let peers = &ring.peers[1..];
                once(name, run, space, peers, "worker-direct", &job, payloads).await?
            }
        };
        figures.push(figure);
    }
    figures.sort_by(f64::total_cmp);
    let name = match layout {
        Layout::Embedded => name.to_owned(),
        Layout::EmbeddedUnix => format!("{name}-unix"),
        Layout::Ring => format!("{name}-ring"),
        Layout::RingUnix => format!("{name}-ring-unix"),
        Layout::RingDirect => format!("{name}-ring-direct"),
    };
    println!("{name} median of {RUNS}: {:.3}", figures[RUNS / 2]);
    Ok(())
}

/// One run: a worker process (this binary in mode `mode`) on each of
/// `peers`, the master on `space`; returns tasks/s (W1) or the efficiency
/// (W2).
async fn once<S: Space>(
    name: &str,
    run: usize,
    space: S,
    peers: &[String],
    mode: &str,
    job: &str,
    payloads: Vec<Vec<u8>>,
) -> anyhow::Result<f64> {
    let tasks = payloads.len();
    let exe = std::env::current_exe()?;
    let workers = Children(
        peers
            .iter()
            .map(|peer| {
                Command::new(&exe)
                    .args([mode, peer, job])
                    .stdin(Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?,
    );
    let mut master = Master::new(space.clone(), job);
    // Both workers running: their first heartbeat is put as their lanes
    // start (a `ready` tuple put before the worker ran could be taken
    // while its own `out` still waited ~90 ms for the tuple's second copy
    // on a ring seconds old, and the job started without that worker).
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.workers().await?.len() < WORKERS {
        anyhow::ensure!(Instant::now() < deadline, "a worker never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if name == "w1" {
        master
            .submit(payloads[..WARMUP.min(tasks)].to_vec())
            .await?;
        master.collect().await?;
    }
    let began = Instant::now();
    let began_us = halley_paradigms::task::now_us();
    master.submit(payloads).await?;
    let submitted = began.elapsed().as_secs_f64();
    let results = master.collect().await?;
    let wall = began.elapsed().as_secs_f64();
    master.stop_workers().await?;
    assert_eq!(results.len(), tasks);
    let busy: f64 = results.iter().map(|d| d.result.run_secs()).sum();
    let mut per_worker = std::collections::BTreeMap::<&str, usize>::new();
    for done in &results {
        *per_worker.entry(done.result.worker.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_worker.len(),
        WORKERS,
        "every worker process took part: {per_worker:?}"
    );
    drop(workers);
    if name == "w1" {
        let rate = tasks as f64 / wall;
        let shares: Vec<usize> = per_worker.values().copied().collect();
        let ms = |us: i64| (us - began_us) as f64 / 1e3;
        let first = results
            .iter()
            .map(|d| d.result.started_us)
            .min()
            .unwrap_or(began_us);
        let last = results
            .iter()
            .map(|d| d.result.finished_us)
            .max()
            .unwrap_or(began_us);
        println!(
            "{name} run {run}: {tasks} tasks in {wall:.3} s = {rate:.0} tasks/s \
             (submitted in {:.1} ms, first task ran at {:.1} ms, last at {:.1} ms; \
             per worker {shares:?})",
            submitted * 1e3,
            ms(first),
            ms(last)
        );
        Ok(rate)
    } else {
        let efficiency = tasks as f64 * 0.005 / WORKERS as f64 / wall;
        println!(
            "{name} run {run}: wall {wall:.3} s, efficiency {efficiency:.3} (measured task time {:.2} ms; busy/wall {:.3})",
            busy / tasks as f64 * 1e3,
            busy / WORKERS as f64 / wall
        );
        Ok(efficiency)
    }
}

/// Worker mode: no-op tasks echo a 100-byte result; W2 tasks spin.
async fn work<S: Space>(space: S, job: &str) -> anyhow::Result<()> {
    Worker::new(space, job)
        .run(|payload| match <[u8; 8]>::try_from(payload) {
            Ok(n) => spin(u64::from_le_bytes(n)).to_le_bytes().to_vec(),
            Err(_) => vec![1u8; 100],
        })
        .await?;
    Ok(())
}

/// A chain of `n` splitmix64 steps: CPU only, not optimised away.
fn spin(n: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..n {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    black_box(x)
}

/// Iterations of [`spin`] that take `target` on this machine: the median of
/// 200 timed calls, refined three times, as `../shared/peers/calibrate.py`
/// calibrates the peers' W2 task.
fn calibrate(target: Duration) -> u64 {
    let median = |iterations: u64| {
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                spin(iterations);
                t.elapsed()
            })
            .collect();
        times.sort_unstable();
        times[times.len() / 2].as_secs_f64().max(1e-9)
    };
    let mut iterations = 10_000;
    for _ in 0..4 {
        iterations = (iterations as f64 * target.as_secs_f64() / median(iterations)) as u64;
    }
    iterations
}
