//! Benchmarks of the sans-io store (`cargo bench --bench store`).
//!
//! - `pairs/indexed_100k`: one `in` with an indexed template (first field an
//!   actual value, one of 1,000 keys) and one `out`, on a store holding
//!   100,000 tuples. The tuple taken is written back, so the store's size
//!   stays put and no tuple allocation is measured: only the store's work.
//! - `pairs/indexed_1m`: the same on 1,000,000 tuples.
//! - `pairs/scan_100k`: the same with a template that is not indexed (a
//!   string prefix first), which scans the tuples of its arity oldest first
//!   until it meets a match (about one in 1,000; the oldest match is some
//!   hundreds of tuples in).
//!
//! Throughput is in pairs (one `in` plus one `out`) per second. Each runs
//! twice: group `pairs` measures wall time; group `pairs_cpu` measures the
//! bench thread's time on a CPU (from `/proc/thread-self/schedstat`, Linux),
//! which is what "on one core" means on a shared, busy machine where the
//! thread waits for a core part of the time.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halley_substrate::store::Store;
use halley_substrate::{Field, Kind, Template, Tuple, Value};

const KEYS: usize = 1_000;

fn key(i: usize) -> String {
    format!("key-{i:04}")
}

/// A store of `size` tuples `(key, n)`, keys round robin.
fn filled(size: usize) -> Store {
    let mut store = Store::new();
    for n in 0..size {
        let tuple = Tuple::new(vec![Value::Str(key(n % KEYS)), Value::Int(n as i64)]);
        store
            .out(tuple, None, 0)
            .expect("within the default limits");
    }
    store
}

fn indexed_templates() -> Vec<Template> {
    (0..KEYS)
        .map(|i| {
            Template::new(vec![
                Field::Actual(Value::Str(key(i))),
                Field::Typed(Kind::Int),
            ])
        })
        .collect()
}

fn prefix_templates() -> Vec<Template> {
    (0..KEYS)
        .map(|i| Template::new(vec![Field::Prefix(key(i)), Field::Typed(Kind::Int)]))
        .collect()
}

/// Nanoseconds this thread has run on a CPU. The kernel brings the figure up
/// to date at each scheduler event, so yield first to have one.
fn thread_cpu_ns() -> u64 {
    std::thread::yield_now();
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("Linux with schedstats: /proc/thread-self/schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat starts with the run time in ns")
}

/// A criterion measurement of the thread's CPU time, in nanoseconds.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time: format them the same way.
        WALL.formatter()
    }
}

/// One `in` then one `out` of the same tuple, the template picked at random.
fn pairs<M: Measurement>(
    c: &mut Criterion<M>,
    group: &str,
    name: &str,
    size: usize,
    templates: &[Template],
) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    // Templates in a pseudo-random order (xorshift), so that the store's
    // order does not settle into the order of the requests.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    // Filled on first use: criterion skips benchmarks a filter leaves out.
    let mut store = None;
    group.bench_function(name, |b| {
        let store = store.get_or_insert_with(|| filled(size));
        b.iter(|| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let template = &templates[(rng % templates.len() as u64) as usize];
            let tuple = store
                .take(black_box(template), 1, 0)
                .pop()
                .expect("a match");
            black_box(store.out(tuple, None, 0).expect("room"));
        })
    });
    group.finish();
    if let Some(store) = store {
        assert_eq!(store.len(), size);
    }
}

fn run<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let indexed = indexed_templates();
    pairs(c, group, "indexed_100k", 100_000, &indexed);
    pairs(c, group, "indexed_1m", 1_000_000, &indexed);
    pairs(c, group, "scan_100k", 100_000, &prefix_templates());
}

fn wall(c: &mut Criterion) {
    run(c, "pairs");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    run(c, "pairs_cpu");
}

criterion_group! {
    name = wall_time;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(4));
    targets = wall
}
criterion_group! {
    name = cpu_time;
    config = Criterion::default()
        .with_measurement(CpuTime)
        .measurement_time(std::time::Duration::from_secs(6));
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
