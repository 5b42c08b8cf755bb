//! A parameter sweep with master-worker over an embedded space: the peak
//! displacement of a driven, damped oscillator for a grid of damping
//! ratios and driving frequencies (a resonance curve).
//!
//! `cargo run --release --example sweep`

use halley_paradigms::master::Master;
use halley_paradigms::worker::Worker;
use halley_substrate::embedded::EmbeddedSpace;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dampings = [0.05, 0.1, 0.2, 0.5];
    let frequencies: Vec<f64> = (1..=12).map(|i| 0.25 * i as f64).collect();
    let grid: Vec<(f64, f64)> = dampings
        .iter()
        .flat_map(|&z| frequencies.iter().map(move |&w| (z, w)))
        .collect();

    let space = EmbeddedSpace::new();
    for _ in 0..2 {
        tokio::spawn(Worker::new(space.clone(), "sweep").run(|payload| {
            let (zeta, omega) = decode(payload);
            peak(zeta, omega).to_le_bytes().to_vec()
        }));
    }
    let mut master = Master::new(space, "sweep");
    master
        .submit(
            grid.iter()
                .map(|&(z, w)| [z.to_le_bytes(), w.to_le_bytes()].concat()),
        )
        .await?;
    let results = master.collect().await?;
    master.stop_workers().await?;

    print!("{:>8}", "zeta\\w");
    frequencies.iter().for_each(|w| print!("{w:>7.2}"));
    for (row, zeta) in results.chunks(frequencies.len()).zip(dampings) {
        print!("\n{zeta:>8.2}");
        for done in row {
            print!(
                "{:>7.2}",
                f64::from_le_bytes(done.result.payload.as_slice().try_into()?)
            );
        }
    }
    println!();
    Ok(())
}

fn decode(payload: &[u8]) -> (f64, f64) {
    let word = |b: &[u8]| f64::from_le_bytes(b.try_into().unwrap_or_default());
    (word(&payload[..8]), word(&payload[8..16]))
}

/// Peak |x| over the last half of 200 s of x'' + 2ζx' + x = cos(ωt), by
/// semi-implicit Euler with dt = 1 ms.
fn peak(zeta: f64, omega: f64) -> f64 {
    let (dt, steps) = (1e-3, 200_000);
    let (mut x, mut v, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    for step in 0..steps {
        let t = step as f64 * dt;
        v += dt * ((omega * t).cos() - 2.0 * zeta * v - x);
        x += dt * v;
        if step > steps / 2 {
            peak = peak.max(x.abs());
        }
    }
    peak
}
