//! W1 and W2 of BENCHMARKS.md for master-worker: an embedded space served
//! on 127.0.0.1, a master in this process, 2 worker processes (this same
//! binary, in worker mode) reaching the space over the node API.
//!
//! ```sh
//! cargo run --release --example mw_bench -- w1   # 20,000 no-op tasks, 100-byte payloads
//! cargo run --release --example mw_bench -- w2   # 2,000 tasks of 5 ms CPU
//! ```
//! Each prints its 3 runs and their median. Timing covers submitting the
//! first task to collecting the last result; the workers are connected and
//! waiting before it starts.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use halley_paradigms::master::Master;
use halley_paradigms::worker::Worker;
use halley_substrate::client::RemoteSpace;
use halley_substrate::embedded::EmbeddedSpace;
use halley_substrate::node::Node;
use halley_substrate::{Space, Template, Tuple};

const WORKERS: usize = 2;
const RUNS: usize = 3;

/// Kills the worker processes when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["w1"] => bench("w1", 20_000, |_| vec![7u8; 100]).await,
        ["w2"] => {
            let iterations = calibrate(Duration::from_millis(5));
            println!("w2: {iterations} busy-loop iterations ~ 5 ms here");
            bench("w2", 2_000, move |_| iterations.to_le_bytes().to_vec()).await
        }
        ["worker", peer, job] => work(peer, job).await,
        _ => bail!("usage: mw_bench w1|w2"),
    }
}

async fn bench(name: &str, tasks: usize, payload: impl Fn(usize) -> Vec<u8>) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for run in 0..RUNS {
        let space = EmbeddedSpace::new();
        let node = Node::start("/ip4/127.0.0.1/tcp/0".parse()?, space.clone()).await?;
        let job = format!("{name}-{run}");
        let exe = std::env::current_exe()?;
        let workers = Workers(
            (0..WORKERS)
                .map(|_| {
                    Command::new(&exe)
                        .args(["worker", &node.address().to_string(), &job])
                        .stdin(Stdio::null())
                        .spawn()
                })
                .collect::<Result<_, _>>()?,
        );
        let ready = Template::new(vec![halley_substrate::Field::Actual("ready".into())]);
        for _ in 0..WORKERS {
            space
                .take(ready.clone(), Some(Duration::from_secs(30)))
                .await?
                .context("a worker never connected")?;
        }
        let payloads: Vec<Vec<u8>> = (0..tasks).map(&payload).collect();
        let began = Instant::now();
        let mut master = Master::new(space.clone(), job);
        master.submit(payloads).await?;
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
        let figure = if name == "w1" {
            let rate = tasks as f64 / wall;
            println!("{name} run {run}: {tasks} tasks in {wall:.3} s = {rate:.0} tasks/s");
            rate
        } else {
            let efficiency = tasks as f64 * 0.005 / WORKERS as f64 / wall;
            println!(
                "{name} run {run}: wall {wall:.3} s, efficiency {efficiency:.3} (measured task time {:.2} ms; busy/wall {:.3})",
                busy / tasks as f64 * 1e3,
                busy / WORKERS as f64 / wall
            );
            efficiency
        };
        figures.push(figure);
        drop(workers);
        node.stop().await;
    }
    figures.sort_by(f64::total_cmp);
    println!("{name} median of {RUNS}: {:.3}", figures[RUNS / 2]);
    Ok(())
}

/// Worker mode: no-op tasks echo a 100-byte result; W2 tasks spin.
async fn work(peer: &str, job: &str) -> anyhow::Result<()> {
    let space = RemoteSpace::connect(peer.parse()?, Duration::from_secs(10)).await?;
    space.out(Tuple::new(vec!["ready".into()])).await?;
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
