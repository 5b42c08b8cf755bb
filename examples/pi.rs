//! Monte Carlo π with master-worker over an embedded space.
//!
//! `cargo run --release --example pi [tasks] [samples-per-task]`
//!
//! The master puts one task per seed; two in-process workers count the
//! random points of the unit square that fall in the quarter circle.

use halley_paradigms::master::Master;
use halley_paradigms::worker::Worker;
use halley_substrate::embedded::EmbeddedSpace;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let tasks = args.next().transpose()?.unwrap_or(64);
    let samples = args.next().transpose()?.unwrap_or(1_000_000);

    let space = EmbeddedSpace::new();
    for _ in 0..2 {
        tokio::spawn(Worker::new(space.clone(), "pi").run(move |seed| {
            let hits = count_hits(
                u64::from_le_bytes(seed.try_into().unwrap_or_default()),
                samples,
            );
            hits.to_le_bytes().to_vec()
        }));
    }
    let mut master = Master::new(space, "pi");
    master
        .submit((0..tasks).map(|seed| seed.to_le_bytes().to_vec()))
        .await?;
    let mut hits = 0;
    for done in master.collect().await? {
        hits += u64::from_le_bytes(done.result.payload.as_slice().try_into()?);
    }
    master.stop_workers().await?;
    let pi = 4.0 * hits as f64 / (tasks * samples) as f64;
    println!(
        "pi ~ {pi:.6} ({} samples, error {:.2e})",
        tasks * samples,
        (pi - std::f64::consts::PI).abs()
    );
    Ok(())
}

/// Points of `samples` pseudo-random ones (splitmix64 from `seed`) inside
/// the quarter circle.
fn count_hits(seed: u64, samples: u64) -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut unit = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    (0..samples)
        .filter(|_| unit().powi(2) + unit().powi(2) <= 1.0)
        .count() as u64
}
