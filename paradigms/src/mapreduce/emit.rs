//! The map side's output: one hash table per reduce partition, with the
//! combiner applied as each pair is emitted.
//!
//! A key is hashed once (FxHash: deterministic, so the same key lands in the
//! same partition in every task and every process); the hash picks the
//! partition and is kept beside the key, so the table never hashes it again,
//! neither when it grows nor when a reduce task merges tables.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// The partition (of `partitions`) that a key with this hash belongs to.
///
/// Uses bits 24..56 of the hash: the table inside a partition indexes its
/// buckets with the low bits and tags them with the top 7, so those stay
/// fully random within a partition.
pub fn partition_of(hash: u64, partitions: usize) -> usize {
    ((((hash >> 24) & 0xffff_ffff) * partitions as u64) >> 32) as usize
}

/// The hash of a key, as used for partitioning and for the tables.
pub fn hash_key<K: Hash + ?Sized>(key: &K) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// One partition's combined pairs: `(hash, key, value)`.
pub(crate) type Table<K, V> = HashTable<(u64, K, V)>;

/// Adds a pair to a table, combining with the value already there.
#[inline]
pub(crate) fn upsert<K: Eq, V>(
    table: &mut Table<K, V>,
    hash: u64,
    key: K,
    value: V,
    combine: impl FnOnce(&mut V, V),
) {
    match table.find_mut(hash, |e| e.1 == key) {
        Some(entry) => combine(&mut entry.2, value),
        None => {
            table.insert_unique(hash, (hash, key, value), |e| e.0);
        }
    }
}

/// What a map function emits into: `emit(key, value)`.
pub struct Emitter<'j, K, V, C> {
    tables: Vec<Table<K, V>>,
    combine: &'j C,
}

impl<K, V, C> std::fmt::Debug for Emitter<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("partitions", &self.tables.len())
            .field("keys", &self.tables.iter().map(|t| t.len()).sum::<usize>())
            .finish()
    }
}

impl<'j, K: Hash + Eq, V, C: Fn(&mut V, V)> Emitter<'j, K, V, C> {
    pub(crate) fn new(partitions: usize, combine: &'j C) -> Self {
        Emitter {
            tables: (0..partitions.max(1)).map(|_| HashTable::new()).collect(),
            combine,
        }
    }

    /// Emits one pair: combined at once with the value this map task already
    /// emitted for the same key, if any.
    #[inline]
    pub fn emit(&mut self, key: K, value: V) {
        let hash = hash_key(&key);
        let part = partition_of(hash, self.tables.len());
        upsert(&mut self.tables[part], hash, key, value, self.combine);
    }

    pub(crate) fn into_tables(self) -> Vec<Table<K, V>> {
        self.tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_in_range_and_spread() {
        let mut seen = [0usize; 4];
        for i in 0..10_000u32 {
            let p = partition_of(hash_key(&i.to_string().as_bytes()), 4);
            seen[p] += 1;
        }
        for n in seen {
            assert!((2_000..3_000).contains(&n), "{seen:?}");
        }
        assert_eq!(partition_of(u64::MAX, 1), 0);
    }

    #[test]
    fn emit_combines_equal_keys() {
        let add = |a: &mut u64, b: u64| *a += b;
        let mut emitter = Emitter::new(3, &add);
        for word in ["a", "b", "a", "c", "a"] {
            emitter.emit(word, 1);
        }
        let mut pairs: Vec<(&str, u64)> = emitter
            .into_tables()
            .into_iter()
            .flat_map(|t| t.into_iter().map(|(_, k, v)| (k, v)))
            .collect();
        pairs.sort();
        assert_eq!(pairs, vec![("a", 3), ("b", 1), ("c", 1)]);
    }
}
