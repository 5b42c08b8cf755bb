//! The flood of issue 9: one client writes as fast as it can while another
//! measures W4 (BENCHMARKS.md) on the same node. Prints the victim's W4
//! median, p99 and max without the flood and during it, how many tuples
//! the flooder stored and had refused, and the node's resident memory
//! (VmRSS) before, at its highest during the flood, and the bound it was
//! given (`--max-tuples`); then how long `status` takes at that size.
//!
//! `cargo bench --bench flood [-- <seconds> <max-tuples>]` (default 20 s,
//! 4,000,000 tuples: above what one flooder writes here in 20 s, since the
//! victim's own writes are refused too once the node is full: its W4 then
//! stops, and the run shows the memory bound). The flooder and W4's echo
//! client B are copies of this binary started as other processes
//! (`flood …`, `echo …`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use halley_substrate::{Field, Kind, RemoteSpace, Space, SpaceError, Template, tuple};

const WARMUP: usize = 500;
const QUIET_ROUNDS: usize = 5_000;
/// Tuples in one of the flooder's writes, and its writes in flight.
const BATCH: usize = 64;
const IN_FLIGHT: usize = 16;
/// How long the victim waits for a pong before it counts B as refused.
const PONG_WAIT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("echo") => return runtime.block_on(echo(&args[1])),
        Some("flood") => {
            let seconds = args[2].parse().expect("seconds");
            return runtime.block_on(flood(&args[1], Duration::from_secs(seconds)));
        }
        _ => {}
    }
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(20);
    let max_tuples = numbers.get(1).copied().unwrap_or(4_000_000);
    let node = common::Node::start_with(&["--max-tuples", &max_tuples.to_string()]);
    let pid = node.proc.id();
    let me = std::env::current_exe().expect("this binary");
    let _b = common::Proc::spawn(std::process::Command::new(&me).args(["echo", &node.addr]));
    runtime.block_on(async {
        let a = connect(&node.addr).await;
        let quiet = round_trips(&a, WARMUP + QUIET_ROUNDS, None).await;
        report("W4 without the flood", &quiet[WARMUP..]);
        let before = rss_kb(pid);
        let mut flooder = common::Proc::spawn(std::process::Command::new(&me).args([
            "flood",
            &node.addr,
            &seconds.to_string(),
        ]));
        let highest = Arc::new(AtomicU64::new(before));
        let flooding = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (highest, flooding) = (highest.clone(), flooding.clone());
            std::thread::spawn(move || {
                while flooding.load(Ordering::Relaxed) {
                    highest.fetch_max(rss_kb(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let end = Instant::now() + Duration::from_secs(seconds);
        let loud = round_trips(&a, usize::MAX, Some(end)).await;
        report("W4 during the flood", &loud);
        let status = flooder.wait(Duration::from_secs(seconds + 60));
        flooding.store(false, Ordering::Relaxed);
        sampler.join().expect("sampler");
        let held = a.status().await.expect("status").tuples;
        let mut statuses = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            a.status().await.expect("status");
            statuses.push(start.elapsed());
        }
        report(&format!("status at {held} tuples"), &statuses);
        println!(
            "node: {held} tuples held (bound {max_tuples}); VmRSS {} MB before, {} MB at most \
             during the flood; flooder {status}",
            before / 1024,
            highest.load(Ordering::Relaxed) / 1024
        );
    });
}

fn report(what: &str, samples: &[Duration]) {
    let mut samples = samples.to_vec();
    samples.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    println!(
        "{what} over {} rounds: median {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// The node's resident memory in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn connect(addr: &str) -> RemoteSpace {
    let addr: halley_substrate::Multiaddr = addr.parse().expect("node address");
    RemoteSpace::connect(addr, Duration::from_secs(10))
        .await
        .expect("connects to the node")
}

/// The flooder: writes batches of tuples, [`IN_FLIGHT`] at once, for
/// `length`; refusals (the node full) are counted and the flood goes on.
async fn flood(addr: &str, length: Duration) {
    let space = connect(addr).await;
    let end = Instant::now() + length;
    let (stored, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let writer = |w: usize| {
        let (space, stored, refused) = (&space, &stored, &refused);
        async move {
            let mut i = w as i64 * 1_000_000_000;
            while Instant::now() < end {
                let batch = (0..BATCH as i64).map(|k| tuple!("flood", i + k)).collect();
                i += BATCH as i64;
                match space.out_all(batch, None).await {
                    Ok(()) => stored.fetch_add(BATCH as u64, Ordering::Relaxed),
                    Err(SpaceError::Refused(_)) => {
                        refused.fetch_add(BATCH as u64, Ordering::Relaxed)
                    }
                    Err(e) => panic!("flood: {e}"),
                };
            }
        }
    };
    futures::future::join_all((0..IN_FLIGHT).map(writer)).await;
    println!(
        "flooder: {} tuples stored, {} refused in {:.0} s",
        stored.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        length.as_secs_f64()
    );
}

/// Client B: answers pings with pongs until killed.
async fn echo(addr: &str) {
    let b = connect(addr).await;
    let pings = Template::new(vec![Field::Actual("ping".into()), Field::Typed(Kind::Int)]);
    loop {
        let Ok(Some(ping)) = b.take(pings.clone(), None).await else {
            return;
        };
        let i = ping.get(1).and_then(|v| v.as_int()).expect("an int");
        // Refused once the node is full: A stops waiting (its take times out).
        if b.out(tuple!("pong", i)).await.is_err() {
            return;
        }
    }
}

/// Client A: `rounds` round trips, or as many as fit before `until` or
/// the node refuses its writes (full).
async fn round_trips(a: &RemoteSpace, rounds: usize, until: Option<Instant>) -> Vec<Duration> {
    let mut samples = Vec::new();
    let mut i = 0i64;
    while samples.len() < rounds && until.is_none_or(|u| Instant::now() < u) {
        let start = Instant::now();
        match a.out(tuple!("ping", i)).await {
            Ok(()) => {}
            Err(SpaceError::Refused(e)) => {
                println!(
                    "victim: a write refused after {} rounds: {e}",
                    samples.len()
                );
                break;
            }
            Err(e) => panic!("A puts: {e}"),
        }
        let pong = a
            .take(Template::exact(&tuple!("pong", i)), Some(PONG_WAIT))
            .await
            .expect("A takes");
        if pong.is_none() {
            println!("victim: no pong within {PONG_WAIT:?} (B's write refused: the node is full)");
            break;
        }
        samples.push(start.elapsed());
        i += 1;
    }
    samples
}
