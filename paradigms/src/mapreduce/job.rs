//! The in-process Rust API: map, combine and reduce closures over input held
//! in memory, run by worker threads that take their tasks from the space.
//!
//! ```ignore
//! let counts = MapReduce::new().reducers(2).run(
//!     &space, &rt, &input,
//!     |split, emit| for w in split.split(u8::is_ascii_whitespace) { if !w.is_empty() { emit.emit(w, 1u64) } },
//!     |total, n| *total += n,     // the combiner, applied in the map task
//!     |_word, total| total,       // the reduce, once per key
//! )?;
//! ```
//! Keys may borrow from the input (`&[u8]` slices of it), so a word count
//! copies no word. A map task fills one hash table per partition, combining
//! as it goes; reduce task r merges partition r of every map task with the
//! same combiner and then calls the reduce once per key.

use std::hash::Hash;
use std::sync::Mutex;

use halley_substrate::Space;
use tokio::runtime::Handle;

use super::control::{self, Error, Plan, Tasks};
use super::emit::{Emitter, Table, upsert};
use super::input::{Input, Split};

/// The shape of a job; `MapReduce::new()` picks one worker per core, as many
/// partitions as workers and about four splits per worker (at least one per
/// 16 MB), which balances well without costing much per task.
#[derive(Clone, Copy, Debug)]
pub struct MapReduce {
    reducers: Option<usize>,
    workers: usize,
    splits: Option<usize>,
}

impl Default for MapReduce {
    fn default() -> Self {
        Self::new()
    }
}

const SPLIT_BYTES: usize = 16 << 20;

impl MapReduce {
    pub fn new() -> Self {
        MapReduce {
            reducers: None,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            splits: None,
        }
    }

    /// Number of reduce partitions (R).
    pub fn reducers(mut self, n: usize) -> Self {
        self.reducers = Some(n.max(1));
        self
    }

    /// Number of worker threads.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Number of input splits (map tasks), about.
    pub fn splits(mut self, n: usize) -> Self {
        self.splits = Some(n.max(1));
        self
    }

    /// The splits of `input` and the plan to run them.
    pub(crate) fn plan<'a>(&self, input: &'a Input) -> (Vec<Split<'a>>, Plan) {
        let splits = self
            .splits
            .unwrap_or_else(|| (self.workers * 4).max(input.len() / SPLIT_BYTES));
        let splits = input.splits(splits);
        let plan = Plan {
            splits: splits.len(),
            partitions: self.reducers.unwrap_or(self.workers),
            workers: self.workers,
        };
        (splits, plan)
    }

    /// Runs the job over `input` with the space `space` (its futures driven
    /// by `rt`; call from outside that runtime's threads).
    #[allow(clippy::too_many_arguments)]
    pub fn run<'a, S, K, V, O, M, C, R>(
        &self,
        space: &S,
        rt: &Handle,
        input: &'a Input,
        map: M,
        combine: C,
        reduce: R,
    ) -> Result<Output<K, O>, Error>
    where
        S: Space,
        K: Hash + Eq + Send + 'a,
        V: Send,
        O: Send,
        M: Fn(&'a [u8], &mut Emitter<'_, K, V, C>) + Sync,
        C: Fn(&mut V, V) + Sync,
        R: Fn(&K, V) -> O + Sync,
    {
        let (splits, plan) = self.plan(input);
        let tasks = JobTasks {
            splits,
            map: &map,
            combine: &combine,
            reduce: &reduce,
            shuffled: (0..plan.partitions).map(|_| Mutex::default()).collect(),
            results: (0..plan.partitions).map(|_| Mutex::default()).collect(),
        };
        control::execute(space, rt, plan, &tasks)?;
        let partitions = tasks
            .results
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        Ok(Output { partitions })
    }
}

/// The reduce outputs: for each partition, its `(key, output)` pairs in no
/// particular order.
#[derive(Debug)]
pub struct Output<K, O> {
    partitions: Vec<Vec<(K, O)>>,
}

impl<K, O> Output<K, O> {
    pub fn partitions(&self) -> &[Vec<(K, O)>] {
        &self.partitions
    }

    /// Every pair, partition after partition.
    pub fn iter(&self) -> impl Iterator<Item = &(K, O)> {
        self.partitions.iter().flatten()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, O> IntoIterator for Output<K, O> {
    type Item = (K, O);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<(K, O)>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.partitions.into_iter().flatten()
    }
}

/// The tasks of one job: the splits they read and the shared memory their
/// outputs go through.
struct JobTasks<'a, 'f, K, V, O, M, C, R> {
    splits: Vec<Split<'a>>,
    map: &'f M,
    combine: &'f C,
    reduce: &'f R,
    /// Partition r's tables, one per finished map task.
    shuffled: Vec<Mutex<Vec<Table<K, V>>>>,
    results: Vec<Mutex<Vec<(K, O)>>>,
}

impl<'a, K, V, O, M, C, R> Tasks for JobTasks<'a, '_, K, V, O, M, C, R>
where
    K: Hash + Eq + Send + 'a,
    V: Send,
    O: Send,
    M: Fn(&'a [u8], &mut Emitter<'_, K, V, C>) + Sync,
    C: Fn(&mut V, V) + Sync,
    R: Fn(&K, V) -> O + Sync,
{
    fn map(&self, split: usize) -> Result<(), String> {
        let split = self.splits.get(split).ok_or("no such split")?;
        let mut emitter = Emitter::new(self.shuffled.len(), self.combine);
        (self.map)(split.data, &mut emitter);
        for (table, slot) in emitter.into_tables().into_iter().zip(&self.shuffled) {
            lock(slot).push(table);
        }
        Ok(())
    }

    fn reduce(&self, partition: usize) -> Result<(), String> {
        let slot = self.shuffled.get(partition).ok_or("no such partition")?;
        let mut tables = std::mem::take(&mut *lock(slot));
        let Some(largest) = (0..tables.len()).max_by_key(|&i| tables[i].len()) else {
            return Ok(());
        };
        let mut merged = tables.swap_remove(largest);
        for table in tables {
            for (hash, key, value) in table {
                upsert(&mut merged, hash, key, value, self.combine);
            }
        }
        let out = merged
            .into_iter()
            .map(|(_, key, value)| {
                let output = (self.reduce)(&key, value);
                (key, output)
            })
            .collect();
        *lock(&self.results[partition]) = out;
        Ok(())
    }
}

/// Locks a mutex, also after a task panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use halley_substrate::EmbeddedSpace;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn space(rt: &tokio::runtime::Runtime) -> EmbeddedSpace {
        rt.block_on(async { EmbeddedSpace::new() })
    }

    fn words<'a>(split: &'a [u8], emit: &mut Emitter<'_, &'a [u8], u64, impl Fn(&mut u64, u64)>) {
        for word in split.split(u8::is_ascii_whitespace) {
            if !word.is_empty() {
                emit.emit(word, 1);
            }
        }
    }

    #[test]
    fn word_count_equals_a_serial_count_for_any_shape() {
        let text: String = (0..2_000)
            .map(|i| format!("w{} w{} common\n", i % 37, i % 101))
            .collect();
        let mut expected = BTreeMap::new();
        for w in text.split_whitespace() {
            *expected.entry(w.as_bytes()).or_insert(0u64) += 1;
        }
        let input = Input::from_bytes("text", text.clone().into_bytes());
        let rt = runtime();
        let space = space(&rt);
        for (splits, reducers, workers) in [(1, 1, 1), (7, 3, 2), (40, 5, 3)] {
            let out = MapReduce::new()
                .splits(splits)
                .reducers(reducers)
                .workers(workers)
                .run(&space, rt.handle(), &input, words, |a, b| *a += b, |_, n| n)
                .unwrap();
            assert_eq!(out.partitions().len(), reducers);
            let got: BTreeMap<&[u8], u64> = out.into_iter().collect();
            assert_eq!(got, expected, "shape {splits}/{reducers}/{workers}");
        }
        let left = rt.block_on(space.scan(
            halley_substrate::Template::new(vec![halley_substrate::Field::Any; 4]),
            None,
        ));
        assert!(left.unwrap().is_empty(), "control tuples are all consumed");
    }

    #[test]
    fn an_empty_input_has_empty_partitions() {
        let input = Input::from_bytes("empty", Vec::new());
        let rt = runtime();
        let out = MapReduce::new()
            .reducers(3)
            .run(
                &space(&rt),
                rt.handle(),
                &input,
                words,
                |a, b| *a += b,
                |_, n| n,
            )
            .unwrap();
        assert_eq!(out.partitions().len(), 3);
        assert!(out.is_empty());
    }

    #[test]
    fn a_key_lands_in_one_partition_only() {
        let text = "a b c d e f g h a b c d\n".repeat(50);
        let input = Input::from_bytes("t", text.into_bytes());
        let rt = runtime();
        let out = MapReduce::new()
            .splits(10)
            .reducers(4)
            .workers(2)
            .run(
                &space(&rt),
                rt.handle(),
                &input,
                words,
                |a, b| *a += b,
                |_, n| n,
            )
            .unwrap();
        assert_eq!(out.len(), 8);
        assert_eq!(out.iter().find(|(k, _)| *k == b"a").map(|p| p.1), Some(100));
    }

    #[test]
    fn a_panicking_map_fails_the_job_with_its_message() {
        let input = Input::from_bytes("t", b"fine\nboom\nfine\n".to_vec());
        let rt = runtime();
        let space = space(&rt);
        let err = MapReduce::new()
            .splits(3)
            .workers(2)
            .run(
                &space,
                rt.handle(),
                &input,
                |split: &[u8], emit: &mut Emitter<'_, &[u8], u64, _>| {
                    assert!(!split.starts_with(b"boom"), "bad record");
                    emit.emit(split, 1)
                },
                |a: &mut u64, b| *a += b,
                |_, n| n,
            )
            .unwrap_err();
        match err {
            Error::Task { phase, message, .. } => {
                assert_eq!(phase, crate::mapreduce::Phase::Map);
                assert!(message.contains("bad record"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
        for arity in [4, 5] {
            let any = halley_substrate::Template::new(vec![halley_substrate::Field::Any; arity]);
            let left = rt.block_on(space.scan(any, None)).unwrap();
            assert!(left.is_empty(), "no control tuple is left behind: {left:?}");
        }
    }
}
