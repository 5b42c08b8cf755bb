//! The ring index of a tuple (`Keyspace::index_of`), which every ring
//! peer computes for each tuple it routes, copies or takes
//! (`cargo bench --bench keyspace`).
//!
//! - `index/w1_task`: W1's task tuples, `("task", "w1-0", i, 0, <100
//!   bytes>)`, two keyword fields (the default).
//! - `index/spread`: `("t<8 hex digits>", i)`, keywords spread.
//!
//! Throughput is in tuples a second; both use the default keyspace (two
//! dimensions, 32 bits each).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halley_substrate::keyspace::Keyspace;
use halley_substrate::{Tuple, Value};

const TUPLES: usize = 1_000;

fn w1_tasks() -> Vec<Tuple> {
    (0..TUPLES as i64)
        .map(|i| {
            let payload: Value = vec![7u8; 100].into();
            Tuple::new(vec![
                "task".into(),
                "w1-0".into(),
                i.into(),
                0i64.into(),
                payload,
            ])
        })
        .collect()
}

fn spread() -> Vec<Tuple> {
    (0..TUPLES as u64)
        .map(|i| {
            let key = format!("t{:08x}", i.wrapping_mul(2_654_435_761) as u32);
            Tuple::new(vec![key.into(), (i as i64).into()])
        })
        .collect()
}

fn index(c: &mut Criterion) {
    let keyspace = Keyspace::default();
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(TUPLES as u64));
    for (name, tuples) in [("w1_task", w1_tasks()), ("spread", spread())] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for t in &tuples {
                    sum = sum.wrapping_add(keyspace.index_of(black_box(t)));
                }
                sum
            })
        });
    }
    group.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
