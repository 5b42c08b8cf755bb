//! Benchmarks of the sans-io store (`cargo bench --bench store`).
//!
//! - `pairs/indexed_100k`: one `in` with an indexed template (first field an
//!   actual value, one of 1,000 keys) and one `out`, on a store holding
//!   100,000 tuples. The tuple taken is written back, so the store's size
//!   stays put and no tuple allocation is measured: only the store's work.
//! - `pairs/indexed_1m`: the same on 1,000,000 tuples.
//! - `pairs/scan_100k`: the same with a template that is not indexed (a
//!   string prefix first), which scans the tuples of its arity oldest first
//!   until it meets a match (about one in 1,000).
//!
//! Throughput is in pairs (one `in` plus one `out`) per second.

use std::hint::black_box;

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

/// One `in` then one `out` of the same tuple, cycling through the templates.
fn pairs(c: &mut Criterion, name: &str, size: usize, templates: &[Template]) {
    let mut store = filled(size);
    let mut group = c.benchmark_group("pairs");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let template = &templates[i % templates.len()];
            i = i.wrapping_add(1);
            let tuple = store
                .take(black_box(template), 1, 0)
                .pop()
                .expect("a match");
            black_box(store.out(tuple, None, 0).expect("room"));
        })
    });
    group.finish();
    assert_eq!(store.len(), size);
}

fn benches(c: &mut Criterion) {
    let indexed = indexed_templates();
    pairs(c, "indexed_100k", 100_000, &indexed);
    pairs(c, "indexed_1m", 1_000_000, &indexed);
    pairs(c, "scan_100k", 100_000, &prefix_templates());
}

criterion_group! {
    name = store;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(store);
