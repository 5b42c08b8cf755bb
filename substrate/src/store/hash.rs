//! A small, fast, deterministic hasher for the store's maps and its index keys.
//!
//! The store is sans-io and must behave identically run after run, so it uses
//! no random hash seed (SipHash's `RandomState`): this is the FxHash scheme of
//! rustc (add, multiply by an odd constant), which is several times cheaper
//! than SipHash on the short keys the store hashes (ids, first fields). Inputs
//! come from clients, so a hostile client could aim for collisions in one
//! bucket; that slows that client's own keys, the bounds in
//! [`super::Limits`] still hold.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::tuple::Value;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// FxHash-style hasher: `state = (state + word) * K`, rotated at the end so the
/// well-mixed high bits land where hash tables look.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with the [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The index key of a tuple (or of a template with an actual first field):
/// its arity and its first value, hashed. Equal arity and first value give
/// equal keys; different ones almost always differ, and where they collide the
/// store still checks every candidate against the template.
#[inline]
pub(crate) fn index_key(arity: usize, first: Option<&Value>) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write_usize(arity);
    if let Some(value) = first {
        value.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_arity_and_value() {
        let a = Value::Str("task".into());
        let b = Value::Str("tasks".into());
        assert_eq!(index_key(2, Some(&a)), index_key(2, Some(&a.clone())));
        assert_ne!(index_key(2, Some(&a)), index_key(3, Some(&a)));
        assert_ne!(index_key(2, Some(&a)), index_key(2, Some(&b)));
        assert_ne!(
            index_key(1, Some(&Value::Int(1))),
            index_key(1, Some(&Value::Int(2)))
        );
        assert_ne!(index_key(0, None), index_key(1, None));
    }

    #[test]
    fn short_strings_differ_by_length() {
        let mut a = FastHasher::default();
        a.write(b"a");
        let mut b = FastHasher::default();
        b.write(b"a\0");
        assert_ne!(a.finish(), b.finish());
    }
}
