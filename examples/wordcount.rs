//! Word count with the MapReduce Rust API (workload W3): counts the
//! whitespace-separated words of the named files (or directories), prints the
//! 10 most frequent and a figure line.
//!
//! ```text
//! cargo run --release --example wordcount -- /tmp/corpus.txt [--workers 2] [--reducers 2]
//! ```
//! The map task splits its input on ASCII whitespace and emits each word,
//! borrowed from the input, with a count of 1; the combiner adds counts
//! inside the map task; the reduce returns the total.

use std::time::Instant;

use anyhow::{Context as _, bail};
use halley_paradigms::mapreduce::{Emitter, Input, MapReduce};
use halley_substrate::embedded::EmbeddedSpace;

/// The map: every maximal run of non-whitespace bytes is a word.
fn words<'a>(split: &'a [u8], emit: &mut Emitter<'_, &'a [u8], u64, impl Fn(&mut u64, u64)>) {
    let mut i = 0;
    let n = split.len();
    while i < n {
        while i < n && split[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < n && !split[i].is_ascii_whitespace() {
            i += 1;
        }
        if i > start {
            emit.emit(&split[start..i], 1);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut shape = MapReduce::new();
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> anyhow::Result<usize> {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a number"))?;
            value.parse().with_context(|| format!("{flag} {value:?}"))
        };
        match arg.as_str() {
            "--workers" => shape = shape.workers(number("--workers")?),
            "--reducers" => shape = shape.reducers(number("--reducers")?),
            _ => paths.push(arg),
        }
    }
    if paths.is_empty() {
        bail!("usage: wordcount <file-or-dir>... [--workers n] [--reducers n]");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let space = rt.block_on(async { EmbeddedSpace::new() });

    let start = Instant::now();
    let input = Input::read(&paths)?;
    let counts = shape.run(
        &space,
        rt.handle(),
        &input,
        words,
        |total, n| *total += n,
        |_word, total| total,
    )?;
    let mut all: Vec<(&[u8], u64)> = counts.into_iter().collect();
    let elapsed = start.elapsed().as_secs_f64();

    let words: u64 = all.iter().map(|(_, n)| n).sum();
    let distinct = all.len();
    let by_count = |a: &(&[u8], u64), b: &(&[u8], u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
    let top = distinct.min(10);
    if top > 0 {
        all.select_nth_unstable_by(top - 1, by_count);
    }
    all.truncate(top);
    all.sort_unstable_by(by_count);
    for (word, n) in &all {
        println!("{n:>10} {}", String::from_utf8_lossy(word));
    }
    let mb = input.len() as f64 / 1e6;
    println!(
        "HALLEYWC bytes={} words={words} distinct={distinct} total_s={elapsed:.3} MB_per_s={:.1}",
        input.len(),
        mb / elapsed
    );
    Ok(())
}
