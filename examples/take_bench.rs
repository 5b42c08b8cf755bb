//! Takes of several from several candidates through a 3-peer ring (R = 2):
//! the take side of W1 when the tasks spread over the ring.
//!
//! ```sh
//! cargo build --release --bin halley --example take_bench
//! target/release/examples/take_bench [<tuples>]   # default 30,000
//! ```
//! Starts three `halley node` processes (the release binary beside this
//! one), writes `<tuples>` tuples `("t<hash>", i, <100 bytes>)` through the
//! first (keywords spread, so every peer holds a third), then takes them
//! back through the first, 1,024 at a time with `(?str, ?int, ?bytes)`:
//! every peer is a candidate of every take. Prints, per run and as the
//! median of 3: tuples taken per second, and the three nodes' CPU
//! (user + system, from `/proc/<pid>/stat`) per tuple taken, over the
//! takes only.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use halley_substrate::client::RemoteSpace;
use halley_substrate::{Space, Tuple, parse_template};

#[path = "common/ring.rs"]
mod ring;
use ring::Ring;

const RUNS: usize = 3;
/// Tuples one take asks for (W1's batch).
const MAX: usize = 1_024;
/// Clock ticks a second in `/proc/<pid>/stat` (Linux's `USER_HZ`, 100 on
/// every architecture it runs this on).
const USER_HZ: f64 = 100.0;

impl Ring {
    /// The nodes' CPU time so far (user + system), in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let mut ticks = 0;
        for child in &self.nodes.0 {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
            // Fields after the command's closing parenthesis; utime and
            // stime are the 14th and 15th of the whole line.
            let rest = stat.rsplit_once(')').context("a stat line")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        }
        Ok(ticks)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tuples = match &args[..] {
        [] => 30_000,
        [n] => n.parse().context("take_bench <tuples>: a number")?,
        _ => bail!("usage: take_bench [<tuples>]"),
    };
    let (mut rates, mut costs) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (rate, cost) = once(tuples).await?;
        println!("run {run}: {tuples} taken at {rate:.0} tuples/s, node CPU {cost:.2} µs a tuple");
        rates.push(rate);
        costs.push(cost);
    }
    rates.sort_by(f64::total_cmp);
    costs.sort_by(f64::total_cmp);
    println!(
        "take_bench median of {RUNS}: {:.0} tuples/s, node CPU {:.2} µs a tuple",
        rates[RUNS / 2],
        costs[RUNS / 2]
    );
    Ok(())
}

/// One run on a fresh ring: tuples taken per second and node CPU (µs) per
/// tuple taken.
async fn once(tuples: usize) -> anyhow::Result<(f64, f64)> {
    let ring = Ring::start(false)?;
    ring.formed().await?;
    let space = RemoteSpace::connect(ring.peers[0].parse()?, Duration::from_secs(10)).await?;
    let written: Vec<Tuple> = (0..tuples)
        .map(|i| {
            let key = format!("t{:08x}", (i as u64).wrapping_mul(2_654_435_761) as u32);
            Tuple::new(vec![key.into(), (i as i64).into(), vec![7u8; 100].into()])
        })
        .collect();
    space.out_all(written, None).await?;
    let template = parse_template("(?str, ?int, ?bytes)")?;
    let ticks = ring.cpu_ticks()?;
    let start = Instant::now();
    let mut taken = 0;
    while taken < tuples {
        let got = space
            .take_up_to(template.clone(), MAX, Some(Duration::ZERO))
            .await?;
        if got.is_empty() {
            bail!("{taken} of {tuples} taken, then nothing");
        }
        taken += got.len();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_s = (ring.cpu_ticks()? - ticks) as f64 / USER_HZ;
    Ok((taken as f64 / elapsed, cpu_s * 1e6 / taken as f64))
}
